//! Room histories: for every room, its live messages in seq order with their commit times
//! (deleted ones are retracted), and for every edited live message the seq of its latest edit
//! (the feeder keeps it current: an edit retracts the one before, a deletion the last).
//! Bodies stay in the log; this view holds keys only, and keeps them in the view store
//! (`view_room_history`, `room ++ seq -> time`): pages are range scans there. In memory stay
//! what is small and read on every room list — each room's message count and last message —
//! and the latest edits, which are as many as edited messages.

use super::inputs::{Collections, MessageRef, Sinks, View, materialize};
use super::persisted::{PendingRows, key2, single_value_rows, u64_at};
use super::{Digest, FastMap, add};
use differential_dataflow::VecCollection;
use girok_schemas::{RoomId, Seq};
use girok_storage::{ViewStore, ViewTable, ViewWrite};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// The view's outputs: `(room, message)` per live message and `(message seq, latest edit
/// seq)` per edited live message.
pub struct RoomHistory<'s> {
    pub history: VecCollection<'s, Seq, (RoomId, MessageRef)>,
    pub edits: VecCollection<'s, Seq, (Seq, Seq)>,
}

/// The view over `messages`, `(room, message)` for every live message, and `edits`,
/// `(message seq, latest edit seq)` for every edited live message (both already current).
pub fn room_history<'s>(
    messages: VecCollection<'s, Seq, (RoomId, MessageRef)>,
    edits: VecCollection<'s, Seq, (Seq, Seq)>,
) -> RoomHistory<'s> {
    RoomHistory {
        history: messages,
        edits,
    }
}

impl View for RoomHistoryStore {
    fn open(disk: &Arc<ViewStore>) -> Self {
        RoomHistoryStore {
            disk: disk.clone(),
            rooms: RwLock::default(),
            edits: RwLock::default(),
            pending: PendingRows::default(),
            pending_edits: PendingRows::default(),
            counts_changed: Mutex::default(),
            digest: Mutex::default(),
        }
    }

    fn build(inputs: &Collections<'_>, sinks: &Sinks<'_>) {
        let RoomHistory { history, edits } =
            room_history(inputs.messages.clone(), inputs.edits.clone());
        materialize(edits, sinks, |v, u| v.room_history.apply_edits(u));
        materialize(history, sinks, |v, u| v.room_history.apply_history(u));
    }

    fn digests(&self) -> Vec<(&'static str, Digest)> {
        vec![("room_history", self.digest())]
    }
}

/// Live messages of a room kept in memory besides the rows: enough for the newest page at the
/// default size and for most unread counts, at 1 KiB a room.
const RECENT: usize = 64;

/// What is kept in memory per room, read by every room list and by most history pages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct RoomSummary {
    /// Live messages.
    count: u64,
    /// The newest live messages, oldest first: every live message with a seq of at least
    /// `floor` (at most [`RECENT`]).
    recent: VecDeque<MessageRef>,
    floor: Seq,
    /// The last live message (the newest of `recent`, or from the rows when `recent` emptied).
    last: Option<MessageRef>,
}

impl RoomSummary {
    /// Live messages older than `floor`, which only the rows hold.
    fn below_floor(&self) -> u64 {
        self.count.saturating_sub(self.recent.len() as u64)
    }

    /// Index in `recent` of the first message with a seq of at least `seq`.
    fn from(&self, seq: Seq) -> usize {
        self.recent.partition_point(|(s, _)| *s < seq)
    }

    /// The page at `cursor` from `recent` alone, if it holds all of it.
    fn page(&self, cursor: Cursor, limit: usize) -> Option<HistoryPage> {
        match cursor {
            Cursor::Before(before) => {
                let upper = before.unwrap_or(Seq::MAX);
                if upper <= self.floor && self.below_floor() > 0 {
                    return None;
                }
                let end = self.from(upper);
                let start = end.saturating_sub(limit);
                if end - start < limit && self.below_floor() > 0 {
                    return None; // the page continues into the rows
                }
                Some(self.window(start, end))
            }
            Cursor::Since(since) => {
                let lower = since.saturating_add(1);
                if lower < self.floor {
                    return None;
                }
                let start = self.from(lower);
                Some(self.window(start, (start + limit).min(self.recent.len())))
            }
        }
    }

