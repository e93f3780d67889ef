//! The audit rollups the analytics sink ships to ClickHouse: events per type per hour, daily
//! active users (counted by authenticated actions), messages per room per day, posts, likes and
//! comments per day, login successes and failures per hour, and random matching's matches per
//! hour and the waits of the matched tickets per hour (a count per wait in milliseconds, from
//! which ClickHouse's view takes the median).
//!
//! The output is a collection of `(rollup, bucket, key)` whose diffs are the changes of the
//! counts: a deleted message, an unlike, a deleted comment or post retract what they counted
//! (a deleted post takes its likes and comments with it), so the sink ships signed diffs and
//! ClickHouse sums them. Unlike the views the engine serves, each event is fed at its own seq
//! (not its chunk's), so the diffs at time `t` are exactly the effect of event `t`: the same in
//! every run, which is what lets the sink resume after the last seq ClickHouse holds without
//! losing or repeating a diff.
//!
//! Active users are counted by a `distinct` over today's actions only: when a day closes, its
//! actions are retracted and the -1s that makes are not shipped (a user stays counted on the
//! days they were active), so the dataflow holds one day of actions, not every day's.

use crate::state::{Fact, Tracker};
use differential_dataflow::VecCollection;
use differential_dataflow::input::InputSession;
use girok_schemas::clickhouse::ROLLUPS;
use girok_schemas::{Event, Payload, Seq, UserId};
use serde::{Deserialize, Serialize};

/// Which rollup a row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rollup {
    EventsPerTypeHourly,
    ActiveUsersDaily,
    MessagesPerRoomDaily,
    FeedDaily,
    LoginsHourly,
    MatchesHourly,
    MatchWaitsHourly,
}

impl Rollup {
    pub const ALL: [Rollup; 7] = [
        Rollup::EventsPerTypeHourly,
        Rollup::ActiveUsersDaily,
        Rollup::MessagesPerRoomDaily,
        Rollup::FeedDaily,
        Rollup::LoginsHourly,
        Rollup::MatchesHourly,
        Rollup::MatchWaitsHourly,
    ];

    /// Its name in ClickHouse (`<name>_diffs`, `<name>_state`, and the view `<name>`), from
    /// the one list the migrations are checked against.
    pub fn table(self) -> &'static str {
        ROLLUPS[self as usize]
    }
}

/// One rollup cell: which rollup, the start of its hour or day (seconds since the epoch, UTC),
/// and its key (an event type, a user, a room, `post`/`like`/`comment`, `success`/`failure`).
pub type RollupKey = (Rollup, u32, String);

fn bucket(time_ms: i64, seconds: i64) -> u32 {
    let secs = time_ms.max(0) / 1000;
    (secs - secs % seconds).clamp(0, u32::MAX as i64) as u32
}

fn hour(time_ms: i64) -> u32 {
    bucket(time_ms, 3600)
}

pub(crate) fn day(time_ms: i64) -> u32 {
    bucket(time_ms, 86_400)
}

/// The rollups' input sessions; [`RollupInputs::feed`] turns one event into their updates.
pub struct RollupInputs {
    /// Cells counted directly from events (+1, or -1 for a deleted message).
    counted: InputSession<Seq, RollupKey, isize>,
    /// `(day, user)` at a user's first authenticated action of the day.
    actions: InputSession<Seq, (u32, UserId), isize>,
    /// `(post seq, day)` of every post ever created, `(like seq, day)` of every like,
    /// `(comment seq, day)` of every comment: never retracted.
    post_days: InputSession<Seq, (Seq, u32), isize>,
    like_days: InputSession<Seq, (Seq, u32), isize>,
    comment_days: InputSession<Seq, (Seq, u32), isize>,
    /// Live posts (create +1, delete -1), and `(post seq, like or comment seq)` per current
    /// like and live comment.
    live_posts: InputSession<Seq, Seq, isize>,
    live_likes: InputSession<Seq, (Seq, Seq), isize>,
    live_comments: InputSession<Seq, (Seq, Seq), isize>,
}

