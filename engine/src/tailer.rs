//! One way to follow the durable log, for every consumer of it: the views' feeder, the search
//! indexer and the hub's catch-up inside the engine, and the analytics pipeline outside it
//! (through [`LogSource`], which `Engine` and `Offline` implement). A [`Tailer`] keeps the
//! position and an optional last seq (replay and rebuilds stop there), reads in chunks never
//! past the durable head, and backs off from a failed read (doubling from 50 ms to 500 ms),
//! reporting the failure once and the recovery once instead of once per attempt. How each
//! consumer waits for more stays its own: the views park their timely worker, the indexer and
//! the analytics pipeline poll (they batch on purpose), the hub is fed by the log writer.

use crate::error::Result;
use girok_schemas::{Event, Seq};
use girok_storage::Store;
use std::sync::Arc;
use std::time::Duration;

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
