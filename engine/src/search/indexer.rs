//! The indexer thread: tails the durable log into the index, commits (with its checkpoint)
//! every [`COMMIT_EVERY`](super::COMMIT_EVERY) while documents change and never more often
//! (longer after a long commit: [`COMMITS`](super::COMMITS)),
//! and when a commit or an event's indexing fails for a reason that may pass (storage, tantivy),
//! goes back to the last commit and indexes again from there after a pause.

use super::COMMIT_EVERY;
use super::index::{Failure, SearchIndex};
use crate::error::{Error, Result};
use crate::tailer::{FedLog, Tailer};
use girok_schemas::{Seq, decode_event};
use girok_storage::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tantivy::IndexWriter;

/// Log entries read per step.
const CHUNK: usize = 4096;
/// How long the indexer sleeps once caught up before looking at the log again. It polls
/// rather than waking at every group commit: under load that is hundreds of wake-ups a second
/// on cores the writer needs, for an index whose freshness only search waits on.
const POLL: Duration = Duration::from_millis(50);

/// The running indexer thread.
pub struct Indexer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Indexer {
    /// Starts indexing `store`'s log into `index` after the seq the index holds; with
    /// `until`, stops once the index reflects that seq (replay).
    pub fn start(store: Arc<Store>, index: Arc<SearchIndex>, until: Option<Seq>) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (started, writer_made) = std::sync::mpsc::sync_channel(1);
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("girok-search".into())
                .spawn(move || {
                    crate::background::lower_priority("search indexer");
                    // Created here, so that tantivy's indexing and merge threads inherit
                    // the lowered priority.
                    match index.writer() {
                        Ok(writer) => {
                            let _ = started.send(Ok(()));
                            run(&store, &index, writer, &stop, until);
                        }
                        Err(error) => {
                            let _ = started.send(Err(error));
                        }
                    }
                })
                .map_err(|e| Error::Internal(format!("cannot start the search indexer: {e}")))?
        };
        // A writer that cannot be made (the index's lock taken, no space) fails the start
        // instead of leaving search silently behind.
        writer_made
            .recv()
            .map_err(|_| Error::Internal("the search indexer ended before it started".into()))??;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Waits for an indexer started with `until` to finish.
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("search indexer panicked");
        }
    }

    /// Stops the indexer and waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take()
            && {
                thread.thread().unpark();
                thread.join().is_err()
            }
        {
            tracing::error!("search indexer panicked");
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.halt();
        }
    }
}

/// Longest the checkpoint on disk lags behind what the index reflects while only events that
/// change no document arrive (likes, follows, logins): their rounds commit nothing, which
/// spares the disk the dozen fsyncs of a commit, and the checkpoint moves at least this often
/// (and at a clean stop). A start after a crash reads those events again, to no effect.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);
/// The first pause after a failure; it doubles up to [`RETRY_MAX`] while failures go on.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Times one event may fail to index (going back to the last commit each time) before it is
/// skipped: a failure that passes (a busy disk) passes within them, one that does not (a
/// record that cannot be read) must not hold every later event, and readiness, back forever.
const EVENT_TRIES: u32 = 5;

