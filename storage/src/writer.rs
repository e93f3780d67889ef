//! The single log writer and its group commit.
//!
//! Submitters send commands over a bounded channel (a full channel pushes back on them). The
//! writer thread takes everything queued, up to `max_batch` commands, stages each with the
//! [`Stager`] (which checks it against the write model and appends its events), and commits
//! the accepted writes as one atomic fjall batch. A second thread makes committed batches
//! durable with one fsync (or one flush to the OS in `buffered` mode, or when none of their
//! commands asks for an fsync: [`Stager::durability`]) covering every batch committed since
//! the previous one, advances the durable head, and only then answers their submitters. So
//! one fsync is shared by every command that arrived while the previous one ran: that is
//! what makes durable ingest fast under concurrency. While an fsync runs, the writer holds
//! its next batch open (fjall's journal is locked for the fsync, so a commit would wait for
//! it anyway) and then takes every command that arrived meanwhile into that one batch. Readers follow the durable head, so they never see a batch before it is durable
//! (fsynced, or written to the OS when none of its commands asks for an fsync).

use crate::health::StorageState;
use crate::store::{Durability, Store};
use crate::txn::{BatchState, Txn};
use crate::{Error, Result};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Decides what a command means: validates it against the write model and stages its writes.
/// Called on the writer thread, one command at a time, in submission order.
pub trait Stager: Send + 'static {
    type Command: Send + 'static;
    type Accepted: Send + 'static;
    type Rejected: Send + 'static + From<Error>;

    /// Stages one command. On `Err`, nothing it wrote to `txn` is kept.
    fn stage(
        &mut self,
        command: Self::Command,
        txn: &mut Txn<'_>,
    ) -> Result<Self::Accepted, Self::Rejected>;

    /// Called on the writer thread once a batch's writes are committed (visible to readers of
    /// the store) and before any of its commands is answered: where a stager drops in-memory
    /// copies of what `written` changed, so that a read after an answer never sees the old
    /// value.
    fn committed(&mut self, written: &crate::WrittenKeys) {
        let _ = written;
    }

    /// How durable `command` must be before it is answered: a batch is fsynced when any of
    /// its commands asks for [`Durability::Sync`] (and the store is not `buffered`), and only
    /// flushed to the OS otherwise. Either way an answer follows everything before it in the
    /// log to the same point, so a batch never becomes visible before one it depends on.
    fn durability(&self, command: &Self::Command) -> Durability {
        let _ = command;
        Durability::Sync
    }

    /// Called on the writer thread after the database reopened (a healed storage error):
    /// forget every in-memory copy of the write model, since batches that were committed but
    /// never made durable may be gone from it.
    fn reset(&mut self) {}
}

type Outcome<S> = Result<<S as Stager>::Accepted, <S as Stager>::Rejected>;

/// Where a command's answer goes, and when the command was submitted (for
/// `girok_log_commit_seconds`).
struct Reply<S: Stager> {
    to: oneshot::Sender<Outcome<S>>,
    submitted: Instant,
}

impl<S: Stager> Reply<S> {
    fn new() -> (Self, Answer<S>) {
        let (to, answer) = oneshot::channel();
        let submitted = Instant::now();
        (Self { to, submitted }, Answer(answer))
    }

    /// Answers; a submitter that gave up waiting is not an error.
    fn send(self, outcome: Outcome<S>) {
        let _ = self.to.send(outcome);
    }
}

enum Message<S: Stager> {
    Command(S::Command, Reply<S>),
    /// The sync thread met a storage error: the writer must heal the store.
    Heal,
    Shutdown,
}

/// The submitting side; cheap to clone.
pub struct Appender<S: Stager> {
    tx: mpsc::Sender<Message<S>>,
    store: Arc<Store>,
}

impl<S: Stager> Clone for Appender<S> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            store: self.store.clone(),
        }
    }
}

/// What a command meets while the store does not take writes.
fn unavailable(store: &Store) -> Error {
    Error::Unavailable(store.unavailable_reason())
}

impl<S: Stager> Appender<S> {
    /// Submits a command and waits until it is durable (or rejected); refused at once when
    /// the queue is full (see [`Appender::try_enqueue`]).
    pub async fn submit(&self, command: S::Command) -> Result<S::Accepted, S::Rejected> {
        self.try_enqueue(command)?.get().await
    }

