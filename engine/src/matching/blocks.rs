//! Who blocks whom, as the sequencer checks it: every current block in memory (blocks are few
//! beside users), loaded from the write model on first use and again after a batch that did
//! not commit. Matching asks it before pairing two users, chat before a direct message.

use crate::error::{Error, Result};
use girok_schemas::UserId;
use girok_storage::{Table, Txn};
use std::collections::HashSet;

#[derive(Default)]
pub(crate) struct Blocks {
    /// `(blocker, blocked)`; `None` until loaded.
    pairs: Option<HashSet<(UserId, UserId)>>,
}

impl Blocks {
    /// Forgets everything (the batch it learned from did not commit).
    pub fn reset(&mut self) {
        self.pairs = None;
    }

    fn loaded(&mut self, txn: &Txn<'_>) -> Result<&mut HashSet<(UserId, UserId)>> {
        if self.pairs.is_none() {
            let mut pairs = HashSet::new();
            for (key, _) in txn.scan_prefix(Table::BlockerBlocked, &[])? {
                let pair = crate::records::users_of_key(&key)
                    .ok_or_else(|| Error::Internal("corrupt block key".into()))?;
                pairs.insert(pair);
            }
            self.pairs = Some(pairs);
        }
        Ok(self.pairs.get_or_insert_with(HashSet::new))
    }

    /// Whether either of the two blocks the other.
    pub fn between(&mut self, txn: &Txn<'_>, a: UserId, b: UserId) -> Result<bool> {
        let pairs = self.loaded(txn)?;
        Ok(pairs.contains(&(a, b)) || pairs.contains(&(b, a)))
    }

    /// Whether `blocker` blocks `blocked`.
    pub fn blocks(&mut self, txn: &Txn<'_>, blocker: UserId, blocked: UserId) -> Result<bool> {
        Ok(self.loaded(txn)?.contains(&(blocker, blocked)))
    }

    /// Records a block or its end appended in this batch.
    pub fn set(&mut self, txn: &Txn<'_>, blocker: UserId, blocked: UserId, on: bool) -> Result<()> {
        let pairs = self.loaded(txn)?;
        if on {
            pairs.insert((blocker, blocked));
        } else {
            pairs.remove(&(blocker, blocked));
        }
        Ok(())
    }
}
