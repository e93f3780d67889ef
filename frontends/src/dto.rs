//! The JSON forms of engine objects that more than one transport sends: a post and a
//! notification, as REST answers and the WebSocket's `post` and `notification` frames carry
//! them.

use girok_engine::feed::{Notification, Post};
use girok_engine::views::NotificationKind;
use girok_schemas::{EventId, Seq, UserId, rfc3339_millis};
use serde::Serialize;
use serde_json::{Value, json};

/// A post as REST and the WebSocket show it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostJson<'a> {
    id: EventId,
    seq: Seq,
    author_id: UserId,
    content: &'a str,
    media_ids: &'a [String],
    created_at: String,
    edited_at: Option<String>,
    likes: usize,
    liked_by_me: bool,
    comment_count: usize,
}

impl<'a> From<&'a Post> for PostJson<'a> {
    fn from(post: &'a Post) -> Self {
        Self {
            id: post.id,
            seq: post.seq,
            author_id: post.author,
            content: &post.content,
            media_ids: &post.media_ids,
            created_at: rfc3339_millis(post.created_ms),
            edited_at: post.edited_ms.map(rfc3339_millis),
            likes: post.like_count,
            liked_by_me: post.liked_by_me,
            comment_count: post.comment_count,
        }
    }
}

/// [`PostJson`] as a JSON value (for answers that embed it).
pub fn post_json(post: &Post) -> Value {
    serde_json::to_value(PostJson::from(post)).unwrap_or(Value::Null)
}

fn kind_name(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::Like => "like",
        NotificationKind::Comment => "comment",
        NotificationKind::Follow => "follow",
        NotificationKind::Mention => "mention",
    }
}

/// A notification as REST and the WebSocket show it.
pub fn notification_json(note: &Notification) -> Value {
    json!({
        "seq": note.seq,
        "kind": kind_name(note.kind),
        "actorId": note.actor,
        "postId": note.post,
        "commentId": note.comment,
        "createdAt": rfc3339_millis(note.created_ms),
        "read": note.read,
    })
}
