//! The byte form of an event: one format byte, then the protobuf `Envelope`.
//!
//! The format byte changes only if the envelope itself is replaced by something protobuf cannot
//! evolve into; new fields and new event types keep it at 1. Unknown fields are skipped and
//! unknown payloads decode as [`Payload::Unknown`], so an older girok reads a newer log.

use crate::event::{Event, Payload};
use crate::ids::{EventId, RoomId, SessionId, UserId};
use crate::proto::{self, envelope::Payload as Wire};
use prost::Message;

/// The format byte written in front of every encoded event.
pub const FORMAT_VERSION: u8 = 1;

/// Why bytes read from the log are not an event this girok understands.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty log entry")]
    Empty,
    #[error("log entry has format version {0}; this girok reads version {FORMAT_VERSION}")]
    UnsupportedFormat(u8),
    #[error("malformed protobuf envelope: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("field `{0}` is not a 16-byte UUID")]
    InvalidId(&'static str),
}

/// Encodes an event for the log.
pub fn encode_event(event: &Event) -> Vec<u8> {
    let envelope = proto::Envelope {
        seq: event.seq,
        commit_time_ms: event.commit_time_ms,
        event_id: event.id.as_bytes().to_vec(),
        actor: event
            .actor
            .map(|a| a.as_bytes().to_vec())
            .unwrap_or_default(),
        r#type: event.type_name().to_owned(),
        payload: wire_payload(&event.payload),
    };
    let mut out = Vec::with_capacity(1 + envelope.encoded_len());
    out.push(FORMAT_VERSION);
    // Encoding into a Vec cannot fail: it grows as needed.
    envelope.encode_raw(&mut out);
    out
}

