//! Log entries as they become durable, handed to live consumers (the engine's hub) straight
//! from the writer, so the newest events reach subscribers without being read back from
//! fjall. Best effort by design: a receiver that falls behind gets `Lagged` and reads what it
//! missed from the log, which always has it.

use crate::Seq;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Batches a receiver may fall behind before it must read from the log instead.
const FEED_CAPACITY: usize = 256;

/// The log entries of one committed batch, durable by the time anyone receives it.
#[derive(Debug)]
pub struct DurableBatch {
    /// The seq of `entries[0]`; the entries' seqs follow without a gap. An empty batch
    /// says only that the log goes on before `first_seq` (after a healed storage error).
    pub first_seq: Seq,
    /// Encoded events, as stored in the log.
    pub entries: Vec<Vec<u8>>,
}

impl DurableBatch {
    /// `(seq, encoded event)` of every entry.
    pub fn iter(&self) -> impl Iterator<Item = (Seq, &[u8])> {
        (self.first_seq..).zip(self.entries.iter().map(Vec::as_slice))
    }
}

/// The sending side, owned by the store.
pub(crate) struct DurableFeed {
    sender: broadcast::Sender<Arc<DurableBatch>>,
}

impl Default for DurableFeed {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(FEED_CAPACITY).0,
        }
    }
}

impl DurableFeed {
    /// Whether anyone listens (the writer copies a batch's entries only then).
    pub(crate) fn wanted(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    pub(crate) fn send(&self, batch: Arc<DurableBatch>) {
        // No receiver is not an error: the log has everything.
        let _ = self.sender.send(batch);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<DurableBatch>> {
        self.sender.subscribe()
    }
}