    /// The page of `recent[start..end]`: newest first, with whatever lies below it (in
    /// `recent` or only in the rows) and above it.
    fn window(&self, start: usize, end: usize) -> HistoryPage {
        HistoryPage {
            seqs: self
                .recent
                .range(start..end)
                .rev()
                .map(|(s, _)| *s)
                .collect(),
            has_older: start as u64 + self.below_floor() > 0,
            has_newer: end < self.recent.len(),
        }
    }

    /// Applies a committed round: messages added (all newer than any before) and removed.
    fn apply(&mut self, count: u64, mut added: Vec<MessageRef>, removed: &[Seq]) {
        self.count = count;
        for seq in removed {
            if let Ok(at) = self.recent.binary_search_by_key(seq, |(s, _)| *s) {
                self.recent.remove(at);
            }
        }
        added.sort_unstable();
        for message in added {
            if self.recent.back().is_none_or(|last| *last < message) {
                self.recent.push_back(message);
            }
        }
        while self.recent.len() > RECENT {
            if let Some((seq, _)) = self.recent.pop_front() {
                self.floor = seq + 1;
            }
        }
    }
}

/// The materialized view.
pub struct RoomHistoryStore {
    disk: Arc<ViewStore>,
    rooms: RwLock<FastMap<RoomId, RoomSummary>>,
    /// Message seq -> latest edit seq (as counts, so that diffs apply in any order).
    edits: RwLock<FastMap<Seq, BTreeMap<Seq, isize>>>,
    /// History diffs not yet in the view store.
    pending: PendingRows<(RoomId, MessageRef)>,
    /// Latest-edit diffs not yet in the view store (written with the next seal).
    pending_edits: PendingRows<(Seq, Seq)>,
    /// Rooms whose count changed since the last seal, with their count after the rounds
    /// taken since (written with the next seal).
    counts_changed: Mutex<FastMap<RoomId, u64>>,
    digest: Mutex<Digest>,
}

/// Which page of a history: the newest messages strictly older than a seq (or the newest of
/// all), or the oldest messages strictly newer than a seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    Before(Option<Seq>),
    Since(Seq),
}

/// A page of history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPage {
    /// Newest first.
    pub seqs: Vec<Seq>,
    /// Whether messages older than this page exist.
    pub has_older: bool,
    /// Whether messages newer than this page exist.
    pub has_newer: bool,
}

impl HistoryPage {
    fn empty() -> HistoryPage {
        HistoryPage {
            seqs: Vec::new(),
            has_older: false,
            has_newer: false,
        }
    }
}

/// The whole history: per room, its messages' seqs (oldest first) and its last message.
pub type HistorySnapshot = BTreeMap<RoomId, (Vec<Seq>, Option<MessageRef>)>;

/// What a write of the history's rows changes in memory once it is committed.
#[derive(Default)]
pub(crate) struct HistoryCommitted {
    /// Per room: the count after, the messages added and the seqs removed.
    rooms: Vec<(RoomId, u64, Vec<MessageRef>, Vec<Seq>)>,
}

fn history_key(room: RoomId, seq: Seq) -> Vec<u8> {
    key2(room.0.as_bytes(), &seq.to_be_bytes())
}

fn history_entry(key: &[u8], value: &[u8]) -> Option<MessageRef> {
    Some((u64_at(key, 16)?, u64_at(value, 0)? as i64))
}