fn wire_payload(payload: &Payload) -> Option<Wire> {
    Some(match payload {
        Payload::RoomCreated {
            room,
            title,
            direct_with,
        } => Wire::RoomCreated(proto::RoomCreated {
            room_id: room.as_bytes().to_vec(),
            title: title.clone(),
            direct_with: direct_with
                .map(|u| u.as_bytes().to_vec())
                .unwrap_or_default(),
        }),
        Payload::MessagesRead { room, up_to } => Wire::MessagesRead(proto::MessagesRead {
            room_id: room.as_bytes().to_vec(),
            up_to_seq: *up_to,
        }),
        Payload::MemberJoined { room, user } => Wire::MemberJoined(proto::MemberJoined {
            room_id: room.as_bytes().to_vec(),
            user_id: user.as_bytes().to_vec(),
        }),
        Payload::MemberLeft { room, user } => Wire::MemberLeft(proto::MemberLeft {
            room_id: room.as_bytes().to_vec(),
            user_id: user.as_bytes().to_vec(),
        }),
        Payload::MessageSent {
            room,
            body,
            client_id,
            reply_to,
        } => Wire::MessageSent(proto::MessageSent {
            room_id: room.as_bytes().to_vec(),
            body: body.clone(),
            client_id: client_id.clone().unwrap_or_default(),
            reply_to: reply_to.map(|r| r.as_bytes().to_vec()).unwrap_or_default(),
        }),
        Payload::MessageEdited {
            room,
            message,
            message_seq,
            body,
        } => Wire::MessageEdited(proto::MessageEdited {
            room_id: room.as_bytes().to_vec(),
            message_id: message.as_bytes().to_vec(),
            message_seq: *message_seq,
            body: body.clone(),
        }),
        Payload::MessageDeleted {
            room,
            message,
            message_seq,
            message_time_ms,
        } => Wire::MessageDeleted(proto::MessageDeleted {
            room_id: room.as_bytes().to_vec(),
            message_id: message.as_bytes().to_vec(),
            message_seq: *message_seq,
            message_time_ms: *message_time_ms,
        }),
        Payload::UserRegistered {
            user,
            username,
            email,
            display_name,
            password_hash,
        } => Wire::UserRegistered(proto::UserRegistered {
            user_id: user.as_bytes().to_vec(),
            username: username.clone(),
            email: email.clone(),
            display_name: display_name.clone(),
            password_hash: password_hash.clone(),
        }),
        Payload::LoggedIn {
            user,
            session,
            refresh_hash,
            ip,
            user_agent,
            expires_ms,
        } => Wire::LoggedIn(proto::LoggedIn {
            user_id: user.as_bytes().to_vec(),
            session_id: session.as_bytes().to_vec(),
            refresh_hash: refresh_hash.clone(),
            ip: ip.clone(),
            user_agent: user_agent.clone(),
            expires_ms: *expires_ms,
        }),
        Payload::LoginFailed {
            username,
            ip,
            reason,
        } => Wire::LoginFailed(proto::LoginFailed {
            username: username.clone(),
            ip: ip.clone(),
            reason: reason.clone(),
        }),
        Payload::TokenRefreshed {
            session,
            refresh_hash,
            ip,
            expires_ms,
        } => Wire::TokenRefreshed(proto::TokenRefreshed {
            session_id: session.as_bytes().to_vec(),
            refresh_hash: refresh_hash.clone(),
            ip: ip.clone(),
            expires_ms: *expires_ms,
        }),
        Payload::SessionRevoked { session, reason } => {
            Wire::SessionRevoked(proto::SessionRevoked {
                session_id: session.as_bytes().to_vec(),
                reason: reason.clone(),
            })
        }
        Payload::PasswordChanged {
            user,
            password_hash,
        } => Wire::PasswordChanged(proto::PasswordChanged {
            user_id: user.as_bytes().to_vec(),
            password_hash: password_hash.clone(),
        }),
        Payload::ProfileUpdated {
            user,
            display_name,
            bio,
            avatar_media_id,
        } => Wire::ProfileUpdated(proto::ProfileUpdated {
            user_id: user.as_bytes().to_vec(),
            display_name: display_name.clone(),
            bio: bio.clone(),
            avatar_media_id: avatar_media_id.clone(),
        }),
        Payload::PostCreated {
            content,
            media_ids,
            mentions,
        } => Wire::PostCreated(proto::PostCreated {
            content: content.clone(),
            media_ids: media_ids.clone(),
            mentions: user_bytes(mentions),
        }),
        Payload::PostEdited {
            post,
            post_seq,
            content,
            media_ids,
            mentions,
        } => Wire::PostEdited(proto::PostEdited {
            post_id: post.as_bytes().to_vec(),
            post_seq: *post_seq,
            content: content.clone(),
            media_ids: media_ids.clone(),
            mentions: user_bytes(mentions),
        }),
        Payload::PostDeleted { post, post_seq } => Wire::PostDeleted(proto::PostDeleted {
            post_id: post.as_bytes().to_vec(),
            post_seq: *post_seq,
        }),
        Payload::PostLiked {
            post,
            post_seq,
            post_author,
        } => Wire::PostLiked(proto::PostLiked {
            post_id: post.as_bytes().to_vec(),
            post_seq: *post_seq,
            post_author: post_author.as_bytes().to_vec(),
        }),
        Payload::PostUnliked {
            post,
            post_seq,
            post_author,
            like_seq,
        } => Wire::PostUnliked(proto::PostUnliked {
            post_id: post.as_bytes().to_vec(),
            post_seq: *post_seq,
            post_author: post_author.as_bytes().to_vec(),
            like_seq: *like_seq,
        }),
        Payload::CommentAdded {
            post,
            post_seq,
            post_author,
            content,
            mentions,
        } => Wire::CommentAdded(proto::CommentAdded {
            post_id: post.as_bytes().to_vec(),
            post_seq: *post_seq,
            post_author: post_author.as_bytes().to_vec(),
            content: content.clone(),
            mentions: user_bytes(mentions),
        }),
        Payload::CommentDeleted {
            comment,
            comment_seq,
            post,
            post_seq,
            post_author,
        } => Wire::CommentDeleted(proto::CommentDeleted {
            comment_id: comment.as_bytes().to_vec(),
            comment_seq: *comment_seq,
            post_id: post.as_bytes().to_vec(),
            post_seq: *post_seq,
            post_author: post_author.as_bytes().to_vec(),
        }),
        Payload::UserFollowed { user } => Wire::UserFollowed(proto::UserFollowed {
            user_id: user.as_bytes().to_vec(),
        }),
        Payload::UserUnfollowed { user, follow_seq } => {
            Wire::UserUnfollowed(proto::UserUnfollowed {
                user_id: user.as_bytes().to_vec(),
                follow_seq: *follow_seq,
            })
        }
        Payload::NotificationsRead { up_to } => {
            Wire::NotificationsRead(proto::NotificationsRead { up_to_seq: *up_to })
        }
        Payload::Unknown { .. } => return None,
    })
}

fn user_bytes(users: &[UserId]) -> Vec<Vec<u8>> {
    users.iter().map(|u| u.as_bytes().to_vec()).collect()
}

