//! Views kept in the view store (`girok_storage::ViewStore`, `<data>/views`): the chat
//! views (room history, memberships, read receipts) gather the net diffs of each round and
//! write them as rows, with the checkpoint row, in one batch once every event fed so far is
//! through the dataflow (the feed views' inputs, `feed_inputs.rs`, go in the same batches); at
//! start they load from there and the feeder reads the log after the checkpoint only. A store
//! is thus always exactly as of its checkpoint's seq, and a crash between batches only means
//! replaying the log from that seq.

use super::{CountedIndex, Digest, FastMap, Update};
use girok_schemas::Seq;
use girok_storage::{ViewStore, ViewTable, ViewWrite};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::hash::Hash;
use std::sync::Arc;

/// The checkpoint row's key: one checkpoint covers the views' rows (chat views, notifications,
/// follow lists) and the feed views' inputs, written in the same batches.
pub(crate) const VIEWS_GROUP: &[u8] = b"views";

/// The layout of the view store's rows: a store written with another number is dropped and
/// rebuilt from the log (a schema change costs one rebuild, never a wrong answer). 1: the chat
/// views alone (group `chat`); 2: with the feed views' inputs; 3: with the notifications and
/// the followers; 4: with whom each user follows, and the follows' digest apart; 5: without
/// the follows among the feed views' inputs.
pub(crate) const VIEWS_FORMAT: u32 = 5;

/// What a group's checkpoint row says: the seq its tables reflect exactly, their format, and
/// each view's digest at that seq.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub seq: Seq,
    pub format: u32,
    pub digests: BTreeMap<String, Digest>,
}

impl Checkpoint {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // A struct of integers and names: serializing it cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The net diffs of one persisted collection since its last write: counts, so that diffs
/// apply in any order within a round.
pub(crate) struct PendingRows<D> {
    net: Mutex<FastMap<D, isize>>,
}

impl<D> Default for PendingRows<D> {
    fn default() -> Self {
        Self {
            net: Mutex::new(FastMap::default()),
        }
    }
}

impl<D: Hash + Eq> PendingRows<D> {
    pub(crate) fn add(&self, updates: impl IntoIterator<Item = (D, isize)>) {
        let mut net = self.net.lock();
        for (data, diff) in updates {
            match net.entry(data) {
                std::collections::hash_map::Entry::Occupied(mut entry) => {
                    *entry.get_mut() += diff;
                    if *entry.get() == 0 {
                        entry.remove();
                    }
                }
                std::collections::hash_map::Entry::Vacant(entry) => {
                    if diff != 0 {
                        entry.insert(diff);
                    }
                }
            }
        }
    }

    /// The net diffs gathered since the last call (none zero).
    pub(crate) fn take(&self) -> Vec<(D, isize)> {
        std::mem::take(&mut *self.net.lock()).into_iter().collect()
    }
}

/// A keyed index served from memory and kept in a view-store table too, a row per key and
/// value (memberships, read receipts: small, read by every room list, loaded at start).
pub(crate) struct PersistedIndex<K, V> {
    pub(crate) index: CountedIndex<K, V>,
    pending: PendingRows<(K, V)>,
    disk: Arc<ViewStore>,
    table: ViewTable,
}

impl<K: Ord + Hash + Eq + Copy, V: Ord + Hash + Copy> PersistedIndex<K, V> {
    pub(crate) fn new(disk: &Arc<ViewStore>, table: ViewTable) -> Self {
        Self {
            index: CountedIndex::default(),
            pending: PendingRows::default(),
            disk: disk.clone(),
            table,
        }
    }

    pub(crate) fn apply(&self, updates: &[Update<K, V>]) {
        self.index.apply(updates);
        self.pending
            .add(updates.iter().map(|(data, _, diff)| (*data, *diff)));
    }

    /// Moves the diffs gathered since the last call into `out` as rows (`row` encodes one;
    /// a key holds one value at a time).
    pub(crate) fn take_writes(
        &self,
        out: &mut Vec<ViewWrite>,
        row: impl Fn(&(K, V)) -> (Vec<u8>, Vec<u8>),
    ) {
        single_value_rows(self.table, &self.pending.take(), row, out);
    }

    /// Loads the rows (`parse` decodes one) into memory, at start before the dataflow runs;
    /// the digest is recomputed from them.
    pub(crate) fn load(
        &self,
        parse: impl Fn(&[u8], &[u8]) -> Option<(K, V)>,
    ) -> girok_storage::Result<()> {
        let mut rows = Vec::new();
        self.disk.for_each(self.table, |key, value| {
            if let Some(entry) = parse(key, value) {
                rows.push((entry, 0, 1));
            }
            Ok(())
        })?;
        self.index.apply_all(rows);
        Ok(())
    }
}

/// The rows for net diffs of a collection that holds at most one value per key (a membership,
/// a read marker, a latest edit): a key whose old value went and new value came is written
/// with the new value; a key whose value only went is deleted.
pub(crate) fn single_value_rows<D>(
    table: ViewTable,
    net: &[(D, isize)],
    row: impl Fn(&D) -> (Vec<u8>, Vec<u8>),
    out: &mut Vec<ViewWrite>,
) {
    let mut rows: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    for (data, diff) in net {
        let (key, value) = row(data);
        match rows.entry(key) {
            Entry::Vacant(entry) => {
                entry.insert((*diff > 0).then_some(value));
            }
            Entry::Occupied(mut entry) => {
                if *diff > 0 {
                    entry.insert(Some(value));
                }
            }
        }
    }
    out.extend(rows.into_iter().map(|(key, value)| match value {
        Some(value) => ViewWrite::Put(table, key, value),
        None => ViewWrite::Delete(table, key),
    }));
}

/// `a ++ b`, a key of two parts.
pub(crate) fn key2(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(a.len() + b.len());
    key.extend_from_slice(a);
    key.extend_from_slice(b);
    key
}

/// A big-endian u64 or i64 at `at` in `bytes`, if there are eight bytes there.
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let eight = bytes.get(at..at + 8)?;
    Some(u64::from_be_bytes(eight.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_value_is_written_and_a_retracted_one_deleted_in_either_order() {
        let row = |(key, value): &(u8, u8)| (vec![*key], vec![*value]);
        for net in [
            vec![((1, 5), -1), ((1, 9), 1), ((2, 4), -1)],
            vec![((2, 4), -1), ((1, 9), 1), ((1, 5), -1)],
        ] {
            let mut out = Vec::new();
            single_value_rows(ViewTable::Receipt, &net, row, &mut out);
            let out: Vec<_> = out
                .into_iter()
                .map(|w| match w {
                    ViewWrite::Put(_, k, v) => (k, Some(v)),
                    ViewWrite::Delete(_, k) => (k, None),
                })
                .collect();
            assert_eq!(out, vec![(vec![1], Some(vec![9])), (vec![2], None)]);
        }
        let pending = PendingRows::default();
        pending.add([((1u8, 2u8), 1), ((1, 2), -1), ((3, 4), -1)]);
        assert_eq!(pending.take(), vec![((3, 4), -1)]);
        assert!(pending.take().is_empty());
        let checkpoint = Checkpoint {
            seq: 7,
            format: VIEWS_FORMAT,
            digests: BTreeMap::from([("room_history".to_string(), Digest::default())]),
        };
        assert_eq!(Checkpoint::decode(&checkpoint.encode()), Some(checkpoint));
    }
}
