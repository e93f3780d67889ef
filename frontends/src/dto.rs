//! The typed JSON forms of engine objects that REST answers and WebSocket frames carry: posts,
//! comments, messages, rooms, notifications and write acknowledgements. Each is a `Serialize`
//! struct built from the engine's type, so every transport that shows an object shows it the
//! same way (GraphQL resolves its own objects from the same engine types). Borrowing forms
//! serialize a page straight from the engine's objects; `owned` forms outlive them (a
//! WebSocket frame built after an await).

use girok_engine::feed::{Comment, Notification, Post};
use girok_engine::views::NotificationKind;
use girok_engine::{Ack, Engine, MediaInfo, Message, RoomInfo};
use girok_schemas::{EventId, RoomId, Seq, UserId, rfc3339_millis};
use serde::Serialize;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::HashMap;

/// A post.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostDto<'a> {
    id: EventId,
    seq: Seq,
    author_id: UserId,
    content: Cow<'a, str>,
    media_ids: Cow<'a, [String]>,
    created_at: String,
    edited_at: Option<String>,
    likes: usize,
    liked_by_me: bool,
    comment_count: usize,
    /// Its ready media the reader may see, in order (see [`PostDto::with_media`]).
    media: Vec<Value>,
}

impl<'a> From<&'a Post> for PostDto<'a> {
    fn from(post: &'a Post) -> Self {
        Self {
            content: Cow::Borrowed(&post.content),
            media_ids: Cow::Borrowed(&post.media_ids),
            ..PostDto::head(post)
        }
    }
}

impl PostDto<'static> {
    /// A post's form that owns its text.
    pub fn owned(post: Post) -> Self {
        let head = PostDto::head(&post);
        Self {
            content: Cow::Owned(post.content),
            media_ids: Cow::Owned(post.media_ids),
            ..head
        }
    }
}

impl PostDto<'_> {
    /// The post's seq.
    pub fn post_seq(&self) -> Seq {
        self.seq
    }

    /// Every field but the text.
    fn head(post: &Post) -> Self {
        Self {
            id: post.id,
            seq: post.seq,
            author_id: post.author,
            content: Cow::Borrowed(""),
            media_ids: Cow::Borrowed(&[]),
            created_at: rfc3339_millis(post.created_ms),
            edited_at: post.edited_ms.map(rfc3339_millis),
            likes: post.like_count,
            liked_by_me: post.liked_by_me,
            comment_count: post.comment_count,
            media: Vec::new(),
        }
    }

    /// The same with its media, from `found` (see [`media_of`]).
    pub fn with_media(mut self, found: &HashMap<String, MediaInfo>) -> Self {
        self.media = self
            .media_ids
            .iter()
            .filter_map(|id| found.get(id))
            .map(media_json)
            .collect();
        self
    }
}

/// The ready media among the ids of `posts` that `viewer` may see, by id: one read for a
/// page, none for posts without media.
pub async fn media_of<'p>(
    engine: &Engine,
    viewer: UserId,
    posts: impl IntoIterator<Item = &'p Post>,
) -> girok_engine::Result<HashMap<String, MediaInfo>> {
    let ids: Vec<String> = posts
        .into_iter()
        .flat_map(|post| post.media_ids.iter().cloned())
        .collect();
    engine.media_many(Some(viewer), ids).await
}

/// A media as JSON: its state, and once ready its size, placeholder and variants with URLs.
pub fn media_json(media: &MediaInfo) -> Value {
    let variants: Vec<Value> = media
        .variants
        .iter()
        .map(|v| {
            json!({
                "name": v.name,
                "width": v.width,
                "height": v.height,
                "bytes": v.bytes,
                "url": format!("/v1/media/{}/{}", media.id, v.name),
            })
        })
        .collect();
    json!({
        "id": media.id,
        "ownerId": media.owner,
        "state": media.state,
        "contentType": media.content_type,
        "width": media.is_ready().then_some(media.width),
        "height": media.is_ready().then_some(media.height),
        "placeholder": Some(&media.placeholder).filter(|p| !p.is_empty()),
        "rejectedReason": media.rejected_reason,
        "createdAt": rfc3339_millis(media.created_ms),
        "variants": variants,
    })
}

/// A comment on a post.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentDto<'a> {
    id: EventId,
    seq: Seq,
    post_id: EventId,
    author_id: UserId,
    content: &'a str,
    created_at: String,
}

