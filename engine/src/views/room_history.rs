//! Room histories: for every room, the ordered seqs of its live messages (deleted ones are
//! retracted), its last message with that message's commit time, and for every edited live
//! message the seq of its latest edit. Bodies stay in the log; this view holds keys only.

use super::{Digest, add};
use differential_dataflow::VecCollection;
use girok_schemas::{RoomId, Seq};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};

/// A message as the view knows it: `(seq, commit time in ms)`.
pub type MessageRef = (Seq, i64);

/// The last message is found as a hierarchy of maxima: per room and block of 2^6 seqs, then
/// of 2^12, then of 2^18, then per room. A reduce re-reads every value of the key it updates,
/// so this keeps each of those reads at 64 values or fewer (the top level holds one value per
/// 2^18 seqs), however long a room's history grows.
const LEVEL_SHIFTS: [u32; 3] = [6, 12, 18];

/// The view's outputs: `(room, seq)` per live message, `(room, last message)` per non-empty
/// room, and `(message seq, latest edit seq)` per edited live message.
pub struct RoomHistory<'s> {
    pub history: VecCollection<'s, Seq, (RoomId, Seq)>,
    pub last: VecCollection<'s, Seq, (RoomId, MessageRef)>,
    pub edits: VecCollection<'s, Seq, (Seq, Seq)>,
}

/// The view over `messages`, `(room, message)` for every live message, and `edits`,
/// `(message seq, edit seq)` for every edit ever made.
pub fn room_history<'s>(
    messages: VecCollection<'s, Seq, (RoomId, MessageRef)>,
    edits: VecCollection<'s, Seq, (Seq, Seq)>,
) -> RoomHistory<'s> {
    let live_seqs = messages.clone().map(|(_, (seq, _))| seq);
    let edits = super::latest_versions(edits, live_seqs);
    let history = messages.clone().map(|(room, (seq, _))| (room, seq));
    let mut maxima =
        messages.map(|(room, message)| ((room, message.0 >> LEVEL_SHIFTS[0]), message));
    for shift in LEVEL_SHIFTS.into_iter().skip(1) {
        maxima = maxima
            .reduce(keep_max)
            .map(move |((room, _block), message)| ((room, message.0 >> shift), message));
    }
    let last = maxima
        .reduce(keep_max)
        .map(|((room, _block), message)| (room, message))
        .reduce(keep_max);
    RoomHistory {
        history,
        last,
        edits,
    }
}

/// Reduce logic: the greatest value. Values arrive sorted, so it is the last one.
fn keep_max<K>(_key: &K, input: &[(&MessageRef, isize)], output: &mut Vec<(MessageRef, isize)>) {
    if let Some((message, _)) = input.last() {
        output.push((**message, 1));
    }
}

#[derive(Default)]
struct RoomState {
    /// Seq -> multiplicity; kept as counts so that diffs apply in any order.
    seqs: BTreeMap<Seq, isize>,
    last: BTreeMap<MessageRef, isize>,
}

impl RoomState {
    fn is_empty(&self) -> bool {
        self.seqs.is_empty() && self.last.is_empty()
    }
}

/// The materialized view.
#[derive(Default)]
pub struct RoomHistoryStore {
    rooms: RwLock<HashMap<RoomId, RoomState>>,
    /// Message seq -> latest edit seq (as counts, like the rest).
    edits: RwLock<HashMap<Seq, BTreeMap<Seq, isize>>>,
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

impl RoomHistoryStore {
    pub(crate) fn apply_history(&self, updates: &[((RoomId, Seq), Seq, isize)]) {
        self.apply(updates, 0, |state| &mut state.seqs);
    }

    pub(crate) fn apply_last(&self, updates: &[((RoomId, MessageRef), Seq, isize)]) {
        self.apply(updates, 1, |state| &mut state.last);
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
    }

    /// The seq of the latest edit of a live message, if it was edited.
    pub fn latest_edit(&self, message: Seq) -> Option<Seq> {
        self.edits
            .read()
            .get(&message)
            .and_then(|v| v.keys().next_back().copied())
    }

    /// Applies one output's diffs to the per-room map `field` picks; `tag` keeps the
    /// outputs apart in the digest.
    fn apply<V: Ord + Copy + std::hash::Hash>(
        &self,
        updates: &[((RoomId, V), Seq, isize)],
        tag: u8,
        field: impl Fn(&mut RoomState) -> &mut BTreeMap<V, isize>,
    ) {
        let mut rooms = self.rooms.write();
        let mut digest = self.digest.lock();
        for ((room, value), _time, diff) in updates {
            let state = rooms.entry(*room).or_default();
            add(field(state), *value, *diff);
            if state.is_empty() {
                rooms.remove(room);
            }
            digest.apply(&(tag, room, value), *diff);
        }
    }

