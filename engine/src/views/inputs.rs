//! What every view is built from, and how its output reaches its store: the input
//! collections, one per kind of fact in the log (the dataflow runtime feeds them), the
//! [`View`] trait every view's store implements, and [`materialize`], which applies a view's
//! output diffs to its store as each batch completes.

use super::{Digest, Views};
use differential_dataflow::VecCollection;
use girok_schemas::{RoomId, Seq, UserId};
use std::sync::Arc;
use timely::dataflow::ProbeHandle;

/// A message as the views know it: `(seq, commit time in ms)`.
pub type MessageRef = (Seq, i64);

/// A version of a post or comment and the users it names: `(version seq, users)`.
pub type NamedIn = (Seq, Vec<UserId>);

/// The views' inputs, each already current (the feeder retracts what changes).
pub(crate) struct Collections<'s> {
    /// `(room, (seq, time))` per live message.
    pub messages: VecCollection<'s, Seq, (RoomId, MessageRef)>,
    /// `(message seq, edit seq)` per edit of a live message.
    pub edits: VecCollection<'s, Seq, (Seq, Seq)>,
    /// `(room, user, (joined seq, time))` per current membership.
    pub members: VecCollection<'s, Seq, (RoomId, UserId, MessageRef)>,
    /// `(room, user, read up to)` per reader's current marker.
    pub reads: VecCollection<'s, Seq, (RoomId, UserId, Seq)>,
    /// `(author, post seq)` per live post.
    pub posts: VecCollection<'s, Seq, (UserId, Seq)>,
    /// `(post seq, edit seq)` per edit ever made.
    pub post_edits: VecCollection<'s, Seq, (Seq, Seq)>,
    /// `(post seq, (liker, like seq, post author))` per current like.
    pub likes: VecCollection<'s, Seq, (Seq, (UserId, Seq, UserId))>,
    /// `(post seq, (comment seq, commenter, post author))` per live comment.
    pub comments: VecCollection<'s, Seq, (Seq, (Seq, UserId, UserId))>,
    /// `(follower, followee, follow seq)` per current follow.
    pub follows: VecCollection<'s, Seq, (UserId, UserId, Seq)>,
    /// `(post or comment seq, (version seq, users it names))` per version that names someone
    /// and per post edit (an edit that names nobody ends the mentions before it).
    pub mentions: VecCollection<'s, Seq, (Seq, NamedIn)>,
    /// `(user, matched seq)` for both users of every random match (never retracted).
    pub matches: VecCollection<'s, Seq, (UserId, Seq)>,
}

/// A view, named by its store: how the dataflow builds it over the inputs and materializes it
/// into the store, and the digests it reports. `views!` (in `views/mod.rs`) lists the stores;
/// a store listed there is built, summarized and reachable from [`Views`].
pub(crate) trait View: Send + Sync + Sized {
    /// An empty store; one that keeps rows in the view store keeps `disk`.
    fn open(disk: &Arc<girok_storage::ViewStore>) -> Self;

    /// Builds the view over `inputs` and materializes its outputs into this store of
    /// `sinks.views`.
    fn build(inputs: &Collections<'_>, sinks: &Sinks<'_>);

    /// `(name, digest)` per view it keeps, as `girok replay` and `/readyz` report them.
    fn digests(&self) -> Vec<(&'static str, Digest)>;
}

/// Where views put their outputs: the stores, and the probe whose frontier is every view's
/// watermark.
pub(crate) struct Sinks<'a> {
    pub probe: &'a ProbeHandle<Seq>,
    pub views: &'a Arc<Views>,
}

/// Applies `collection`'s diffs to a store of `views` (`apply` picks it) as each batch
/// completes, and adds the collection to the probe.
pub(crate) fn materialize<D: differential_dataflow::Data>(
    collection: VecCollection<'_, Seq, D>,
    sinks: &Sinks<'_>,
    apply: fn(&Views, &[(D, Seq, isize)]),
) {
    let views = sinks.views.clone();
    collection
        .inspect_batch(move |_, updates| apply(&views, updates))
        .probe_with(sinks.probe);
}
