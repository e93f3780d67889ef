//! The decoded form of a log entry: the envelope fields and a typed payload.

use crate::ids::{EventId, RoomId, Seq, UserId};

/// One committed event, as read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub seq: Seq,
    /// Commit time in milliseconds since the Unix epoch (UTC).
    pub commit_time_ms: i64,
    pub id: EventId,
    /// Who caused it; `None` for the system.
    pub actor: Option<UserId>,
    pub payload: Payload,
}

/// What happened. `Unknown` keeps the type name of an event written by a newer girok.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    RoomCreated {
        room: RoomId,
        title: String,
    },
    MemberJoined {
        room: RoomId,
        user: UserId,
    },
    MemberLeft {
        room: RoomId,
        user: UserId,
    },
    MessageSent {
        room: RoomId,
        body: String,
        client_id: Option<String>,
    },
    Unknown {
        type_name: String,
    },
}

impl Payload {
    /// The dotted type name stored in the envelope.
    pub fn type_name(&self) -> &str {
        match self {
            Payload::RoomCreated { .. } => "chat.room.created",
            Payload::MemberJoined { .. } => "chat.member.joined",
            Payload::MemberLeft { .. } => "chat.member.left",
            Payload::MessageSent { .. } => "chat.message.sent",
            Payload::Unknown { type_name } => type_name,
        }
    }

    /// The room an event belongs to, if it is a chat event.
    pub fn room(&self) -> Option<RoomId> {
        match self {
            Payload::RoomCreated { room, .. }
            | Payload::MemberJoined { room, .. }
            | Payload::MemberLeft { room, .. }
            | Payload::MessageSent { room, .. } => Some(*room),
            Payload::Unknown { .. } => None,
        }
    }
}

impl Event {
    /// The dotted type name, e.g. `chat.message.sent`.
    pub fn type_name(&self) -> &str {
        self.payload.type_name()
    }
}