    /// Up to `limit` message seqs of `room` at `cursor`, newest first.
    pub fn page(&self, room: RoomId, cursor: Cursor, limit: usize) -> HistoryPage {
        let rooms = self.rooms.read();
        let Some(state) = rooms.get(&room) else {
            return HistoryPage {
                seqs: Vec::new(),
                has_older: false,
                has_newer: false,
            };
        };
        match cursor {
            Cursor::Before(before) => {
                let upper = before.unwrap_or(Seq::MAX);
                let mut older = state.seqs.range(..upper).rev().map(|(seq, _)| *seq);
                let seqs: Vec<Seq> = older.by_ref().take(limit).collect();
                HistoryPage {
                    has_older: older.next().is_some(),
                    has_newer: state.seqs.range(upper..).next().is_some(),
                    seqs,
                }
            }
            Cursor::Since(since) => {
                let lower = since.saturating_add(1);
                let mut newer = state.seqs.range(lower..).map(|(seq, _)| *seq);
                let mut seqs: Vec<Seq> = newer.by_ref().take(limit).collect();
                let has_newer = newer.next().is_some();
                seqs.reverse();
                HistoryPage {
                    has_older: state.seqs.range(..lower).next().is_some(),
                    has_newer,
                    seqs,
                }
            }
        }
    }

    /// How many live messages of `room` have a seq above `seq`, counting up to `cap`.
    pub fn count_after(&self, room: RoomId, seq: Seq, cap: usize) -> usize {
        self.rooms.read().get(&room).map_or(0, |state| {
            state.seqs.range(seq.saturating_add(1)..).take(cap).count()
        })
    }

    /// The room's last message, if it has any.
    pub fn last(&self, room: RoomId) -> Option<MessageRef> {
        let rooms = self.rooms.read();
        rooms
            .get(&room)
            .and_then(|s| s.last.keys().next_back().copied())
    }

    /// How many messages the room has.
    pub fn message_count(&self, room: RoomId) -> usize {
        self.rooms.read().get(&room).map_or(0, |s| s.seqs.len())
    }

    /// The whole view, for tests and replay comparisons.
    pub fn snapshot(&self) -> BTreeMap<RoomId, (Vec<Seq>, Option<MessageRef>)> {
        self.rooms
            .read()
            .iter()
            .map(|(room, s)| {
                (
                    *room,
                    (
                        s.seqs.keys().copied().collect(),
                        s.last.keys().next_back().copied(),
                    ),
                )
            })
            .collect()
    }