impl Default for RollupInputs {
    fn default() -> Self {
        Self {
            counted: InputSession::new(),
            actions: InputSession::new(),
            post_days: InputSession::new(),
            like_days: InputSession::new(),
            comment_days: InputSession::new(),
            live_posts: InputSession::new(),
            live_likes: InputSession::new(),
            live_comments: InputSession::new(),
        }
    }
}

impl RollupInputs {
    /// Builds the dataflow in `scope`; returns the rollup cells whose diffs are the count
    /// changes.
    pub fn build<'s>(
        &mut self,
        scope: timely::dataflow::Scope<'s, Seq>,
    ) -> VecCollection<'s, Seq, RollupKey> {
        let counted = self.counted.to_collection(scope);
        let actions = self.actions.to_collection(scope);
        let post_days = self.post_days.to_collection(scope);
        let like_days = self.like_days.to_collection(scope);
        let comment_days = self.comment_days.to_collection(scope);
        let live_posts = self.live_posts.to_collection(scope);
        let live_likes = self.live_likes.to_collection(scope);
        let live_comments = self.live_comments.to_collection(scope);
        rollups(
            counted,
            actions,
            (post_days, like_days, comment_days),
            (live_posts, live_likes, live_comments),
        )
    }

    /// Feeds one event at its own seq; `tracker` follows the state a checkpoint keeps.
    pub(crate) fn feed(&mut self, event: &Event, tracker: &mut Tracker) {
        let seq = event.seq;
        let t = event.commit_time_ms;
        if let Some((closed, users)) = tracker.day(day(t)) {
            // A closed day's actions leave the dataflow, so that it holds today's only: no
            // later event counts towards that day. The -1s this makes are dropped (`pipeline.rs`).
            for user in users {
                self.actions.update_at((closed, user), seq, -1);
            }
        }
        let mut count = |rollup: Rollup, bucket: u32, key: &str, diff: isize| {
            self.counted
                .update_at((rollup, bucket, key.to_owned()), seq, diff)
        };
        count(Rollup::EventsPerTypeHourly, hour(t), event.type_name(), 1);
        match &event.payload {
            Payload::LoggedIn { .. } => count(Rollup::LoginsHourly, hour(t), "success", 1),
            Payload::LoginFailed { .. } => count(Rollup::LoginsHourly, hour(t), "failure", 1),
            Payload::Matched {
                wait_a_ms,
                wait_b_ms,
                ..
            } => {
                count(Rollup::MatchesHourly, hour(t), "matches", 1);
                for wait in [wait_a_ms, wait_b_ms] {
                    let wait = (*wait).max(0).to_string();
                    count(Rollup::MatchWaitsHourly, hour(t), &wait, 1);
                }
            }
            Payload::MessageSent { room, .. } => {
                count(Rollup::MessagesPerRoomDaily, day(t), &room.to_string(), 1)
            }
            Payload::MessageDeleted {
                room,
                message_time_ms,
                ..
            } => count(
                Rollup::MessagesPerRoomDaily,
                day(*message_time_ms),
                &room.to_string(),
                -1,
            ),
            Payload::PostCreated { .. } => {
                self.post_days.update_at((seq, day(t)), seq, 1);
                self.live_posts.update_at(seq, seq, 1);
                tracker.made(Fact::Post { post: seq }, day(t));
            }
            Payload::PostDeleted { post_seq, .. } => {
                self.live_posts.update_at(*post_seq, seq, -1);
                tracker.gone(Fact::Post { post: *post_seq });
            }
            Payload::PostLiked { post_seq, .. } => {
                self.like_days.update_at((seq, day(t)), seq, 1);
                self.live_likes.update_at((*post_seq, seq), seq, 1);
                let like = Fact::Like {
                    post: *post_seq,
                    item: seq,
                };
                tracker.made(like, day(t));
            }
            Payload::PostUnliked {
                post_seq, like_seq, ..
            } => {
                self.live_likes.update_at((*post_seq, *like_seq), seq, -1);
                tracker.gone(Fact::Like {
                    post: *post_seq,
                    item: *like_seq,
                });
            }
            Payload::CommentAdded { post_seq, .. } => {
                self.comment_days.update_at((seq, day(t)), seq, 1);
                self.live_comments.update_at((*post_seq, seq), seq, 1);
                let comment = Fact::Comment {
                    post: *post_seq,
                    item: seq,
                };
                tracker.made(comment, day(t));
            }
            Payload::CommentDeleted {
                post_seq,
                comment_seq,
                ..
            } => {
                self.live_comments
                    .update_at((*post_seq, *comment_seq), seq, -1);
                tracker.gone(Fact::Comment {
                    post: *post_seq,
                    item: *comment_seq,
                });
            }
            _ => {}
        }
        // Once per user and day, so that a closed day's retraction takes each away whole.
        if let Some(actor) = event.actor
            && let Some(day) = tracker.action(actor)
        {
            self.actions.update_at((day, actor), seq, 1);
        }
    }

    /// Feeds a fact of a checkpoint's state at time `at` (the checkpoint's seq), as the events
    /// that made it fed it.
    pub(crate) fn restore(&mut self, fact: Fact, day: u32, at: Seq) {
        match fact {
            Fact::Post { post } => {
                self.post_days.update_at((post, day), at, 1);
                self.live_posts.update_at(post, at, 1);
            }
            Fact::Like { post, item } => {
                self.like_days.update_at((item, day), at, 1);
                self.live_likes.update_at((post, item), at, 1);
            }
            Fact::Comment { post, item } => {
                self.comment_days.update_at((item, day), at, 1);
                self.live_comments.update_at((post, item), at, 1);
            }
            Fact::Action { day, user } => self.actions.update_at((day, user), at, 1),
        }
    }

    /// Everything before `next` has been fed.
    pub fn advance_to(&mut self, next: Seq) {
        girok_engine::advance_inputs!(self, next;
            counted, actions, post_days, like_days, comment_days, live_posts, live_likes,
            live_comments);
    }
}

