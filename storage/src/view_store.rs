//! The view store: where views whose state is large keep their materialized outputs, each
//! group of them with a checkpoint row written in the same batch (`<data>/views`, or a
//! temporary directory for `girok replay`). It is one LSM-tree (fjall's engine, `lsm-tree`)
//! without a journal: a batch goes into the memtable at one sequence number (readers see it
//! whole or not at all); the caller marks the batches after which the memtable is sealed, and
//! sealed memtables are flushed to table files by a thread of the store's own, so what is on
//! disk is always the state after some sealing batch, its checkpoint included. A crash loses
//! the memtable, never consistency: the views resume from the last checkpoint on disk and
//! replay the log from there.
//!
//! Why not a fjall database: fjall replays its journal when it opens, and that replay costs a
//! lookup and a memtable insert per item, already flushed or not. With a view row per chat
//! message, opening a store after a million messages took about four seconds, more than the
//! rows were worth; the log is this store's journal already.

use crate::tables::ViewTable;
use crate::{Error, Result};
use lsm_tree::compaction::Leveled;
use lsm_tree::{
    AbstractTree, AnyTree, Cache, Config, DescriptorTable, Guard, SequenceNumberCounter,
};
use parking_lot::{Condvar, Mutex};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A memtable this large is sealed by the next batch (and flushed in the background): it
/// bounds the memory the write path holds and what a crash makes the views replay from the log.
pub const SEAL_BYTES: u64 = 8 << 20;

/// A memtable is sealed at least this often while batches come, so that the checkpoint on
/// disk is never older than this (plus a flush).
pub const SEAL_INTERVAL: Duration = Duration::from_secs(5);

/// Table files the store keeps open.
const OPEN_FILES: usize = 64;

/// One write to the view store.
pub enum ViewWrite {
    Put(ViewTable, Vec<u8>, Vec<u8>),
    Delete(ViewTable, Vec<u8>),
}

/// What the flush thread and the writers share.
struct Shared {
    tree: AnyTree,
    /// Set when memtables wait to be flushed, or to stop.
    wake: Mutex<bool>,
    woken: Condvar,
    stop: AtomicBool,
}

impl Shared {
    /// Flushes the sealed memtables, then compacts; returns whether anything was flushed.
    fn flush_sealed(&self, gc_below: u64) -> Result<bool> {
        let flushed = {
            let lock = self.tree.get_flush_lock();
            self.tree.flush(&lock, gc_below)?.is_some()
        };
        self.tree.compact(Arc::new(Leveled::default()), gc_below)?;
        Ok(flushed)
    }
}

/// An open view store.
pub struct ViewStore {
    shared: Arc<Shared>,
    seqno: SequenceNumberCounter,
    visible: SequenceNumberCounter,
    /// Writers take it so that a memtable is sealed only between whole batches.
    writing: Mutex<Instant>,
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
    cache: Arc<Cache>,
    /// A temporary store's directory, removed once the tree is gone (declared last: dropped
    /// last).
    _temporary: Option<tempfile::TempDir>,
}

impl ViewStore {
    /// Opens (or creates) the view store in `dir`, with a block cache of `cache_bytes`.
    /// `flush_thread` runs first on the store's flush thread (the server lowers its priority
    /// there, so that flushes and compactions yield to live work on a saturated machine).
    pub fn open(dir: &Path, cache_bytes: u64, flush_thread: fn(&str)) -> Result<ViewStore> {
        std::fs::create_dir_all(dir)?;
        Self::open_in(dir, cache_bytes, None, flush_thread)
    }

    /// A view store in a new temporary directory, removed when the store is dropped (replay).
    pub fn temporary(cache_bytes: u64) -> Result<ViewStore> {
        let dir = tempfile::Builder::new().prefix("girok-views-").tempdir()?;
        let path = dir.path().to_path_buf();
        Self::open_in(&path, cache_bytes, Some(dir), |_| {})
    }

