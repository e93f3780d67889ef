//! One way to follow the durable log, for every consumer of it: the views' feeder, the search
//! indexer and the hub's catch-up inside the engine, and the analytics pipeline outside it
//! (through [`LogSource`], which `Engine` and `Offline` implement). A [`Tailer`] keeps the
//! position and an optional last seq (replay and rebuilds stop there), reads in chunks never
//! past the durable head, and backs off from a failed read (doubling from 50 ms to 500 ms),
//! reporting the failure once and the recovery once instead of once per attempt. How each
//! consumer waits for more stays its own: the views park their timely worker, the indexer and
//! the analytics pipeline poll (they batch on purpose), the hub is fed by the log writer.
//! [`FedLog`] is the store as the views and the indexer follow it: the newest entries come
//! from the log writer's durable feed, as the hub gets them, and only what the feed cannot
//! give is read back from fjall.

use crate::error::Result;
use girok_schemas::{Event, Seq};
use girok_storage::{DurableBatch, Store};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{Receiver, error::TryRecvError};

/// The first wait after a failed read; it doubles with each failure in a row.
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest wait between two reads that fail: storage that heals is read again within it
/// (and a stop request, which a sleeping consumer notices only after it, waits no longer).
const MAX_RETRY: Duration = Duration::from_millis(500);

/// What a read returns per log entry: something with a seq.
pub trait LogEntry {
    fn seq(&self) -> Seq;
}

impl LogEntry for Event {
    fn seq(&self) -> Seq {
        self.seq
    }
}

/// A raw entry: its seq and its bytes.
impl LogEntry for (Seq, Vec<u8>) {
    fn seq(&self) -> Seq {
        self.0
    }
}

/// A log to follow: its durable head and reads of entries up to it.
pub trait LogSource {
    /// What one read returns per log entry.
    type Entry: LogEntry;
    /// The durable head.
    fn head(&self) -> Seq;
    /// Up to `limit` entries with `from <= seq <= through` (`through` at most the head).
    fn read(&self, from: Seq, through: Seq, limit: usize) -> Result<Vec<Self::Entry>>;
}

impl<T: LogSource + ?Sized> LogSource for Arc<T> {
    type Entry = T::Entry;

    fn head(&self) -> Seq {
        (**self).head()
    }

    fn read(&self, from: Seq, through: Seq, limit: usize) -> Result<Vec<T::Entry>> {
        (**self).read(from, through, limit)
    }
}

impl<T: LogSource + ?Sized> LogSource for &T {
    type Entry = T::Entry;

    fn head(&self) -> Seq {
        (**self).head()
    }

    fn read(&self, from: Seq, through: Seq, limit: usize) -> Result<Vec<T::Entry>> {
        (**self).read(from, through, limit)
    }
}

/// The log's raw entries, for the consumers inside the engine (each decodes once, its own way).
impl LogSource for Store {
    type Entry = (Seq, Vec<u8>);

    fn head(&self) -> Seq {
        Store::head(self).get()
    }

    fn read(&self, from: Seq, through: Seq, limit: usize) -> Result<Vec<(Seq, Vec<u8>)>> {
        Ok(self.read_range(from, through, limit)?)
    }
}

/// A store's log, whose newest entries come from the log writer's durable feed (the batches
/// it has just made durable) instead of reads of fjall: under load a consumer that keeps up
/// finds its next chunk there, and saves the range read and the copies out of the memtables.
/// What the feed cannot give (what came before the consumer listened, a gap it dropped while
/// the consumer lagged, a healed storage error) is read from the store, which always has it.
pub(crate) struct FedLog {
    store: Arc<Store>,
    feed: Mutex<Feed>,
}

struct Feed {
    batches: Receiver<Arc<DurableBatch>>,
    /// A batch received but not all read yet (a chunk stopped inside it, or it starts past
    /// the position: the store gives the gap first).
    current: Option<Arc<DurableBatch>>,
}

impl FedLog {
    /// Listens to `store`'s feed from now on.
    pub fn new(store: Arc<Store>) -> Self {
        let feed = Feed::new(store.durable_batches());
        Self {
            store,
            feed: Mutex::new(feed),
        }
    }
}

impl Feed {
    fn new(batches: Receiver<Arc<DurableBatch>>) -> Self {
        Self {
            batches,
            current: None,
        }
    }

