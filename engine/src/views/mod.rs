//! Incrementally maintained views and their in-memory materializations.
//!
//! Each view is one `pub fn` over differential collections (in its own file); the dataflow
//! runtime (`dataflow.rs`) feeds it from the log and applies its output diffs to the
//! view's store, which readers query. Every view tracks a [`Watermark`] (the highest seq it
//! reflects) and a [`Digest`] (an order-independent hash of its whole content, updated with each
//! diff), so that a view rebuilt by replay can be compared with the live one cheaply.

/// Advances each named input session of `$inputs` to `$next` and flushes it: the last step of
/// feeding a round, for every dataflow fed from the log (the engine's views, analytics'
/// rollups).
#[macro_export]
macro_rules! advance_inputs {
    ($inputs:expr, $next:expr; $($input:ident),* $(,)?) => {$(
        $inputs.$input.advance_to($next);
        $inputs.$input.flush();
    )*};
}

mod counts;
pub(crate) mod disk_set;
pub mod feed;
pub(crate) mod feed_inputs;
mod followees;
pub mod follows;
pub(crate) mod inputs;
pub mod notifications;
pub(crate) mod persisted;
pub mod post_stats;
pub mod room_history;
pub mod rooms;

pub use feed::{FeedStore, NotificationKind, NotificationRef, PostRef};

use girok_schemas::Seq;
use girok_storage::{ViewStore, ViewTable, ViewWrite};
use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::hash::Hash;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The chat views whose rows the checkpoint covers, by the names their digests report.
const CHAT_VIEWS: [&str; 3] = ["room_history", "memberships", "read_receipts"];

/// The checkpoint's name for the digest of the feed views' inputs.
const FEED_INPUTS: &str = "feed_inputs";

/// Block cache of a replay's temporary view store.
const VIEW_CACHE_REPLAY: u64 = 16 << 20;

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
}

/// An order-independent fingerprint of a multiset: the count of entries and the wrapping sum of
/// `diff * hash(entry)`. Applying the same diffs in any order gives the same digest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub entries: i64,
    pub hash: u64,
}

impl Digest {
    /// The digest of two views taken together.
    pub fn combine(self, other: Digest) -> Digest {
        Digest {
            entries: self.entries + other.entries,
            hash: self.hash.wrapping_add(other.hash),
        }
    }

    /// The entries it counts (none below zero).
    pub fn count(&self) -> usize {
        usize::try_from(self.entries).unwrap_or(0)
    }

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

/// The hash map of the views' in-memory indexes: keyed by ids and seqs that girok makes (not
/// by client input), so a fast non-cryptographic hash is safe, and every read does several
/// lookups.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// One output update of a keyed view: `((key, value), time, diff)`.
pub type Update<K, V> = ((K, V), Seq, isize);

/// `(entity seq, latest edit seq)` for every edited entity: edits arrive as `(entity seq,
/// edit seq)`, one per edit ever made (and retracted, if the feeder drops them).
pub fn latest<'s>(
    edits: differential_dataflow::VecCollection<'s, Seq, (Seq, Seq)>,
) -> differential_dataflow::VecCollection<'s, Seq, (Seq, Seq)> {
    edits.reduce(|_entity, input, output| {
        if let Some((edit, _)) = input.last() {
            output.push((**edit, 1));
        }
    })
}

/// Adds `diff` to the count of `key`, dropping it at zero; the count before. Counts (not
/// sets) let diffs apply in any order: a retraction may arrive before its insertion within a
/// batch.
pub(crate) fn add<K: Ord>(map: &mut BTreeMap<K, isize>, key: K, diff: isize) -> isize {
    match map.entry(key) {
        Entry::Occupied(mut entry) => {
            let before = *entry.get();
            *entry.get_mut() += diff;
            if *entry.get() == 0 {
                entry.remove();
            }
            before
        }
        Entry::Vacant(entry) => {
            if diff != 0 {
                entry.insert(diff);
            }
            0
        }
    }
}

