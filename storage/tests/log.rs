//! The log on a real fjall database in a temp dir: group commit under concurrency, atomic
//! write-model updates, rejection, recovery after reopen, the directory lock, the memtables'
//! bound, batches fsynced only when one of their commands asks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use girok_storage::{
    Appender, DEFAULT_BACKGROUND_SYNC, Durability, Error, Stager, Store, StoreConfig, Table, Txn,
    WriterConfig, WriterHandle,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

/// Appends `payload` if `key` was never seen (a uniqueness check against the write model).
struct UniqueAppend;

#[derive(Debug)]
enum Rejected {
    Duplicate,
    Storage(#[allow(dead_code)] Error),
}

impl From<Error> for Rejected {
    fn from(e: Error) -> Self {
        Rejected::Storage(e)
    }
}

impl Stager for UniqueAppend {
    type Command = (Vec<u8>, Vec<u8>);
    type Accepted = u64;
    type Rejected = Rejected;

    fn stage(&mut self, (key, payload): Self::Command, txn: &mut Txn<'_>) -> Result<u64, Rejected> {
        if txn.contains(Table::RoomidRoom, &key)? {
            // Write something first: a rejection must drop it.
            txn.put(Table::ActorClientidAck, key, b"leaked".to_vec());
            return Err(Rejected::Duplicate);
        }
        txn.put(Table::RoomidRoom, key, b"1".to_vec());
        Ok(txn.append(|_| payload))
    }
}

fn open(dir: &std::path::Path) -> (Arc<Store>, WriterHandle<UniqueAppend>) {
    let store = Store::open(StoreConfig::new(dir)).unwrap();
    let writer = WriterHandle::spawn(store.clone(), UniqueAppend, WriterConfig::default()).unwrap();
    (store, writer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_gap_free_seqs_holding_their_payload() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    let tasks = 64;
    let per_task = 50;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let appender = writer.appender();
        handles.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0..per_task {
                let payload = format!("task {t} item {i}").into_bytes();
                let key = payload.clone();
                let seq = appender.submit((key, payload.clone())).await.unwrap();
                acks.push((seq, payload));
            }
            acks
        }));
    }
    let mut acks = Vec::new();
    for h in handles {
        acks.extend(h.await.unwrap());
    }
    let total = (tasks * per_task) as u64;
    let seqs: HashSet<u64> = acks.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs.len() as u64, total, "no seq handed out twice");
    assert_eq!(seqs, (1..=total).collect(), "seqs are exactly 1..=N");
    assert_eq!(store.head().get(), total);
    for (seq, payload) in &acks {
        assert_eq!(store.event(*seq).unwrap().as_ref(), Some(payload));
    }
    // Batching actually happened: fewer batches than commands.
    let range = store.read_range(1, total, usize::MAX).unwrap();
    assert_eq!(range.len() as u64, total);
    assert!(range.windows(2).all(|w| w[0].0 + 1 == w[1].0));
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejected_command_leaves_nothing_and_the_batch_sees_earlier_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    // 200 concurrent submissions of the same key: they land in few batches, so the uniqueness
    // check must see writes of earlier commands in the same uncommitted batch.
    let mut handles = Vec::new();
    for i in 0..200 {
        let appender = writer.appender();
        handles.push(tokio::spawn(async move {
            appender
                .submit((b"same".to_vec(), format!("{i}").into_bytes()))
                .await
        }));
    }
    let mut accepted = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(seq) => {
                assert_eq!(seq, 1);
                accepted += 1;
            }
            Err(Rejected::Duplicate) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(store.head().get(), 1);
    assert_eq!(store.get(Table::ActorClientidAck, b"same").unwrap(), None);
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .unwrap();
}

#[test]
fn reopen_continues_after_the_durable_head_and_the_directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, writer) = open(dir.path());
        let appender = writer.appender();
        for i in 0..10u8 {
            assert_eq!(
                appender.submit_blocking((vec![i], vec![i])).unwrap(),
                i as u64 + 1
            );
        }
        assert!(matches!(
            Store::open(StoreConfig::new(dir.path())),
            Err(Error::Locked(_))
        ));
        assert!(store.memory().unwrap().memtables > 0);
        writer.shutdown();
        // A clean stop writes the memtables out: the next open has no journal to replay.
        assert_eq!(store.memory().unwrap().memtables, 0);
        drop(store);
    }
    let (store, writer) = open(dir.path());
    assert_eq!(store.head().get(), 10);
    let stats = store.stats().unwrap();
    assert_eq!((stats.first_seq, stats.last_seq), (Some(1), Some(10)));
    assert_eq!(
        writer
            .appender()
            .submit_blocking((vec![99], vec![1]))
            .unwrap(),
        11
    );
    // The write model survived too: key 3 is still taken.
    assert!(matches!(
        writer.appender().submit_blocking((vec![3], vec![3])),
        Err(Rejected::Duplicate)
    ));
    writer.shutdown();
}