impl RoomHistoryStore {
    pub(crate) fn apply_history(&self, updates: &[((RoomId, MessageRef), Seq, isize)]) {
        let mut digest = self.digest.lock();
        for ((room, message), _time, diff) in updates {
            digest.apply(&(0u8, room, message), *diff);
        }
        drop(digest);
        self.pending
            .add(updates.iter().map(|(data, _, diff)| (*data, *diff)));
    }

    pub(crate) fn apply_edits(&self, updates: &[((Seq, Seq), Seq, isize)]) {
        let mut edits = self.edits.write();
        let mut digest = self.digest.lock();
        for ((message, edit), _time, diff) in updates {
            let versions = edits.entry(*message).or_default();
            add(versions, *edit, *diff);
            if versions.is_empty() {
                edits.remove(message);
            }
            digest.apply(&(2u8, message, edit), *diff);
        }
        drop((edits, digest));
        self.pending_edits
            .add(updates.iter().map(|(data, _, diff)| (*data, *diff)));
    }

    /// Moves the history diffs gathered since the last call into `out` as rows; with `seal`
    /// (a batch that will be on disk with its checkpoint), also the latest edits and the count
    /// of every room whose count changed since the last seal. Returns what to change in memory
    /// once the rows are committed.
    pub(crate) fn take_writes(&self, out: &mut Vec<ViewWrite>, seal: bool) -> HistoryCommitted {
        type Change = (i64, Vec<MessageRef>, Vec<Seq>);
        let mut touched: FastMap<RoomId, Change> = FastMap::default();
        for ((room, (seq, time)), diff) in self.pending.take() {
            let key = history_key(room, seq);
            let change = touched.entry(room).or_default();
            change.0 += diff as i64;
            if diff > 0 {
                let time_bytes = time.to_be_bytes().to_vec();
                out.push(ViewWrite::Put(ViewTable::RoomHistory, key, time_bytes));
                change.1.push((seq, time));
            } else {
                out.push(ViewWrite::Delete(ViewTable::RoomHistory, key));
                change.2.push(seq);
            }
        }
        let rooms = self.rooms.read();
        let mut committed = HistoryCommitted::default();
        let mut counts_changed = self.counts_changed.lock();
        for (room, (diff, added, removed)) in touched {
            let before = rooms.get(&room).map_or(0, |r| r.count);
            let count = before.saturating_add_signed(diff);
            counts_changed.insert(room, count);
            committed.rooms.push((room, count, added, removed));
        }
        if seal {
            single_value_rows(
                ViewTable::MessageEdit,
                &self.pending_edits.take(),
                |(message, edit)| (message.to_be_bytes().to_vec(), edit.to_be_bytes().to_vec()),
                out,
            );
            for (room, count) in counts_changed.drain() {
                let key = room.0.as_bytes().to_vec();
                out.push(match count {
                    0 => ViewWrite::Delete(ViewTable::RoomCount, key),
                    _ => ViewWrite::Put(ViewTable::RoomCount, key, count.to_be_bytes().to_vec()),
                });
            }
        }
        committed
    }

    /// Applies what a committed write changed: counts, recent and last messages.
    pub(crate) fn committed(&self, committed: HistoryCommitted) {
        let mut rooms = self.rooms.write();
        for (room, count, added, removed) in committed.rooms {
            if count == 0 {
                rooms.remove(&room);
                continue;
            }
            let summary = rooms.entry(room).or_default();
            summary.apply(count, added, &removed);
            summary.last = match summary.recent.back() {
                Some(last) => Some(*last),
                // Every recent message was deleted: the newest row is the last.
                None => self.newest_on_disk(room),
            };
        }
    }

    fn newest_on_disk(&self, room: RoomId) -> Option<MessageRef> {
        match self.rows(room, 0, Seq::MAX, true, 1) {
            Ok(rows) => rows.first().copied(),
            Err(error) => {
                tracing::error!(%room, %error, "cannot read a room's last message");
                None
            }
        }
    }