/// A materialised `(key, value)` collection: per key, its values in order, with a digest.
pub(crate) struct CountedIndex<K, V> {
    map: RwLock<FastMap<K, Values<V>>>,
    digest: Mutex<Digest>,
}

/// One key's values with their counts, and how many are present (count above zero), kept as
/// updates apply so that counting is O(1) (a popular post's comments).
struct Values<V> {
    counts: counts::Counts<V>,
    present: usize,
}

impl<V> Default for Values<V> {
    fn default() -> Self {
        Self {
            counts: counts::Counts::default(),
            present: 0,
        }
    }
}

impl<V: Ord + Copy> Values<V> {
    /// Fills an empty key with the updates of its values, sorted by value: one pass that
    /// builds the values in bulk, instead of a search and an insert per value.
    fn fill(&mut self, sorted: impl Iterator<Item = (V, isize)>) {
        let mut net: Vec<(V, isize)> = Vec::new();
        for (value, diff) in sorted {
            match net.last_mut() {
                Some((last, count)) if *last == value => *count += diff,
                _ => net.push((value, diff)),
            }
        }
        net.retain(|(_, count)| *count != 0);
        self.present = net.iter().filter(|(_, count)| *count > 0).count();
        self.counts = counts::Counts::from_sorted(net);
    }

    fn add(&mut self, value: V, diff: isize) {
        let before = self.counts.add(value, diff);
        let after = before + diff;
        match (before > 0, after > 0) {
            (false, true) => self.present += 1,
            (true, false) => self.present -= 1,
            _ => {}
        }
    }
}

impl<K, V> Default for CountedIndex<K, V> {
    fn default() -> Self {
        Self {
            map: RwLock::new(FastMap::default()),
            digest: Mutex::new(Digest::default()),
        }
    }
}

/// From this many updates on, a batch is sorted before it is applied and applied key by key
/// (an empty key's values built in one pass): a start that restores the feed views hands them
/// tens of millions of entries, and their larger batches cost less in order (the feed-heavy
/// restore went from 15.1 to 13.2 s, medians of three); small live batches go as they come.
const SORTED_BATCH: usize = 4096;

impl<K: Ord + Hash + Eq + Copy, V: Ord + Hash + Copy> CountedIndex<K, V> {
    pub fn apply(&self, updates: &[Update<K, V>]) {
        if updates.len() >= SORTED_BATCH {
            self.apply_all(updates.iter().copied());
        } else {
            self.apply_in_order(updates.iter().copied());
        }
    }

    /// [`CountedIndex::apply`] of updates made on the way (no batch of their own).
    pub fn apply_all(&self, updates: impl IntoIterator<Item = Update<K, V>>) {
        let mut updates: Vec<Update<K, V>> = updates.into_iter().collect();
        if updates.len() < SORTED_BATCH {
            return self.apply_in_order(updates);
        }
        updates.sort_unstable_by_key(|(data, _, _)| *data);
        let mut map = self.map.write();
        let mut digest = self.digest.lock();
        for run in updates.chunk_by(|((a, _), _, _), ((b, _), _, _)| a == b) {
            let key = run[0].0.0;
            let values = map.entry(key).or_default();
            if values.counts.is_empty() {
                values.fill(run.iter().map(|((_, value), _, diff)| (*value, *diff)));
            } else {
                for ((_, value), _, diff) in run {
                    values.add(*value, *diff);
                }
            }
            if values.counts.is_empty() {
                map.remove(&key);
            }
            for ((_, value), _, diff) in run {
                digest.apply(&(&key, value), *diff);
            }
        }
    }

    /// Applies updates one by one, as they come (small batches).
    fn apply_in_order(&self, updates: impl IntoIterator<Item = Update<K, V>>) {
        let mut map = self.map.write();
        let mut digest = self.digest.lock();
        for ((key, value), _time, diff) in updates {
            let values = map.entry(key).or_default();
            values.add(value, diff);
            if values.counts.is_empty() {
                map.remove(&key);
            }
            digest.apply(&(&key, &value), diff);
        }
    }

