//! Profile and home timelines. Timelines are fanned out on write, except for heavy authors:
//! an author with at least `fanout_max` followers is left out of the join of follows with
//! posts, so one of their posts costs one record (in their profile timeline) instead of one
//! per follower; readers merge the profile timelines of the heavy authors they follow into
//! their home page (`FeedStore::home_page`). When an author crosses the threshold the
//! dataflow retracts (or restores) their fanned-out entries once; every other change is
//! incremental: a post reaches its author's followers, a follow backfills the followee's
//! posts, an unfollow or a deleted post retracts them.

use differential_dataflow::VecCollection;
use girok_schemas::{Seq, UserId};

/// The timelines.
pub struct Timelines<'s> {
    /// `(author, post seq)` per live post.
    pub profile: VecCollection<'s, Seq, (UserId, Seq)>,
    /// `(reader, post seq)`: own posts and fanned-out posts of followed authors.
    pub home: VecCollection<'s, Seq, (UserId, Seq)>,
    /// `((), author)` per heavy author.
    pub heavy: VecCollection<'s, Seq, ((), UserId)>,
}

/// The timelines over `posts`, `(author, post seq)` per live post, and `follows`,
/// `(follower, followee, follow seq)` per current follow.
pub fn timelines<'s>(
    posts: VecCollection<'s, Seq, (UserId, Seq)>,
    follows: VecCollection<'s, Seq, (UserId, UserId, Seq)>,
    fanout_max: usize,
) -> Timelines<'s> {
    let fanout_max = fanout_max.max(1) as isize;
    let heavy = follows
        .clone()
        .map(|(_, followee, _)| followee)
        .count()
        .filter(move |(_, followers)| *followers >= fanout_max)
        .map(|(author, _)| author);
    let fanned_out = follows
        .map(|(follower, followee, _)| (followee, follower))
        .antijoin(heavy.clone())
        .join(posts.clone())
        .map(|(_author, (follower, post))| (follower, post));
    Timelines {
        home: posts.clone().concat(fanned_out),
        profile: posts,
        heavy: heavy.map(|author| ((), author)),
    }
}