    /// Queues a command now, waiting only while the writer's queue is full, and returns the
    /// wait for its answer: commands one caller queues one after another are staged in that
    /// order, however their answers are awaited (pipelining).
    pub async fn enqueue(&self, command: S::Command) -> Result<Answer<S>, S::Rejected> {
        self.refuse_while_down()?;
        let (reply, answer) = Reply::new();
        self.tx
            .send(Message::Command(command, reply))
            .await
            .map_err(|_| Error::Closed)?;
        Ok(answer)
    }

    /// The same without waiting: a full queue refuses the command at once with
    /// [`Error::QueueFull`] (load shedding: the caller answers its client "retry later"
    /// instead of queuing behind everyone else).
    pub fn try_enqueue(&self, command: S::Command) -> Result<Answer<S>, S::Rejected> {
        self.refuse_while_down()?;
        let (reply, answer) = Reply::new();
        match self.tx.try_send(Message::Command(command, reply)) {
            Ok(()) => Ok(answer),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.store.metrics().queue_full.inc();
                Err(Error::QueueFull(self.tx.max_capacity()).into())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Error::Closed.into()),
        }
    }

    /// Refuses at once while the store is degraded or failed.
    fn refuse_while_down(&self) -> Result<()> {
        match self.store.state() {
            StorageState::Ok => Ok(()),
            _ => Err(unavailable(&self.store)),
        }
    }

    /// The same, for callers on a plain thread (never call it inside an async task).
    pub fn submit_blocking(&self, command: S::Command) -> Result<S::Accepted, S::Rejected> {
        self.refuse_while_down()?;
        let (reply, answer) = Reply::new();
        self.tx
            .blocking_send(Message::Command(command, reply))
            .map_err(|_| Error::Closed)?;
        answer.0.blocking_recv().map_err(|_| Error::Closed)?
    }
}

/// The answer to a queued command, once it is durable (or rejected).
pub struct Answer<S: Stager>(oneshot::Receiver<Outcome<S>>);

impl<S: Stager> Answer<S> {
    pub async fn get(self) -> Result<S::Accepted, S::Rejected> {
        self.0.await.map_err(|_| Error::Closed)?
    }
}

/// Owns the writer thread.
pub struct WriterHandle<S: Stager> {
    appender: Appender<S>,
    thread: Option<JoinHandle<()>>,
}

/// [`WriterConfig::background_sync`]'s default: a power loss takes back at most about a
/// second of the commands that asked for no fsync, as Redis's `appendfsync everysec`.
pub const DEFAULT_BACKGROUND_SYNC: Duration = Duration::from_secs(1);

/// Tuning of the writer.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    /// Most commands staged into one batch.
    pub max_batch: usize,
    /// Commands that may wait in the queue: past them `enqueue` waits and `try_enqueue`
    /// refuses.
    pub queue: usize,
    /// When batches are spaced out to save fsyncs (only while the process is busy).
    pub pacing: crate::Pacing,
    /// How often the journal is fsynced behind batches that asked for no fsync
    /// (`background_sync.rs`); zero: never by girok (fjall before each memtable flush, the
    /// next batch that asks, and the kernel's writeback still do).
    pub background_sync: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch: 4096,
            queue: 16_384,
            pacing: crate::Pacing::default(),
            background_sync: DEFAULT_BACKGROUND_SYNC,
        }
    }
}

impl<S: Stager> WriterHandle<S> {
    /// Starts the writer thread for `store`.
    pub fn spawn(store: Arc<Store>, stager: S, config: WriterConfig) -> Result<Self> {
        Self::spawn_after(store, stager, config, 0)
    }

    /// As [`WriterHandle::spawn`], with commit times never before `last_time_ms` (the commit
    /// time of the log's head event): commit times never decrease along the log, across
    /// restarts and clock steps too, which the views' and analytics' day buckets rely on.
    pub fn spawn_after(
        store: Arc<Store>,
        stager: S,
        config: WriterConfig,
        last_time_ms: i64,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let wake = tx.downgrade();
        let writer_store = store.clone();
        let thread = std::thread::Builder::new()
            .name("girok-log-writer".into())
            .spawn(move || {
                crate::sched::latency_critical("log writer");
                run(writer_store, stager, rx, wake, config, last_time_ms)
            })?;
        Ok(Self {
            appender: Appender { tx, store },
            thread: Some(thread),
        })
    }

    /// Whether the writer thread is still accepting commands.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// A handle for submitting commands.
    pub fn appender(&self) -> Appender<S> {
        self.appender.clone()
    }

