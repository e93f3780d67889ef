//! The feed views: profile timelines, the follow graph (`follows.rs`), per-post latest edits,
//! likers and comments (`post_stats.rs`), and notifications (`notifications.rs`), all as
//! differential collections of keys (bodies stay in the log); [`feed`] builds them over the
//! feed's inputs, and [`FeedStore`] materializes them for readers and pushes new entries to
//! live subscribers.
//!
//! A home timeline is not a collection of its own: it is exactly the reader's own posts and
//! those of everyone they follow, so a page is a merge of those authors' profile timelines
//! (in memory, under one lock; whom the reader follows from a cache over the view store),
//! walked only as far as the page needs
//! ([`FeedStore::home_page`]). Fanning posts out on write kept a record per post and follower
//! (85 M of them for 1 M posts among 100,000 users following 50 each: most of the process's
//! memory, and most of a start's work to rebuild); the merge costs a lookup per followed author
//! and page instead.

use super::disk_set::DiskSet;
use super::followees::{FolloweeCache, Followees};
use super::follows::{FollowGraph, follow_graph};
use super::inputs::{Collections, Sinks, View, materialize};
pub use super::notifications::NotificationKind;
use super::notifications::{NotificationSources, notifications};
use super::post_stats::{PostStats, on_live_posts, post_stats};
use super::{CountedIndex, Digest, Update};
use crate::channels::Channels;
use differential_dataflow::VecCollection;
use girok_schemas::{Seq, UserId};
use girok_storage::ViewTable;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The outputs, each materialised into [`FeedStore`].
pub struct FeedViews<'s> {
    /// `(author, post seq)` per live post: the profile timelines, and through them the home
    /// timelines.
    pub profile: VecCollection<'s, Seq, (UserId, Seq)>,
    /// `(post seq, latest edit seq)` per edited live post.
    pub post_edits: VecCollection<'s, Seq, (Seq, Seq)>,
    /// `(post seq, liker)` per like of a live post: its like count and a reader's "liked by
    /// me" (a user likes a post once).
    pub likers: VecCollection<'s, Seq, (Seq, UserId)>,
    /// `(post seq, comment seq)` per live comment of a live post.
    pub comments: VecCollection<'s, Seq, (Seq, Seq)>,
    /// `(followee, (follow seq, follower))`.
    pub followers: VecCollection<'s, Seq, (UserId, (Seq, UserId))>,
    /// `(follower, (followee, follow seq))`.
    pub following: VecCollection<'s, Seq, (UserId, (UserId, Seq))>,
    /// `(recipient, (seq, kind))`.
    pub notifications: VecCollection<'s, Seq, (UserId, (Seq, NotificationKind))>,
}

/// The views over `inputs`. Live posts are arranged once, and the likes and comments of live
/// posts computed once, for every view that needs them.
pub(crate) fn feed<'s>(inputs: &Collections<'s>) -> FeedViews<'s> {
    let live = inputs.posts.clone().map(|(_, post)| post).arrange_by_self();
    let live_likes = on_live_posts(inputs.likes.clone(), &live);
    let live_comments = on_live_posts(inputs.comments.clone(), &live);
    let PostStats {
        post_edits,
        likers,
        comments,
    } = post_stats(
        inputs.post_edits.clone(),
        &live,
        live_likes.clone(),
        live_comments.clone(),
    );
    let FollowGraph {
        followers,
        following,
    } = follow_graph(inputs.follows.clone());
    let notifications = notifications(
        NotificationSources {
            live_likes,
            live_comments,
            follows: inputs.follows.clone(),
            mentions: inputs.mentions.clone(),
            matches: inputs.matches.clone(),
        },
        &live,
    );
    FeedViews {
        profile: inputs.posts.clone(),
        post_edits,
        likers,
        comments,
        followers,
        following,
        notifications,
    }
}

