//! Feed reads: posts (one, or a batch by seq), home and profile timelines, comments, follower
//! lists and notifications. Views give the keys (post, comment and notification seqs), counts
//! and "liked by me"; bodies come from the log and liveness from the write model, both through
//! the hot-object caches. A page that is cached is answered without leaving the async runtime;
//! what the caches miss is read in one blocking call per cache and page.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::hot::HotObjects;
use crate::limits::{MAX_FEED_PAGE_SIZE, MAX_INLINE_COMMENTS, MAX_UNREAD_COUNT};
use crate::log_reads::{event_in, page_size, read_event};
use crate::records::{record, seq_value};
use crate::views::Views;
use crate::views::feed::{NotificationKind, NotificationRef, PostRef};
use girok_schemas::proto::PostRecord;
use girok_schemas::{Event, EventId, Payload, RoomId, Seq, UserId};
use girok_storage::{Store, Table};
use std::collections::HashMap;
use tokio::sync::broadcast;

/// A post as readers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Post {
    pub id: EventId,
    pub seq: Seq,
    pub author: UserId,
    /// The current content (the latest edit's, if edited).
    pub content: String,
    pub media_ids: Vec<String>,
    pub created_ms: i64,
    pub edited_ms: Option<i64>,
    pub like_count: usize,
    pub comment_count: usize,
    /// Whether the reader likes it.
    pub liked_by_me: bool,
}

/// A comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    pub id: EventId,
    pub seq: Seq,
    pub post: EventId,
    pub author: UserId,
    pub content: String,
    pub created_ms: i64,
}

/// Where a page of posts starts: strictly older than this post seq.
pub type PostCursor = Seq;

/// A page of posts, newest first.
#[derive(Clone, Debug)]
pub struct PostPage {
    pub posts: Vec<Post>,
    /// Pass as `cursor` for the next (older) page; `None` on the last page.
    pub next_cursor: Option<PostCursor>,
}

/// One entry of a follower or following list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowEdge {
    pub user: UserId,
    /// The seq of the follow (the list's order and cursor).
    pub since_seq: Seq,
}

/// A page of a follower or following list, most recent follow first.
#[derive(Clone, Debug)]
pub struct FollowPage {
    pub edges: Vec<FollowEdge>,
    /// The whole list's length.
    pub total: usize,
    pub next_cursor: Option<Seq>,
}

/// A notification, resolved from the event that caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub seq: Seq,
    pub kind: NotificationKind,
    /// Who liked, commented, followed or mentioned.
    pub actor: Option<UserId>,
    pub post: Option<EventId>,
    pub comment: Option<EventId>,
    /// For a match: its room.
    pub room: Option<RoomId>,
    pub created_ms: i64,
    /// At or below the reader's notifications marker.
    pub read: bool,
}

/// A page of notifications, newest first.
#[derive(Clone, Debug)]
pub struct NotificationPage {
    pub notifications: Vec<Notification>,
    /// Notifications above the read marker, counted up to [`MAX_UNREAD_COUNT`].
    pub unread_count: usize,
    pub read_up_to: Seq,
    pub next_cursor: Option<Seq>,
}

impl Engine {
    /// A live post.
    pub async fn post(&self, reader: UserId, post: EventId, after: Option<Seq>) -> Result<Post> {
        self.wait_for_views(after).await?;
        // The write model says whether it is live (and has its seq) before the views may.
        let seq = self.live_post_seq(post).await?;
        let mut found = self.posts_by_seq(reader, vec![seq]).await?;
        found.pop().ok_or(Error::PostNotFound(post))
    }

    /// Live posts by seq, in the order given (deleted ones are left out, per the write model):
    /// the batch read behind timelines. Bodies come from the event cache, liveness from the
    /// post cache (both kept current by the log writer; one blocking read each for what they
    /// miss), counts and the reader's like from the views (read your own likes with `after`).
    pub async fn posts_by_seq(&self, reader: UserId, seqs: Vec<Seq>) -> Result<Vec<Post>> {
        self.assemble_posts(reader, seqs, Liveness::WriteModel)
            .await
    }

