//! The follow graph, both ways: who follows a user, ordered by the seq of the follow (pages
//! are), and whom a user follows, ordered by followee (a home page merges those authors, and
//! "does A follow B" is one lookup; a page of them by recency sorts one user's follows).

use differential_dataflow::VecCollection;
use girok_schemas::{Seq, UserId};

/// The graph.
pub struct FollowGraph<'s> {
    /// `(followee, (follow seq, follower))`.
    pub followers: VecCollection<'s, Seq, (UserId, (Seq, UserId))>,
    /// `(follower, (followee, follow seq))`.
    pub following: VecCollection<'s, Seq, (UserId, (UserId, Seq))>,
}

/// The graph over `follows`, `(follower, followee, follow seq)` per current follow.
pub fn follow_graph<'s>(follows: VecCollection<'s, Seq, (UserId, UserId, Seq)>) -> FollowGraph<'s> {
    FollowGraph {
        followers: follows
            .clone()
            .map(|(follower, followee, seq)| (followee, (seq, follower))),
        following: follows.map(|(follower, followee, seq)| (follower, (followee, seq))),
    }
}
