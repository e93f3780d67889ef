//! The rollup dataflow's state as rows of the sink's checkpointed store
//! (`girok_engine::SinkState`), so that a start restores the dataflow from them in one round
//! instead of feeding it the whole log. What the rollups need of the past is small: the live
//! posts with their day, the current likes and live comments of live posts with their post and
//! day (a post's deletion takes its likes' and comments' rows with it), and who did something
//! today (commit times never decrease along the log, so no later event counts
//! towards an earlier day). [`Tracker`] turns each fed event into row changes; the shipper
//! commits a batch's changes with the batch's last seq once ClickHouse holds the batch, so the
//! checkpoint on disk never runs ahead of ClickHouse.
//!
//! Restored, the collections hold less than a replay from seq 1 would (no deleted posts or
//! their likes and comments, no unliked likes or deleted comments, no earlier days' actions) but every later event causes the
//! same diffs: what is missing only ever joins with what is gone.

use crate::rollups::RollupInputs;
use girok_schemas::{Seq, UserId};
use std::collections::{BTreeMap, HashSet};

/// The layout of the rows below and the rollups they serve: a checkpoint of another format is
/// dropped and the pipeline starts from seq 1, so that a changed or new rollup is built from
/// the whole log. Any change to the rows, to what the rollup dataflow computes or to how events
/// feed it must raise it. 1: posts, likes, comments and today's actions. 2: a user's
/// actions fed once a day, a deleted post's likes and comments left out of the rows, and
/// the matches' rollups.
const FORMAT: u32 = 2;

/// The checkpoint's format number: [`FORMAT`] and the latest ClickHouse migration (a migration
/// that adds or recreates a rollup table also starts the pipeline from seq 1).
pub(crate) fn format() -> u32 {
    let migration = girok_schemas::clickhouse::MIGRATIONS
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0);
    (FORMAT << 16) | (migration & 0xffff)
}

const POST: u8 = b'P';
const LIKE: u8 = b'L';
const COMMENT: u8 = b'C';
const ACTION: u8 = b'A';

/// One fact of the rollups' state; the row's value is the day it counts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fact {
    /// A live post.
    Post {
        post: Seq,
    },
    /// A current like (`item` is the like's seq), or a live comment (the comment's seq).
    Like {
        post: Seq,
        item: Seq,
    },
    Comment {
        post: Seq,
        item: Seq,
    },
    /// Someone did something on `day` (today at the checkpoint).
    Action {
        day: u32,
        user: UserId,
    },
}

impl Fact {
    fn key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(21);
        match self {
            Fact::Post { post } => {
                key.push(POST);
                key.extend_from_slice(&post.to_be_bytes());
            }
            Fact::Like { post, item } | Fact::Comment { post, item } => {
                key.push(if matches!(self, Fact::Like { .. }) {
                    LIKE
                } else {
                    COMMENT
                });
                key.extend_from_slice(&post.to_be_bytes());
                key.extend_from_slice(&item.to_be_bytes());
            }
            Fact::Action { day, user } => {
                key.push(ACTION);
                key.extend_from_slice(&day.to_be_bytes());
                key.extend_from_slice(user.as_bytes());
            }
        }
        key
    }

    /// The fact a row holds and its day; `None` for a row this layout does not make.
    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Option<(Fact, u32)> {
        let (&kind, rest) = key.split_first()?;
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_be_bytes(rest.get(at..at + 8)?.try_into().ok()?))
        };
        let day = || -> Option<u32> { Some(u32::from_be_bytes(value.try_into().ok()?)) };
        match (kind, rest.len()) {
            (POST, 8) => Some((Fact::Post { post: u64_at(0)? }, day()?)),
            (LIKE, 16) => Some((
                Fact::Like {
                    post: u64_at(0)?,
                    item: u64_at(8)?,
                },
                day()?,
            )),
            (COMMENT, 16) => Some((
                Fact::Comment {
                    post: u64_at(0)?,
                    item: u64_at(8)?,
                },
                day()?,
            )),
            (ACTION, 20) if value.is_empty() => {
                let day = u32::from_be_bytes(rest[..4].try_into().ok()?);
                let user = UserId::from_slice(&rest[4..])?;
                Some((Fact::Action { day, user }, day))
            }
            _ => None,
        }
    }
}

