//! A keyed set view kept in the view store instead of memory: a row `key ++ value` per
//! present entry, written after each round (pages read them at once, as room history's), with
//! the digest in the checkpoint. A start that resumes from a checkpoint does not rebuild it:
//! the rows are exactly the view as of the checkpoint's seq, and the dataflow's output for
//! the restore round (the stored inputs fed at that seq) is that same collection again, so it
//! is dropped; only later rounds change rows. Replay builds it from nothing in its temporary
//! store, so the digests still compare live and rebuilt views. A set may also count each key's
//! values in memory (a user's followers: read with every profile), with the counts written in
//! the sealing batches beside the checkpoint and loaded at start.

use super::persisted::{PendingRows, u64_at};
use super::{Digest, FastMap, Update};
use girok_schemas::{Seq, UserId};
use girok_storage::{ViewStore, ViewTable, ViewWrite};
use parking_lot::{Mutex, RwLock};
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Part of a row key, encoded at a fixed width so that the bytes sort as the values do.
pub(crate) trait KeyPart: Sized + Copy {
    const WIDTH: usize;
    fn write(&self, out: &mut Vec<u8>);
    /// Reads the first `WIDTH` bytes.
    fn read(bytes: &[u8]) -> Option<Self>;
}

impl KeyPart for Seq {
    const WIDTH: usize = 8;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn read(bytes: &[u8]) -> Option<Self> {
        u64_at(bytes, 0)
    }
}

impl KeyPart for UserId {
    const WIDTH: usize = 16;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn read(bytes: &[u8]) -> Option<Self> {
        UserId::from_slice(bytes.get(..16)?)
    }
}

impl<A: KeyPart, B: KeyPart> KeyPart for (A, B) {
    const WIDTH: usize = A::WIDTH + B::WIDTH;
    fn write(&self, out: &mut Vec<u8>) {
        self.0.write(out);
        self.1.write(out);
    }
    fn read(bytes: &[u8]) -> Option<Self> {
        Some((A::read(bytes)?, B::read(bytes.get(A::WIDTH..)?)?))
    }
}

/// The row key of `(key, value)`.
fn row<K: KeyPart, V: KeyPart>(key: &K, value: &V) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(K::WIDTH + V::WIDTH);
    key.write(&mut bytes);
    value.write(&mut bytes);
    bytes
}

/// The bytes every row of `key` starts with.
fn prefix<K: KeyPart>(key: &K) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(K::WIDTH);
    key.write(&mut bytes);
    bytes
}

/// A row key of `key` at least as great as any of its rows (values `width` bytes wide).
fn last_row<K: KeyPart>(key: &K, width: usize) -> Vec<u8> {
    let mut bytes = prefix(key);
    bytes.resize(K::WIDTH + width, 0xff);
    bytes
}

/// The values of rows read for one key.
fn values_of<K: KeyPart, V: KeyPart>(rows: &[(Vec<u8>, Vec<u8>)]) -> Vec<V> {
    rows.iter()
        .filter_map(|(bytes, _)| V::read(bytes.get(K::WIDTH..)?))
        .collect()
}

/// A `(key, value)` set in a view-store table.
pub(crate) struct DiskSet<K, V> {
    disk: Arc<ViewStore>,
    table: ViewTable,
    /// Diffs not yet written.
    pending: PendingRows<(K, V)>,
    digest: Mutex<Digest>,
    /// Updates at or before this seq are the restore round's: the rows hold them already.
    restored: AtomicU64,
    counts: Option<KeyCounts<K>>,
}

/// How many values each key has, in memory, and in a table of `key -> count (u64 BE)` rows
/// written with each seal.
struct KeyCounts<K> {
    table: ViewTable,
    counts: RwLock<FastMap<K, u64>>,
    /// Keys whose count changed since the last seal.
    changed: Mutex<FastMap<K, ()>>,
}

impl<K: KeyPart + Hash + Eq, V: KeyPart + Hash + Eq> DiskSet<K, V> {
    pub(crate) fn new(disk: &Arc<ViewStore>, table: ViewTable) -> Self {
        Self {
            disk: disk.clone(),
            table,
            pending: PendingRows::default(),
            digest: Mutex::default(),
            restored: AtomicU64::new(0),
            counts: None,
        }
    }

    /// A set that also counts each key's values, keeping the counts in `count_table`.
    pub(crate) fn counted(disk: &Arc<ViewStore>, table: ViewTable, count_table: ViewTable) -> Self {
        Self {
            counts: Some(KeyCounts {
                table: count_table,
                counts: RwLock::default(),
                changed: Mutex::default(),
            }),
            ..Self::new(disk, table)
        }
    }

