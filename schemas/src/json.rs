//! The JSON form of an event, as `girok log tail` prints it: one object per event with the
//! envelope fields and the payload's fields, ids as UUID strings, time as RFC 3339 (UTC).

use crate::event::{Event, Payload};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

impl Event {
    /// The event as a JSON object.
    pub fn to_json(&self) -> Value {
        let payload = match &self.payload {
            Payload::RoomCreated {
                room,
                title,
                direct_with,
            } => json!({ "roomId": room, "title": title, "directWith": direct_with }),
            Payload::MessagesRead { room, up_to } => {
                json!({ "roomId": room, "upToSeq": up_to })
            }
            Payload::MemberJoined { room, user } | Payload::MemberLeft { room, user } => {
                json!({ "roomId": room, "userId": user })
            }
            Payload::MessageSent {
                room,
                body,
                client_id,
                reply_to,
            } => {
                json!({ "roomId": room, "body": body, "clientId": client_id, "replyTo": reply_to })
            }
            Payload::MessageEdited {
                room,
                message,
                message_seq,
                body,
            } => {
                json!({ "roomId": room, "messageId": message, "messageSeq": message_seq, "body": body })
            }
            Payload::MessageDeleted {
                room,
                message,
                message_seq,
                ..
            } => json!({ "roomId": room, "messageId": message, "messageSeq": message_seq }),
            // Hashes of secrets are needed in the log for replay, but never printed.
            Payload::UserRegistered {
                user,
                username,
                email,
                display_name,
                ..
            } => json!({ "userId": user, "username": username, "email": email,
                         "displayName": display_name, "passwordHash": "<redacted>" }),
            Payload::LoggedIn {
                user,
                session,
                ip,
                user_agent,
                expires_ms,
                ..
            } => json!({ "userId": user, "sessionId": session, "ip": ip,
                         "userAgent": user_agent, "expires": rfc3339_millis(*expires_ms) }),
            Payload::LoginFailed {
                username,
                ip,
                reason,
            } => json!({ "username": username, "ip": ip, "reason": reason }),
            Payload::TokenRefreshed {
                session,
                ip,
                expires_ms,
                ..
            } => json!({ "sessionId": session, "ip": ip, "expires": rfc3339_millis(*expires_ms) }),
            Payload::SessionRevoked { session, reason } => {
                json!({ "sessionId": session, "reason": reason })
            }
            Payload::PasswordChanged { user, .. } => {
                json!({ "userId": user, "passwordHash": "<redacted>" })
            }
            Payload::ProfileUpdated {
                user,
                display_name,
                bio,
                avatar_media_id,
            } => json!({ "userId": user, "displayName": display_name, "bio": bio,
                         "avatarMediaId": avatar_media_id }),
            Payload::PostCreated {
                content,
                media_ids,
                mentions,
            } => json!({ "content": content, "mediaIds": media_ids, "mentions": mentions }),
            Payload::PostEdited {
                post,
                post_seq,
                content,
                media_ids,
                mentions,
            } => json!({ "postId": post, "postSeq": post_seq, "content": content,
                         "mediaIds": media_ids, "mentions": mentions }),
            Payload::PostDeleted { post, post_seq } => {
                json!({ "postId": post, "postSeq": post_seq })
            }
            Payload::PostLiked {
                post,
                post_seq,
                post_author,
            } => json!({ "postId": post, "postSeq": post_seq, "postAuthor": post_author }),
            Payload::PostUnliked {
                post,
                post_seq,
                post_author,
                like_seq,
            } => json!({ "postId": post, "postSeq": post_seq, "postAuthor": post_author,
                         "likeSeq": like_seq }),
            Payload::CommentAdded {
                post,
                post_seq,
                post_author,
                content,
                mentions,
            } => json!({ "postId": post, "postSeq": post_seq, "postAuthor": post_author,
                         "content": content, "mentions": mentions }),
            Payload::CommentDeleted {
                comment,
                comment_seq,
                post,
                post_seq,
                post_author,
            } => json!({ "commentId": comment, "commentSeq": comment_seq, "postId": post,
                         "postSeq": post_seq, "postAuthor": post_author }),
            Payload::UserFollowed { user } => json!({ "userId": user }),
            Payload::UserUnfollowed { user, follow_seq } => {
                json!({ "userId": user, "followSeq": follow_seq })
            }
            Payload::NotificationsRead { up_to } => json!({ "upToSeq": up_to }),
            Payload::Unknown { .. } => Value::Null,
        };
        json!({
            "seq": self.seq,
            "time": rfc3339_millis(self.commit_time_ms),
            "id": self.id,
            "actor": self.actor,
            "type": self.type_name(),
            "payload": payload,
        })
    }
}

/// Formats milliseconds since the epoch as RFC 3339 with milliseconds, e.g.
/// `2026-11-22T03:50:11.123Z`.
pub fn rfc3339_millis(ms: i64) -> String {
    let time = SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0).unsigned_abs());
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventId, RoomId, UserId};

    #[test]
    fn message_json_has_envelope_and_payload() {
        let event = Event {
            seq: 3,
            commit_time_ms: 1_000,
            id: EventId::new_v7(),
            actor: Some(UserId::new_v7()),
            payload: Payload::MessageSent {
                room: RoomId::new_v7(),
                body: "hi".into(),
                client_id: None,
                reply_to: None,
            },
        };
        let v = event.to_json();
        assert_eq!(v["seq"], 3);
        assert_eq!(v["time"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["type"], "chat.message.sent");
        assert_eq!(v["payload"]["body"], "hi");
        assert_eq!(v["payload"]["clientId"], Value::Null);
    }
}