    /// The post a live feed push names, if it is still live per the views (the push came
    /// from them): every subscriber of a new post asks at once, before any could have filled
    /// the post cache, so the cache would cost one store read each.
    pub async fn pushed_post(&self, reader: UserId, seq: Seq) -> Result<Option<Post>> {
        Ok(self
            .assemble_posts(reader, vec![seq], Liveness::Views)
            .await?
            .pop())
    }

    async fn assemble_posts(
        &self,
        reader: UserId,
        seqs: Vec<Seq>,
        liveness: Liveness,
    ) -> Result<Vec<Post>> {
        let feed = &self.views.feed;
        let edits: Vec<Option<Seq>> = seqs
            .iter()
            .map(|seq| feed.post_edits.last_in_range(seq, ..))
            .collect();
        let wanted = seqs.iter().chain(edits.iter().flatten()).copied();
        let events = self.events_by_seq(wanted.collect()).await?;
        let live = match liveness {
            Liveness::WriteModel => {
                let ids = seqs.iter().map(|seq| event_in(&events, *seq).map(|e| e.id));
                Some(
                    self.live_post_seqs(ids.collect::<Result<Vec<_>>>()?)
                        .await?,
                )
            }
            Liveness::Views => None,
        };
        let mut found = Vec::with_capacity(seqs.len());
        for (seq, edit) in seqs.iter().zip(edits) {
            let created = event_in(&events, *seq)?;
            // Deleted since the page was cut: left out.
            let is_live = match &live {
                Some(live) => live.get(&created.id).copied().flatten() == Some(*seq),
                None => created
                    .actor
                    .is_some_and(|author| feed.profile.contains(&author, seq)),
            };
            if is_live {
                let edit = edit.map(|edit| event_in(&events, edit)).transpose()?;
                found.push(post_from(&self.views, reader, created, edit)?);
            }
        }
        Ok(found)
    }

    /// The seq of each post that is live (`None` for a deleted or unknown one), per the write
    /// model through the post cache.
    async fn live_post_seqs(&self, ids: Vec<EventId>) -> Result<HashMap<EventId, Option<Seq>>> {
        self.through_cache("posts", HotObjects::posts, ids, |store, id| {
            post_liveness(store, *id).map(Some)
        })
        .await
    }

    /// The seq of a live post (`POST_NOT_FOUND` if it does not exist or was deleted).
    async fn live_post_seq(&self, post: EventId) -> Result<Seq> {
        self.live_post_seqs(vec![post])
            .await?
            .remove(&post)
            .flatten()
            .ok_or(Error::PostNotFound(post))
    }

    /// The reader's home timeline: their posts and those of everyone they follow, newest
    /// first (a merge of those authors' profile timelines).
    pub async fn timeline(
        &self,
        reader: UserId,
        cursor: Option<PostCursor>,
        limit: Option<usize>,
        after: Option<Seq>,
    ) -> Result<PostPage> {
        let limit = page_size(limit, MAX_FEED_PAGE_SIZE)?;
        self.wait_for_views(after).await?;
        let before = cursor.unwrap_or(Seq::MAX);
        let (seqs, more) = self.views.feed.home_page(reader, before, limit)?;
        self.post_page(reader, seqs, more).await
    }

    /// `author`'s own posts, newest first.
    pub async fn user_timeline(
        &self,
        reader: UserId,
        author: UserId,
        cursor: Option<PostCursor>,
        limit: Option<usize>,
        after: Option<Seq>,
    ) -> Result<PostPage> {
        let limit = page_size(limit, MAX_FEED_PAGE_SIZE)?;
        self.require_user(author).await?;
        self.wait_for_views(after).await?;
        let before = cursor.unwrap_or(Seq::MAX);
        let (seqs, more) = self.views.feed.profile.page(&author, ..before, true, limit);
        self.post_page(reader, seqs, more).await
    }