fn envelope(bytes: &[u8]) -> Result<proto::Envelope, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&FORMAT_VERSION, rest)) => Ok(proto::Envelope::decode(rest)?),
        Some((&other, _)) => Err(DecodeError::UnsupportedFormat(other)),
    }
}

/// Reads only the envelope's type name (for filtering without building the payload).
pub fn peek_type(bytes: &[u8]) -> Result<String, DecodeError> {
    Ok(envelope(bytes)?.r#type)
}

/// Decodes a log entry.
pub fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    let env = envelope(bytes)?;
    let id = EventId::from_slice(&env.event_id).ok_or(DecodeError::InvalidId("event_id"))?;
    let actor = match env.actor.as_slice() {
        [] => None,
        raw => Some(UserId::from_slice(raw).ok_or(DecodeError::InvalidId("actor"))?),
    };
    let room = |raw: &[u8]| RoomId::from_slice(raw).ok_or(DecodeError::InvalidId("room_id"));
    let user = |raw: &[u8]| UserId::from_slice(raw).ok_or(DecodeError::InvalidId("user_id"));
    let session =
        |raw: &[u8]| SessionId::from_slice(raw).ok_or(DecodeError::InvalidId("session_id"));
    let post = |raw: &[u8]| EventId::from_slice(raw).ok_or(DecodeError::InvalidId("post_id"));
    let author = |raw: &[u8]| UserId::from_slice(raw).ok_or(DecodeError::InvalidId("post_author"));
    let mentions = |raw: Vec<Vec<u8>>| {
        raw.iter()
            .map(|m| UserId::from_slice(m).ok_or(DecodeError::InvalidId("mentions")))
            .collect::<Result<Vec<_>, _>>()
    };
    let payload = match env.payload {
        Some(Wire::RoomCreated(p)) => Payload::RoomCreated {
            room: room(&p.room_id)?,
            title: p.title,
            direct_with: match p.direct_with.as_slice() {
                [] => None,
                bytes => Some(user(bytes)?),
            },
        },
        Some(Wire::MessagesRead(p)) => Payload::MessagesRead {
            room: room(&p.room_id)?,
            up_to: p.up_to_seq,
        },
        Some(Wire::MemberJoined(p)) => Payload::MemberJoined {
            room: room(&p.room_id)?,
            user: user(&p.user_id)?,
        },
        Some(Wire::MemberLeft(p)) => Payload::MemberLeft {
            room: room(&p.room_id)?,
            user: user(&p.user_id)?,
        },
        Some(Wire::MessageSent(p)) => Payload::MessageSent {
            room: room(&p.room_id)?,
            body: p.body,
            client_id: Some(p.client_id).filter(|c| !c.is_empty()),
            reply_to: match p.reply_to.as_slice() {
                [] => None,
                raw => Some(EventId::from_slice(raw).ok_or(DecodeError::InvalidId("reply_to"))?),
            },
        },
        Some(Wire::MessageEdited(p)) => Payload::MessageEdited {
            room: room(&p.room_id)?,
            message: EventId::from_slice(&p.message_id)
                .ok_or(DecodeError::InvalidId("message_id"))?,
            message_seq: p.message_seq,
            body: p.body,
        },
        Some(Wire::MessageDeleted(p)) => Payload::MessageDeleted {
            room: room(&p.room_id)?,
            message: EventId::from_slice(&p.message_id)
                .ok_or(DecodeError::InvalidId("message_id"))?,
            message_seq: p.message_seq,
            message_time_ms: p.message_time_ms,
        },
        Some(Wire::UserRegistered(p)) => Payload::UserRegistered {
            user: user(&p.user_id)?,
            username: p.username,
            email: p.email,
            display_name: p.display_name,
            password_hash: p.password_hash,
        },
        Some(Wire::LoggedIn(p)) => Payload::LoggedIn {
            user: user(&p.user_id)?,
            session: session(&p.session_id)?,
            refresh_hash: p.refresh_hash,
            ip: p.ip,
            user_agent: p.user_agent,
            expires_ms: p.expires_ms,
        },
        Some(Wire::LoginFailed(p)) => Payload::LoginFailed {
            username: p.username,
            ip: p.ip,
            reason: p.reason,
        },
        Some(Wire::TokenRefreshed(p)) => Payload::TokenRefreshed {
            session: session(&p.session_id)?,
            refresh_hash: p.refresh_hash,
            ip: p.ip,
            expires_ms: p.expires_ms,
        },
        Some(Wire::SessionRevoked(p)) => Payload::SessionRevoked {
            session: session(&p.session_id)?,
            reason: p.reason,
        },
        Some(Wire::PasswordChanged(p)) => Payload::PasswordChanged {
            user: user(&p.user_id)?,
            password_hash: p.password_hash,
        },
        Some(Wire::ProfileUpdated(p)) => Payload::ProfileUpdated {
            user: user(&p.user_id)?,
            display_name: p.display_name,
            bio: p.bio,
            avatar_media_id: p.avatar_media_id,
        },
        Some(Wire::PostCreated(p)) => Payload::PostCreated {
            content: p.content,
            media_ids: p.media_ids,
            mentions: mentions(p.mentions)?,
        },
        Some(Wire::PostEdited(p)) => Payload::PostEdited {
            post: post(&p.post_id)?,
            post_seq: p.post_seq,
            content: p.content,
            media_ids: p.media_ids,
            mentions: mentions(p.mentions)?,
        },
        Some(Wire::PostDeleted(p)) => Payload::PostDeleted {
            post: post(&p.post_id)?,
            post_seq: p.post_seq,
        },
        Some(Wire::PostLiked(p)) => Payload::PostLiked {
            post: post(&p.post_id)?,
            post_seq: p.post_seq,
            post_author: author(&p.post_author)?,
        },
        Some(Wire::PostUnliked(p)) => Payload::PostUnliked {
            post: post(&p.post_id)?,
            post_seq: p.post_seq,
            post_author: author(&p.post_author)?,
            like_seq: p.like_seq,
        },
        Some(Wire::CommentAdded(p)) => Payload::CommentAdded {
            post: post(&p.post_id)?,
            post_seq: p.post_seq,
            post_author: author(&p.post_author)?,
            content: p.content,
            mentions: mentions(p.mentions)?,
        },
        Some(Wire::CommentDeleted(p)) => Payload::CommentDeleted {
            comment: EventId::from_slice(&p.comment_id)
                .ok_or(DecodeError::InvalidId("comment_id"))?,
            comment_seq: p.comment_seq,
            post: post(&p.post_id)?,
            post_seq: p.post_seq,
            post_author: author(&p.post_author)?,
        },
        Some(Wire::UserFollowed(p)) => Payload::UserFollowed {
            user: user(&p.user_id)?,
        },
        Some(Wire::UserUnfollowed(p)) => Payload::UserUnfollowed {
            user: user(&p.user_id)?,
            follow_seq: p.follow_seq,
        },
        Some(Wire::NotificationsRead(p)) => Payload::NotificationsRead { up_to: p.up_to_seq },
        None => Payload::Unknown {
            type_name: env.r#type,
        },
    };
    Ok(Event {
        seq: env.seq,
        commit_time_ms: env.commit_time_ms,
        id,
        actor,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: Payload) -> Event {
        Event {
            seq: 42,
            commit_time_ms: 1_700_000_000_123,
            id: EventId::new_v7(),
            actor: Some(UserId::new_v7()),
            payload,
        }
    }

    #[test]
    fn every_payload_round_trips() {
        let room = RoomId::new_v7();
        let payloads = [
            Payload::RoomCreated {
                room,
                title: "general".into(),
                direct_with: None,
            },
            Payload::RoomCreated {
                room,
                title: String::new(),
                direct_with: Some(UserId::new_v7()),
            },
            Payload::MessagesRead { room, up_to: 42 },
            Payload::MemberJoined {
                room,
                user: UserId::new_v7(),
            },
            Payload::MemberLeft {
                room,
                user: UserId::new_v7(),
            },
            Payload::MessageSent {
                room,
                body: "héllo".into(),
                client_id: Some("c-1".into()),
                reply_to: Some(EventId::new_v7()),
            },
            Payload::MessageSent {
                room,
                body: "no key".into(),
                client_id: None,
                reply_to: None,
            },
            Payload::MessageEdited {
                room,
                message: EventId::new_v7(),
                message_seq: 3,
                body: "fixed".into(),
            },
            Payload::MessageDeleted {
                room,
                message: EventId::new_v7(),
                message_seq: 3,
                message_time_ms: 7,
            },
            Payload::UserRegistered {
                user: UserId::new_v7(),
                username: "alice".into(),
                email: "a@example.org".into(),
                display_name: "Alice".into(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            },
            Payload::LoggedIn {
                user: UserId::new_v7(),
                session: SessionId::new_v7(),
                refresh_hash: vec![7; 32],
                ip: "127.0.0.1".into(),
                user_agent: "curl/8".into(),
                expires_ms: 99,
            },
            Payload::LoginFailed {
                username: "alice".into(),
                ip: "::1".into(),
                reason: "wrong_password".into(),
            },
            Payload::TokenRefreshed {
                session: SessionId::new_v7(),
                refresh_hash: vec![9; 32],
                ip: "127.0.0.1".into(),
                expires_ms: 5,
            },
            Payload::SessionRevoked {
                session: SessionId::new_v7(),
                reason: "logout".into(),
            },
            Payload::PasswordChanged {
                user: UserId::new_v7(),
                password_hash: "$argon2id$x".into(),
            },
            Payload::ProfileUpdated {
                user: UserId::new_v7(),
                display_name: Some("A".into()),
                bio: None,
                avatar_media_id: Some(String::new()),
            },
            Payload::PostCreated {
                content: "hi @bob".into(),
                media_ids: vec!["m1".into(), "m2".into()],
                mentions: vec![UserId::new_v7()],
            },
            Payload::PostEdited {
                post: EventId::new_v7(),
                post_seq: 4,
                content: "fixed".into(),
                media_ids: vec![],
                mentions: vec![],
            },
            Payload::PostDeleted {
                post: EventId::new_v7(),
                post_seq: 4,
            },
            Payload::PostLiked {
                post: EventId::new_v7(),
                post_seq: 4,
                post_author: UserId::new_v7(),
            },
            Payload::PostUnliked {
                post: EventId::new_v7(),
                post_seq: 4,
                post_author: UserId::new_v7(),
                like_seq: 5,
            },
            Payload::CommentAdded {
                post: EventId::new_v7(),
                post_seq: 4,
                post_author: UserId::new_v7(),
                content: "nice".into(),
                mentions: vec![UserId::new_v7(), UserId::new_v7()],
            },
            Payload::CommentDeleted {
                comment: EventId::new_v7(),
                comment_seq: 9,
                post: EventId::new_v7(),
                post_seq: 4,
                post_author: UserId::new_v7(),
            },
            Payload::UserFollowed {
                user: UserId::new_v7(),
            },
            Payload::UserUnfollowed {
                user: UserId::new_v7(),
                follow_seq: 3,
            },
            Payload::NotificationsRead { up_to: 12 },
        ];
        for payload in payloads {
            let event = sample(payload);
            assert_eq!(decode_event(&encode_event(&event)).unwrap(), event);
        }
    }

    #[test]
    fn system_actor_is_empty() {
        let mut event = sample(Payload::RoomCreated {
            room: RoomId::new_v7(),
            title: "t".into(),
            direct_with: None,
        });
        event.actor = None;
        assert_eq!(decode_event(&encode_event(&event)).unwrap().actor, None);
    }

    #[test]
    fn unknown_fields_and_payloads_are_tolerated() {
        // A newer writer: an unknown payload (field 99, length-delimited) and an unknown
        // varint field (50) beside the known envelope fields.
        let known = proto::Envelope {
            seq: 7,
            commit_time_ms: 5,
            event_id: EventId::new_v7().as_bytes().to_vec(),
            actor: vec![],
            r#type: "feed.post.created".into(),
            payload: None,
        };
        let mut bytes = vec![FORMAT_VERSION];
        known.encode_raw(&mut bytes);
        bytes.extend_from_slice(&[(99 << 3 | 2) as u8 & 0x7f | 0x80, 0x06, 3, b'a', b'b', b'c']);
        bytes.extend_from_slice(&[(50 << 3) as u8 & 0x7f | 0x80, 0x03, 1]);
        let event = decode_event(&bytes).unwrap();
        assert_eq!(event.seq, 7);
        assert_eq!(
            event.payload,
            Payload::Unknown {
                type_name: "feed.post.created".into()
            }
        );
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        assert!(matches!(decode_event(&[]), Err(DecodeError::Empty)));
        assert!(matches!(
            decode_event(&[9, 1, 2]),
            Err(DecodeError::UnsupportedFormat(9))
        ));
        assert!(matches!(
            decode_event(&[FORMAT_VERSION, 0xff, 0xff]),
            Err(DecodeError::Protobuf(_))
        ));
        let mut short_id = vec![FORMAT_VERSION];
        proto::Envelope {
            event_id: vec![1, 2, 3],
            ..Default::default()
        }
        .encode_raw(&mut short_id);
        assert!(matches!(
            decode_event(&short_id),
            Err(DecodeError::InvalidId("event_id"))
        ));
    }
}