#[test]
fn submits_after_shutdown_are_refused_not_hung() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, writer) = open(dir.path());
    let appender = writer.appender();
    writer.shutdown();
    assert!(matches!(
        appender.submit_blocking((vec![1], vec![1])),
        Err(Rejected::Storage(Error::Closed))
    ));
}

/// Appends its payload, asking for the durability it carries; one with a gate holds the writer
/// in its staging until released, so that the commands sent meanwhile make one batch.
struct ClassedAppend;

struct Classed {
    durability: Durability,
    payload: Vec<u8>,
    /// Says "staging" on the first channel, then waits for the second.
    gate: Option<(SyncSender<()>, Receiver<()>)>,
}

fn classed(durability: Durability, payload: u8) -> Classed {
    Classed {
        durability,
        payload: vec![payload],
        gate: None,
    }
}

impl Stager for ClassedAppend {
    type Command = Classed;
    type Accepted = u64;
    type Rejected = Error;

    fn stage(&mut self, command: Classed, txn: &mut Txn<'_>) -> Result<u64, Error> {
        if let Some((staging, release)) = command.gate {
            staging.send(()).unwrap();
            release.recv().unwrap();
        }
        Ok(txn.append(|_| command.payload))
    }

    fn durability(&self, command: &Classed) -> Durability {
        command.durability
    }
}

/// A writer of [`ClassedAppend`] over a store opened with `durability`, whose background
/// sync runs every `background_sync`.
fn open_classed(
    dir: &std::path::Path,
    durability: Durability,
    background_sync: Duration,
) -> (Arc<Store>, WriterHandle<ClassedAppend>) {
    let store = Store::open(StoreConfig {
        durability,
        ..StoreConfig::new(dir)
    })
    .unwrap();
    let config = WriterConfig {
        background_sync,
        ..WriterConfig::default()
    };
    let writer = WriterHandle::spawn(store.clone(), ClassedAppend, config).unwrap();
    (store, writer)
}