    /// Takes the rows as the view at `seq`, whose digest the checkpoint recorded, and loads
    /// the counts written with it (at start, before the dataflow runs). Whether the counts add
    /// up to the digest's entries (the rows themselves are not read).
    pub(crate) fn restore(&self, seq: Seq, digest: Digest) -> girok_storage::Result<bool> {
        *self.digest.lock() = digest;
        self.restored.store(seq, Ordering::Release);
        let Some(counted) = &self.counts else {
            return Ok(true);
        };
        let mut counts = counted.counts.write();
        let mut total: i64 = 0;
        let mut unreadable = false;
        self.disk.for_each(counted.table, |key, value| {
            match (K::read(key), u64_at(value, 0)) {
                (Some(key), Some(count)) => {
                    total = total.saturating_add(i64::try_from(count).unwrap_or(i64::MAX));
                    counts.insert(key, count);
                }
                _ => unreadable = true,
            }
            Ok(())
        })?;
        Ok(!unreadable && total == digest.entries)
    }

    /// How many values `key` has (a counted set; 0 otherwise).
    pub(crate) fn count(&self, key: &K) -> usize {
        self.counts.as_ref().map_or(0, |counted| {
            let count = counted.counts.read().get(key).copied().unwrap_or(0);
            usize::try_from(count).unwrap_or(usize::MAX)
        })
    }

    /// Applies a batch of output diffs: to the digest now, to the rows at the next write.
    pub(crate) fn apply(&self, updates: &[Update<K, V>]) {
        let restored = self.restored.load(Ordering::Acquire);
        let mut digest = self.digest.lock();
        let fresh = updates.iter().filter(|(_, time, _)| *time > restored);
        let net = fresh
            .map(|((key, value), _, diff)| {
                digest.apply(&(key, value), *diff);
                ((*key, *value), *diff)
            })
            .collect::<Vec<_>>();
        drop(digest);
        if let Some(counted) = &self.counts {
            let mut counts = counted.counts.write();
            let mut changed = counted.changed.lock();
            for ((key, _), diff) in &net {
                let count = counts.entry(*key).or_default();
                *count = count.saturating_add_signed(*diff as i64);
                if *count == 0 {
                    counts.remove(key);
                }
                changed.insert(*key, ());
            }
        }
        self.pending.add(net);
    }

    /// Moves the diffs gathered since the last call into `out` as rows (a set: an entry is
    /// present or not); with `seal`, also the counts that changed since the last seal. With
    /// `touched`, adds to it the keys whose rows these are.
    pub(crate) fn take_writes(
        &self,
        out: &mut Vec<ViewWrite>,
        seal: bool,
        mut touched: Option<&mut Vec<K>>,
    ) {
        for ((key, value), diff) in self.pending.take() {
            if let Some(touched) = touched.as_deref_mut() {
                touched.push(key);
            }
            let key = row(&key, &value);
            out.push(match diff > 0 {
                true => ViewWrite::Put(self.table, key, Vec::new()),
                false => ViewWrite::Delete(self.table, key),
            });
        }
        if let Some(counted) = self.counts.as_ref().filter(|_| seal) {
            let counts = counted.counts.read();
            for (key, ()) in counted.changed.lock().drain() {
                let bytes = prefix(&key);
                out.push(match counts.get(&key) {
                    Some(count) => {
                        ViewWrite::Put(counted.table, bytes, count.to_be_bytes().to_vec())
                    }
                    None => ViewWrite::Delete(counted.table, bytes),
                });
            }
        }
    }

    /// Every value of `key`, in order (a key with many values reads them all).
    pub(crate) fn values(&self, key: &K) -> girok_storage::Result<Vec<V>> {
        let rows = self.disk.range(
            self.table,
            &prefix(key),
            &last_row(key, V::WIDTH),
            false,
            usize::MAX,
        )?;
        Ok(values_of::<K, V>(&rows))
    }

    /// Up to `limit` values of `key` below `before`, greatest first, and whether more remain.
    pub(crate) fn page(
        &self,
        key: &K,
        before: &V,
        limit: usize,
    ) -> girok_storage::Result<(Vec<V>, bool)> {
        let rows = self.disk.range_below(
            self.table,
            &prefix(key),
            &row(key, before),
            limit.saturating_add(1),
        )?;
        let mut values = values_of::<K, V>(&rows);
        let more = values.len() > limit;
        values.truncate(limit);
        Ok((values, more))
    }

    /// How many values of `key` are at least `from`, counting up to `cap`.
    pub(crate) fn count_from(&self, key: &K, from: &V, cap: usize) -> girok_storage::Result<usize> {
        self.disk
            .count_range(self.table, &row(key, from), &last_row(key, V::WIDTH), cap)
    }