    /// Loads what is kept in memory from the view store (at start, before the dataflow
    /// runs), with the digest the checkpoint recorded.
    pub(crate) fn load(&self, digest: Digest) -> girok_storage::Result<()> {
        let mut counts = Vec::new();
        self.disk.for_each(ViewTable::RoomCount, |key, value| {
            if let (Ok(room), Some(count)) = (uuid::Uuid::from_slice(key), u64_at(value, 0)) {
                counts.push((RoomId(room), count));
            }
            Ok(())
        })?;
        let mut rooms = FastMap::default();
        for (room, count) in counts {
            let mut recent: VecDeque<MessageRef> = self
                .rows(room, 0, Seq::MAX, true, RECENT)?
                .into_iter()
                .rev()
                .collect();
            let floor = match recent.front() {
                Some((oldest, _)) if count > recent.len() as u64 => *oldest,
                _ => 0,
            };
            let last = recent.back().copied();
            recent.shrink_to_fit();
            rooms.insert(
                room,
                RoomSummary {
                    count,
                    recent,
                    floor,
                    last,
                },
            );
        }
        let mut edits: FastMap<Seq, BTreeMap<Seq, isize>> = FastMap::default();
        self.disk.for_each(ViewTable::MessageEdit, |key, value| {
            if let (Some(message), Some(edit)) = (u64_at(key, 0), u64_at(value, 0)) {
                edits.entry(message).or_default().insert(edit, 1);
            }
            Ok(())
        })?;
        *self.rooms.write() = rooms;
        *self.edits.write() = edits;
        *self.digest.lock() = digest;
        Ok(())
    }

    /// `(message seq, latest edit seq)` per edited live message (the feeder's starting state).
    pub(crate) fn latest_edits(&self) -> Vec<(Seq, Seq)> {
        self.edits
            .read()
            .iter()
            .filter_map(|(message, versions)| Some((*message, *versions.keys().next_back()?)))
            .collect()
    }

    /// Up to `limit` messages of `room` with `from <= seq <= to`, newest first (`newest`) or
    /// oldest first.
    fn rows(
        &self,
        room: RoomId,
        from: Seq,
        to: Seq,
        newest: bool,
        limit: usize,
    ) -> girok_storage::Result<Vec<MessageRef>> {
        let rows = self.disk.range(
            ViewTable::RoomHistory,
            &history_key(room, from),
            &history_key(room, to),
            newest,
            limit,
        )?;
        Ok(rows
            .iter()
            .filter_map(|(key, value)| history_entry(key, value))
            .collect())
    }

    fn any(&self, room: RoomId, from: Seq, to: Seq) -> girok_storage::Result<bool> {
        let (from, to) = (history_key(room, from), history_key(room, to));
        Ok(self
            .disk
            .count_range(ViewTable::RoomHistory, &from, &to, 1)?
            > 0)
    }

    /// The seq of the latest edit of a live message, if it was edited.
    pub fn latest_edit(&self, message: Seq) -> Option<Seq> {
        self.edits
            .read()
            .get(&message)
            .and_then(|v| v.keys().next_back().copied())
    }

    /// Up to `limit` message seqs of `room` at `cursor`, newest first.
    pub fn page(
        &self,
        room: RoomId,
        cursor: Cursor,
        limit: usize,
    ) -> girok_storage::Result<HistoryPage> {
        let from_memory = self
            .rooms
            .read()
            .get(&room)
            .map_or_else(|| Some(HistoryPage::empty()), |s| s.page(cursor, limit));
        match from_memory {
            Some(page) => Ok(page),
            None => self.page_from_rows(room, cursor, limit),
        }
    }