impl View for FeedStore {
    fn open(disk: &Arc<girok_storage::ViewStore>) -> Self {
        FeedStore {
            profile: CountedIndex::default(),
            post_edits: CountedIndex::default(),
            likers: CountedIndex::default(),
            liked: CountedIndex::default(),
            comments: CountedIndex::default(),
            followers: DiskSet::counted(disk, ViewTable::Follower, ViewTable::FollowerCount),
            following: DiskSet::counted(disk, ViewTable::Following, ViewTable::FollowingCount),
            followees: FolloweeCache::default(),
            notifications: DiskSet::new(disk, ViewTable::Notification),
            notification_push: Channels::new(PUSH_CAPACITY),
            feed_push: Channels::new(PUSH_CAPACITY),
            live_from: AtomicU64::new(Seq::MAX),
        }
    }

    /// Builds the views over the inputs and materializes them.
    fn build(inputs: &Collections<'_>, sinks: &Sinks<'_>) {
        let views = feed(inputs);
        materialize(views.profile, sinks, |v, u| {
            v.feed.apply_profile(u, v.watermark.get())
        });
        materialize(views.post_edits, sinks, |v, u| v.feed.post_edits.apply(u));
        materialize(views.likers, sinks, |v, u| v.feed.apply_likers(u));
        materialize(views.comments, sinks, |v, u| v.feed.comments.apply(u));
        materialize(views.followers, sinks, |v, u| v.feed.followers.apply(u));
        materialize(views.following, sinks, |v, u| v.feed.following.apply(u));
        materialize(views.notifications, sinks, |v, u| {
            v.feed.apply_notifications(u, v.watermark.get())
        });
    }

    /// The order-independent digests of the feed's views: timelines, post stats, follows,
    /// notifications.
    fn digests(&self) -> Vec<(&'static str, Digest)> {
        vec![
            ("timelines", self.profile.digest()),
            (
                "post_stats",
                self.post_edits
                    .digest()
                    .combine(self.likers.digest())
                    .combine(self.liked.digest())
                    .combine(self.comments.digest()),
            ),
            (
                "follows",
                self.followers.digest().combine(self.following.digest()),
            ),
            ("notifications", self.notifications.digest()),
        ]
    }
}

/// A notification as the view pushes it live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotificationRef {
    pub recipient: UserId,
    pub seq: Seq,
    pub kind: NotificationKind,
}

/// A new post as pushed live to a reader's feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostRef {
    pub author: UserId,
    pub seq: Seq,
}

/// Live updates buffered per subscriber before it lags.
const PUSH_CAPACITY: usize = 256;

/// The materialised feed views, and the live channels fed from their new entries.
pub struct FeedStore {
    pub(crate) profile: CountedIndex<UserId, Seq>,
    pub(crate) post_edits: CountedIndex<Seq, Seq>,
    pub(crate) likers: CountedIndex<Seq, UserId>,
    /// The same likes by who likes: "does the reader like these posts" reads one small set
    /// per page instead of one large one per post (cold memory on a big data set).
    liked: CountedIndex<UserId, Seq>,
    pub(crate) comments: CountedIndex<Seq, Seq>,
    /// In the view store (`view_follower`), counted in memory: a popular author's are many,
    /// and read a page at a time.
    pub(crate) followers: DiskSet<UserId, (Seq, UserId)>,
    /// In the view store (`view_following`), by followee: a home page's authors in order,
    /// counted in memory.
    pub(crate) following: DiskSet<UserId, (UserId, Seq)>,
    /// The followee lists of readers seen lately.
    followees: FolloweeCache,
    /// In the view store (`view_notification`): a user's are read a page at a time.
    pub(crate) notifications: DiskSet<UserId, (Seq, NotificationKind)>,
    pub(crate) notification_push: Channels<UserId, NotificationRef>,
    pub(crate) feed_push: Channels<UserId, PostRef>,
    /// Entries with a seq at or below this are history being rebuilt, never pushed.
    live_from: AtomicU64,
}