    async fn post_page(&self, reader: UserId, seqs: Vec<Seq>, more: bool) -> Result<PostPage> {
        let next_cursor = more.then(|| seqs.last().copied()).flatten();
        let posts = self.posts_by_seq(reader, seqs).await?;
        Ok(PostPage { posts, next_cursor })
    }

    /// The first `limit` comments (oldest first) of each post, by post seq: one batch for a
    /// whole page of posts, its bodies from the hot-object cache.
    pub async fn first_comments(
        &self,
        posts: Vec<Seq>,
        limit: usize,
    ) -> Result<HashMap<Seq, Vec<Comment>>> {
        let limit = limit.min(MAX_INLINE_COMMENTS);
        let pages: Vec<(Seq, Vec<Seq>)> = posts
            .into_iter()
            .map(|post| {
                (
                    post,
                    self.views.feed.comments.page(&post, .., false, limit).0,
                )
            })
            .collect();
        let wanted = pages.iter().flat_map(|(_, seqs)| seqs.iter().copied());
        let events = self.events_by_seq(wanted.collect()).await?;
        pages
            .into_iter()
            .map(|(post, seqs)| {
                let comments = seqs
                    .into_iter()
                    .map(|seq| comment_from(event_in(&events, seq)?))
                    .collect::<Result<Vec<_>>>()?;
                Ok((post, comments))
            })
            .collect()
    }

    /// The comment the event at `seq` added, as stored (e.g. the answer to `addComment`,
    /// read back from the log by its ack's seq).
    pub async fn comment_at(&self, seq: Seq) -> Result<Comment> {
        let events = self.events_by_seq(vec![seq]).await?;
        comment_from(event_in(&events, seq)?)
    }

    /// A page of a post's comments, oldest first, after the comment seq `cursor`.
    pub async fn comments(
        &self,
        post: EventId,
        cursor: Option<Seq>,
        limit: Option<usize>,
        after: Option<Seq>,
    ) -> Result<(Vec<Comment>, Option<Seq>)> {
        let limit = page_size(limit, MAX_FEED_PAGE_SIZE)?;
        self.wait_for_views(after).await?;
        let post_seq = self.live_post_seq(post).await?;
        let from = cursor.map_or(0, |c| c.saturating_add(1));
        let (seqs, more) = self
            .views
            .feed
            .comments
            .page(&post_seq, from.., false, limit);
        let next = more.then(|| seqs.last().copied()).flatten();
        let events = self.events_by_seq(seqs.clone()).await?;
        let comments = seqs
            .into_iter()
            .map(|seq| comment_from(event_in(&events, seq)?))
            .collect::<Result<Vec<_>>>()?;
        Ok((comments, next))
    }

    /// Who follows `user`, most recent first.
    pub async fn followers(
        &self,
        user: UserId,
        cursor: Option<Seq>,
        limit: Option<usize>,
        after: Option<Seq>,
    ) -> Result<FollowPage> {
        self.follow_page(user, cursor, limit, after, true).await
    }

    /// Whom `user` follows, most recent first.
    pub async fn following(
        &self,
        user: UserId,
        cursor: Option<Seq>,
        limit: Option<usize>,
        after: Option<Seq>,
    ) -> Result<FollowPage> {
        self.follow_page(user, cursor, limit, after, false).await
    }

    async fn follow_page(
        &self,
        user: UserId,
        cursor: Option<Seq>,
        limit: Option<usize>,
        after: Option<Seq>,
        followers: bool,
    ) -> Result<FollowPage> {
        let limit = page_size(limit, MAX_FEED_PAGE_SIZE)?;
        self.require_user(user).await?;
        self.wait_for_views(after).await?;
        let feed = &self.views.feed;
        let before = cursor.unwrap_or(Seq::MAX);
        let ((page, more), total) = if followers {
            let below = (before, UserId(uuid::Uuid::nil()));
            (
                feed.followers.page(&user, &below, limit)?,
                feed.followers.count(&user),
            )
        } else {
            (
                feed.following_page(user, before, limit)?,
                feed.following.count(&user),
            )
        };
        let edges: Vec<FollowEdge> = page
            .into_iter()
            .map(|(since_seq, user)| FollowEdge { user, since_seq })
            .collect();
        Ok(FollowPage {
            next_cursor: more.then(|| edges.last().map(|e| e.since_seq)).flatten(),
            total,
            edges,
        })
    }

