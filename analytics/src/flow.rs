//! The rollup dataflow on the pipeline's one timely worker, stepped chunk by chunk: events in,
//! the rollup rows they cause (per rollup, in seq order) and the checkpoint's row changes out;
//! or, at start, a checkpoint's facts in at its seq, with their output dropped.

use crate::rollups::{Rollup, RollupInputs, RollupKey};
use crate::rows::RollupRow;
use crate::state::{Fact, StateChanges, Tracker};
use girok_schemas::{Event, Seq};
use std::cell::RefCell;
use std::rc::Rc;
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;

/// Rows per rollup, in [`Rollup::ALL`] order.
pub(crate) type RollupRows = [Vec<RollupRow>; Rollup::ALL.len()];

/// A checkpoint to restore: its facts, its seq, and that event's commit time.
pub(crate) struct Restored {
    pub facts: Vec<(Fact, u32)>,
    pub seq: Seq,
    pub time_ms: i64,
}

/// The dataflow, its inputs, and the tracker of the state a checkpoint keeps.
pub(crate) struct RollupFlow<'w> {
    worker: &'w mut Worker,
    inputs: RollupInputs,
    tracker: Tracker,
    captured: Rc<RefCell<Vec<(RollupKey, Seq, isize)>>>,
    probe: ProbeHandle<Seq>,
}

impl<'w> RollupFlow<'w> {
    pub(crate) fn new(worker: &'w mut Worker) -> Self {
        let mut inputs = RollupInputs::default();
        let captured: Rc<RefCell<Vec<(RollupKey, Seq, isize)>>> = Rc::default();
        let probe = ProbeHandle::new();
        {
            let captured = captured.clone();
            let probe = probe.clone();
            worker.dataflow::<Seq, _, _>(|scope| {
                inputs
                    .build(scope)
                    .inspect_batch(move |_, updates| {
                        captured.borrow_mut().extend_from_slice(updates)
                    })
                    .probe_with(&probe);
            });
        }
        Self {
            worker,
            inputs,
            tracker: Tracker::default(),
            captured,
            probe,
        }
    }

    /// Feeds a checkpoint's facts at its seq; what they add up to is in ClickHouse already, so
    /// their output is dropped. The next events fed start at the seq after it.
    pub(crate) fn restore(&mut self, checkpoint: Restored) {
        self.tracker
            .resume_day(crate::rollups::day(checkpoint.time_ms));
        for fact in checkpoint.facts {
            self.tracker.restore(&mut self.inputs, fact, checkpoint.seq);
        }
        self.step_to(checkpoint.seq + 1);
        self.captured.borrow_mut().clear();
    }

    /// Feeds `events` (the log's next ones; `next` is the seq after the last) and steps past
    /// them; returns the rollup rows they cause and the checkpoint's row changes.
    pub(crate) fn feed(&mut self, events: &[Event], next: Seq) -> (RollupRows, StateChanges) {
        for event in events {
            self.inputs.feed(event, &mut self.tracker);
        }
        self.step_to(next);
        let mut rows = RollupRows::default();
        for ((rollup, bucket, key), seq, diff) in self.captured.borrow_mut().drain(..) {
            // Active users only count up: a -1 is a closed day leaving the dataflow.
            if rollup == Rollup::ActiveUsersDaily && diff < 0 {
                continue;
            }
            rows[rollup as usize].push(RollupRow {
                bucket,
                key,
                n: diff as i64,
                seq,
            });
        }
        for rows in &mut rows {
            rows.sort_by_key(|row| row.seq);
        }
        (rows, self.tracker.take_changes())
    }

