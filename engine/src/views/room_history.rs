//! Room histories: for every room, its live messages in seq order with their commit times
//! (deleted ones are retracted), and for every edited live message the seq of its latest edit.
//! A room's last message is the greatest entry of its history, read from the store: no reduce
//! runs per message, so a chat message costs the dataflow one update of one collection (the
//! latest edit is a reduce over edits alone; the feeder retracts a deleted message's edits).
//! Bodies stay in the log; this view holds keys only.

use super::FastMap;
use super::inputs::{Collections, Sinks, View, ViewSettings, materialize};
use super::{Digest, add};
use differential_dataflow::VecCollection;
use girok_schemas::{RoomId, Seq};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;

use super::inputs::MessageRef;

/// The view's outputs: `(room, message)` per live message and `(message seq, latest edit
/// seq)` per edited live message.
pub struct RoomHistory<'s> {
    pub history: VecCollection<'s, Seq, (RoomId, MessageRef)>,
    pub edits: VecCollection<'s, Seq, (Seq, Seq)>,
}

/// The view over `messages`, `(room, message)` for every live message, and `edits`,
/// `(message seq, edit seq)` for every edit of a live message (the feeder retracts them when
/// the message is deleted).
pub fn room_history<'s>(
    messages: VecCollection<'s, Seq, (RoomId, MessageRef)>,
    edits: VecCollection<'s, Seq, (Seq, Seq)>,
) -> RoomHistory<'s> {
    RoomHistory {
        history: messages,
        edits: super::latest(edits),
    }
}

impl View for RoomHistoryStore {
    fn build(inputs: &Collections<'_>, sinks: &Sinks<'_>, _: &ViewSettings) {
        let RoomHistory { history, edits } =
            room_history(inputs.messages.clone(), inputs.edits.clone());
        materialize(edits, sinks, |v, u| v.room_history.apply_edits(u));
        materialize(history, sinks, |v, u| v.room_history.apply_history(u));
    }

    fn digests(&self) -> Vec<(&'static str, Digest)> {
        vec![("room_history", self.digest())]
    }
}

#[derive(Default)]
struct RoomState {
    /// Message -> multiplicity; kept as counts so that diffs apply in any order. Ordered by
    /// seq, so the last entry is the room's last message.
    messages: BTreeMap<MessageRef, isize>,
}

/// The first key at or after `seq` (keys order by seq, then commit time).
fn at(seq: Seq) -> MessageRef {
    (seq, i64::MIN)
}

/// The materialized view.
#[derive(Default)]
pub struct RoomHistoryStore {
    rooms: RwLock<FastMap<RoomId, RoomState>>,
    /// Message seq -> latest edit seq (as counts, like the rest).
    edits: RwLock<FastMap<Seq, BTreeMap<Seq, isize>>>,
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
    pub(crate) fn apply_history(&self, updates: &[((RoomId, MessageRef), Seq, isize)]) {
        let mut rooms = self.rooms.write();
        let mut digest = self.digest.lock();
        for ((room, message), _time, diff) in updates {
            let state = rooms.entry(*room).or_default();
            add(&mut state.messages, *message, *diff);
            if state.messages.is_empty() {
                rooms.remove(room);
            }
            digest.apply(&(0u8, room, message), *diff);
        }
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
                let mut older = state
                    .messages
                    .range(..at(upper))
                    .rev()
                    .map(|((seq, _), _)| *seq);
                let seqs: Vec<Seq> = older.by_ref().take(limit).collect();
                HistoryPage {
                    has_older: older.next().is_some(),
                    has_newer: state.messages.range(at(upper)..).next().is_some(),
                    seqs,
                }
            }
            Cursor::Since(since) => {
                let lower = since.saturating_add(1);
                let mut newer = state.messages.range(at(lower)..).map(|((seq, _), _)| *seq);
                let mut seqs: Vec<Seq> = newer.by_ref().take(limit).collect();
                let has_newer = newer.next().is_some();
                seqs.reverse();
                HistoryPage {
                    has_older: state.messages.range(..at(lower)).next().is_some(),
                    has_newer,
                    seqs,
                }
            }
        }
    }

    /// How many live messages of `room` have a seq above `seq`, counting up to `cap`.
    pub fn count_after(&self, room: RoomId, seq: Seq, cap: usize) -> usize {
        self.rooms.read().get(&room).map_or(0, |state| {
            state
                .messages
                .range(at(seq.saturating_add(1))..)
                .take(cap)
                .count()
        })
    }

    /// The room's last message, if it has any.
    pub fn last(&self, room: RoomId) -> Option<MessageRef> {
        let rooms = self.rooms.read();
        rooms
            .get(&room)
            .and_then(|s| s.messages.keys().next_back().copied())
    }

    /// How many messages the room has.
    pub fn message_count(&self, room: RoomId) -> usize {
        self.rooms.read().get(&room).map_or(0, |s| s.messages.len())
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
                        s.messages.keys().map(|(seq, _)| *seq).collect(),
                        s.messages.keys().next_back().copied(),
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
    use uuid::Uuid;

    fn room(n: u128) -> RoomId {
        RoomId(Uuid::from_u128(n))
    }

    #[test]
    fn the_last_message_is_the_newest_live_one_and_falls_back_when_it_is_deleted() {
        let (a, b) = (room(1), room(2));
        let store = RoomHistoryStore::default();
        store.apply_history(&[((a, (1, 100)), 1, 1), ((b, (2, 110)), 2, 1)]);
        store.apply_history(&[((a, (3, 120)), 3, 1)]);
        assert_eq!(store.last(a), Some((3, 120)));
        assert_eq!(store.last(b), Some((2, 110)));
        store.apply_history(&[((a, (3, 120)), 4, -1)]);
        assert_eq!(
            store.last(a),
            Some((1, 100)),
            "back to the previous live message"
        );
        store.apply_history(&[((a, (1, 100)), 5, -1)]);
        assert_eq!(store.last(a), None);
        assert_eq!(store.message_count(a), 0);
    }

    #[test]
    fn store_pages_newest_first_and_digest_ignores_order() {
        let a = room(1);
        let forward = RoomHistoryStore::default();
        let history: Vec<_> = (1..=5).map(|s| ((a, (s, 10 * s as i64)), s, 1)).collect();
        forward.apply_history(&history);
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
        let mut reversed = history.clone();
        reversed.reverse();
        backward.apply_history(&reversed);
        assert_eq!(forward.digest(), backward.digest());
        assert_eq!(forward.snapshot(), backward.snapshot());

        // A retraction before its insertion (as can happen within a batch) nets out.
        let store = RoomHistoryStore::default();
        store.apply_history(&[((a, (9, 90)), 9, -1)]);
        store.apply_history(&[((a, (9, 90)), 9, 1)]);
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
    fn the_latest_edit_of_a_message_and_none_once_its_edits_are_retracted() {
        let room = RoomId(Uuid::from_u128(1));
        let captured = timely::example(move |scope| {
            let messages = vec![((room, (3, 30)), 3, 1), ((room, (3, 30)), 9, -1)]
                .into_iter()
                .to_stream(scope)
                .as_collection();
            // Edits at seqs 5 and 7; the message's deletion at seq 9 retracts both (the
            // feeder does that).
            let edits = vec![
                ((3, 5), 5, 1),
                ((3, 7), 7, 1),
                ((3, 5), 9, -1),
                ((3, 7), 9, -1),
            ]
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