impl<'a> From<&'a Comment> for CommentDto<'a> {
    fn from(comment: &'a Comment) -> Self {
        Self {
            id: comment.id,
            seq: comment.seq,
            post_id: comment.post,
            author_id: comment.author,
            content: &comment.content,
            created_at: rfc3339_millis(comment.created_ms),
        }
    }
}

/// A chat message.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDto<'a> {
    id: EventId,
    seq: Seq,
    room_id: RoomId,
    sender_id: Option<UserId>,
    body: &'a str,
    client_id: Option<&'a str>,
    reply_to_id: Option<EventId>,
    /// Media ids.
    attachments: &'a [EventId],
    /// The ready ones the reader may see, as objects (history pages; see
    /// [`MessageDto::with_media`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    media: Option<Vec<Value>>,
    created_at: String,
    edited: bool,
    edited_at: Option<String>,
}

impl<'a> From<&'a Message> for MessageDto<'a> {
    fn from(message: &'a Message) -> Self {
        Self {
            id: message.id,
            seq: message.seq,
            room_id: message.room,
            sender_id: message.sender,
            body: &message.body,
            client_id: message.client_id.as_deref(),
            reply_to_id: message.reply_to,
            attachments: &message.attachments,
            media: None,
            created_at: rfc3339_millis(message.commit_time_ms),
            edited: message.edited_ms.is_some(),
            edited_at: message.edited_ms.map(rfc3339_millis),
        }
    }
}

impl MessageDto<'_> {
    /// The same with its attachments as objects, from `found`.
    pub fn with_media(mut self, found: &HashMap<String, MediaInfo>) -> Self {
        let media = self
            .attachments
            .iter()
            .filter_map(|id| found.get(&id.to_string()))
            .map(media_json)
            .collect();
        self.media = Some(media);
        self
    }
}

/// A room as one of its members sees it; `seq` is set on the answer to the write that
/// created or opened it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomDto<'a> {
    id: RoomId,
    kind: &'static str,
    title: &'a str,
    creator_id: Option<UserId>,
    direct_with_id: Option<UserId>,
    created_seq: Seq,
    member_count: u32,
    message_count: usize,
    last_message: Option<MessageDto<'a>>,
    last_message_seq: Option<Seq>,
    last_message_at: Option<String>,
    last_activity_seq: Seq,
    last_activity_at: String,
    unread_count: usize,
    read_up_to_seq: Seq,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<Seq>,
}

impl<'a> From<&'a RoomInfo> for RoomDto<'a> {
    fn from(room: &'a RoomInfo) -> Self {
        let last = room.last_message.as_ref();
        Self {
            id: room.id,
            kind: if room.is_direct() { "direct" } else { "group" },
            title: &room.title,
            creator_id: room.creator,
            direct_with_id: room.direct_with,
            created_seq: room.created_seq,
            member_count: room.member_count,
            message_count: room.message_count,
            last_message: last.map(MessageDto::from),
            last_message_seq: last.map(|m| m.seq),
            last_message_at: last.map(|m| rfc3339_millis(m.commit_time_ms)),
            last_activity_seq: room.last_activity.0,
            last_activity_at: rfc3339_millis(room.last_activity.1),
            unread_count: room.unread_count,
            read_up_to_seq: room.read_up_to,
            seq: None,
        }
    }
}

impl RoomDto<'_> {
    /// The room as the answer to the write at `seq`.
    pub fn written_at(self, seq: Seq) -> Self {
        Self {
            seq: Some(seq),
            ..self
        }
    }
}

/// A notification: a like or comment on your post, a new follower, a mention, a random
/// match (whose room is `roomId`, and `actorId` the partner).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationDto {
    seq: Seq,
    kind: &'static str,
    actor_id: Option<UserId>,
    post_id: Option<EventId>,
    comment_id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room_id: Option<RoomId>,
    created_at: String,
    read: bool,
}

impl From<&Notification> for NotificationDto {
    fn from(note: &Notification) -> Self {
        Self {
            seq: note.seq,
            kind: match note.kind {
                NotificationKind::Like => "like",
                NotificationKind::Comment => "comment",
                NotificationKind::Follow => "follow",
                NotificationKind::Mention => "mention",
                NotificationKind::Match => "match",
            },
            actor_id: note.actor,
            post_id: note.post,
            comment_id: note.comment,
            room_id: note.room,
            created_at: rfc3339_millis(note.created_ms),
            read: note.read,
        }
    }
}