    /// Whether `follower` follows `followee`, as the views say (the follower's followee list,
    /// cached for the readers seen lately, as home pages read it).
    pub async fn is_following(&self, follower: UserId, followee: UserId) -> Result<bool> {
        self.wait_for_views(None).await?;
        Ok(self.views.feed.follows(follower, followee)?)
    }

    /// `(followers, following)` of a user.
    pub async fn follow_counts(&self, user: UserId) -> Result<(usize, usize)> {
        self.wait_for_views(None).await?;
        let feed = &self.views.feed;
        Ok((feed.followers.count(&user), feed.following.count(&user)))
    }

    /// The reader's notifications, newest first, older than the seq `cursor`.
    pub async fn notifications(
        &self,
        reader: UserId,
        cursor: Option<Seq>,
        limit: Option<usize>,
        after: Option<Seq>,
    ) -> Result<NotificationPage> {
        let limit = page_size(limit, MAX_FEED_PAGE_SIZE)?;
        self.wait_for_views(after).await?;
        let views = self.views.clone();
        self.blocking(move |store| {
            let index = &views.feed.notifications;
            let read_up_to =
                seq_value(store.get(Table::UseridNotificationsread, reader.as_bytes())?);
            let before = (cursor.unwrap_or(Seq::MAX), NotificationKind::Like);
            let (page, more) = index.page(&reader, &before, limit)?;
            let unread_count = index.count_from(
                &reader,
                &(read_up_to.saturating_add(1), NotificationKind::Like),
                MAX_UNREAD_COUNT,
            )?;
            let next_cursor = more.then(|| page.last().map(|(seq, _)| *seq)).flatten();
            let notifications = page
                .into_iter()
                .map(|(seq, kind)| read_notification(store, reader, seq, kind, read_up_to))
                .collect::<Result<Vec<_>>>()?;
            Ok(NotificationPage {
                notifications,
                unread_count,
                read_up_to,
                next_cursor,
            })
        })
        .await
    }

    /// A notification pushed live, resolved for delivery.
    pub async fn resolve_notification(&self, note: NotificationRef) -> Result<Notification> {
        self.blocking(move |store| {
            let read_up_to =
                seq_value(store.get(Table::UseridNotificationsread, note.recipient.as_bytes())?);
            read_notification(store, note.recipient, note.seq, note.kind, read_up_to)
        })
        .await
    }

    /// The reader's notifications as they appear (not those already there).
    pub fn subscribe_notifications(&self, reader: UserId) -> broadcast::Receiver<NotificationRef> {
        self.views.feed.notification_push.subscribe(reader)
    }

    /// New posts of the reader and of everyone they follow, as they are posted.
    pub fn subscribe_feed(&self, reader: UserId) -> broadcast::Receiver<PostRef> {
        self.views.feed.feed_push.subscribe(reader)
    }

    async fn require_user(&self, user: UserId) -> Result<()> {
        match self.users(vec![user]).await?.contains_key(&user) {
            true => Ok(()),
            false => Err(Error::UserNotFound),
        }
    }
}

/// The seq of `post` if it is live (`None`: deleted, or no such post), per the write model.
fn post_liveness(store: &Store, post: EventId) -> Result<Option<Seq>> {
    let record: Option<PostRecord> =
        record(store.get(Table::PostidPost, post.as_bytes())?, "post")?;
    Ok(record.filter(|p| !p.deleted).map(|p| p.seq))
}

/// The seq of a live post (`POST_NOT_FOUND` if it does not exist or was deleted), read from
/// the store (for reads already off the async runtime).
fn live_post_seq(store: &Store, post: EventId) -> Result<Seq> {
    post_liveness(store, post)?.ok_or(Error::PostNotFound(post))
}