    /// The digest of the whole set.
    pub(crate) fn digest(&self) -> Digest {
        *self.digest.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::NotificationKind;

    fn user(n: u128) -> UserId {
        UserId(uuid::Uuid::from_u128(n))
    }

    fn written<K: KeyPart + Hash + Eq, V: KeyPart + Hash + Eq>(set: &DiskSet<K, V>) {
        let mut writes = Vec::new();
        set.take_writes(&mut writes, true, None);
        set.disk.write(&writes, false).unwrap();
    }

    #[test]
    fn pages_and_counts_read_the_rows_and_a_restore_round_changes_nothing() {
        let disk = Arc::new(ViewStore::temporary(1 << 20).unwrap());
        let set: DiskSet<UserId, (Seq, NotificationKind)> =
            DiskSet::new(&disk, ViewTable::Notification);
        let (ann, bob) = (user(1), user(2));
        let note = |seq, kind| (seq, kind);
        // A retraction before its insertion within a batch nets to nothing.
        set.apply(&[
            ((ann, note(5, NotificationKind::Like)), 5, 1),
            ((ann, note(7, NotificationKind::Mention)), 7, 1),
            ((ann, note(7, NotificationKind::Follow)), 7, 1),
            ((ann, note(9, NotificationKind::Comment)), 9, -1),
            ((ann, note(9, NotificationKind::Comment)), 9, 1),
            ((bob, note(6, NotificationKind::Like)), 6, 1),
        ]);
        written(&set);
        let all = |set: &DiskSet<_, _>| set.page(&ann, &(Seq::MAX, NotificationKind::Like), 10);
        assert_eq!(
            all(&set).unwrap(),
            (
                vec![
                    note(7, NotificationKind::Mention),
                    note(7, NotificationKind::Follow),
                    note(5, NotificationKind::Like)
                ],
                false
            )
        );
        // Below a cursor, greatest first, and whether more remain.
        let (page, more) = set.page(&ann, &(7, NotificationKind::Like), 1).unwrap();
        assert_eq!((page, more), (vec![note(5, NotificationKind::Like)], false));
        let (page, more) = set
            .page(&ann, &(Seq::MAX, NotificationKind::Like), 2)
            .unwrap();
        assert_eq!(page.len(), 2);
        assert!(more);
        assert_eq!(
            set.count_from(&ann, &(6, NotificationKind::Like), 10)
                .unwrap(),
            2
        );
        assert_eq!(
            set.count_from(&ann, &(0, NotificationKind::Like), 2)
                .unwrap(),
            2
        );
        assert_eq!(
            set.count_from(&bob, &(0, NotificationKind::Like), 10)
                .unwrap(),
            1
        );
        assert_eq!(set.digest().entries, 4);

        // A restart at seq 9: the same rows, the checkpoint's digest; the restore round's
        // output (time 9) is what the rows hold already, later rounds change them.
        let restarted: DiskSet<UserId, (Seq, NotificationKind)> =
            DiskSet::new(&disk, ViewTable::Notification);
        assert!(restarted.restore(9, set.digest()).unwrap());
        restarted.apply(&[
            ((ann, note(5, NotificationKind::Like)), 9, 1),
            ((ann, note(7, NotificationKind::Mention)), 9, 1),
            ((ann, note(5, NotificationKind::Like)), 10, -1),
        ]);
        written(&restarted);
        assert_eq!(
            all(&restarted).unwrap().0,
            vec![
                note(7, NotificationKind::Mention),
                note(7, NotificationKind::Follow)
            ]
        );
        assert_eq!(restarted.digest().entries, 3);
    }

    #[test]
    fn a_counted_set_counts_in_memory_and_restores_the_counts_sealed_with_it() {
        let disk = Arc::new(ViewStore::temporary(1 << 20).unwrap());
        let open = || -> DiskSet<UserId, (Seq, UserId)> {
            DiskSet::counted(&disk, ViewTable::Follower, ViewTable::FollowerCount)
        };
        let set = open();
        let (ann, bob, cat) = (user(1), user(2), user(3));
        set.apply(&[
            ((ann, (4, bob)), 4, 1),
            ((ann, (5, cat)), 5, 1),
            ((bob, (6, cat)), 6, 1),
        ]);
        assert_eq!(
            (set.count(&ann), set.count(&bob), set.count(&cat)),
            (2, 1, 0)
        );
        written(&set);
        set.apply(&[((bob, (6, cat)), 7, -1)]);
        written(&set);
        assert_eq!(set.count(&bob), 0);
        assert_eq!(set.values(&ann).unwrap(), vec![(4, bob), (5, cat)]);
        assert!(set.values(&bob).unwrap().is_empty());

        let restarted = open();
        assert!(restarted.restore(7, set.digest()).unwrap());
        assert_eq!((restarted.count(&ann), restarted.count(&bob)), (2, 0));
        // The restore round changes no count; a later follow does.
        restarted.apply(&[((ann, (4, bob)), 7, 1), ((ann, (8, bob)), 8, 1)]);
        assert_eq!(restarted.count(&ann), 3);
        // Counts that do not add up to the checkpoint's digest are not taken as they are.
        let wrong = Digest {
            entries: 3,
            ..set.digest()
        };
        assert!(!open().restore(7, wrong).unwrap());
    }
}