/// A write's acknowledgement as REST answers it: always its seq; the id of what it created
/// where it created something; for a message also its commit time and whether the client id
/// made it a repeat. (The WebSocket's `ack` frame carries the sender's `ref` and the message
/// id instead: see `ws::protocol`.)
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AckDto {
    seq: Seq,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_up_to_seq: Option<Seq>,
    #[serde(skip_serializing_if = "Option::is_none")]
    following: Option<bool>,
}

impl AckDto {
    /// Just the seq.
    pub fn seq(ack: &Ack) -> Self {
        Self {
            seq: ack.seq,
            id: None,
            created_at: None,
            duplicate: None,
            read_up_to_seq: None,
            following: None,
        }
    }

    /// The seq and the write's id (of what it created, or of its event).
    pub fn created(ack: &Ack) -> Self {
        Self {
            id: Some(ack.id),
            ..Self::seq(ack)
        }
    }

    /// A sent message's: seq, id, commit time and whether it repeated an earlier send.
    pub fn message(ack: &Ack) -> Self {
        Self {
            created_at: Some(rfc3339_millis(ack.commit_time_ms)),
            duplicate: Some(ack.duplicate),
            ..Self::created(ack)
        }
    }

    /// A read marker's: the seq and where the marker stands now (the engine sets it for every
    /// read marker).
    pub fn read_up_to(ack: &Ack) -> Self {
        Self {
            read_up_to_seq: Some(ack.read_up_to.unwrap_or_default()),
            ..Self::seq(ack)
        }
    }

    /// A follow's or an unfollow's: the seq and whether the caller now follows.
    pub fn following(ack: &Ack, following: bool) -> Self {
        Self {
            following: Some(following),
            ..Self::seq(ack)
        }
    }
}

/// Where the next page of a list starts: `endCursor` is a seq, a room cursor or a sealed
/// cursor, as the list's `cursor` parameter takes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfoDto<C> {
    pub has_next_page: bool,
    pub end_cursor: Option<C>,
}

impl PageInfoDto<String> {
    /// A page whose next one starts below the seq `next` (sealed, as feed cursors are).
    pub fn sealed(next: Option<Seq>) -> Self {
        Self {
            has_next_page: next.is_some(),
            end_cursor: next.map(crate::cursor::seal),
        }
    }
}

/// An account as anyone sees it (no email): a match partner, a public profile.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicUserDto {
    id: UserId,
    username: String,
    display_name: String,
    bio: String,
    avatar_media_id: Option<String>,
}

impl From<&girok_engine::accounts::UserView> for PublicUserDto {
    fn from(user: &girok_engine::accounts::UserView) -> Self {
        Self {
            id: user.id,
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            bio: user.bio.clone(),
            avatar_media_id: user.avatar_media_id.clone(),
        }
    }
}

/// A user's place in random matching.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchingStatusDto {
    /// Their open ticket, if they wait.
    queued: Option<QueuedDto>,
    /// Open tickets, theirs included.
    waiting: u64,
    /// Their current match, with the partner's public profile.
    #[serde(rename = "match")]
    current: Option<MatchDto>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueuedDto {
    ticket_id: EventId,
    seq: Seq,
    since: String,
    tags: Vec<String>,
    language: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MatchDto {
    room_id: RoomId,
    partner: PublicUserDto,
    seq: Seq,
    since: String,
}

impl MatchingStatusDto {
    /// `status`, with the partner of its match (`None` when it has no match).
    pub fn new(
        status: girok_engine::MatchingStatus,
        partner: Option<&girok_engine::accounts::UserView>,
    ) -> Self {
        let queued = status.queued.map(|q| QueuedDto {
            ticket_id: q.ticket,
            seq: q.seq,
            since: rfc3339_millis(q.since_ms),
            tags: q.tags,
            language: q.language,
        });
        let current = status.current.zip(partner).map(|(m, partner)| MatchDto {
            room_id: m.room,
            partner: PublicUserDto::from(partner),
            seq: m.seq,
            since: rfc3339_millis(m.since_ms),
        });
        Self {
            queued,
            waiting: status.waiting,
            current,
        }
    }
}