    /// [`RoomHistoryStore::page`] read from the rows alone.
    fn page_from_rows(
        &self,
        room: RoomId,
        cursor: Cursor,
        limit: usize,
    ) -> girok_storage::Result<HistoryPage> {
        let seqs =
            |rows: Vec<MessageRef>| -> Vec<Seq> { rows.into_iter().map(|(s, _)| s).collect() };
        match cursor {
            Cursor::Before(before) => {
                let upper = before.unwrap_or(Seq::MAX);
                let Some(below) = upper.checked_sub(1) else {
                    return Ok(HistoryPage {
                        seqs: Vec::new(),
                        has_older: false,
                        has_newer: self.any(room, 0, Seq::MAX)?,
                    });
                };
                let mut seqs = seqs(self.rows(room, 0, below, true, limit.saturating_add(1))?);
                let has_older = seqs.len() > limit;
                seqs.truncate(limit);
                let has_newer = before.is_some() && self.any(room, upper, Seq::MAX)?;
                Ok(HistoryPage {
                    seqs,
                    has_older,
                    has_newer,
                })
            }
            Cursor::Since(since) => {
                let lower = since.saturating_add(1);
                let mut seqs =
                    seqs(self.rows(room, lower, Seq::MAX, false, limit.saturating_add(1))?);
                let has_newer = seqs.len() > limit;
                seqs.truncate(limit);
                seqs.reverse();
                Ok(HistoryPage {
                    has_older: self.any(room, 0, since)?,
                    has_newer,
                    seqs,
                })
            }
        }
    }

    /// How many live messages of `room` have a seq above `seq`, counting up to `cap`.
    pub fn count_after(&self, room: RoomId, seq: Seq, cap: usize) -> girok_storage::Result<usize> {
        // Unread messages among the recent ones (most, in a room list) cost no scan.
        match self.rooms.read().get(&room) {
            None => return Ok(0),
            Some(summary) if seq.saturating_add(1) >= summary.floor => {
                let start = summary.from(seq.saturating_add(1));
                return Ok((summary.recent.len() - start).min(cap));
            }
            Some(_) => {}
        }
        self.count_from_rows(room, seq, cap)
    }

    /// [`RoomHistoryStore::count_after`] counted over the rows.
    fn count_from_rows(&self, room: RoomId, seq: Seq, cap: usize) -> girok_storage::Result<usize> {
        if seq == Seq::MAX {
            return Ok(0);
        }
        self.disk.count_range(
            ViewTable::RoomHistory,
            &history_key(room, seq + 1),
            &history_key(room, Seq::MAX),
            cap,
        )
    }

    /// The room's last message, if it has any.
    pub fn last(&self, room: RoomId) -> Option<MessageRef> {
        self.rooms.read().get(&room).and_then(|s| s.last)
    }

    /// How many messages the room has.
    pub fn message_count(&self, room: RoomId) -> usize {
        self.rooms
            .read()
            .get(&room)
            .map_or(0, |s| usize::try_from(s.count).unwrap_or(usize::MAX))
    }

    /// The whole view (from the view store, as far as written), for tests and replay
    /// comparisons: per room, its messages' seqs and its last message.
    pub fn snapshot(&self) -> girok_storage::Result<HistorySnapshot> {
        let mut rooms = HistorySnapshot::new();
        self.disk.for_each(ViewTable::RoomHistory, |key, value| {
            if let (Some(room), Some(message)) = (
                RoomId::from_slice(&key[..16.min(key.len())]),
                history_entry(key, value),
            ) {
                rooms.entry(room).or_default().0.push(message.0);
            }
            Ok(())
        })?;
        for (room, (_, last)) in rooms.iter_mut() {
            *last = self.last(*room);
        }
        Ok(rooms)
    }

    /// Entries held in memory: each room's newest messages and each edited message's edits.
    pub(crate) fn held(&self) -> usize {
        let recent: usize = self
            .rooms
            .read()
            .values()
            .map(|room| room.recent.len())
            .sum();
        recent + self.edits.read().values().map(BTreeMap::len).sum::<usize>()
    }

