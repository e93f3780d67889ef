//! Whom each user follows, as home pages read it: the `following` rows in the view store,
//! with the lists of the readers seen lately cached in memory (a home page merges the
//! profiles of everyone the reader follows, so every page needs the list). The cache is
//! bounded by readers, not by the follow graph: an active reader's list costs a lookup, an
//! idle one's nothing.
//!
//! A list is dropped from the cache once rows that change it are committed to the view
//! store, and a list read from the rows is cached only if no commit of such rows came between
//! the read and the insert (one lock orders the two), so a cached list is never older than
//! the rows.

use super::disk_set::DiskSet;
use girok_schemas::{Seq, UserId};
use parking_lot::Mutex;
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use std::sync::Arc;

/// Accounts the cached lists name, over every list (16 bytes each, and about 64 per list:
/// 64 MiB in all), so that a reader who follows many accounts takes their share, not one slot.
const CACHED_FOLLOWEES: u64 = 4 << 20;

/// Lists the cache expects (readers following about 50 accounts), to size its tables.
const EXPECTED_LISTS: usize = 80_000;

/// A reader's followees, sorted, once each.
pub(crate) type Followees = Arc<[UserId]>;

/// The cache of followee lists.
pub(crate) struct FolloweeCache {
    lists: Cache<UserId, Followees, ListWeight>,
    /// Bumped by every commit of following rows: a list read before a bump is not cached.
    generation: Mutex<u64>,
}

impl Default for FolloweeCache {
    fn default() -> Self {
        Self {
            lists: Cache::with_weighter(EXPECTED_LISTS, CACHED_FOLLOWEES, ListWeight),
            generation: Mutex::new(0),
        }
    }
}

/// A list weighs one per account it names, plus four for the entry.
#[derive(Clone)]
struct ListWeight;

impl Weighter<UserId, Followees> for ListWeight {
    fn weight(&self, _reader: &UserId, list: &Followees) -> u64 {
        list.len() as u64 + 4
    }
}

impl FolloweeCache {
    /// Whom `reader` follows, from the cache or from the rows of `following`.
    pub(crate) fn get(
        &self,
        following: &DiskSet<UserId, (UserId, Seq)>,
        reader: UserId,
    ) -> girok_storage::Result<Followees> {
        if let Some(list) = self.lists.get(&reader) {
            return Ok(list);
        }
        let generation = *self.generation.lock();
        let mut followees: Vec<UserId> = following
            .values(&reader)?
            .into_iter()
            .map(|(followee, _)| followee)
            .collect();
        // In followee order already; a follow replaced by another shows once.
        followees.dedup();
        let list: Followees = followees.into();
        let current = self.generation.lock();
        if *current == generation {
            self.lists.insert(reader, list.clone());
        }
        Ok(list)
    }

    /// Rows of whom these readers follow were committed: their cached lists are stale.
    pub(crate) fn committed(&self, readers: &[UserId]) {
        if readers.is_empty() {
            return;
        }
        let mut generation = self.generation.lock();
        *generation += 1;
        for reader in readers {
            self.lists.remove(reader);
        }
    }

    /// Lists cached.
    pub(crate) fn len(&self) -> usize {
        self.lists.len()
    }
}