impl FeedStore {
    /// From now on, entries newer than `head` (and than the views' watermark) are pushed.
    pub(crate) fn go_live(&self, head: Seq) {
        self.live_from.store(head, Ordering::Release);
    }

    /// Whether an entry with this seq is new: after start, and not yet reflected (a backfill
    /// of older posts into a timeline is not news).
    fn is_new(&self, seq: Seq, watermark: Seq) -> bool {
        seq > self.live_from.load(Ordering::Acquire) && seq > watermark
    }

    pub(crate) fn apply_profile(&self, updates: &[Update<UserId, Seq>], watermark: Seq) {
        self.profile.apply(updates);
        for ((author, post), _, diff) in updates {
            if *diff > 0 && self.is_new(*post, watermark) {
                self.push_post(PostRef {
                    author: *author,
                    seq: *post,
                });
            }
        }
    }

    /// Sends a new post to the live feeds of its author and of its followers who listen: by
    /// walking the smaller of the author's followers and the connected readers, so a push
    /// costs at most the number of connections, however many followers an author has.
    fn push_post(&self, post: PostRef) {
        let listening = self.feed_push.len();
        // Most of the time nobody is connected: then no follower list is read at all.
        if listening == 0 {
            return;
        }
        let readers: Vec<UserId> = if listening < self.followers.count(&post.author) {
            match self.followers_among(post.author, self.feed_push.keys()) {
                Ok(readers) => readers,
                Err(error) => {
                    tracing::error!(%error, "cannot read whom listeners follow; post not pushed");
                    return;
                }
            }
        } else {
            match self.followers.values(&post.author) {
                Ok(followers) => followers
                    .into_iter()
                    .map(|(_, follower)| follower)
                    .collect(),
                Err(error) => {
                    tracing::error!(%error, "cannot read an author's followers; post not pushed");
                    return;
                }
            }
        };
        self.feed_push
            .send(std::iter::once(post.author).chain(readers), &post);
    }

    pub(crate) fn apply_notifications(
        &self,
        updates: &[Update<UserId, (Seq, NotificationKind)>],
        watermark: Seq,
    ) {
        self.notifications.apply(updates);
        for ((recipient, (seq, kind)), _, diff) in updates {
            if *diff > 0 && self.is_new(*seq, watermark) {
                let note = NotificationRef {
                    recipient: *recipient,
                    seq: *seq,
                    kind: *kind,
                };
                self.notification_push.send([*recipient], &note);
            }
        }
    }

    pub(crate) fn apply_likers(&self, updates: &[Update<Seq, UserId>]) {
        self.likers.apply(updates);
        self.liked.apply_all(
            updates
                .iter()
                .map(|&((post, reader), time, diff)| ((reader, post), time, diff)),
        );
    }

    /// Up to `limit` of those `user` follows whose follow is older than `before`, most recent
    /// first, as `(follow seq, followee)`, and whether more remain: the rows are ordered by
    /// followee, so a page sorts the user's follows (one user's, however many they follow).
    pub(crate) fn following_page(
        &self,
        user: UserId,
        before: Seq,
        limit: usize,
    ) -> girok_storage::Result<(Vec<(Seq, UserId)>, bool)> {
        let mut edges: Vec<(Seq, UserId)> = self
            .following
            .values(&user)?
            .into_iter()
            .map(|(followee, seq)| (seq, followee))
            .filter(|(seq, _)| *seq < before)
            .collect();
        edges.sort_unstable_by(|a, b| b.cmp(a));
        let more = edges.len() > limit;
        edges.truncate(limit);
        Ok((edges, more))
    }

    /// Whom `reader` follows (sorted, once each): cached for the readers seen lately.
    fn followees(&self, reader: UserId) -> girok_storage::Result<Followees> {
        self.followees.get(&self.following, reader)
    }