    fn step_to(&mut self, next: Seq) {
        self.inputs.advance_to(next);
        while self.probe.less_than(&next) {
            self.worker.step();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use girok_schemas::{EventId, Payload, RoomId, UserId};
    use std::collections::BTreeMap;

    /// A log of posts, likes, unlikes, comments, deletions and messages by a few users over
    /// three days, every event valid for the state before it (a small deterministic generator).
    fn log() -> Vec<Event> {
        let users: Vec<UserId> = (1..=4u8)
            .map(|i| UserId::from_slice(&[i; 16]).unwrap())
            .collect();
        let room = RoomId::from_slice(&[9; 16]).unwrap();
        let day = 86_400_000i64;
        let start = 20_000 * day - 30 * 60_000;
        let mut random = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            (random % n as u64) as usize
        };
        let mut live_posts: Vec<Seq> = Vec::new();
        let mut likes: Vec<(Seq, UserId, Seq)> = Vec::new();
        let mut comments: Vec<(Seq, Seq)> = Vec::new();
        let mut events = Vec::new();
        for seq in 1..=900u64 {
            let actor = users[next(users.len())];
            let id = |seq: Seq| EventId::from_slice(&(seq as u128).to_be_bytes()).unwrap();
            let payload = match (next(8), live_posts.is_empty()) {
                (0 | 1, _) | (_, true) => {
                    live_posts.push(seq);
                    Payload::PostCreated {
                        content: String::new(),
                        media_ids: Vec::new(),
                        mentions: Vec::new(),
                    }
                }
                (2, false) => {
                    let post = live_posts[next(live_posts.len())];
                    if likes.iter().any(|&(p, u, _)| p == post && u == actor) {
                        message(room)
                    } else {
                        likes.push((post, actor, seq));
                        Payload::PostLiked {
                            post: id(post),
                            post_seq: post,
                            post_author: actor,
                        }
                    }
                }
                (3, false) if !likes.is_empty() => {
                    let (post, liker, like) = likes.swap_remove(next(likes.len()));
                    unlike(post, liker, like, id(post))
                }
                (4, false) => {
                    let post = live_posts[next(live_posts.len())];
                    comments.push((post, seq));
                    Payload::CommentAdded {
                        post: id(post),
                        post_seq: post,
                        post_author: actor,
                        content: String::new(),
                        mentions: Vec::new(),
                    }
                }
                (5, false) if !comments.is_empty() => {
                    let (post, comment) = comments.swap_remove(next(comments.len()));
                    Payload::CommentDeleted {
                        comment: id(comment),
                        comment_seq: comment,
                        post: id(post),
                        post_seq: post,
                        post_author: actor,
                    }
                }
                (6, false) => {
                    let post = live_posts.swap_remove(next(live_posts.len()));
                    likes.retain(|&(p, _, _)| p != post);
                    comments.retain(|&(p, _)| p != post);
                    Payload::PostDeleted {
                        post: id(post),
                        post_seq: post,
                    }
                }
                _ => message(room),
            };
            events.push(Event {
                seq,
                // Five minutes apart: 900 events span three days.
                commit_time_ms: start + seq as i64 * 5 * 60_000,
                id: id(seq),
                actor: Some(actor),
                payload,
            });
        }
        events
    }

    fn message(room: RoomId) -> Payload {
        Payload::MessageSent {
            room,
            body: String::new(),
            client_id: None,
            reply_to: None,
            attachments: Vec::new(),
        }
    }

    fn unlike(post: Seq, liker: UserId, like: Seq, id: EventId) -> Payload {
        Payload::PostUnliked {
            post: id,
            post_seq: post,
            post_author: liker,
            like_seq: like,
        }
    }

    type Row = (Seq, usize, u32, String, i64);

    /// Runs `events` through a flow (restored from `facts` at `at` first, if given), in chunks
    /// of 7; returns every rollup row and the state changes after each chunk, by chunk end.
    fn run(events: &[Event], restore: Option<Restored>) -> (Vec<Row>, Vec<(Seq, StateChanges)>) {
        let events = events.to_vec();
        timely::execute_directly(move |worker| {
            let mut flow = RollupFlow::new(worker);
            if let Some(restored) = restore {
                flow.restore(restored);
            }
            let (mut rows, mut changes) = (Vec::new(), Vec::new());
            for chunk in events.chunks(7) {
                let last = chunk[chunk.len() - 1].seq;
                let (out, state) = flow.feed(chunk, last + 1);
                for (rollup, out) in out.into_iter().enumerate() {
                    rows.extend(
                        out.into_iter()
                            .map(|r| (r.seq, rollup, r.bucket, r.key, r.n)),
                    );
                }
                changes.push((last, state));
            }
            rows.sort();
            (rows, changes)
        })
    }

    #[test]
    fn a_flow_restored_from_a_checkpoint_ships_what_a_replay_from_seq_1_ships_after_it() {
        let events = log();
        let (full, changes) = run(&events, None);
        // Every user is counted once per day they were active; no -1 is shipped.
        let active: Vec<_> = full
            .iter()
            .filter(|r| r.1 == Rollup::ActiveUsersDaily as usize)
            .collect();
        assert!(active.iter().all(|r| r.4 == 1));
        let days: std::collections::BTreeSet<_> =
            active.iter().map(|r| (r.2, r.3.clone())).collect();
        assert_eq!(days.len(), active.len());
        assert!(
            days.iter()
                .map(|d| d.0)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                >= 3
        );

        for checkpoint in [1usize, 20, 64, 100, 127] {
            // The rows a checkpoint after chunk `checkpoint` holds.
            let mut rows: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
            let mut at = 0;
            for (last, state) in changes.iter().take(checkpoint) {
                let changed = state
                    .clone()
                    .rows(|prefix| {
                        Ok::<_, ()>(
                            rows.keys()
                                .filter(|key| key.starts_with(prefix))
                                .cloned()
                                .collect(),
                        )
                    })
                    .unwrap();
                rows.extend(changed);
                at = *last;
            }
            let facts: Vec<(Fact, u32)> = rows
                .iter()
                .filter_map(|(key, value)| Fact::decode(key, value.as_ref()?))
                .collect();
            let rest: Vec<Event> = events.iter().filter(|e| e.seq > at).cloned().collect();
            let at_time_ms = events[at as usize - 1].commit_time_ms;
            let restored = Restored {
                facts,
                seq: at,
                time_ms: at_time_ms,
            };
            let (resumed, _) = run(&rest, Some(restored));
            let replayed: Vec<Row> = full.iter().filter(|r| r.0 > at).cloned().collect();
            let first_difference = resumed.iter().zip(&replayed).find(|(a, b)| a != b);
            assert_eq!(first_difference, None, "restored at seq {at}");
            assert_eq!(resumed.len(), replayed.len(), "restored at seq {at}");
        }
    }
}
