//! Following the log from a seq: every consumer (views, the hub, replay, `log tail`) reads the
//! durable log in chunks through a [`LogTail`], never past the durable head.

use crate::store::Store;
use crate::{Result, Seq};
use std::sync::Arc;

/// A reader positioned at a seq.
pub struct LogTail {
    store: Arc<Store>,
    next: Seq,
}

impl LogTail {
    pub(crate) fn new(store: Arc<Store>, from: Seq) -> Self {
        Self {
            store,
            next: from.max(1),
        }
    }

    /// The seq the next chunk starts at.
    pub fn position(&self) -> Seq {
        self.next
    }

    /// Up to `max` durable entries from the position, at most up to `until`; empty when
    /// caught up. Does not wait.
    pub fn next_chunk(&mut self, max: usize, until: Option<Seq>) -> Result<Vec<(Seq, Vec<u8>)>> {
        let head = self.store.head().get();
        let limit = until.map_or(head, |u| u.min(head));
        let chunk = self.store.read_range(self.next, limit, max)?;
        if let Some((last, _)) = chunk.last() {
            self.next = last + 1;
        }
        Ok(chunk)
    }
}

impl Store {
    /// A tail positioned at `from` (1 = the whole log).
    pub fn tail(self: &Arc<Self>, from: Seq) -> LogTail {
        LogTail::new(self.clone(), from)
    }
}