    /// The order-independent digest of the whole view.
    pub fn digest(&self) -> Digest {
        *self.digest.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::AsCollection;
    use timely::dataflow::operators::capture::Extract;
    use timely::dataflow::operators::{Capture, ToStream};
    use uuid::Uuid;

    fn room(n: u128) -> RoomId {
        RoomId(Uuid::from_u128(n))
    }

    type Captured = (
        Vec<((RoomId, Seq), Seq, isize)>,
        Vec<((RoomId, MessageRef), Seq, isize)>,
    );

    fn flatten<D: Ord>(batches: Vec<(Seq, Vec<D>)>) -> Vec<D> {
        let mut all: Vec<D> = batches.into_iter().flat_map(|(_, d)| d).collect();
        all.sort();
        all
    }

    /// Runs the view over `updates` (data, time, diff) and returns every output update.
    fn run(updates: Vec<((RoomId, MessageRef), Seq, isize)>) -> Captured {
        let (history, last) = timely::example(move |scope| {
            let messages = updates.into_iter().to_stream(scope).as_collection();
            let edits = Vec::<((Seq, Seq), Seq, isize)>::new()
                .into_iter()
                .to_stream(scope)
                .as_collection();
            let view = room_history(messages, edits);
            (view.history.inner.capture(), view.last.inner.capture())
        });
        (flatten(history.extract()), flatten(last.extract()))
    }

    #[test]
    fn history_and_last_message_per_room() {
        let (a, b) = (room(1), room(2));
        let (history, last) = run(vec![
            ((a, (1, 100)), 1, 1),
            ((b, (2, 110)), 2, 1),
            ((a, (3, 120)), 3, 1),
        ]);
        assert_eq!(
            history,
            vec![((a, 1), 1, 1), ((a, 3), 3, 1), ((b, 2), 2, 1)]
        );
        // Room a's last message moves from seq 1 to seq 3 at time 3.
        assert_eq!(
            last,
            vec![
                ((a, (1, 100)), 1, 1),
                ((a, (1, 100)), 3, -1),
                ((a, (3, 120)), 3, 1),
                ((b, (2, 110)), 2, 1),
            ]
        );
    }

    #[test]
    fn retracting_the_last_message_falls_back_across_every_level() {
        let a = room(7);
        let old = 5; // the first block at every level
        let new = 5 + (1 << 20); // another block at every level
        let (history, last) = run(vec![
            ((a, (old, 10)), old, 1),
            ((a, (new, 20)), new, 1),
            ((a, (new, 20)), new + 1, -1),
        ]);
        assert_eq!(
            history,
            vec![
                ((a, old), old, 1),
                ((a, new), new, 1),
                ((a, new), new + 1, -1)
            ]
        );
        assert_eq!(
            last,
            vec![
                ((a, (old, 10)), old, 1),
                ((a, (old, 10)), new, -1),
                ((a, (old, 10)), new + 1, 1),
                ((a, (new, 20)), new, 1),
                ((a, (new, 20)), new + 1, -1),
            ]
        );
    }

    #[test]
    fn store_pages_newest_first_and_digest_ignores_order() {
        let a = room(1);
        let forward = RoomHistoryStore::default();
        let history: Vec<_> = (1..=5).map(|s| ((a, s), s, 1)).collect();
        forward.apply_history(&history);
        forward.apply_last(&[((a, (5, 50)), 5, 1)]);
        let page = forward.page(a, Cursor::Before(None), 2);
        assert_eq!(page.seqs, vec![5, 4]);
        assert!(page.has_older && !page.has_newer);
        let page = forward.page(a, Cursor::Before(Some(2)), 10);
        assert_eq!(page.seqs, vec![1]);
        assert!(!page.has_older && page.has_newer);
        let page = forward.page(a, Cursor::Since(1), 2);
        assert_eq!(
            page.seqs,
            vec![3, 2],
            "the oldest after the cursor, newest first"
        );
        assert!(page.has_older && page.has_newer);
        let page = forward.page(a, Cursor::Since(3), 5);
        assert_eq!(page.seqs, vec![5, 4]);
        assert!(!page.has_newer);
        assert_eq!(forward.count_after(a, 2, 100), 3);
        assert_eq!(forward.count_after(a, 2, 2), 2, "capped");
        assert_eq!(forward.count_after(a, 5, 100), 0);
        assert_eq!(forward.last(a), Some((5, 50)));
        assert_eq!(forward.message_count(a), 5);

        let backward = RoomHistoryStore::default();
        backward.apply_last(&[((a, (5, 50)), 5, 1)]);
        let mut reversed = history.clone();
        reversed.reverse();
        backward.apply_history(&reversed);
        assert_eq!(forward.digest(), backward.digest());
        assert_eq!(forward.snapshot(), backward.snapshot());

        // A retraction before its insertion (as can happen within a batch) nets out.
        let store = RoomHistoryStore::default();
        store.apply_history(&[((a, 9), 9, -1)]);
        store.apply_history(&[((a, 9), 9, 1)]);
        assert!(store.snapshot().is_empty());
        assert_eq!(store.digest(), Digest::default());
    }
}

#[cfg(test)]
mod edit_tests {
    use super::*;
    use differential_dataflow::AsCollection;
    use timely::dataflow::operators::capture::Extract;
    use timely::dataflow::operators::{Capture, ToStream};
    use uuid::Uuid;

    #[test]
    fn the_latest_edit_of_a_live_message_and_none_once_deleted() {
        let room = RoomId(Uuid::from_u128(1));
        let captured = timely::example(move |scope| {
            let messages = vec![
                ((room, (3, 30)), 3, 1),
                ((room, (3, 30)), 9, -1), // deleted at seq 9
            ]
            .into_iter()
            .to_stream(scope)
            .as_collection();
            let edits = vec![((3, 5), 5, 1), ((3, 7), 7, 1)]
                .into_iter()
                .to_stream(scope)
                .as_collection();
            room_history(messages, edits).edits.inner.capture()
        });
        let mut updates: Vec<_> = captured
            .extract()
            .into_iter()
            .flat_map(|(_, d)| d)
            .collect();
        updates.sort();
        assert_eq!(
            updates,
            vec![
                ((3, 5), 5, 1),
                ((3, 5), 7, -1),
                ((3, 7), 7, 1),
                ((3, 7), 9, -1)
            ]
        );
    }
}
