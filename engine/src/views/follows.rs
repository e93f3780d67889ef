//! The follow graph, both ways: who follows a user, and whom a user follows, each with the seq
//! of the follow (pages are ordered by it).

use differential_dataflow::VecCollection;
use girok_schemas::{Seq, UserId};

/// The graph.
pub struct FollowGraph<'s> {
    /// `(followee, (follow seq, follower))`.
    pub followers: VecCollection<'s, Seq, (UserId, (Seq, UserId))>,
    /// `(follower, (follow seq, followee))`.
    pub following: VecCollection<'s, Seq, (UserId, (Seq, UserId))>,
}

/// The graph over `follows`, `(follower, followee, follow seq)` per current follow.
pub fn follow_graph<'s>(follows: VecCollection<'s, Seq, (UserId, UserId, Seq)>) -> FollowGraph<'s> {
    FollowGraph {
        followers: follows
            .clone()
            .map(|(follower, followee, seq)| (followee, (seq, follower))),
        following: follows.map(|(follower, followee, seq)| (follower, (seq, followee))),
    }
}