    /// Up to `limit` entries of `reader`'s home timeline below `before`, newest first, and
    /// whether more remain: a merge of the profile timelines of the reader and of everyone
    /// they follow, under one lock, walking each only as far as the page needs.
    pub(crate) fn home_page(
        &self,
        reader: UserId,
        before: Seq,
        limit: usize,
    ) -> girok_storage::Result<(Vec<Seq>, bool)> {
        let followees = self.followees(reader)?;
        let mut authors = Vec::with_capacity(followees.len() + 1);
        authors.extend_from_slice(&followees);
        if let Err(at) = authors.binary_search(&reader) {
            authors.insert(at, reader);
        }
        Ok(self.profile.merged_page_below(&authors, before, limit))
    }

    /// Whether `reader` follows `followee` now.
    pub(crate) fn follows(&self, reader: UserId, followee: UserId) -> girok_storage::Result<bool> {
        Ok(self.followees(reader)?.binary_search(&followee).is_ok())
    }

    /// Those of `users` who follow `followee` now.
    fn followers_among(
        &self,
        followee: UserId,
        users: Vec<UserId>,
    ) -> girok_storage::Result<Vec<UserId>> {
        let mut followers = Vec::new();
        for user in users {
            if self.follows(user, followee)? {
                followers.push(user);
            }
        }
        Ok(followers)
    }

    /// The digests of the views whose rows are in the view store, as the checkpoint records
    /// them.
    pub(crate) fn stored_digests(&self) -> [(&'static str, Digest); 3] {
        [
            ("notifications", self.notifications.digest()),
            ("followers", self.followers.digest()),
            ("following", self.following.digest()),
        ]
    }

    /// Takes the stored views' rows as of the checkpoint at `seq` (`digest` gives what it
    /// recorded by name); the name of one whose counts do not add up to its digest, if any.
    pub(crate) fn restore(
        &self,
        seq: Seq,
        digest: impl Fn(&str) -> Digest,
    ) -> girok_storage::Result<Option<&'static str>> {
        let mut disagreeing = None;
        for (name, agrees) in [
            (
                "notifications",
                self.notifications.restore(seq, digest("notifications"))?,
            ),
            (
                "followers",
                self.followers.restore(seq, digest("followers"))?,
            ),
            (
                "following",
                self.following.restore(seq, digest("following"))?,
            ),
        ] {
            disagreeing = disagreeing.or((!agrees).then_some(name));
        }
        Ok(disagreeing)
    }

    /// Moves the stored views' diffs into `out` as rows (with `seal`, their counts too), and
    /// returns the readers whose followee lists these rows change.
    pub(crate) fn take_writes(
        &self,
        out: &mut Vec<girok_storage::ViewWrite>,
        seal: bool,
    ) -> Vec<UserId> {
        self.notifications.take_writes(out, seal, None);
        self.followers.take_writes(out, seal, None);
        let mut followers = Vec::new();
        self.following.take_writes(out, seal, Some(&mut followers));
        followers.sort_unstable();
        followers.dedup();
        followers
    }

    /// Rows written by [`FeedStore::take_writes`] are committed: these readers' cached lists
    /// of whom they follow are stale.
    pub(crate) fn committed(&self, followees_changed: &[UserId]) {
        self.followees.committed(followees_changed);
    }

