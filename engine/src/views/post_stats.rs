//! What a post shows besides its body: its latest edit, who likes it (its like count and a
//! reader's "liked by me"), its comments; all for live posts only. Live posts are arranged
//! once ([`LivePosts`]) and shared by every view that keeps to them.

use differential_dataflow::VecCollection;
use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::trace::implementations::KeySpine;
use girok_schemas::{Seq, UserId};

/// The seqs of live posts, arranged once.
pub type LivePosts<'s> = Arranged<'s, TraceAgent<KeySpine<Seq, Seq, isize>>>;

/// `(post seq, value)` records whose post is live (a semijoin with the shared arrangement).
pub fn on_live_posts<'s, V: differential_dataflow::ExchangeData>(
    records: VecCollection<'s, Seq, (Seq, V)>,
    live: &LivePosts<'s>,
) -> VecCollection<'s, Seq, (Seq, V)> {
    records.join_core(live.clone(), |post, value, ()| Some((*post, value.clone())))
}

/// The post stats.
pub struct PostStats<'s> {
    /// `(post seq, latest edit seq)` per edited live post.
    pub post_edits: VecCollection<'s, Seq, (Seq, Seq)>,
    /// `(post seq, liker)` per like of a live post (a user likes a post once).
    pub likers: VecCollection<'s, Seq, (Seq, UserId)>,
    /// `(post seq, comment seq)` per live comment of a live post.
    pub comments: VecCollection<'s, Seq, (Seq, Seq)>,
}

/// The stats over `post_edits`, `(post seq, edit seq)` per edit ever made, and the likes,
/// `(post seq, (liker, like seq, post author))`, and comments, `(post seq, (comment seq,
/// commenter, post author))`, of live posts.
pub fn post_stats<'s>(
    post_edits: VecCollection<'s, Seq, (Seq, Seq)>,
    live: &LivePosts<'s>,
    live_likes: VecCollection<'s, Seq, (Seq, (UserId, Seq, UserId))>,
    live_comments: VecCollection<'s, Seq, (Seq, (Seq, UserId, UserId))>,
) -> PostStats<'s> {
    PostStats {
        post_edits: on_live_posts(super::latest(post_edits), live),
        likers: live_likes.map(|(post, (liker, _, _))| (post, liker)),
        comments: live_comments.map(|(post, (comment, ..))| (post, comment)),
    }
}