type Days<'s> = VecCollection<'s, Seq, (Seq, u32)>;
type Live<'s> = (
    VecCollection<'s, Seq, Seq>,
    VecCollection<'s, Seq, (Seq, Seq)>,
    VecCollection<'s, Seq, (Seq, Seq)>,
);

/// The view: directly counted cells, daily active users (`distinct` per day and user, so a
/// user counts once however much they do), and per day the live posts, the current likes and
/// the live comments of live posts, each on the day it was made.
pub fn rollups<'s>(
    counted: VecCollection<'s, Seq, RollupKey>,
    actions: VecCollection<'s, Seq, (u32, UserId)>,
    (post_days, like_days, comment_days): (Days<'s>, Days<'s>, Days<'s>),
    (live_posts, live_likes, live_comments): Live<'s>,
) -> VecCollection<'s, Seq, RollupKey> {
    let active = actions
        .distinct()
        .map(|(day, user)| (Rollup::ActiveUsersDaily, day, user.to_string()));
    let posts = post_days
        .semijoin(live_posts.clone())
        .map(|(_, day)| (Rollup::FeedDaily, day, "post".to_owned()));
    let on_live_posts =
        |items: VecCollection<'s, Seq, (Seq, Seq)>, days: Days<'s>, kind: &'static str| {
            items
                .map(|(post, item)| (item, post))
                .join(days)
                .map(|(_item, (post, day))| (post, day))
                .semijoin(live_posts.clone())
                .map(move |(_, day)| (Rollup::FeedDaily, day, kind.to_owned()))
        };
    let likes = on_live_posts(live_likes, like_days, "like");
    let comments = on_live_posts(live_comments, comment_days, "comment");
    counted
        .concat(active)
        .concat(posts)
        .concat(likes)
        .concat(comments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rollup_is_named_by_the_list_of_tables_in_its_order() {
        let names: Vec<_> = Rollup::ALL.iter().map(|r| r.table()).collect();
        assert_eq!(names, ROLLUPS);
        assert_eq!(Rollup::FeedDaily.table(), "feed_daily");
    }

    #[test]
    fn buckets_start_at_the_hour_and_the_day() {
        let t = 1_763_800_000_123; // 2025-11-22T08:26:40.123Z
        assert_eq!(hour(t), 1_763_798_400);
        assert_eq!(day(t), 1_763_769_600);
        assert_eq!(day(-5), 0);
    }
}
