//! Incrementally maintained views and their in-memory materializations.
//!
//! Each view is one `pub fn` over differential collections (in its own file); the dataflow
//! runtime ([`crate::dataflow`]) feeds it from the log and applies its output diffs to the
//! view's store, which readers query. Every view tracks a [`Watermark`] (the highest seq it
//! reflects) and a [`Digest`] (an order-independent hash of its whole content, updated with each
//! diff), so that a view rebuilt by replay can be compared with the live one cheaply.

pub mod room_history;

use girok_schemas::Seq;
use serde::Serialize;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The highest seq whose effects a view fully reflects.
pub struct Watermark {
    tx: watch::Sender<Seq>,
}

impl Default for Watermark {
    fn default() -> Self {
        Self {
            tx: watch::Sender::new(0),
        }
    }
}

impl Watermark {
    /// Current value.
    pub fn get(&self) -> Seq {
        *self.tx.borrow()
    }

    pub(crate) fn advance(&self, seq: Seq) {
        self.tx.send_if_modified(|current| {
            let moved = seq > *current;
            *current = (*current).max(seq);
            moved
        });
    }

    /// Waits until the watermark reaches `seq`; returns the watermark reached, or `Err` with the
    /// last value seen when `timeout` passes first.
    pub async fn wait_for(&self, seq: Seq, timeout: Duration) -> Result<Seq, Seq> {
        let mut rx = self.tx.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|w| *w >= seq)).await;
        match reached {
            Ok(Ok(w)) => Ok(*w),
            _ => Err(self.get()),
        }
    }

    /// The same for plain threads (replay): polls with a short sleep.
    pub fn wait_for_blocking(&self, seq: Seq, deadline: Instant) -> Result<Seq, Seq> {
        loop {
            let w = self.get();
            if w >= seq {
                return Ok(w);
            }
            if Instant::now() >= deadline {
                return Err(w);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// An order-independent fingerprint of a multiset: the count of entries and the wrapping sum of
/// `diff * hash(entry)`. Applying the same diffs in any order gives the same digest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Digest {
    pub entries: i64,
    pub hash: u64,
}

impl Digest {
    pub(crate) fn apply<D: Hash>(&mut self, data: &D, diff: isize) {
        let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
        data.hash(&mut hasher);
        let h = std::hash::Hasher::finish(&hasher);
        self.entries += diff as i64;
        self.hash = self.hash.wrapping_add(h.wrapping_mul(diff as i64 as u64));
    }
}

/// What `/readyz`, `girok replay` and the replay test report per view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ViewSummary {
    pub name: &'static str,
    pub watermark: Seq,
    pub digest: Digest,
}

/// Every view's store, shared by the dataflow workers (writers) and readers.
#[derive(Default)]
pub struct Views {
    pub room_history: room_history::RoomHistoryStore,
    undecodable: AtomicU64,
}

impl Views {
    /// One summary per view.
    pub fn summaries(&self) -> Vec<ViewSummary> {
        vec![self.room_history.summary()]
    }

    /// The lowest watermark of all views.
    pub fn min_watermark(&self) -> Seq {
        self.room_history.watermark.get()
    }

    /// Log entries the dataflow had to skip because they did not decode.
    pub fn undecodable(&self) -> u64 {
        self.undecodable.load(Ordering::Relaxed)
    }

    pub(crate) fn note_undecodable(&self) {
        self.undecodable.fetch_add(1, Ordering::Relaxed);
    }
}