/// Sends a gated command, then `batch` while the writer is held in the gate's staging (so
/// they make the next batch, one of its own), then releases it; waits for every answer.
async fn one_batch_after_a_gate(appender: &Appender<ClassedAppend>, batch: Vec<Classed>) {
    let (staging, staged) = sync_channel(1);
    let (release, released) = sync_channel(1);
    let gated = Classed {
        gate: Some((staging, released)),
        ..classed(Durability::Buffered, 0)
    };
    let gate = appender.enqueue(gated).await.unwrap();
    tokio::task::spawn_blocking(move || staged.recv().unwrap())
        .await
        .unwrap();
    let mut answers = Vec::new();
    for command in batch {
        answers.push(appender.enqueue(command).await.unwrap());
    }
    release.send(()).unwrap();
    gate.get().await.unwrap();
    for answer in answers {
        answer.get().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_fsynced_only_when_one_of_its_commands_asks_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open_classed(dir.path(), Durability::Sync, DEFAULT_BACKGROUND_SYNC);
    let appender = writer.appender();
    for i in 1..=20u8 {
        let seq = appender
            .submit(classed(Durability::Buffered, i))
            .await
            .unwrap();
        assert_eq!(seq, u64::from(i));
        // Answered means visible: the head covers it and the log holds it.
        assert_eq!(store.head().get(), seq);
        assert_eq!(store.event(seq).unwrap(), Some(vec![i]));
    }
    let metrics = store.metrics();
    assert_eq!(metrics.syncs.get(), 0, "no command asked for an fsync");
    assert_eq!(
        appender
            .submit(classed(Durability::Sync, 21))
            .await
            .unwrap(),
        21
    );
    assert_eq!(metrics.syncs.get(), 1);

    // One command asking for an fsync, amid others that do not, has its batch fsynced.
    let batches = metrics.batches.get();
    let mixed = [Durability::Buffered, Durability::Sync, Durability::Buffered];
    one_batch_after_a_gate(&appender, mixed.map(|d| classed(d, 1)).into()).await;
    assert_eq!(
        metrics.batches.get(),
        batches + 2,
        "the gate's batch and one more"
    );
    assert_eq!(metrics.syncs.get(), 2);
    // A batch of commands none of which asks is not.
    let unasked = (0..3).map(|_| classed(Durability::Buffered, 2)).collect();
    one_batch_after_a_gate(&appender, unasked).await;
    assert_eq!(metrics.batches.get(), batches + 4);
    assert_eq!(metrics.syncs.get(), 2);
    assert_eq!(store.head().get(), 21 + 8);
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .unwrap();

    // A store opened `buffered` never fsyncs a batch, whatever its commands ask for.
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open_classed(dir.path(), Durability::Buffered, DEFAULT_BACKGROUND_SYNC);
    let appender = writer.appender();
    assert_eq!(
        appender.submit(classed(Durability::Sync, 1)).await.unwrap(),
        1
    );
    assert_eq!(store.metrics().syncs.get(), 0);
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sync_covers_what_asked_for_no_fsync_within_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open_classed(dir.path(), Durability::Sync, Duration::from_millis(50));
    let appender = writer.appender();
    for i in 1..=5 {
        appender
            .submit(classed(Durability::Buffered, i))
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.synced_through() < 5 {
        assert!(
            Instant::now() < deadline,
            "the background sync never covered the head"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let metrics = store.metrics();
    assert!(metrics.background_syncs.get() >= 1);
    assert_eq!(metrics.syncs.get(), 0);
    assert_eq!(metrics.synced_head.get(), 5);
    // A command that asks for an fsync is covered by its own, at once.
    appender.submit(classed(Durability::Sync, 6)).await.unwrap();
    assert_eq!(store.synced_through(), 6);
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .unwrap();

    // Off: nothing but a command that asks fsyncs the journal.
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open_classed(dir.path(), Durability::Sync, Duration::ZERO);
    writer
        .appender()
        .submit(classed(Durability::Buffered, 1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.synced_through(), 0);
    assert_eq!(store.metrics().background_syncs.get(), 0);
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .unwrap();
}

/// Appends the batch's commit time.
struct TimeAppend;

impl Stager for TimeAppend {
    type Command = ();
    type Accepted = u64;
    type Rejected = Error;

    fn stage(&mut self, (): (), txn: &mut Txn<'_>) -> Result<u64, Error> {
        let time = txn.commit_time_ms();
        Ok(txn.append(|_| time.to_be_bytes().to_vec()))
    }
}

#[test]
fn commit_times_never_go_below_the_floor_a_writer_starts_from() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    // As after a restart whose clock stepped back a day.
    let head_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 86_400_000;
    let writer = WriterHandle::spawn_after(
        store.clone(),
        TimeAppend,
        WriterConfig::default(),
        head_time,
    )
    .unwrap();
    for _ in 0..3 {
        writer.appender().submit_blocking(()).unwrap();
    }
    let times: Vec<i64> = store
        .read_range(1, 3, 3)
        .unwrap()
        .iter()
        .map(|(_, bytes)| i64::from_be_bytes(bytes[..8].try_into().unwrap()))
        .collect();
    assert_eq!(times, [head_time; 3]);
    writer.shutdown();
}

#[test]
fn read_range_is_bounded_and_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    let appender = writer.appender();
    for i in 0..20u8 {
        appender.submit_blocking((vec![i], vec![i])).unwrap();
    }
    let page = store.read_range(5, 100, 3).unwrap();
    assert_eq!(
        page.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    assert!(store.read_range(9, 8, 10).unwrap().is_empty());
    assert_eq!(store.read_range(1, u64::MAX, usize::MAX).unwrap().len(), 20);
    assert_eq!(
        store
            .head()
            .wait_past(19, std::time::Duration::from_millis(1)),
        20
    );
    writer.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_follows_the_durable_log_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    let appender = writer.appender();
    for i in 0..10u8 {
        appender.submit((vec![i], vec![i])).await.unwrap();
    }
    let mut tail = store.tail(4);
    let chunk = tail.next_chunk(3, None).unwrap();
    assert_eq!(chunk.iter().map(|c| c.0).collect::<Vec<_>>(), vec![4, 5, 6]);
    assert_eq!(chunk[0].1, vec![3u8], "seq 4 holds the fourth payload");
    assert_eq!(tail.position(), 7);
    let chunk = tail.next_chunk(100, Some(8)).unwrap();
    assert_eq!(chunk.iter().map(|c| c.0).collect::<Vec<_>>(), vec![7, 8]);
    assert_eq!(
        tail.next_chunk(100, Some(8)).unwrap().len(),
        0,
        "stops at `until`"
    );
    assert_eq!(tail.next_chunk(100, None).unwrap().len(), 2);
    assert!(tail.next_chunk(100, None).unwrap().is_empty(), "caught up");

    // The durable feed: batches from now on, after their fsync, each with its first seq; a
    // duplicate (rejected) command in the same batch takes no seq.
    let mut feed = store.durable_batches();
    let queued = [
        appender.enqueue((vec![42], vec![42])).await.unwrap(),
        appender.enqueue((vec![42], vec![43])).await.unwrap(),
        appender.enqueue((vec![44], vec![44])).await.unwrap(),
    ];
    // Read from the feed before any answer is awaited, so the head check means something.
    let mut fed = Vec::new();
    while fed.len() < 2 {
        let batch = tokio::time::timeout(std::time::Duration::from_secs(5), feed.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            store.head().get() >= batch.first_seq,
            "durable before it is fed"
        );
        fed.extend(batch.iter().map(|(seq, bytes)| (seq, bytes.to_vec())));
    }
    let mut answers = Vec::new();
    for answer in queued {
        answers.push(answer.get().await.ok());
    }
    assert_eq!(answers, vec![Some(11), None, Some(12)]);
    assert_eq!(fed, vec![(11, vec![42u8]), (12, vec![44u8])]);
    assert_eq!(tail.next_chunk(100, None).unwrap(), fed);
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .unwrap();
}

#[test]
fn a_range_scan_sees_the_batch_writes_over_the_stored_rows_and_stops_at_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let table = Table::UntilmsSkips;
    store
        .rewrite(|txn| {
            for key in [1u8, 2, 3, 4, 5, 9] {
                txn.put(table, vec![key], vec![key]);
            }
            Ok::<_, Error>(())
        })
        .unwrap();
    let keys =
        |rows: Vec<(Vec<u8>, Vec<u8>)>| rows.into_iter().map(|(k, _)| k[0]).collect::<Vec<_>>();
    store
        .rewrite(|txn| {
            // Stored rows in [2, 9), in order, at most `limit`.
            assert_eq!(keys(txn.scan_range(table, &[2], &[9], 10)?), [2, 3, 4, 5]);
            assert_eq!(keys(txn.scan_range(table, &[2], &[9], 2)?), [2, 3]);
            // This batch's deletes hide rows and its puts add them, inside the range only.
            txn.delete(table, vec![2]);
            txn.delete(table, vec![3]);
            txn.put(table, vec![0], vec![0]);
            txn.put(table, vec![6], vec![6]);
            assert_eq!(keys(txn.scan_range(table, &[2], &[9], 2)?), [4, 5]);
            assert_eq!(keys(txn.scan_range(table, &[2], &[9], 10)?), [4, 5, 6]);
            assert_eq!(
                keys(txn.scan_range(table, &[0], &[0xff], 10)?),
                [0, 1, 4, 5, 6, 9]
            );
            Ok::<_, Error>(())
        })
        .unwrap();
}

/// A store whose memtables are sealed past 1 MiB, and its writer.
fn open_with_a_one_mib_write_buffer(
    dir: &std::path::Path,
) -> (Arc<Store>, WriterHandle<UniqueAppend>) {
    let mut config = StoreConfig::new(dir);
    config.write_buffer_bytes = 1 << 20;
    let store = Store::open(config).unwrap();
    let writer = WriterHandle::spawn(store.clone(), UniqueAppend, WriterConfig::default()).unwrap();
    (store, writer)
}

#[test]
fn the_memtables_stay_within_their_bound_while_the_log_grows() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open_with_a_one_mib_write_buffer(dir.path());
    let appender = writer.appender();
    // 12 MiB of payloads, far under fjall's own 64 MiB per memtable.
    for i in 0..3_000u32 {
        appender
            .submit_blocking((i.to_be_bytes().to_vec(), vec![7; 4096]))
            .unwrap();
    }
    // Sealed memtables go out on fjall's flush workers: wait for them, the writer still open.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let settled = loop {
        let memtables = store.memory().unwrap().memtables;
        if memtables <= 2 << 20 || std::time::Instant::now() > deadline {
            break memtables;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(settled <= 2 << 20, "{settled} bytes still in memtables");
    assert_eq!(store.head().get(), 3_000);
    writer.shutdown();
}

#[test]
fn the_sealer_frees_the_memtables_it_sealed_once_they_are_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open_with_a_one_mib_write_buffer(dir.path());
    let appender = writer.appender();
    // 12 MiB of payloads: about a dozen seals of the 1-MiB bound.
    let (mut most_held, mut samples_holding) = (0, 0);
    for i in 0..3_000u32 {
        appender
            .submit_blocking((i.to_be_bytes().to_vec(), vec![7; 4096]))
            .unwrap();
        if i % 25 == 0 {
            let held = store.memory().unwrap().flushed_memtables;
            most_held = most_held.max(held);
            samples_holding += usize::from(held > 0);
        }
    }
    // The sealer holds what it sealed until fjall lets it go (so it is the one that frees it)...
    assert!(
        samples_holding > 0,
        "the sealer never held a sealed memtable"
    );
    // ...and frees it then: what it holds stays about a seal or two, not all twelve.
    assert!(
        most_held <= 4 << 20,
        "{most_held} bytes of flushed memtables held at once"
    );
    assert_eq!(store.head().get(), 3_000);
    writer.shutdown();
}