    /// The order-independent digest of the whole view.
    pub fn digest(&self) -> Digest {
        *self.digest.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn room(n: u128) -> RoomId {
        RoomId(Uuid::from_u128(n))
    }

    fn store() -> RoomHistoryStore {
        RoomHistoryStore::open(&Arc::new(ViewStore::temporary(1 << 20).unwrap()))
    }

    /// Writes what was applied to the view store, as the dataflow does after each round.
    fn flush(store: &RoomHistoryStore) {
        let mut writes = Vec::new();
        let committed = store.take_writes(&mut writes, true);
        store.disk.write(&writes, true).unwrap();
        store.committed(committed);
    }

    fn apply(store: &RoomHistoryStore, updates: &[((RoomId, MessageRef), Seq, isize)]) {
        store.apply_history(updates);
        flush(store);
    }

    #[test]
    fn the_last_message_is_the_newest_live_one_and_falls_back_when_it_is_deleted() {
        let (a, b) = (room(1), room(2));
        let store = store();
        apply(&store, &[((a, (1, 100)), 1, 1), ((b, (2, 110)), 2, 1)]);
        apply(&store, &[((a, (3, 120)), 3, 1)]);
        assert_eq!(store.last(a), Some((3, 120)));
        assert_eq!(store.last(b), Some((2, 110)));
        apply(&store, &[((a, (3, 120)), 4, -1)]);
        assert_eq!(
            store.last(a),
            Some((1, 100)),
            "back to the previous live message"
        );
        apply(&store, &[((a, (1, 100)), 5, -1)]);
        assert_eq!(store.last(a), None);
        assert_eq!(store.message_count(a), 0);
        assert_eq!(store.message_count(b), 1);
    }

    #[test]
    fn store_pages_newest_first_and_digest_ignores_order() {
        let a = room(1);
        let forward = store();
        let history: Vec<_> = (1..=5).map(|s| ((a, (s, 10 * s as i64)), s, 1)).collect();
        apply(&forward, &history);
        let page = |cursor, limit| forward.page(a, cursor, limit).unwrap();
        let got = page(Cursor::Before(None), 2);
        assert_eq!(got.seqs, vec![5, 4]);
        assert!(got.has_older && !got.has_newer);
        let got = page(Cursor::Before(Some(2)), 10);
        assert_eq!(got.seqs, vec![1]);
        assert!(!got.has_older && got.has_newer);
        let got = page(Cursor::Before(Some(0)), 10);
        assert!(got.seqs.is_empty() && !got.has_older && got.has_newer);
        let got = page(Cursor::Since(1), 2);
        assert_eq!(
            got.seqs,
            vec![3, 2],
            "the oldest after the cursor, newest first"
        );
        assert!(got.has_older && got.has_newer);
        let got = page(Cursor::Since(3), 5);
        assert_eq!(got.seqs, vec![5, 4]);
        assert!(!got.has_newer);
        assert!(
            forward
                .page(room(9), Cursor::Before(None), 5)
                .unwrap()
                .seqs
                .is_empty()
        );
        assert_eq!(forward.count_after(a, 2, 100).unwrap(), 3);
        assert_eq!(forward.count_after(a, 2, 2).unwrap(), 2, "capped");
        assert_eq!(forward.count_after(a, 5, 100).unwrap(), 0);
        assert_eq!(forward.last(a), Some((5, 50)));
        assert_eq!(forward.message_count(a), 5);

        let backward = store();
        let mut reversed = history.clone();
        reversed.reverse();
        apply(&backward, &reversed);
        assert_eq!(forward.digest(), backward.digest());

        // A retraction before its insertion (as can happen within a batch) nets out.
        let store = store();
        store.apply_history(&[((a, (9, 90)), 9, -1)]);
        store.apply_history(&[((a, (9, 90)), 9, 1)]);
        flush(&store);
        assert_eq!(store.message_count(a), 0);
        assert!(
            store
                .page(a, Cursor::Before(None), 5)
                .unwrap()
                .seqs
                .is_empty()
        );
        assert_eq!(store.digest(), Digest::default());
    }

    #[test]
    fn pages_and_counts_from_the_recent_messages_equal_those_read_from_the_rows() {
        let a = room(1);
        let store = store();
        // More messages than are kept recent, in three rounds, with deletions below and
        // inside the recent window, and an edit-free room of its own.
        let sent: Vec<_> = (1..=150).map(|s| ((a, (s, 10 * s as i64)), s, 1)).collect();
        apply(&store, &sent[..60]);
        apply(&store, &sent[60..]);
        let deleted = [3, 40, 100, 120, 149, 150];
        let deletions: Vec<_> = deleted
            .iter()
            .map(|s| ((a, (*s, 10 * *s as i64)), 200, -1))
            .collect();
        apply(&store, &deletions);
        assert_eq!(store.message_count(a), 144);
        assert_eq!(store.last(a), Some((148, 1480)));
        let mut cursors = vec![Cursor::Before(None)];
        for s in 0..=152 {
            cursors.push(Cursor::Before(Some(s)));
            cursors.push(Cursor::Since(s));
        }
        // As written, and as loaded from the rows at a start.
        let loaded = RoomHistoryStore::open(&store.disk);
        loaded.load(store.digest()).unwrap();
        for cursor in cursors {
            for limit in [1, 5, 20, 64, 100] {
                let rows = store.page_from_rows(a, cursor, limit).unwrap();
                assert_eq!(
                    store.page(a, cursor, limit).unwrap(),
                    rows,
                    "{cursor:?} {limit}"
                );
                assert_eq!(
                    loaded.page(a, cursor, limit).unwrap(),
                    rows,
                    "{cursor:?} {limit}"
                );
            }
        }
        for seq in 0..=152 {
            for cap in [1, 10, 200] {
                let rows = store.count_from_rows(a, seq, cap).unwrap();
                assert_eq!(store.count_after(a, seq, cap).unwrap(), rows, "{seq} {cap}");
                assert_eq!(
                    loaded.count_after(a, seq, cap).unwrap(),
                    rows,
                    "{seq} {cap}"
                );
            }
        }
        // Delete every recent message: the last one comes from the rows.
        let recent: Vec<_> = (1..=148)
            .filter(|s| *s > 80 && !deleted.contains(s))
            .map(|s| ((a, (s, 10 * s as i64)), 300, -1))
            .collect();
        apply(&store, &recent);
        assert_eq!(store.last(a), Some((80, 800)));
        for cursor in [
            Cursor::Before(None),
            Cursor::Before(Some(50)),
            Cursor::Since(70),
        ] {
            assert_eq!(
                store.page(a, cursor, 20).unwrap(),
                store.page_from_rows(a, cursor, 20).unwrap()
            );
        }
    }

    #[test]
    fn a_loaded_store_answers_as_the_one_that_wrote_it() {
        let disk = Arc::new(ViewStore::temporary(1 << 20).unwrap());
        let written = RoomHistoryStore::open(&disk);
        let (a, b) = (room(1), room(2));
        written.apply_history(&[
            ((a, (1, 10)), 1, 1),
            ((a, (2, 20)), 2, 1),
            ((b, (3, 30)), 3, 1),
        ]);
        written.apply_edits(&[((2, 4), 4, 1)]);
        flush(&written);
        written.apply_edits(&[((2, 4), 5, -1), ((2, 5), 5, 1)]);
        written.apply_history(&[((a, (2, 20)), 6, -1)]);
        flush(&written);
        let loaded = RoomHistoryStore::open(&disk);
        loaded.load(written.digest()).unwrap();
        assert_eq!(loaded.last(a), Some((1, 10)));
        assert_eq!(loaded.message_count(a), 1);
        assert_eq!(loaded.last(b), Some((3, 30)));
        assert_eq!(loaded.latest_edit(2), Some(5));
        assert_eq!(loaded.latest_edits(), vec![(2, 5)]);
        assert_eq!(
            loaded.page(a, Cursor::Before(None), 10).unwrap(),
            written.page(a, Cursor::Before(None), 10).unwrap()
        );
    }
}