    /// The values of `key` present (positive count), in order.
    pub fn values(&self, key: &K) -> Vec<V> {
        self.map.read().get(key).map_or_else(Vec::new, |values| {
            values
                .counts
                .iter()
                .filter(|(_, count)| **count > 0)
                .map(|(value, _)| *value)
                .collect()
        })
    }

    /// How many values `key` has.
    pub fn count(&self, key: &K) -> usize {
        self.map.read().get(key).map_or(0, |values| values.present)
    }

    /// Up to `limit` values of `key` within `range`, greatest first (`descending`) or least
    /// first, and whether more remain in that direction.
    pub fn page(
        &self,
        key: &K,
        range: impl RangeBounds<V>,
        descending: bool,
        limit: usize,
    ) -> (Vec<V>, bool) {
        let map = self.map.read();
        let Some(values) = map.get(key) else {
            return (Vec::new(), false);
        };
        let present = |(value, count): (&V, &isize)| (*count > 0).then_some(*value);
        let mut iter: Box<dyn Iterator<Item = V>> = if descending {
            Box::new(values.counts.range(range).rev().filter_map(present))
        } else {
            Box::new(values.counts.range(range).filter_map(present))
        };
        let page: Vec<V> = iter.by_ref().take(limit).collect();
        let more = iter.next().is_some();
        (page, more)
    }

    /// The greatest `limit` present values below `before` across `keys` (equal values once),
    /// greatest first, and whether more remain: a merge that walks only as far as the page
    /// needs, under one lock, however many keys (a reader's heavy authors).
    pub fn merged_page_below(&self, keys: &[K], before: V, limit: usize) -> (Vec<V>, bool) {
        let map = self.map.read();
        let mut walks: Vec<_> = keys
            .iter()
            .filter_map(|key| map.get(key))
            .map(|values| {
                values
                    .counts
                    .range(..before)
                    .rev()
                    .filter(|(_, count)| **count > 0)
                    .map(|(value, _)| *value)
            })
            .collect();
        let mut heads: std::collections::BinaryHeap<(V, usize)> = walks
            .iter_mut()
            .enumerate()
            .filter_map(|(walk, values)| values.next().map(|value| (value, walk)))
            .collect();
        let mut page: Vec<V> = Vec::with_capacity(limit);
        while let Some((value, walk)) = heads.pop() {
            if page.last() != Some(&value) {
                if page.len() == limit {
                    return (page, true);
                }
                page.push(value);
            }
            if let Some(next) = walks[walk].next() {
                heads.push((next, walk));
            }
        }
        (page, false)
    }

    /// Every `(key, value)` present.
    pub fn entries(&self) -> Vec<(K, V)> {
        let map = self.map.read();
        map.iter()
            .flat_map(|(key, values)| {
                values
                    .counts
                    .iter()
                    .filter(|(_, count)| **count > 0)
                    .map(move |(value, _)| (*key, *value))
            })
            .collect()
    }

    /// Whether `value` is present under `key` (one lookup; a one-value range would walk
    /// down the tree to both of its ends).
    pub fn contains(&self, key: &K, value: &V) -> bool {
        self.map
            .read()
            .get(key)
            .is_some_and(|values| values.counts.get(value) > 0)
    }

    /// The greatest present value of `key` within `range`.
    pub fn last_in_range(&self, key: &K, range: impl RangeBounds<V>) -> Option<V> {
        self.map.read().get(key).and_then(|values| {
            values
                .counts
                .range(range)
                .rev()
                .find(|(_, count)| **count > 0)
                .map(|(value, _)| *value)
        })
    }

    pub fn digest(&self) -> Digest {
        *self.digest.lock()
    }
}