/// A row's key and its new value (`None`: deleted).
pub(crate) type RowChange = (Vec<u8>, Option<Vec<u8>>);

/// Row changes since the last commit: each key's latest value, or `None` once deleted; and
/// the posts deleted, whose likes and comments leave the state too (see [`StateChanges::rows`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct StateChanges {
    rows: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    deleted_posts: Vec<Seq>,
}

impl StateChanges {
    fn put(&mut self, fact: &Fact, day: u32) {
        let value = match fact {
            Fact::Action { .. } => Vec::new(),
            _ => day.to_be_bytes().to_vec(),
        };
        self.rows.insert(fact.key(), Some(value));
    }

    fn delete(&mut self, fact: &Fact) {
        self.rows.insert(fact.key(), None);
    }

    /// Takes in `later` changes (theirs win).
    pub(crate) fn append(&mut self, later: StateChanges) {
        self.rows.extend(later.rows);
        self.deleted_posts.extend(later.deleted_posts);
    }

    /// The rows to write: the changes, and a deletion of every like and comment of a deleted
    /// post, whether written since the last commit or before (`stored(prefix)`: the keys the
    /// store holds under `prefix`). They could only join with a live post, so the state keeps
    /// what a start must restore and no more; no later event names them (a deleted post takes
    /// no like, unlike, comment or comment deletion).
    pub(crate) fn rows<E>(
        mut self,
        mut stored: impl FnMut(&[u8]) -> Result<Vec<Vec<u8>>, E>,
    ) -> Result<Vec<RowChange>, E> {
        for post in std::mem::take(&mut self.deleted_posts) {
            for kind in [LIKE, COMMENT] {
                let mut prefix = vec![kind];
                prefix.extend_from_slice(&post.to_be_bytes());
                let pending: Vec<Vec<u8>> = self
                    .rows
                    .range(prefix.clone()..)
                    .take_while(|(key, _)| key.starts_with(&prefix))
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in pending.into_iter().chain(stored(&prefix)?) {
                    self.rows.insert(key, None);
                }
            }
        }
        Ok(self.rows.into_iter().collect())
    }
}

/// Follows the facts as events are fed, and gathers their row changes.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    changes: StateChanges,
    /// The day of the latest event, and who did something on it.
    today: u32,
    active_today: HashSet<UserId>,
}

impl Tracker {
    /// An event of `day` (never before the previous one's). When a later day begins, the
    /// closed day's actions leave the state; returns that day and who was active on it, for
    /// the dataflow to forget them too.
    pub(crate) fn day(&mut self, day: u32) -> Option<(u32, Vec<UserId>)> {
        if day <= self.today {
            return None;
        }
        let closed = std::mem::replace(&mut self.today, day);
        let users: Vec<UserId> = std::mem::take(&mut self.active_today).into_iter().collect();
        for &user in &users {
            self.changes.delete(&Fact::Action { day: closed, user });
        }
        Some((closed, users))
    }

    /// Someone did something: returns the day it counts on (today, the latest event's) when
    /// it is their first action of the day, for the dataflow to count it once.
    pub(crate) fn action(&mut self, user: UserId) -> Option<u32> {
        let day = self.today;
        self.active_today.insert(user).then(|| {
            self.changes.put(&Fact::Action { day, user }, day);
            day
        })
    }

    /// A fact that counts on `day` (post, like, comment) now holds.
    pub(crate) fn made(&mut self, fact: Fact, day: u32) {
        self.changes.put(&fact, day);
    }

    /// A fact no longer holds. A deleted post's likes and comments go with it.
    pub(crate) fn gone(&mut self, fact: Fact) {
        self.changes.delete(&fact);
        if let Fact::Post { post } = fact {
            self.changes.deleted_posts.push(post);
        }
    }

    pub(crate) fn take_changes(&mut self) -> StateChanges {
        std::mem::take(&mut self.changes)
    }

    /// At a restore: the day of the checkpoint's last event, as a live tracker saw it (the
    /// checkpoint holds no action of a day that began with actor-less events).
    pub(crate) fn resume_day(&mut self, day: u32) {
        self.today = self.today.max(day);
    }