    /// Up to `limit` entries from `from` through `through`, if the feed's next batch holds
    /// `from`; `None` when the store must be read (nothing received yet, or a gap first).
    fn take(&mut self, from: Seq, through: Seq, limit: usize) -> Option<Vec<(Seq, Vec<u8>)>> {
        loop {
            let batch = match self.current.take() {
                Some(batch) => batch,
                None => match self.batches.try_recv() {
                    Ok(batch) => batch,
                    // Dropped batches: the next one received tells where the feed is.
                    Err(TryRecvError::Lagged(_)) => continue,
                    Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
                },
            };
            let end = batch.first_seq + batch.entries.len() as Seq;
            if end <= from {
                continue; // read already (from the store, or in an earlier chunk)
            }
            if batch.first_seq > from {
                self.current = Some(batch);
                return None; // a gap before it: the store has it
            }
            let entries: Vec<(Seq, Vec<u8>)> = batch
                .iter()
                .skip_while(|(seq, _)| *seq < from)
                .take_while(|(seq, _)| *seq <= through)
                .take(limit.max(1))
                .map(|(seq, bytes)| (seq, bytes.to_vec()))
                .collect();
            if entries.last().is_some_and(|(seq, _)| seq + 1 < end) {
                self.current = Some(batch);
            }
            return Some(entries);
        }
    }
}

impl LogSource for FedLog {
    type Entry = (Seq, Vec<u8>);

    fn head(&self) -> Seq {
        Store::head(&self.store).get()
    }

    fn read(&self, from: Seq, through: Seq, limit: usize) -> Result<Vec<(Seq, Vec<u8>)>> {
        match self.feed.lock().take(from, through, limit) {
            Some(entries) if !entries.is_empty() => Ok(entries),
            _ => Ok(self.store.read_range(from, through, limit)?),
        }
    }
}

/// Decoded events of a store (what `Engine` and `Offline` serve).
pub(crate) fn read_events(
    store: &Store,
    from: Seq,
    through: Seq,
    limit: usize,
) -> Result<Vec<Event>> {
    store
        .read_range(from, through, limit)?
        .into_iter()
        .map(|(seq, bytes)| {
            girok_schemas::decode_event(&bytes)
                .map_err(|source| crate::Error::Decode { seq, source })
        })
        .collect()
}

/// A read failed: try again after `after` (the failure is reported already).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    pub after: Duration,
}

/// A position in a [`LogSource`].
pub struct Tailer<S> {
    source: S,
    next: Seq,
    until: Option<Seq>,
    /// Who reads, for the reports.
    what: &'static str,
    /// Reads that failed in a row.
    failures: u32,
}

impl<S: LogSource> Tailer<S> {
    /// Follows `source` from seq `from` (1: the whole log), up to `until` if given.
    pub fn new(source: S, from: Seq, until: Option<Seq>, what: &'static str) -> Self {
        Self {
            source,
            next: from.max(1),
            until,
            what,
            failures: 0,
        }
    }

    /// The seq the next chunk starts at.
    pub fn position(&self) -> Seq {
        self.next
    }

    /// The last seq readable now: the durable head, or `until` below it.
    pub fn limit(&self) -> Seq {
        let head = self.source.head();
        self.until.map_or(head, |until| until.min(head))
    }

    /// Whether everything up to `until` has been read (never, without one).
    pub fn finished(&self) -> bool {
        self.until.is_some_and(|until| self.next > until)
    }

    /// Up to `max` entries from the position, never past [`Tailer::limit`]; empty when caught
    /// up. A failed read is reported (the first of a run of failures) and answered with how
    /// long to wait before the next attempt.
    pub fn next_chunk(&mut self, max: usize) -> std::result::Result<Vec<S::Entry>, Retry> {
        let limit = self.limit();
        if self.next > limit {
            return Ok(Vec::new());
        }
        match self.source.read(self.next, limit, max) {
            Ok(entries) => {
                if let Some(last) = entries.last() {
                    self.next = last.seq() + 1;
                }
                if self.failures > 0 {
                    tracing::info!(
                        what = self.what,
                        failures = self.failures,
                        "reads the log again"
                    );
                    self.failures = 0;
                }
                Ok(entries)
            }
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                if self.failures == 1 {
                    tracing::error!(what = self.what, %error, at = self.next, "cannot read the log; retrying");
                } else {
                    tracing::debug!(what = self.what, %error, failures = self.failures, "still cannot read the log");
                }
                Err(Retry {
                    after: retry_after(self.failures),
                })
            }
        }
    }

    /// Moves the position to `to` (a consumer that also learns of events another way, like
    /// the hub from the log writer, reads only what it missed).
    pub fn seek(&mut self, to: Seq) {
        self.next = to.max(1);
    }
}