    /// Finishes every command queued before this call, makes it durable, and stops the thread.
    /// Blocks; call from a plain thread or `spawn_blocking`.
    pub fn shutdown(mut self) {
        let _ = self.appender.tx.blocking_send(Message::Shutdown);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("log writer thread panicked");
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Batches committed to the journal but not yet durable, waiting for the sync thread.
/// Bounded, so a slow disk pushes back on the writer instead of growing memory.
const PENDING_BATCHES: usize = 64;
/// Longest a clean stop waits for the memtables to be written out.
const MEMTABLE_FLUSH_WAIT: Duration = Duration::from_secs(20);
/// The first wait between attempts to heal a degraded store, and the longest.
const HEAL_FIRST_WAIT: Duration = Duration::from_millis(50);
const HEAL_MAX_WAIT: Duration = Duration::from_secs(1);

/// A batch handed from the writer to the sync thread.
struct Committed<S: Stager> {
    /// Highest seq appended by this batch, if it appended anything.
    last_seq: Option<u64>,
    appended: u64,
    /// Whether a command of the batch asked for [`Durability::Sync`].
    sync: bool,
    /// The batch's log entries, for the durable feed (only when someone listens).
    entries: Option<Arc<crate::DurableBatch>>,
    replies: Vec<(Reply<S>, Outcome<S>)>,
}

/// Batches the writer handed to the sync thread that are not durable (or refused) yet.
#[derive(Default)]
struct InFlight {
    batches: std::sync::Mutex<usize>,
    none_left: std::sync::Condvar,
}

/// Longest the writer waits for an fsync in flight before it commits all the same (the commit
/// then waits for the journal's lock): a bound, not a path taken by a healthy disk.
const MAX_WAIT_FOR_SYNC: Duration = Duration::from_secs(1);

impl InFlight {
    fn handed(&self) {
        *self.batches.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    fn finished(&self, batches: usize) {
        let mut left = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        *left = left.saturating_sub(batches);
        if *left == 0 {
            self.none_left.notify_all();
        }
    }

    /// Waits until no batch is in flight (at most `MAX_WAIT_FOR_SYNC`).
    fn wait_until_none(&self) {
        let left = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .none_left
            .wait_timeout_while(left, MAX_WAIT_FOR_SYNC, |left| *left > 0);
    }
}

/// What the writer hands the sync thread.
enum ToSync<S: Stager> {
    Batch(Committed<S>),
    /// Answered once every batch sent before it is answered.
    Barrier(std::sync::mpsc::SyncSender<()>),
}

/// The writer thread: stages and commits batches to the journal; the sync thread it starts
/// makes them durable and answers. While one fsync runs, the writer waits with the first
/// command of its next batch, then takes every command that came meanwhile: one batch and one
/// fsync for all of them, not a small batch stuck behind the journal's lock and the rest left
/// for a second fsync after it. After a transient storage error it refuses commands and heals
/// the store before it stages again.
fn run<S: Stager>(
    store: Arc<Store>,
    mut stager: S,
    mut rx: mpsc::Receiver<Message<S>>,
    wake: mpsc::WeakSender<Message<S>>,
    config: WriterConfig,
    mut last_time_ms: i64,
) {
    let max_batch = config.max_batch.max(1);
    let (to_sync, from_writer) = std::sync::mpsc::sync_channel::<ToSync<S>>(PENDING_BATCHES);
    let sync_store = store.clone();
    let in_flight = Arc::new(InFlight::default());
    let synced = in_flight.clone();
    let syncer = match std::thread::Builder::new()
        .name("girok-log-sync".into())
        .spawn(move || {
            crate::sched::latency_critical("log sync");
            sync_loop(&sync_store, from_writer, wake, &synced)
        }) {
        Ok(handle) => handle,
        Err(error) => {
            tracing::error!(%error, "cannot start the log sync thread; the writer stops");
            return;
        }
    };

    // Dropped when the writer stops, which stops the background sync.
    let background_sync = start_background_sync(&store, config.background_sync);

    let mut next_seq = store.head().get() + 1;
    let mut stopping = false;
    let mut pacer = crate::pacing::Pacer::new(config.pacing);
    let mut queued = Vec::with_capacity(max_batch);
    while !stopping {
        match store.state() {
            StorageState::Ok => {}
            StorageState::Failed => break,
            StorageState::Degraded => {
                if !heal(&store, &mut stager, &mut rx, &to_sync, &mut stopping) {
                    break;
                }
                next_seq = store.head().get() + 1;
                continue;
            }
        }
        let Some(first) = rx.blocking_recv() else {
            break; // every appender is gone
        };
        queued.push(first);
        in_flight.wait_until_none();
        pacer.pace(store.metrics());
        while queued.len() < max_batch {
            match rx.try_recv() {
                Ok(message) => queued.push(message),
                Err(_) => break,
            }
        }

        last_time_ms = last_time_ms.max(now_ms());
        let mut batch = BatchState::new(next_seq, last_time_ms);
        let mut replies = Vec::with_capacity(queued.len());
        let mut sync = false;
        for message in queued.drain(..) {
            let (command, reply) = match message {
                Message::Command(command, reply) => (command, reply),
                Message::Heal => continue, // the state says so; seen at the top of the loop
                Message::Shutdown => {
                    stopping = true;
                    continue;
                }
            };
            sync |= stager.durability(&command) == Durability::Sync;
            let mut txn = Txn::new(&store, &mut batch);
            let outcome = stager.stage(command, &mut txn);
            match outcome {
                Ok(_) => txn.accept(),
                Err(_) => {
                    store.metrics().rejected.inc();
                }
            }
            replies.push((reply, outcome));
        }

        if replies.is_empty() {
            continue; // only a wake-up or the shutdown
        }
        let appended = batch.appended();
        let commands = replies.len();
        let entries = (appended > 0 && store.durable_feed().wanted()).then(|| {
            Arc::new(crate::DurableBatch {
                first_seq: next_seq,
                entries: batch.log_entries(),
            })
        });
        let written = batch.take_written();
        if !batch.ops.is_empty()
            && let Err(error) = store.commit_ops(batch.ops)
        {
            // Nothing of the batch was committed: its commands are refused, and the loop
            // heals the store (or stops, if the error is fatal) before staging again.
            store.storage_error(&error);
            refuse::<S>(replies, &store);
            continue;
        }
        stager.committed(&written);
        let metrics = store.metrics();
        metrics.batch_commands.observe(commands as f64);
        if appended > 0 {
            metrics.batches.inc();
        }
        let committed = Committed {
            last_seq: (appended > 0).then(|| next_seq + appended - 1),
            appended,
            sync,
            entries,
            replies,
        };
        next_seq += appended;
        // Answers to every command, rejections included, go out only after the fsync that
        // covers everything before them: a rejection may rest on a write not yet durable.
        in_flight.handed();
        pacer.handed_off();
        if to_sync.send(ToSync::Batch(committed)).is_err() {
            break; // the sync thread is gone
        }
    }
    if store.state() == StorageState::Degraded {
        // Stopped while degraded: nothing more will be written.
        store.mark_failed("the log writer stopped while storage was unavailable");
    }
    drop(background_sync);
    drop(to_sync);
    if syncer.join().is_err() {
        tracing::error!("log sync thread panicked");
    }
    let persisted = store.persist(fjall::PersistMode::SyncAll);
    if let Err(error) = &persisted {
        tracing::error!(%error, "final flush of the log failed");
    }
    let flushing = std::time::Instant::now();
    if persisted.is_ok() && store.state() == StorageState::Ok {
        // Whatever is not written out stays in the journal, which the next open replays.
        match store.flush_memtables(MEMTABLE_FLUSH_WAIT) {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the memtables were not all written out at stop"),
            Err(error) => tracing::warn!(%error, "cannot write the memtables out at stop"),
        }
    }
    tracing::info!(
        head = store.head().get(),
        flush_ms = flushing.elapsed().as_millis() as u64,
        "log writer stopped"
    );
}

/// Starts the background sync every `interval` (none for zero); the returned sender stops it
/// when dropped.
fn start_background_sync(
    store: &Arc<Store>,
    interval: Duration,
) -> Option<std::sync::mpsc::SyncSender<()>> {
    if interval.is_zero() {
        return None;
    }
    let (stop, stopped) = std::sync::mpsc::sync_channel(1);
    let store = store.clone();
    match std::thread::Builder::new()
        .name("girok-log-bgsync".into())
        .spawn(move || crate::background_sync::run(store, interval, stopped))
    {
        Ok(_) => Some(stop),
        Err(error) => {
            tracing::warn!(%error, "cannot start the log's background sync");
            None
        }
    }
}

/// Answers `replies` with the store's storage error (one message for all of them).
fn refuse<S: Stager>(replies: impl IntoIterator<Item = (Reply<S>, Outcome<S>)>, store: &Store) {
    let reason = store.unavailable_reason();
    for (reply, _) in replies {
        reply.send(Err(Error::Unavailable(reason.clone()).into()));
    }
}

/// Heals a degraded store: waits until the sync thread has answered every batch committed
/// before, then retries [`Store::heal`] with a growing wait, refusing whatever commands were
/// queued meanwhile. Whether the writer goes on (false: stop, or a fatal error).
fn heal<S: Stager>(
    store: &Store,
    stager: &mut S,
    rx: &mut mpsc::Receiver<Message<S>>,
    to_sync: &std::sync::mpsc::SyncSender<ToSync<S>>,
    stopping: &mut bool,
) -> bool {
    let (passed, barrier) = std::sync::mpsc::sync_channel(1);
    if to_sync.send(ToSync::Barrier(passed)).is_err() || barrier.recv().is_err() {
        return false;
    }
    let mut wait = HEAL_FIRST_WAIT;
    loop {
        while let Ok(message) = rx.try_recv() {
            match message {
                Message::Command(_, reply) => {
                    reply.send(Err(unavailable(store).into()));
                }
                Message::Heal => {}
                Message::Shutdown => *stopping = true,
            }
        }
        if *stopping || store.state() == StorageState::Failed {
            return false;
        }
        if store.heal() {
            stager.reset();
            return true;
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(HEAL_MAX_WAIT);
    }
}

/// The sync thread: takes every batch committed so far, makes them durable with one
/// fsync, advances the durable head, then answers their submitters. A failed fsync answers
/// its batches as unavailable and wakes the writer to heal the store.
fn sync_loop<S: Stager>(
    store: &Store,
    from_writer: std::sync::mpsc::Receiver<ToSync<S>>,
    wake: mpsc::WeakSender<Message<S>>,
    in_flight: &InFlight,
) {
    let sync_mode = store.config().durability.persist_mode();
    while let Ok(first) = from_writer.recv() {
        let mut group = Vec::new();
        let mut barriers = Vec::new();
        for message in std::iter::once(first).chain(from_writer.try_iter()) {
            match message {
                ToSync::Batch(committed) => group.push(committed),
                ToSync::Barrier(passed) => barriers.push(passed),
            }
        }
        if !group.is_empty() {
            let mode = if group.iter().any(|c| c.sync) {
                sync_mode
            } else {
                fjall::PersistMode::Buffer
            };
            make_durable(store, mode, group, &wake, in_flight);
        }
        for passed in barriers {
            let _ = passed.send(());
        }
    }
}

/// One fsync for `group`, then its answers (or, if the fsync failed, refusals). The writer
/// learns the fsync ended before the answers go out, so its next commit overlaps them.
fn make_durable<S: Stager>(
    store: &Store,
    mode: fjall::PersistMode,
    mut group: Vec<Committed<S>>,
    wake: &mpsc::WeakSender<Message<S>>,
    in_flight: &InFlight,
) {
    let started = Instant::now();
    let metrics = store.metrics();
    let persisted = store.persist(mode);
    in_flight.finished(group.len());
    if let Err(error) = persisted {
        store.storage_error(&error);
        refuse::<S>(group.into_iter().flat_map(|c| c.replies), store);
        // The writer may be waiting for commands that the appenders now refuse.
        if let Some(writer) = wake.upgrade() {
            let _ = writer.try_send(Message::Heal);
        }
        return;
    }
    // One clock read per group: it ends the fsync and every command's commit time (the
    // answers follow within microseconds).
    let durable = Instant::now();
    metrics
        .fsync_seconds
        .observe((durable - started).as_secs_f64());
    let head = group.iter().filter_map(|c| c.last_seq).max();
    if mode != fjall::PersistMode::Buffer {
        metrics.syncs.inc();
        // Every batch before this group was flushed to the OS before the head moved over it.
        store.synced(head.unwrap_or_else(|| store.head().get()));
    }
    let appended: u64 = group.iter().map(|c| c.appended).sum();
    metrics.appends.inc_by(appended);
    // The feed gets the entries once the head covers them (the hub reads the log up to the
    // head for what the feed skipped) but before the head's waiters wake (the views, woken by
    // the move, then find the entries on the feed) and before the submitters get their
    // answers (a cheap send): delivery to live subscribers never waits for a read of the log.
    let mut feed = || {
        for committed in &mut group {
            if let Some(entries) = committed.entries.take() {
                store.durable_feed().send(entries);
            }
        }
    };
    match head {
        Some(head) => {
            metrics.head.set(head as i64);
            store.head().advance_then(head, feed);
        }
        None => feed(),
    }
    for committed in group {
        for (reply, outcome) in committed.replies {
            metrics
                .commit_seconds
                .observe(durable.duration_since(reply.submitted).as_secs_f64());
            reply.send(outcome);
        }
    }
}