    /// Restores `fact` (read from the store at a checkpoint) into the tracker and, at time
    /// `at`, into the dataflow's inputs.
    pub(crate) fn restore(&mut self, inputs: &mut RollupInputs, (fact, day): (Fact, u32), at: Seq) {
        if let Fact::Action { day, user } = fact {
            // All of one day: the store keeps only the latest day's.
            if day > self.today {
                self.today = day;
                self.active_today.clear();
            }
            self.active_today.insert(user);
        }
        inputs.restore(fact, day, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_store(changes: StateChanges) -> Vec<RowChange> {
        changes.rows(|_| Ok::<_, ()>(Vec::new())).unwrap()
    }

    #[test]
    fn a_deleted_posts_likes_and_comments_leave_the_state_stored_or_pending() {
        let mut tracker = Tracker::default();
        let like = |post, item| Fact::Like { post, item };
        tracker.made(Fact::Post { post: 1 }, 5);
        tracker.made(like(1, 2), 5);
        tracker.made(Fact::Post { post: 10 }, 5);
        tracker.made(like(10, 11), 5);
        let stored = tracker.take_changes();
        let mut later = StateChanges::default();
        tracker.made(like(1, 3), 5);
        tracker.made(Fact::Comment { post: 1, item: 4 }, 5);
        tracker.gone(Fact::Post { post: 1 });
        later.append(tracker.take_changes());
        let on_disk: BTreeMap<_, _> = no_store(stored).into_iter().collect();
        let rows = later
            .rows(|prefix| {
                Ok::<_, ()>(
                    on_disk
                        .keys()
                        .filter(|key| key.starts_with(prefix))
                        .cloned()
                        .collect(),
                )
            })
            .unwrap();
        let deleted: Vec<_> = rows
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for fact in [
            Fact::Post { post: 1 },
            like(1, 2),
            like(1, 3),
            Fact::Comment { post: 1, item: 4 },
        ] {
            assert!(deleted.contains(&fact.key()), "{fact:?}");
        }
        assert_eq!(rows.len(), 4, "post 10 and its like untouched: {rows:?}");
    }

    #[test]
    fn facts_read_back_as_written() {
        let user = UserId::from_slice(&[7; 16]).unwrap();
        let mut changes = StateChanges::default();
        let facts = [
            (Fact::Post { post: 9 }, 86_400),
            (Fact::Like { post: 9, item: 12 }, 86_400),
            (
                Fact::Comment {
                    post: u64::MAX,
                    item: 1,
                },
                0,
            ),
            (Fact::Action { day: 172_800, user }, 172_800),
        ];
        for (fact, day) in facts {
            changes.put(&fact, day);
        }
        let read: Vec<_> = no_store(changes)
            .into_iter()
            .map(|(key, value)| Fact::decode(&key, &value.unwrap()).unwrap())
            .collect();
        for fact in facts {
            assert!(read.contains(&fact), "{fact:?}");
        }
        assert_eq!(read.len(), 4);
        assert_eq!(Fact::decode(b"P1234567", &[0; 4]), None, "short key");
        assert_eq!(Fact::decode(&[b'X'; 9], &[0; 4]), None, "unknown kind");
    }

    #[test]
    fn a_new_day_drops_the_last_days_actions_and_later_changes_win() {
        let (ann, bob) = (
            UserId::from_slice(&[1; 16]).unwrap(),
            UserId::from_slice(&[2; 16]).unwrap(),
        );
        let mut tracker = Tracker::default();
        assert_eq!(tracker.day(10), Some((0, vec![])));
        assert_eq!(tracker.action(ann), Some(10));
        assert_eq!(tracker.action(ann), None, "once a day");
        tracker.made(Fact::Post { post: 1 }, 10);
        let mut first = tracker.take_changes();
        assert_eq!(first.rows.len(), 2);
        assert_eq!(tracker.day(10), None);
        assert_eq!(tracker.day(20), Some((10, vec![ann])));
        assert_eq!(tracker.action(bob), Some(20));
        tracker.gone(Fact::Post { post: 1 });
        first.append(tracker.take_changes());
        let rows = no_store(first);
        let ann_10 = Fact::Action { day: 10, user: ann }.key();
        let bob_20 = Fact::Action { day: 20, user: bob }.key();
        let post = Fact::Post { post: 1 }.key();
        assert!(rows.contains(&(ann_10, None)));
        assert!(rows.contains(&(bob_20, Some(vec![]))));
        assert!(rows.contains(&(post, None)));
        assert_eq!(rows.len(), 3);
    }
}