/// Declares [`Views`], one field per view store, and [`build`], which builds every view over
/// the inputs, from one list: a new view is its file (its function, its store and the store's
/// [`inputs::View`] impl) and one line in the list below.
macro_rules! views {
    ($($(#[$doc:meta])* $field:ident: $store:ty,)*) => {
        /// Every view's store, shared by the dataflow workers (writers) and readers.
        pub struct Views {
            /// The highest seq every view reflects: one dataflow, one frontier, one watermark.
            pub watermark: Watermark,
            $($(#[$doc])* pub $field: $store,)*
            undecodable: AtomicU64,
            /// The feed views' inputs as rows of the view store (the feeder records them).
            pub(crate) feed_inputs: feed_inputs::FeedInputRows,
            /// Where views with large state keep their rows.
            disk: Arc<ViewStore>,
            /// The rows and checkpoint as far as written.
            progress: Mutex<DiskProgress>,
            disk_metrics: DiskMetrics,
        }

        impl Views {
            /// Empty views over `disk`.
            pub fn open(disk: Arc<ViewStore>) -> Views {
                Views {
                    watermark: Watermark::default(),
                    $($field: <$store as inputs::View>::open(&disk),)*
                    undecodable: AtomicU64::new(0),
                    feed_inputs: Default::default(),
                    disk,
                    progress: Mutex::default(),
                    disk_metrics: DiskMetrics::default(),
                }
            }

            /// `(name, digest)` per view, in the list's order.
            fn digests(&self) -> Vec<(&'static str, Digest)> {
                let mut digests = Vec::new();
                $(digests.extend(inputs::View::digests(&self.$field));)*
                digests
            }
        }

        /// Builds every view over the inputs and materializes it into its store.
        pub(crate) fn build(
            inputs: &inputs::Collections<'_>,
            sinks: &inputs::Sinks<'_>,
        ) {
            $(<$store as inputs::View>::build(inputs, sinks);)*
        }
    };
}

views! {
    /// Each room's live messages and latest edits.
    room_history: room_history::RoomHistoryStore,
    /// Each user's rooms.
    memberships: rooms::MembershipStore,
    /// How far each member has read each room.
    receipts: rooms::ReceiptStore,
    /// Timelines, post stats, the follow graph and notifications.
    feed: FeedStore,
}

/// How far the view store's rows are written.
#[derive(Default)]
struct DiskProgress {
    /// Every row that reads take from the view store (room history, and the feed views kept
    /// there) is there up to this seq (readers see it).
    written: Seq,
    /// The seq of the latest checkpoint written (on disk once its memtable is flushed).
    checkpoint: Seq,
    /// A batch whose write failed, tried again before anything else.
    unwritten: Option<Unwritten>,
}

/// A batch of rows and what it changes once written.
struct Unwritten {
    writes: Vec<ViewWrite>,
    committed: room_history::HistoryCommitted,
    /// Readers whose rows of whom they follow the batch changes.
    followees_changed: Vec<girok_schemas::UserId>,
    through: Seq,
    /// The checkpoint it carries (a sealing batch).
    checkpoint: Option<Seq>,
}

/// The view store's gauges.
#[derive(Default)]
struct DiskMetrics {
    resumed: Gauge,
    checkpoint: Gauge,
    bytes: Gauge,
}

/// The checkpoint a start resumed from: the seq the loaded chat views and the stored feed
/// inputs reflect (0: nothing was loaded, every view is built from the log).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resumed {
    pub seq: Seq,
}

impl Views {
    /// Views with nothing in them, over a temporary view store (replay, tests).
    pub fn temporary() -> girok_storage::Result<Views> {
        Ok(Views::open(Arc::new(ViewStore::temporary(
            VIEW_CACHE_REPLAY,
        )?)))
    }

    /// Views over `disk` with the chat views loaded as of the checkpoint, and the feed views'
    /// inputs checked, if it is one this build can use and the log reaches it (`head`);
    /// otherwise the store is emptied and the views are built from the log. Called before the
    /// dataflow starts (worker 0 feeds the feed inputs loaded here).
    pub fn resume(disk: Arc<ViewStore>, head: Seq) -> girok_storage::Result<(Views, Resumed)> {
        let checkpoint = disk
            .get(ViewTable::Checkpoint, persisted::VIEWS_GROUP)?
            .and_then(|bytes| persisted::Checkpoint::decode(&bytes));
        let usable = checkpoint.filter(|c| c.format == persisted::VIEWS_FORMAT && c.seq <= head);
        let Some(checkpoint) = usable else {
            tracing::info!("views: no usable checkpoint; building them from the log");
            disk.clear()?;
            return Ok((Views::open(disk), Resumed::default()));
        };
        let views = Views::open(disk.clone());
        let digest = |name: &str| checkpoint.digests.get(name).copied().unwrap_or_default();
        let started = Instant::now();
        views.room_history.load(digest("room_history"))?;
        let feed_disagreeing = views.feed.restore(checkpoint.seq, digest)?;
        views.memberships.load()?;
        views.receipts.load()?;
        let loaded = [
            ("memberships", views.memberships.digest()),
            ("read_receipts", views.receipts.digest()),
        ];
        let disagreeing = loaded
            .iter()
            .find(|(name, d)| *d != digest(name))
            .map(|(name, _)| *name)
            .or(feed_disagreeing);
        let disagreeing = match disagreeing {
            None if !views.feed_inputs.load(&disk, digest(FEED_INPUTS))? => Some(FEED_INPUTS),
            other => other,
        };
        if let Some(name) = disagreeing {
            // The rows do not add up to what the checkpoint recorded: build the views from the
            // log rather than serve them.
            tracing::error!(
                view = name,
                "views: rows disagree with their checkpoint; rebuilding"
            );
            disk.clear()?;
            return Ok((Views::open(disk), Resumed::default()));
        }
        {
            let mut progress = views.progress.lock();
            progress.written = checkpoint.seq;
            progress.checkpoint = checkpoint.seq;
        }
        views.disk_metrics.resumed.set(checkpoint.seq as i64);
        views.disk_metrics.checkpoint.set(checkpoint.seq as i64);
        tracing::info!(
            seq = checkpoint.seq,
            load_ms = started.elapsed().as_millis(),
            "views resumed from their checkpoint"
        );
        let resumed = Resumed {
            seq: checkpoint.seq,
        };
        Ok((views, resumed))
    }

    /// Writes the rows gathered since the last write, as of `through`. Call only when every
    /// event up to `through` is through the dataflow and none after it was fed (the rows are
    /// then exactly those up to `through`). The rows pages read (history, notifications,
    /// followers, following) are written at once; the rest (memberships, receipts, counts,
    /// latest edits, served from memory; the feed views' inputs, read only at start) and the
    /// checkpoint only in a batch that seals
    /// the store's memtable: when it is due, or with `seal` (the last round at shutdown). What
    /// is on disk is always a checkpoint and all it covers.
    pub(crate) fn persist(&self, through: Seq, seal: bool) -> girok_storage::Result<()> {
        let mut progress = self.progress.lock();
        if let Some(unwritten) = progress.unwritten.take() {
            if let Err(error) = self
                .disk
                .write(&unwritten.writes, unwritten.checkpoint.is_some())
            {
                progress.unwritten = Some(unwritten);
                return Err(error);
            }
            self.written(&mut progress, unwritten);
        }
        if through <= progress.written && !(seal && through > progress.checkpoint) {
            return Ok(());
        }
        let seal = through > progress.checkpoint && (seal || self.disk.seal_due());
        let mut writes = Vec::new();
        let committed = self.room_history.take_writes(&mut writes, seal);
        let followees_changed = self.feed.take_writes(&mut writes, seal);
        let checkpoint = seal.then(|| {
            self.memberships.take_writes(&mut writes);
            self.receipts.take_writes(&mut writes);
            self.feed_inputs.take_writes(&mut writes);
            writes.push(self.checkpoint_row(through));
            through
        });
        let batch = Unwritten {
            writes,
            committed,
            followees_changed,
            through,
            checkpoint,
        };
        if batch.writes.is_empty() {
            // Nothing changed: the rows already are those up to `through`.
            progress.written = through;
            return Ok(());
        }
        if let Err(error) = self.disk.write(&batch.writes, seal) {
            progress.unwritten = Some(batch);
            return Err(error);
        }
        self.written(&mut progress, batch);
        Ok(())
    }

    /// The checkpoint at `through`: the seq, the rows' format, the chat views' digests and
    /// the feed inputs' digest.
    fn checkpoint_row(&self, through: Seq) -> ViewWrite {
        let digests = self
            .digests()
            .into_iter()
            .filter(|(name, _)| CHAT_VIEWS.contains(name))
            .chain(self.feed.stored_digests())
            .chain([(FEED_INPUTS, self.feed_inputs.digest())])
            .map(|(name, digest)| (name.to_string(), digest))
            .collect();
        let checkpoint = persisted::Checkpoint {
            seq: through,
            format: persisted::VIEWS_FORMAT,
            digests,
        };
        ViewWrite::Put(
            ViewTable::Checkpoint,
            persisted::VIEWS_GROUP.to_vec(),
            checkpoint.encode(),
        )
    }

    /// Records a batch as written.
    fn written(&self, progress: &mut DiskProgress, batch: Unwritten) {
        self.room_history.committed(batch.committed);
        self.feed.committed(&batch.followees_changed);
        progress.written = batch.through;
        if let Some(seq) = batch.checkpoint {
            progress.checkpoint = seq;
            self.disk_metrics.checkpoint.set(seq as i64);
        }
    }

    /// Flushes the view store's sealed memtables to its table files (at shutdown, once the
    /// dataflow stopped after sealing its last round), so that the next start finds the latest
    /// checkpoint on disk.
    pub(crate) fn close(&self) {
        if let Err(error) = self.disk.flush() {
            tracing::warn!(%error, "cannot flush the view store; the next start replays more of the log");
        }
    }

    /// Registers the view store's gauges.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let m = &self.disk_metrics;
        registry.register(
            "girok_views_resumed_seq",
            "Seq of the views' checkpoint this start resumed from (0: built from the log)",
            m.resumed.clone(),
        );
        registry.register(
            "girok_views_checkpoint_seq",
            "Seq of the views' latest checkpoint in the view store",
            m.checkpoint.clone(),
        );
        registry.register(
            "girok_view_store_bytes",
            "Bytes the view store takes on disk",
            m.bytes.clone(),
        );
    }

    /// Brings the gauges read at scrape time up to date.
    pub fn refresh_metrics(&self) {
        if let Ok(bytes) = self.disk.disk_bytes() {
            self.disk_metrics
                .bytes
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }

    /// Entries each view holds in memory, `(view, entries)`: the chat views' in-memory part
    /// (room history's newest messages and latest edits; memberships and read markers whole)
    /// and the feed views' indexes.
    pub fn held(&self) -> Vec<(&'static str, usize)> {
        let mut held = vec![
            ("room_history", self.room_history.held()),
            ("memberships", self.memberships.digest().count()),
            ("read_receipts", self.receipts.digest().count()),
        ];
        held.extend(self.feed.held());
        held
    }

    /// The view store's block cache and memtable.
    pub fn disk_memory(&self) -> girok_storage::StoreMemory {
        self.disk.memory()
    }

    /// Every event up to this seq has its rows in the view store (the watermark may not pass it).
    pub(crate) fn persisted(&self) -> Seq {
        self.progress.lock().written
    }

    /// One summary per view.
    pub fn summaries(&self) -> Vec<ViewSummary> {
        let watermark = self.watermark.get();
        self.digests()
            .into_iter()
            .map(|(name, digest)| ViewSummary {
                name,
                watermark,
                digest,
            })
            .collect()
    }

    /// Log entries the dataflow had to skip because they did not decode.
    pub fn undecodable(&self) -> u64 {
        self.undecodable.load(Ordering::Relaxed)
    }

    pub(crate) fn note_undecodable(&self) {
        self.undecodable.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_batch_applied_sorted_equals_the_same_updates_applied_one_by_one() {
        // Keys with values inserted, retracted, inserted twice, retracted before inserted,
        // some of them already present before the batch.
        let mut updates: Vec<Update<u16, u32>> = Vec::new();
        for i in 0..(3 * SORTED_BATCH as u32) {
            let key = (i.wrapping_mul(2_654_435_761) % 97) as u16;
            let value = i % 500;
            let diff = match i % 7 {
                0 => -1,
                1 => 2,
                _ => 1,
            };
            updates.push(((key, value), 0, diff));
        }
        let before: Vec<Update<u16, u32>> = (0..50)
            .map(|i| (((i % 5) as u16, i as u32), 0, 1))
            .collect();
        let (bulk, single) = (CountedIndex::default(), CountedIndex::default());
        bulk.apply(&before);
        single.apply(&before);
        bulk.apply(&updates);
        for update in &updates {
            single.apply(std::slice::from_ref(update));
        }
        assert_eq!(bulk.digest(), single.digest());
        let mut entries = (bulk.entries(), single.entries());
        entries.0.sort_unstable();
        entries.1.sort_unstable();
        assert_eq!(entries.0, entries.1);
        for key in 0..97 {
            assert_eq!(bulk.count(&key), single.count(&key), "key {key}");
            assert_eq!(bulk.values(&key), single.values(&key));
        }
        // Retracting everything empties both the same way.
        let retract: Vec<Update<u16, u32>> = updates
            .iter()
            .chain(&before)
            .map(|&(data, time, diff)| (data, time, -diff))
            .collect();
        bulk.apply(&retract);
        assert!(bulk.entries().is_empty());
        assert_eq!(bulk.digest(), Digest::default());
    }

    #[test]
    fn merged_pages_walk_keys_together_once_per_value_and_counts_stay_exact() {
        let index: CountedIndex<u8, u64> = CountedIndex::default();
        let updates: Vec<Update<u8, u64>> = [(1, 1), (1, 3), (1, 5), (2, 2), (2, 3), (2, 6)]
            .into_iter()
            .map(|(key, value)| ((key, value), 0, 1))
            .collect();
        index.apply(&updates);
        assert_eq!(
            index.merged_page_below(&[1, 2], 6, 3),
            (vec![5, 3, 2], true)
        );
        assert_eq!(
            index.merged_page_below(&[1, 2], 6, 10),
            (vec![5, 3, 2, 1], false)
        );
        assert_eq!(index.merged_page_below(&[9], 6, 10), (vec![], false));
        // A retraction before its insertion (diffs in any order) counts only once present.
        index.apply(&[((1, 7), 0, -1)]);
        assert_eq!(index.count(&1), 3);
        index.apply(&[((1, 7), 0, 1), ((1, 7), 0, 1)]);
        assert_eq!(index.count(&1), 4);
        index.apply(&[((1, 1), 0, -1)]);
        assert_eq!(index.count(&1), 3);
        assert_eq!(index.values(&1), vec![3, 5, 7]);
        // Present only with a positive count.
        assert!(index.contains(&1, &3) && index.contains(&2, &6));
        assert!(!index.contains(&1, &1) && !index.contains(&1, &2) && !index.contains(&9, &3));
        index.apply(&[((2, 8), 0, -1)]);
        assert!(!index.contains(&2, &8));
    }
}