/// How [`Engine::assemble_posts`] knows which posts are live.
#[derive(Clone, Copy)]
enum Liveness {
    /// The write model, through the post cache (a page of a timeline).
    WriteModel,
    /// The views: the author's profile timeline holds a post while it lives (a live push).
    Views,
}

/// The post `event` created (already read from the log), as `posts_by_seq` answers it.
pub(crate) fn post_of(store: &Store, views: &Views, reader: UserId, event: Event) -> Result<Post> {
    live_post_seq(store, event.id)?;
    let edit = match views.feed.post_edits.last_in_range(&event.seq, ..) {
        Some(edit_seq) => Some(read_event(store, edit_seq)?),
        None => None,
    };
    post_from(views, reader, &event, edit.as_ref())
}

/// The post `event` created as of `edit` (its latest edit, if any), with its counts and the
/// reader's like from the views: no storage access.
fn post_from(views: &Views, reader: UserId, event: &Event, edit: Option<&Event>) -> Result<Post> {
    let seq = event.seq;
    let Payload::PostCreated {
        content, media_ids, ..
    } = &event.payload
    else {
        return Err(Error::Internal(format!(
            "seq {seq} is a {} event, not a post",
            event.type_name()
        )));
    };
    let author = event
        .actor
        .ok_or_else(|| Error::Internal(format!("post at seq {seq} has no author")))?;
    let feed = &views.feed;
    let (content, media_ids, edited_ms) = match edit {
        Some(Event {
            commit_time_ms,
            payload: Payload::PostEdited {
                content, media_ids, ..
            },
            ..
        }) => (content, media_ids, Some(*commit_time_ms)),
        Some(other) => {
            return Err(Error::Internal(format!(
                "seq {} is a {} event, not a post edit",
                other.seq,
                other.type_name()
            )));
        }
        None => (content, media_ids, None),
    };
    Ok(Post {
        id: event.id,
        seq,
        author,
        content: content.clone(),
        media_ids: media_ids.clone(),
        created_ms: event.commit_time_ms,
        edited_ms,
        like_count: feed.like_count(seq),
        comment_count: feed.comments.count(&seq),
        liked_by_me: feed.likes(reader, seq),
    })
}

fn comment_from(event: &Event) -> Result<Comment> {
    let seq = event.seq;
    match &event.payload {
        Payload::CommentAdded { post, content, .. } => Ok(Comment {
            id: event.id,
            seq,
            post: *post,
            author: event
                .actor
                .ok_or_else(|| Error::Internal(format!("comment at seq {seq} has no author")))?,
            content: content.clone(),
            created_ms: event.commit_time_ms,
        }),
        other => Err(Error::Internal(format!(
            "seq {seq} is a {} event, not a comment",
            other.type_name()
        ))),
    }
}

fn read_notification(
    store: &Store,
    recipient: UserId,
    seq: Seq,
    kind: NotificationKind,
    read_up_to: Seq,
) -> Result<Notification> {
    let event = read_event(store, seq)?;
    let (mut actor, mut room) = (event.actor, None);
    let (post, comment) = match &event.payload {
        Payload::PostLiked { post, .. } | Payload::PostEdited { post, .. } => (Some(*post), None),
        Payload::CommentAdded { post, .. } => (Some(*post), Some(event.id)),
        Payload::PostCreated { .. } => (Some(event.id), None),
        // girok made the match: the one who "did" it, for its recipient, is the partner.
        Payload::Matched {
            room: match_room,
            user_a,
            user_b,
            ..
        } => {
            actor = Some(if *user_a == recipient {
                *user_b
            } else {
                *user_a
            });
            room = Some(*match_room);
            (None, None)
        }
        _ => (None, None),
    };
    Ok(Notification {
        seq,
        kind,
        actor,
        post,
        comment,
        room,
        created_ms: event.commit_time_ms,
        read: seq <= read_up_to,
    })
}