/// The wait after `failures` failed reads in a row.
fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    /// A log of `head` entries whose reads fail while `failing` is set.
    struct Fake {
        head: Seq,
        failing: Mutex<bool>,
    }

    impl LogEntry for Seq {
        fn seq(&self) -> Seq {
            *self
        }
    }

    impl LogSource for Fake {
        type Entry = Seq;

        fn head(&self) -> Seq {
            self.head
        }

        fn read(&self, from: Seq, through: Seq, limit: usize) -> Result<Vec<Seq>> {
            if *self.failing.lock() {
                return Err(crate::Error::Internal("disk away".into()));
            }
            Ok((from..=through).take(limit).collect())
        }
    }

    fn fake(head: Seq) -> Fake {
        Fake {
            head,
            failing: Mutex::new(false),
        }
    }

    fn batch(first_seq: Seq, count: u8) -> Arc<DurableBatch> {
        let entries = (0..count).map(|i| vec![first_seq as u8 + i]).collect();
        Arc::new(DurableBatch { first_seq, entries })
    }

    fn seqs(entries: Option<Vec<(Seq, Vec<u8>)>>) -> Option<Vec<Seq>> {
        entries.map(|entries| {
            for (seq, bytes) in &entries {
                assert_eq!(bytes, &vec![*seq as u8], "each entry keeps its bytes");
            }
            entries.into_iter().map(|(seq, _)| seq).collect()
        })
    }

    #[test]
    fn the_feed_gives_what_it_holds_from_the_position_and_leaves_gaps_to_the_store() {
        let (sender, receiver) = tokio::sync::broadcast::channel(4);
        let mut feed = Feed::new(receiver);
        assert_eq!(seqs(feed.take(1, 10, 10)), None, "nothing fed yet");
        sender.send(batch(1, 3)).unwrap(); // 1..=3
        sender.send(batch(4, 4)).unwrap(); // 4..=7
        assert_eq!(
            seqs(feed.take(2, 10, 10)),
            Some(vec![2, 3]),
            "from the position"
        );
        assert_eq!(
            seqs(feed.take(4, 10, 2)),
            Some(vec![4, 5]),
            "at most the limit"
        );
        assert_eq!(
            seqs(feed.take(6, 6, 10)),
            Some(vec![6]),
            "never past `through`"
        );
        assert_eq!(
            seqs(feed.take(7, 10, 10)),
            Some(vec![7]),
            "the rest of the batch"
        );
        // A gap (the store has 8..=9): the batch waits until the position reaches it.
        sender.send(batch(10, 2)).unwrap();
        assert_eq!(seqs(feed.take(8, 12, 10)), None);
        assert_eq!(seqs(feed.take(10, 12, 10)), Some(vec![10, 11]));
        // Batches the store gave already are passed over.
        sender.send(batch(12, 2)).unwrap();
        sender.send(batch(14, 1)).unwrap();
        assert_eq!(seqs(feed.take(14, 20, 10)), Some(vec![14]));
        // Lagged: what was dropped comes from the store, the feed goes on after it.
        for first in [15, 16, 17, 18, 19, 20] {
            sender.send(batch(first, 1)).unwrap();
        }
        assert_eq!(seqs(feed.take(15, 20, 10)), None, "15 and 16 were dropped");
        assert_eq!(seqs(feed.take(17, 20, 10)), Some(vec![17]));
        drop(sender);
        assert_eq!(seqs(feed.take(18, 20, 10)), Some(vec![18]));
        assert_eq!(seqs(feed.take(19, 20, 10)), Some(vec![19]));
        assert_eq!(seqs(feed.take(20, 20, 10)), Some(vec![20]));
        assert_eq!(seqs(feed.take(21, 30, 10)), None, "closed and read out");
    }

    #[test]
    fn reads_in_chunks_up_to_the_head_or_until() {
        let mut tail = Tailer::new(fake(5), 1, None, "test");
        assert_eq!(tail.next_chunk(2), Ok(vec![1, 2]));
        assert_eq!(tail.next_chunk(10), Ok(vec![3, 4, 5]));
        assert_eq!(tail.position(), 6, "caught up with the head");
        assert!(!tail.finished());
        assert_eq!(tail.next_chunk(10), Ok(vec![]));

        let mut cut = Tailer::new(fake(9), 0, Some(3), "test");
        assert_eq!(cut.position(), 1);
        assert_eq!(cut.limit(), 3);
        assert_eq!(cut.next_chunk(10), Ok(vec![1, 2, 3]));
        assert!(cut.finished());
    }

    #[test]
    fn failed_reads_back_off_doubling_to_a_ceiling_and_resume_where_they_were() {
        let source = Arc::new(fake(4));
        let mut tail = Tailer::new(source.clone(), 2, None, "test");
        *source.failing.lock() = true;
        let waits: Vec<_> = (0..8)
            .map(|_| tail.next_chunk(10).unwrap_err().after.as_millis())
            .collect();
        assert_eq!(waits, [50, 100, 200, 400, 500, 500, 500, 500]);
        *source.failing.lock() = false;
        assert_eq!(tail.next_chunk(10), Ok(vec![2, 3, 4]));
        *source.failing.lock() = true;
        assert_eq!(
            tail.next_chunk(10),
            Ok(vec![]),
            "caught up: nothing to read"
        );
    }
}