fn run(
    store: &Arc<Store>,
    index: &SearchIndex,
    writer: IndexWriter,
    stop: &AtomicBool,
    until: Option<Seq>,
) {
    let mut writer = Some(writer);
    let start = index.resumed_at();
    let mut tail = Tailer::new(
        FedLog::new(store.clone()),
        start + 1,
        until,
        "search indexer",
    );
    let mut indexed: Seq = start;
    // Durable in the index's last commit, and reflected by searches (which can be more: what
    // came since changed no document).
    let mut committed: Seq = start;
    let mut searchable: Seq = start;
    // When the index last committed; every commit carries the checkpoint, so this also
    // times the checkpoint.
    let mut last_commit = Instant::now();
    // The shortest time to the next commit: longer after a long commit (see `COMMITS`).
    let mut gap = COMMIT_EVERY;
    let mut pause = RETRY_FIRST;
    // The event whose indexing failed last, and how many times in a row.
    let mut failing: Option<(Seq, u32)> = None;
    while !stop.load(Ordering::Acquire) {
        let Some(active) = writer.as_mut() else {
            // After a failure: a pause, then a new writer and the index as of its last commit,
            // from which the log is indexed again.
            pause_unless_stopped(&mut pause, stop);
            match back_to_last_commit(index) {
                Ok((new_writer, seq)) => {
                    writer = Some(new_writer);
                    (indexed, committed, searchable) = (seq, seq, seq);
                    tail =
                        Tailer::new(FedLog::new(store.clone()), seq + 1, until, "search indexer");
                }
                Err(error) => tracing::error!(%error, "search index writer failed"),
            }
            continue;
        };
        // Caught up means: up to the head as it was before this chunk (a head that moved
        // meanwhile does not hold back the commit).
        let limit = tail.limit();
        let mut failed = None;
        if tail.position() <= limit {
            match tail.next_chunk(CHUNK) {
                Ok(entries) => {
                    for (seq, bytes) in entries {
                        match decode_event(&bytes) {
                            Ok(event) => match index.index_event(active, store, event) {
                                Ok(()) => {}
                                Err(Failure::Skip(error)) => {
                                    tracing::error!(seq, %error, "search skips an event");
                                }
                                Err(Failure::Retry(error)) => {
                                    let tries = match failing {
                                        Some((at, tries)) if at == seq => tries + 1,
                                        _ => 1,
                                    };
                                    if tries < EVENT_TRIES {
                                        failing = Some((seq, tries));
                                        failed = Some(error);
                                        break;
                                    }
                                    tracing::error!(seq, %error, tries, "search skips an event that keeps failing");
                                    failing = None;
                                }
                            },
                            Err(error) => tracing::error!(seq, %error, "undecodable entry"),
                        }
                        indexed = seq;
                    }
                }
                Err(retry) => {
                    std::thread::sleep(retry.after);
                    continue;
                }
            }
        }
        let caught_up = tail.position() > limit;
        // A commit makes documents searchable at the cost of a new segment, the merges it
        // brings and a dozen fsyncs; so commits come at most every COMMIT_EVERY, caught up or
        // not (a steady trickle of messages made one at nearly every 50-ms poll), and the
        // longer the last one took, the longer until the next (`COMMITS`).
        let since_commit = last_commit.elapsed();
        let commit_due = since_commit >= gap;
        let checkpoint_due = indexed > committed && since_commit >= CHECKPOINT_EVERY;
        let changes = index.has_changes();
        if failed.is_some() {
            // Nothing is committed or shown until the writer went back to its last commit.
        } else if (changes && commit_due) || checkpoint_due {
            let started = Instant::now();
            match index.commit(active, indexed) {
                Ok(()) => {
                    (committed, searchable) = (indexed, indexed);
                    index.watermark.advance(indexed);
                    last_commit = Instant::now();
                    gap = super::COMMITS.gap(last_commit - started);
                    pause = RETRY_FIRST;
                }
                Err(error) => failed = Some(error),
            }
        } else if !changes && indexed > searchable && (caught_up || commit_due) {
            // Nothing changed since the last commit: searches already show `indexed`.
            searchable = indexed;
            index.watermark.advance(indexed);
        }
        if let Some(error) = failed {
            // What was indexed since the last commit may be lost in the writer (a failed
            // flush) or may miss an event: dropping the writer discards it all, and the next
            // round indexes it again.
            tracing::warn!(%error, retry_in = ?pause, "search indexing failed; back to its last commit");
            writer = None;
            continue;
        }
        if let Some(target) = until
            && index.watermark.get() >= target.min(store.head().get())
        {
            break;
        }
        if caught_up {
            std::thread::park_timeout(POLL);
        }
    }
    // A clean stop commits what is indexed, so that the next start resumes from here.
    if let Some(active) = writer.as_mut()
        && indexed > committed
        && let Err(error) = index.commit(active, indexed)
    {
        tracing::warn!(%error, "search index not committed at stop");
    }
}

/// A new writer (as of the index's last commit) and the seq that commit covers; the index
/// forgets what it held since.
fn back_to_last_commit(index: &SearchIndex) -> Result<(IndexWriter, Seq)> {
    let writer = index.writer()?;
    Ok((writer, index.reset_to_last_commit()?.seq))
}

/// Sleeps `pause` (or until stopped), then doubles it up to [`RETRY_MAX`].
fn pause_unless_stopped(pause: &mut Duration, stop: &AtomicBool) {
    let until = Instant::now() + *pause;
    while !stop.load(Ordering::Acquire) && Instant::now() < until {
        std::thread::park_timeout(until.saturating_duration_since(Instant::now()));
    }
    *pause = (*pause * 2).min(RETRY_MAX);
}