    fn open_in(
        dir: &Path,
        cache_bytes: u64,
        temporary: Option<tempfile::TempDir>,
        flush_thread: fn(&str),
    ) -> Result<ViewStore> {
        let seqno = SequenceNumberCounter::default();
        let visible = SequenceNumberCounter::default();
        let cache = Arc::new(Cache::with_capacity_bytes(cache_bytes));
        let tree = Config::new(dir, seqno.clone(), visible.clone())
            .use_cache(cache.clone())
            .use_descriptor_table(Some(Arc::new(DescriptorTable::new(OPEN_FILES))))
            .open()?;
        // Numbering continues after what the table files hold.
        let next = tree.get_highest_seqno().map_or(0, |s| s + 1);
        seqno.set(next);
        visible.set(next);
        let shared = Arc::new(Shared {
            tree,
            wake: Mutex::new(false),
            woken: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let flusher = {
            let (shared, visible) = (shared.clone(), visible.clone());
            std::thread::Builder::new()
                .name("girok-views-flush".into())
                .spawn(move || {
                    flush_thread("view store flush");
                    flush_loop(&shared, &visible)
                })?
        };
        Ok(ViewStore {
            shared,
            seqno,
            visible,
            writing: Mutex::new(Instant::now()),
            flusher: Mutex::new(Some(flusher)),
            cache,
            _temporary: temporary,
        })
    }

    fn tree(&self) -> &AnyTree {
        &self.shared.tree
    }

    fn key(table: ViewTable, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(1 + key.len());
        full.push(table as u8);
        full.extend_from_slice(key);
        full
    }

    /// One value.
    pub fn get(&self, table: ViewTable, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = self.tree().get(Self::key(table, key), self.visible.get())?;
        Ok(value.map(|v| v.to_vec()))
    }

    /// Up to `limit` entries with `from <= key <= to`, in key order or (`reverse`) the
    /// greatest first (keys without the table's tag).
    pub fn range(
        &self,
        table: ViewTable,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        let range = self.tree().range(
            Self::key(table, from)..=Self::key(table, to),
            self.visible.get(),
            None,
        );
        if reverse {
            range.rev().take(limit).map(untagged).collect()
        } else {
            range.take(limit).map(untagged).collect()
        }
    }

    /// Up to `limit` entries with `from <= key < below`, the greatest first (keys without the
    /// table's tag): a page that ends before a cursor.
    pub fn range_below(
        &self,
        table: ViewTable,
        from: &[u8],
        below: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if from >= below || limit == 0 {
            return Ok(Vec::new());
        }
        let range = self.tree().range(
            Self::key(table, from)..Self::key(table, below),
            self.visible.get(),
            None,
        );
        range.rev().take(limit).map(untagged).collect()
    }

    /// How many keys lie within `from..=to`, counting up to `cap`.
    pub fn count_range(
        &self,
        table: ViewTable,
        from: &[u8],
        to: &[u8],
        cap: usize,
    ) -> Result<usize> {
        if from > to {
            return Ok(0);
        }
        let range = self.tree().range(
            Self::key(table, from)..=Self::key(table, to),
            self.visible.get(),
            None,
        );
        let mut count = 0;
        for guard in range.take(cap) {
            guard.key()?;
            count += 1;
        }
        Ok(count)
    }

    /// Calls `visit` with every entry of `table`, in key order (loading a view at start).
    pub fn for_each(
        &self,
        table: ViewTable,
        visit: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.for_each_with_prefix(table, &[], visit)
    }

    /// Calls `visit` with every entry of `table` whose key starts with `prefix`, in key order.
    pub fn for_each_with_prefix(
        &self,
        table: ViewTable,
        prefix: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        for guard in self
            .tree()
            .prefix(Self::key(table, prefix), self.visible.get(), None)
        {
            let (key, value) = guard.into_inner()?;
            visit(&key[1..], &value)?;
        }
        Ok(())
    }

    /// Applies `writes` as one batch: readers see all of it or none. With `seal`, the memtable
    /// is sealed right after it (and flushed in the background): what reaches the disk is
    /// always the state after a sealing batch, so the caller puts what must be consistent on
    /// disk (a checkpoint and everything it covers) in sealing batches. (Borrowed, so that a
    /// batch that failed can be tried again as it was.)
    pub fn write(&self, writes: &[ViewWrite], seal: bool) -> Result<()> {
        let mut last_seal = self.writing.lock();
        let seqno = self.seqno.next();
        for write in writes {
            match write {
                ViewWrite::Put(table, key, value) => {
                    self.tree()
                        .insert(Self::key(*table, key), value.as_slice(), seqno);
                }
                ViewWrite::Delete(table, key) => {
                    self.tree().remove(Self::key(*table, key), seqno);
                }
            }
        }
        self.visible.fetch_max(seqno + 1);
        if seal {
            *last_seal = Instant::now();
            if self.tree().rotate_memtable().is_some() {
                *self.shared.wake.lock() = true;
                self.shared.woken.notify_one();
            }
        }
        Ok(())
    }

    /// Whether the next batch should seal: the memtable reached [`SEAL_BYTES`], or the last
    /// seal is [`SEAL_INTERVAL`] old.
    pub fn seal_due(&self) -> bool {
        let last_seal = self.writing.lock();
        self.tree().active_memtable().size() >= SEAL_BYTES || last_seal.elapsed() >= SEAL_INTERVAL
    }

    /// Writes the sealed memtables to table files and waits for it (a clean shutdown, after a
    /// last sealing batch). The active memtable stays out: it holds no sealing batch.
    pub fn flush(&self) -> Result<()> {
        let _writing = self.writing.lock();
        self.shared.flush_sealed(self.visible.get())?;
        Ok(())
    }

    /// Empties every table (a store whose format the build does not know is rebuilt).
    pub fn clear(&self) -> Result<()> {
        let _writing = self.writing.lock();
        Ok(self.tree().clear()?)
    }

    /// The block cache's bytes and the active memtable's (sealed memtables wait for the flush
    /// thread only briefly).
    pub fn memory(&self) -> crate::StoreMemory {
        crate::StoreMemory {
            block_cache: self.cache.size(),
            memtables: self.tree().active_memtable().size(),
            flushed_memtables: 0,
        }
    }

    /// Bytes on disk.
    pub fn disk_bytes(&self) -> Result<u64> {
        Ok(self.tree().disk_space())
    }
}

/// An entry read from the tree, with its key's table tag taken off.
fn untagged(guard: lsm_tree::IterGuardImpl) -> Result<(Vec<u8>, Vec<u8>)> {
    let (key, value) = guard.into_inner()?;
    Ok((key[1..].to_vec(), value.to_vec()))
}

impl Drop for ViewStore {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        *self.shared.wake.lock() = true;
        self.shared.woken.notify_one();
        if let Some(flusher) = self.flusher.lock().take()
            && flusher.join().is_err()
        {
            tracing::error!("the view store's flush thread panicked");
        }
    }
}

/// The flush thread: flushes sealed memtables as they come, and compacts.
fn flush_loop(shared: &Shared, visible: &SequenceNumberCounter) {
    loop {
        {
            let mut wake = shared.wake.lock();
            if !*wake && !shared.stop.load(Ordering::Acquire) {
                shared.woken.wait_for(&mut wake, SEAL_INTERVAL);
            }
            *wake = false;
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        if shared.tree.sealed_memtable_count() > 0
            && let Err(error) = shared.flush_sealed(visible.get())
        {
            // The memtables stay sealed and readable; the next turn tries again.
            tracing::error!(%error, "cannot flush the view store");
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

impl From<lsm_tree::Error> for Error {
    fn from(error: lsm_tree::Error) -> Self {
        Error::Views(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(store: &ViewStore) -> usize {
        let mut seen = 0;
        store
            .for_each(ViewTable::RoomHistory, |_, _| {
                seen += 1;
                Ok(())
            })
            .unwrap();
        seen
    }

    #[test]
    fn pages_end_before_a_cursor() {
        let store = ViewStore::temporary(1 << 20).unwrap();
        let mut writes: Vec<ViewWrite> = [[0u8, 1], [1, 1], [1, 2], [2, 1], [3, 7], [9, 9]]
            .into_iter()
            .map(|key| ViewWrite::Put(ViewTable::FeedInput, key.to_vec(), vec![key[1]]))
            .collect();
        // Rows of the tables before and after this one never show.
        writes.push(ViewWrite::Put(ViewTable::Receipt, vec![1, 1], vec![]));
        writes.push(ViewWrite::Put(ViewTable::Notification, vec![1, 1], vec![]));
        store.write(&writes, false).unwrap();
        let keys = |rows: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<Vec<u8>> {
            rows.into_iter().map(|(key, _)| key).collect()
        };
        let below = store
            .range_below(ViewTable::FeedInput, &[1], &[2, 1], 10)
            .unwrap();
        assert_eq!(
            keys(below),
            vec![vec![1, 2], vec![1, 1]],
            "the cursor excluded"
        );
        let one = store
            .range_below(ViewTable::FeedInput, &[1], &[2], 1)
            .unwrap();
        assert_eq!(keys(one), vec![vec![1, 2]]);
        assert!(
            store
                .range_below(ViewTable::FeedInput, &[2], &[2], 5)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn ranges_read_both_ways_count_up_to_a_cap_and_batches_apply_whole() {
        let store = ViewStore::temporary(1 << 20).unwrap();
        let rows_1_to_5: Vec<ViewWrite> = (1u64..=5)
            .map(|n| {
                ViewWrite::Put(
                    ViewTable::RoomHistory,
                    n.to_be_bytes().to_vec(),
                    vec![n as u8],
                )
            })
            .collect();
        store.write(&rows_1_to_5, false).unwrap();
        // Another table's rows never show in this one's ranges.
        store
            .write(
                &[ViewWrite::Put(
                    ViewTable::RoomCount,
                    3u64.to_be_bytes().to_vec(),
                    vec![9],
                )],
                false,
            )
            .unwrap();
        let key = |n: u64| n.to_be_bytes();
        let newest = store
            .range(ViewTable::RoomHistory, &key(2), &key(9), true, 2)
            .unwrap();
        assert_eq!(
            newest,
            vec![(key(5).to_vec(), vec![5]), (key(4).to_vec(), vec![4])]
        );
        let oldest = store
            .range(ViewTable::RoomHistory, &key(0), &key(9), false, 1)
            .unwrap();
        assert_eq!(oldest, vec![(key(1).to_vec(), vec![1])]);
        assert_eq!(
            store
                .count_range(ViewTable::RoomHistory, &key(2), &key(9), 10)
                .unwrap(),
            4
        );
        assert_eq!(
            store
                .count_range(ViewTable::RoomHistory, &key(2), &key(9), 3)
                .unwrap(),
            3
        );
        store
            .write(
                &[
                    ViewWrite::Delete(ViewTable::RoomHistory, key(5).to_vec()),
                    ViewWrite::Put(ViewTable::Checkpoint, b"chat".to_vec(), b"5".to_vec()),
                ],
                false,
            )
            .unwrap();
        assert_eq!(store.get(ViewTable::RoomHistory, &key(5)).unwrap(), None);
        assert_eq!(
            store.get(ViewTable::Checkpoint, b"chat").unwrap(),
            Some(b"5".to_vec())
        );
        assert_eq!(rows(&store), 4);
        store.clear().unwrap();
        assert_eq!(store.get(ViewTable::Checkpoint, b"chat").unwrap(), None);
        assert_eq!(rows(&store), 0);
    }

    #[test]
    fn what_a_sealing_batch_left_is_there_after_reopening_and_nothing_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let put =
            |n: u64| ViewWrite::Put(ViewTable::RoomHistory, n.to_be_bytes().to_vec(), vec![1]);
        {
            let store = ViewStore::open(dir.path(), 1 << 20, |_| {}).unwrap();
            store.write(&[put(1)], false).unwrap();
            store.write(&[put(2)], true).unwrap();
            // After the last sealing batch: as after a crash, gone, even once flushed.
            store.write(&[put(3), put(4)], false).unwrap();
            store.flush().unwrap();
            assert_eq!(rows(&store), 4, "readers see every batch");
        }
        let store = ViewStore::open(dir.path(), 1 << 20, |_| {}).unwrap();
        assert_eq!(rows(&store), 2);
        store.write(&[put(5)], true).unwrap();
        assert_eq!(
            rows(&store),
            3,
            "numbering continues after the reopened rows"
        );
        store.flush().unwrap();
        drop(store);
        assert_eq!(
            rows(&ViewStore::open(dir.path(), 1 << 20, |_| {}).unwrap()),
            3
        );
    }
}