    /// Entries each feed view holds in memory: `(view, entries)`. Each index holds its whole
    /// collection, which its digest counts (no walk over its keys under its lock while a
    /// scrape runs).
    pub(crate) fn held(&self) -> [(&'static str, usize); 4] {
        [
            ("timelines", self.profile.digest().count()),
            (
                "post_stats",
                self.post_edits.digest().count()
                    + self.likers.digest().count()
                    + self.liked.digest().count()
                    + self.comments.digest().count(),
            ),
            // In the view store: the followee lists of readers seen lately.
            ("follows", self.followees.len()),
            ("notifications", 0),
        ]
    }

    /// Likes of a live post.
    pub fn like_count(&self, post: Seq) -> usize {
        self.likers.count(&post)
    }

    /// Whether `reader` likes the live post at `post`.
    pub fn likes(&self, reader: UserId, post: Seq) -> bool {
        self.liked.contains(&reader, &post)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn user(n: u128) -> UserId {
        UserId(Uuid::from_u128(n))
    }

    /// Writes the stored views' rows as a round's end would, and marks them committed.
    fn persist(store: &FeedStore, disk: &girok_storage::ViewStore) {
        let mut writes = Vec::new();
        let changed = store.take_writes(&mut writes, true);
        disk.write(&writes, true).unwrap();
        store.committed(&changed);
    }

    #[test]
    fn a_home_page_merges_the_reader_and_everyone_they_follow_now() {
        let disk = Arc::new(girok_storage::ViewStore::temporary(1 << 20).unwrap());
        let store = <FeedStore as View>::open(&disk);
        let (reader, a, b, stranger) = (user(1), user(2), user(3), user(4));
        let posts: Vec<Update<UserId, Seq>> = [(reader, 5), (a, 2), (a, 8), (b, 4), (b, 9)]
            .into_iter()
            .chain([(stranger, 7)])
            .map(|post| (post, post.1, 1))
            .collect();
        store.apply_profile(&posts, 0);
        // The reader follows a, and b (unfollowed and followed again: b once in the merge).
        store.following.apply(&[
            ((reader, (a, 10)), 10, 1),
            ((reader, (b, 11)), 11, 1),
            ((reader, (b, 11)), 12, -1),
            ((reader, (b, 13)), 13, 1),
        ]);
        persist(&store, &disk);
        let page = |before, limit| store.home_page(reader, before, limit).unwrap();
        assert_eq!(
            store.following_page(reader, Seq::MAX, 1).unwrap(),
            (vec![(13, b)], true)
        );
        assert_eq!(
            store.following_page(reader, 13, 5).unwrap(),
            (vec![(10, a)], false)
        );
        assert_eq!(
            store.followers_among(b, vec![stranger, reader]).unwrap(),
            vec![reader]
        );
        assert_eq!(page(Seq::MAX, 3), (vec![9, 8, 5], true));
        assert_eq!(page(5, 10), (vec![4, 2], false));
        // Unfollowing takes an author's posts out of every page once its rows are written
        // (the reader's cached list of whom they follow goes with them).
        store.following.apply(&[((reader, (a, 10)), 14, -1)]);
        assert_eq!(page(Seq::MAX, 10), (vec![9, 8, 5, 4, 2], false));
        persist(&store, &disk);
        assert!(store.followers_among(a, vec![reader]).unwrap().is_empty());
        assert_eq!(page(Seq::MAX, 10), (vec![9, 5, 4], false));
        // Someone who follows nobody sees their own posts.
        assert_eq!(
            store.home_page(stranger, Seq::MAX, 10).unwrap(),
            (vec![7], false)
        );
    }

    #[test]
    fn likes_are_known_by_reader_as_they_apply() {
        let disk = Arc::new(girok_storage::ViewStore::temporary(1 << 20).unwrap());
        let store = <FeedStore as View>::open(&disk);
        let (reader, other) = (user(1), user(2));
        store.apply_likers(&[((7, reader), 7, 1), ((7, other), 8, 1), ((9, other), 9, 1)]);
        assert!(store.likes(reader, 7) && !store.likes(reader, 9) && store.likes(other, 9));
        assert_eq!(store.like_count(7), 2);
        store.apply_likers(&[((7, reader), 10, -1)]);
        assert!(!store.likes(reader, 7));
        assert_eq!(store.like_count(7), 1);
    }
}

/// Exact `(data, time, diff)` tests of the feed views: each input at the seqs the feeder would
/// give them, each output captured and compared whole.
#[cfg(test)]
mod dataflow_tests {
    use super::*;
    use crate::views::inputs::{MessageRef, NamedIn};
    use differential_dataflow::AsCollection;
    use girok_schemas::RoomId;
    use std::sync::mpsc::Receiver;
    use timely::dataflow::operators::capture::{Event, Extract};
    use timely::dataflow::operators::{Capture, ToStream};
    use uuid::Uuid;

    type Captured<D> = Receiver<Event<Seq, Vec<(D, Seq, isize)>>>;

    fn user(n: u128) -> UserId {
        UserId(Uuid::from_u128(n))
    }

    /// Every update of a captured output, sorted.
    fn updates<D: Ord + Clone + 'static>(captured: Captured<D>) -> Updates<D> {
        let mut all: Vec<_> = captured
            .extract()
            .into_iter()
            .flat_map(|(_, updates)| updates)
            .collect();
        all.sort();
        all
    }

    /// Updates of one input: `(data, seq, diff)`.
    type Updates<D> = Vec<(D, Seq, isize)>;

    /// The feed's inputs, as update lists.
    #[derive(Default)]
    struct Given {
        /// The chat inputs (the feed reads none of them; empty here).
        messages: Updates<(RoomId, MessageRef)>,
        edits: Updates<(Seq, Seq)>,
        members: Updates<(RoomId, UserId, MessageRef)>,
        reads: Updates<(RoomId, UserId, Seq)>,
        posts: Updates<(UserId, Seq)>,
        post_edits: Updates<(Seq, Seq)>,
        likes: Updates<(Seq, (UserId, Seq, UserId))>,
        comments: Updates<(Seq, (Seq, UserId, UserId))>,
        follows: Updates<(UserId, UserId, Seq)>,
        mentions: Updates<(Seq, NamedIn)>,
        matches: Updates<(UserId, Seq)>,
    }

    type Outputs = (
        Captured<(UserId, Seq)>,
        Captured<(Seq, Seq)>,
        Captured<(Seq, UserId)>,
        Captured<(Seq, Seq)>,
        Captured<(UserId, (Seq, UserId))>,
        Captured<(UserId, (UserId, Seq))>,
        Captured<(UserId, (Seq, NotificationKind))>,
    );

    /// Runs the feed views over `given`.
    fn run(given: Given) -> Outputs {
        timely::example(move |scope| {
            let views = feed(&Collections {
                messages: given.messages.into_iter().to_stream(scope).as_collection(),
                edits: given.edits.into_iter().to_stream(scope).as_collection(),
                members: given.members.into_iter().to_stream(scope).as_collection(),
                reads: given.reads.into_iter().to_stream(scope).as_collection(),
                posts: given.posts.into_iter().to_stream(scope).as_collection(),
                post_edits: given
                    .post_edits
                    .into_iter()
                    .to_stream(scope)
                    .as_collection(),
                likes: given.likes.into_iter().to_stream(scope).as_collection(),
                comments: given.comments.into_iter().to_stream(scope).as_collection(),
                follows: given.follows.into_iter().to_stream(scope).as_collection(),
                mentions: given.mentions.into_iter().to_stream(scope).as_collection(),
                matches: given.matches.into_iter().to_stream(scope).as_collection(),
            });
            (
                views.profile.inner.capture(),
                views.post_edits.inner.capture(),
                views.likers.inner.capture(),
                views.comments.inner.capture(),
                views.followers.inner.capture(),
                views.following.inner.capture(),
                views.notifications.inner.capture(),
            )
        })
    }

    #[test]
    fn a_deleted_post_leaves_its_profile_and_takes_its_likes() {
        let (a, b, c) = (user(1), user(2), user(3));
        // a follows b (1); b posts (2); c follows b (3); a likes the post (4); b deletes it (5).
        let given = Given {
            follows: vec![((a, b, 1), 1, 1), ((c, b, 3), 3, 1)],
            posts: vec![((b, 2), 2, 1), ((b, 2), 5, -1)],
            likes: vec![((2, (a, 4, b)), 4, 1)],
            ..Given::default()
        };
        let (profile, post_edits, likers, comments, followers, following, notes) = run(given);
        assert_eq!(updates(profile), vec![((b, 2), 2, 1), ((b, 2), 5, -1)]);
        assert_eq!(updates(post_edits), vec![]);
        assert_eq!(updates(likers), vec![((2, a), 4, 1), ((2, a), 5, -1)]);
        assert_eq!(updates(comments), vec![]);
        assert_eq!(
            updates(followers),
            vec![((b, (1, a)), 1, 1), ((b, (3, c)), 3, 1)]
        );
        assert_eq!(
            updates(following),
            vec![((a, (b, 1)), 1, 1), ((c, (b, 3)), 3, 1)]
        );
        assert_eq!(
            updates(notes),
            vec![
                ((b, (1, NotificationKind::Follow)), 1, 1),
                ((b, (3, NotificationKind::Follow)), 3, 1),
                ((b, (4, NotificationKind::Like)), 4, 1),
                ((b, (4, NotificationKind::Like)), 5, -1),
            ]
        );
    }

    #[test]
    fn edits_mentions_and_comments_follow_the_current_version_of_live_posts() {
        let (a, b, c) = (user(1), user(2), user(3));
        // a posts (1) naming c; an edit (2) names nobody; another (3) names c again; b
        // comments (4); a likes their own post (5): no notification for that.
        let given = Given {
            posts: vec![((a, 1), 1, 1)],
            post_edits: vec![((1, 2), 2, 1), ((1, 3), 3, 1)],
            mentions: vec![
                ((1, (1, vec![c])), 1, 1),
                ((1, (2, vec![])), 2, 1),
                ((1, (3, vec![c])), 3, 1),
            ],
            comments: vec![((1, (4, b, a)), 4, 1)],
            likes: vec![((1, (a, 5, a)), 5, 1)],
            ..Given::default()
        };
        let (profile, post_edits, likers, comments, _, _, notes) = run(given);
        assert_eq!(updates(profile), vec![((a, 1), 1, 1)]);
        assert_eq!(
            updates(post_edits),
            vec![((1, 2), 2, 1), ((1, 2), 3, -1), ((1, 3), 3, 1)]
        );
        assert_eq!(updates(likers), vec![((1, a), 5, 1)]);
        assert_eq!(updates(comments), vec![((1, 4), 4, 1)]);
        assert_eq!(
            updates(notes),
            vec![
                // The run of versions naming c broke at 2: the mention at 3 is a new one.
                ((a, (4, NotificationKind::Comment)), 4, 1),
                ((c, (1, NotificationKind::Mention)), 1, 1),
                ((c, (1, NotificationKind::Mention)), 2, -1),
                ((c, (3, NotificationKind::Mention)), 3, 1),
            ]
        );
    }

    #[test]
    fn mentions_notify_while_their_post_or_comment_lives() {
        let (a, b, c, d) = (user(1), user(2), user(3), user(4));
        // a posts (1) naming c; b comments (2) naming d; the comment is deleted (3), then the
        // post (4).
        let given = Given {
            posts: vec![((a, 1), 1, 1), ((a, 1), 4, -1)],
            comments: vec![((1, (2, b, a)), 2, 1), ((1, (2, b, a)), 3, -1)],
            mentions: vec![((1, (1, vec![c])), 1, 1), ((2, (2, vec![d])), 2, 1)],
            ..Given::default()
        };
        let (.., notes) = run(given);
        assert_eq!(
            updates(notes),
            vec![
                ((a, (2, NotificationKind::Comment)), 2, 1),
                ((a, (2, NotificationKind::Comment)), 3, -1),
                ((c, (1, NotificationKind::Mention)), 1, 1),
                ((c, (1, NotificationKind::Mention)), 4, -1),
                ((d, (2, NotificationKind::Mention)), 2, 1),
                ((d, (2, NotificationKind::Mention)), 3, -1),
            ]
        );
    }
}
