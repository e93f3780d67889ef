//! Frees flushed memtables outside fjall's locks. fjall frees a flushed memtable when its
//! version upkeep (run at every seal) drops the last old version that holds it, and it runs
//! that upkeep while it holds the table's version lock: every read of the table waited while
//! the skip list's nodes were freed, the writer's reads among them, so the tail of every
//! acknowledgement. The sealer keeps a handle on each memtable it seals; once fjall holds the
//! memtable no more, the sealer drops it itself, with no lock held.

use fjall::{AbstractTree, Keyspace};
use std::any::Any;
use std::sync::Arc;

/// A memtable the sealer sealed (fjall does not export its type) and its bytes when sealed.
struct Held {
    memtable: Arc<dyn Any + Send + Sync>,
    bytes: u64,
}

/// The memtables sealed by one thread that it has not freed yet.
#[derive(Default)]
pub(crate) struct SealedMemtables {
    held: Vec<Held>,
}

impl SealedMemtables {
    /// Seals `keyspace`'s active memtable for fjall to flush (an empty one stays as it is),
    /// keeping a handle on it.
    pub fn seal(&mut self, keyspace: &Keyspace) -> fjall::Result<()> {
        let active = keyspace.tree.active_memtable();
        let bytes = active.size();
        keyspace.rotate_memtable()?;
        // Sealed now, or by fjall itself a moment before: flushed either way.
        if !Arc::ptr_eq(&active, &keyspace.tree.active_memtable()) {
            self.held.push(Held {
                memtable: active,
                bytes,
            });
        }
        Ok(())
    }

    /// Frees the memtables fjall holds no more (this thread's handle is the last); returns
    /// the bytes of those it still holds.
    pub fn release(&mut self) -> u64 {
        self.held
            .retain(|held| Arc::strong_count(&held.memtable) > 1);
        self.held.iter().map(|held| held.bytes).sum()
    }
}
