//! The acknowledgement a durable command answers with: the seq of what it appended (read with
//! `after: seq` to see it), the id of what it created, and what some commands add.

use girok_schemas::{EventId, RoomId, Seq, SessionId, UserId};

/// The acknowledgement of a durable command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The seq of the last event the command appended; reading with `after: seq` sees it.
    pub seq: Seq,
    /// The id of what the command created (room, message), or of its event.
    pub id: EventId,
    pub commit_time_ms: i64,
    /// True when this is the stored ack of an earlier send with the same client id.
    pub duplicate: bool,
    /// For logins and refreshes: the session's user and id.
    pub session: Option<(UserId, SessionId)>,
    /// For a refresh: the token had already been rotated; the session is now revoked.
    pub reuse_detected: bool,
    /// For a read receipt: how far the room now counts as read.
    pub read_up_to: Option<Seq>,
    /// For a matching join (or a skip that re-queued) that found a partner waiting: the match
    /// room and the partner (the ack's seq is the match's).
    pub matched: Option<(RoomId, UserId)>,
}

impl Ack {
    /// The ack of an appended event, with no extras.
    pub(crate) fn of(event: &girok_schemas::Event) -> Self {
        Self::new(event.seq, event.id, event.commit_time_ms)
    }

    /// The ack of an event (or of what already existed) with no extras.
    pub fn new(seq: Seq, id: EventId, commit_time_ms: i64) -> Self {
        Self {
            seq,
            id,
            commit_time_ms,
            duplicate: false,
            session: None,
            reuse_detected: false,
            read_up_to: None,
            matched: None,
        }
    }
}
