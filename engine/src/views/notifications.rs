//! Notifications are derived, not stored: a like, a comment or a follow notifies while it
//! exists (an unlike, a deleted comment or post, an unfollow retracts it), and a mention
//! notifies while the current version of a live post or comment names the user (dated by the
//! first of the unbroken run of versions that do: an edit that drops a name and a later one
//! that restores it notifies anew). Liking or commenting on one's own post notifies nobody.
//! A random match notifies both of its users (the notification's seq is the match's).

use super::post_stats::LivePosts;
use differential_dataflow::VecCollection;
use differential_dataflow::trace::implementations::{ValBuilder, ValSpine};
use girok_schemas::{Seq, UserId};
use serde::{Deserialize, Serialize};

use super::inputs::NamedIn;

/// Why a user is notified (its number is its byte in the view store's rows: keep them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NotificationKind {
    /// Someone liked my post (the notification's seq is the like's).
    Like = 0,
    /// Someone commented on my post (the comment's seq).
    Comment = 1,
    /// Someone followed me (the follow's seq).
    Follow = 2,
    /// A post or comment names me as `@username` (the seq of its first version that did).
    Mention = 3,
    /// I was matched with someone at random (the match's seq).
    Match = 4,
}

impl super::disk_set::KeyPart for NotificationKind {
    const WIDTH: usize = 1;
    fn write(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
    fn read(bytes: &[u8]) -> Option<Self> {
        Some(match bytes.first()? {
            0 => NotificationKind::Like,
            1 => NotificationKind::Comment,
            2 => NotificationKind::Follow,
            3 => NotificationKind::Mention,
            4 => NotificationKind::Match,
            _ => return None,
        })
    }
}

/// What notifies: the likes and comments of live posts, the follows, the mentions.
pub struct NotificationSources<'s> {
    /// `(post seq, (liker, like seq, post author))` per like of a live post.
    pub live_likes: VecCollection<'s, Seq, (Seq, (UserId, Seq, UserId))>,
    /// `(post seq, (comment seq, commenter, post author))` per live comment of a live post.
    pub live_comments: VecCollection<'s, Seq, (Seq, (Seq, UserId, UserId))>,
    /// `(follower, followee, follow seq)` per current follow.
    pub follows: VecCollection<'s, Seq, (UserId, UserId, Seq)>,
    /// `(post or comment seq, (version seq, users it names))` per version that names someone
    /// and per post edit (an edit that names nobody ends the mentions before it).
    pub mentions: VecCollection<'s, Seq, (Seq, NamedIn)>,
    /// `(user, matched seq)` for both users of every match.
    pub matches: VecCollection<'s, Seq, (UserId, Seq)>,
}

/// `(recipient, (seq, kind))` per current notification.
pub fn notifications<'s>(
    sources: NotificationSources<'s>,
    live: &LivePosts<'s>,
) -> VecCollection<'s, Seq, (UserId, (Seq, NotificationKind))> {
    let NotificationSources {
        live_likes,
        live_comments,
        follows,
        mentions,
        matches,
    } = sources;
    let liked = live_likes
        .filter(|(_, (liker, _, author))| liker != author)
        .map(|(_, (_, like, author))| (author, (like, NotificationKind::Like)));
    let commented = live_comments
        .clone()
        .filter(|(_, (_, commenter, author))| commenter != author)
        .map(|(_, (comment, _, author))| (author, (comment, NotificationKind::Comment)));
    let followed =
        follows.map(|(_, followee, follow)| (followee, (follow, NotificationKind::Follow)));
    // Per post or comment, `(user, since)` per user its current version names, kept arranged
    // as the reduce builds it (its output is joined twice below).
    let runs = mentions
        .arrange_by_key_named("Arrange: MentionRuns")
        .reduce_abelian::<_, ValBuilder<_, _, _, _>, ValSpine<Seq, (UserId, Seq), Seq, isize>, _, _>(
            "MentionRuns",
            |_source, versions, output| {
                // Versions arrive in seq order; a user's notification dates from the start of
                // the unbroken run of versions that name them, up to the current one.
                let mut runs: std::collections::BTreeMap<UserId, Seq> = Default::default();
                for ((version, users), _) in versions {
                    runs.retain(|user, _| users.contains(user));
                    for user in users {
                        runs.entry(*user).or_insert(*version);
                    }
                }
                output.extend(runs.into_iter().map(|run| (run, 1)));
            },
            |rows, source, runs| {
                rows.clear();
                rows.extend(runs.drain(..).map(|(run, time, diff)| ((*source, run), time, diff)));
            },
        );
    // Joined with the live posts' shared arrangement and with the live comments: arranging
    // posts and comments together for a semijoin kept a second entry per live post in memory
    // for the few that name anyone.
    let live_comments = live_comments
        .map(|(_, (comment, ..))| comment)
        .arrange_by_self();
    let mentioned = runs
        .clone()
        .join_core(live.clone(), |_, run, ()| Some(*run))
        .concat(runs.join_core(live_comments, |_, run, ()| Some(*run)))
        .map(|(user, since)| (user, (since, NotificationKind::Mention)));
    let matched = matches.map(|(user, seq)| (user, (seq, NotificationKind::Match)));
    liked
        .concat(commented)
        .concat(followed)
        .concat(mentioned)
        .concat(matched)
}
