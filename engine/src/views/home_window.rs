//! Home timelines kept to a window: per reader, the newest `cap` entries
//! (`engine.home_timeline_entries`, 1,000 by default; up to a quarter more between cuts) and
//! nothing below a floor seq. A home timeline is exactly
//! the reader's own posts and the posts of the authors they follow who are not heavy, so what
//! lies below the floor is read by merging those authors' profile timelines (as heavy authors'
//! posts are merged today): the window holds exactly the entries at or above the floor, the
//! profiles answer the rest, and a page reads the same with any cap. The floor only rises,
//! when a reader's window grows past the cap; an entry that arrives below it (a follow's
//! backfill of old posts) is not kept, and a retraction below it has nothing to retract.
//!
//! The digest covers every update, kept or not: it is the digest of the whole collection, so
//! a live store and a replay agree whatever each kept. Each update is hashed once: a kept one
//! by the index (whose digest a cut leaves alone), one below its floor here.

use super::{CountedIndex, Digest, FastMap, Update};
use girok_schemas::{Seq, UserId};
use parking_lot::{Mutex, RwLock};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Every reader's window of their home timeline.
pub(crate) struct HomeWindows {
    index: CountedIndex<UserId, Seq>,
    /// Per reader whose window was ever cut, the lowest seq it holds entries for.
    floors: RwLock<FastMap<UserId, Seq>>,
    /// The digest of the updates that arrived below their reader's floor (not kept).
    below_floor: Mutex<Digest>,
    cap: AtomicUsize,
}

impl Default for HomeWindows {
    fn default() -> Self {
        Self {
            index: CountedIndex::default(),
            floors: RwLock::new(FastMap::default()),
            below_floor: Mutex::new(Digest::default()),
            cap: AtomicUsize::new(crate::limits::HOME_TIMELINE_ENTRIES),
        }
    }
}

impl HomeWindows {
    /// Entries held in memory, over every window.
    pub(crate) fn held(&self) -> usize {
        self.index.held()
    }

    /// Sets how many entries a window keeps (before the dataflow starts).
    pub(crate) fn set_cap(&self, cap: usize) {
        self.cap.store(cap.max(1), Ordering::Relaxed);
    }

    /// Applies a batch of home-timeline updates: those at or above their reader's floor go to
    /// the window, then every window the batch took a quarter past the cap is cut to its
    /// newest `cap` entries and its floor raised to the lowest one kept.
    pub(crate) fn apply(&self, updates: &[Update<UserId, Seq>]) {
        let mut floors = self.floors.write();
        let (kept, below): (Vec<Update<UserId, Seq>>, Vec<_>) = updates
            .iter()
            .partition(|((reader, seq), _, _)| floors.get(reader).is_none_or(|floor| seq >= floor));
        if !below.is_empty() {
            let mut digest = self.below_floor.lock();
            for (data, _, diff) in below {
                digest.apply(&data, diff);
            }
        }
        self.index.apply(&kept);
        let cap = self.cap.load(Ordering::Relaxed);
        let mut readers: Vec<UserId> = kept
            .iter()
            .filter(|(_, _, diff)| *diff > 0)
            .map(|((reader, _), _, _)| *reader)
            .collect();
        readers.sort_unstable();
        readers.dedup();
        // A window is cut once it holds a quarter more than the cap, not at every entry past
        // it: finding the new floor walks the entries cut.
        let over = cap + (cap / 4).max(1);
        for reader in readers {
            if let Some(floor) = self.index.cut_to_newest(&reader, cap, over) {
                floors.insert(reader, floor);
            }
        }
    }

    /// Up to `limit` entries of `reader`'s window below `before`, newest first, whether the
    /// window holds more below them, and the window's floor, read together (a cut between
    /// reading the page and the floor would show entries twice).
    pub(crate) fn page(&self, reader: &UserId, before: Seq, limit: usize) -> (Vec<Seq>, bool, Seq) {
        let floors = self.floors.read();
        let (seqs, more) = self.index.page(reader, ..before, true, limit);
        (seqs, more, floors.get(reader).copied().unwrap_or(0))
    }

    /// Entries kept in `reader`'s window.
    pub(crate) fn kept(&self, reader: &UserId) -> usize {
        self.index.count(reader)
    }

    /// The digest of the whole home-timeline collection (kept or not).
    pub(crate) fn digest(&self) -> Digest {
        self.index.digest().combine(*self.below_floor.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u128) -> UserId {
        UserId(uuid::Uuid::from_u128(n))
    }

    /// The window holds exactly the entries of the whole collection at or above its floor,
    /// at most `cap` of them after every batch that added some, and the digest is the whole
    /// collection's, whatever order and batching the updates come in.
    #[test]
    fn a_window_holds_exactly_the_entries_above_its_floor_and_digests_the_whole() {
        let windows = HomeWindows::default();
        windows.set_cap(5);
        let whole: CountedIndex<UserId, Seq> = CountedIndex::default();
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        let mut present: Vec<(UserId, Seq)> = Vec::new();
        for round in 0..300 {
            let mut batch = Vec::new();
            for _ in 0..(1 + next() % 6) {
                let retract = !present.is_empty() && next() % 3 == 0;
                if retract {
                    let at = (next() as usize) % present.len();
                    batch.push((present.swap_remove(at), round, -1));
                } else {
                    // Old entries too (a follow's backfill), some below the floor.
                    let entry = (user(u128::from(next() % 3)), 1 + next() % 400);
                    if !present.contains(&entry) {
                        present.push(entry);
                        batch.push((entry, round, 1));
                    }
                }
            }
            // A retraction may come before its insertion within a batch.
            if next() % 2 == 0 {
                batch.reverse();
            }
            windows.apply(&batch);
            whole.apply(&batch);
            assert_eq!(windows.digest(), whole.digest());
            for reader in (0..3).map(user) {
                let (kept, more, floor) = windows.page(&reader, Seq::MAX, 1000);
                let expected: Vec<Seq> = whole
                    .values(&reader)
                    .into_iter()
                    .filter(|seq| *seq >= floor)
                    .rev()
                    .collect();
                assert_eq!(kept, expected, "round {round}");
                assert!(!more && windows.kept(&reader) == kept.len());
                assert!(kept.len() <= 6, "cut to the cap once a quarter past it");
            }
            let kept: usize = (0..3).map(|r| windows.kept(&user(r))).sum();
            assert_eq!(windows.held(), kept, "held in memory: the windows");
        }
        assert!(
            (0..3)
                .map(user)
                .any(|reader| windows.page(&reader, 1, 1).2 > 0)
        );
    }
}
