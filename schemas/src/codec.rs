//! The byte form of an event: one format byte, then the protobuf `Envelope`.
//!
//! The format byte changes only if the envelope itself is replaced by something protobuf cannot
//! evolve into; new fields and new event types keep it at 1. Unknown fields are skipped and
//! unknown payloads decode as [`Payload::Unknown`], so an older girok reads a newer log.

use crate::event::{Event, Payload};
use crate::ids::{EventId, UserId};
use crate::proto;
use crate::wire::{DecodeError, FORMAT_VERSION};
use prost::Message;

/// Encodes an event for the log.
pub fn encode_event(event: &Event) -> Vec<u8> {
    let envelope = envelope_of(event);
    let mut out = Vec::with_capacity(1 + envelope.encoded_len());
    out.push(FORMAT_VERSION);
    // Encoding into a Vec cannot fail: it grows as needed.
    envelope.encode_raw(&mut out);
    out
}

/// The protobuf envelope of an event (the log's form without its format byte; the QUIC
/// protocol's events carry it).
pub fn envelope_of(event: &Event) -> proto::Envelope {
    proto::Envelope {
        seq: event.seq,
        commit_time_ms: event.commit_time_ms,
        event_id: event.id.as_bytes().to_vec(),
        actor: event
            .actor
            .map(|a| a.as_bytes().to_vec())
            .unwrap_or_default(),
        r#type: event.type_name().to_owned(),
        payload: event.payload.to_wire(),
    }
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
    let payload = match env.payload {
        Some(wire) => Payload::from_wire(wire)?,
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
    use crate::ids::{RoomId, SessionId};

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
    fn the_type_is_read_without_the_payload() {
        for payload in Payload::samples() {
            let event = sample(payload);
            let bytes = encode_event(&event);
            assert_eq!(peek_type(&bytes).unwrap(), event.type_name());
        }
        assert!(peek_type(&[]).is_err());
        assert!(peek_type(&[FORMAT_VERSION, 0xff]).is_err());
        assert!(peek_type(&[9, 1, 2]).is_err());
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
                attachments: vec![EventId::new_v7(), EventId::new_v7()],
            },
            Payload::MessageSent {
                room,
                body: "no key".into(),
                client_id: None,
                reply_to: None,
                attachments: Vec::new(),
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
    fn every_type_in_the_table_round_trips() {
        let samples = Payload::samples();
        assert!(samples.len() >= 24);
        for payload in samples {
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
        bytes.extend_from_slice(&[((90 << 3) & 0x7f | 0x80) as u8, (90 << 3 >> 7) as u8, 1]);
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
