//! Commands: what a client asks the engine to change, validated before it reaches the
//! sequencer so that the writer thread only does write-model checks.

use crate::accounts::AccountCommand;
use crate::error::{Error, Result};
use crate::feed::FeedCommand;
use crate::limits::{
    MAX_CLIENT_ID_BYTES, MAX_MESSAGE_BYTES, MAX_ROOM_MEMBERS, MAX_ROOM_TITLE_CHARS,
};
use girok_schemas::{EventId, RoomId, Seq, SessionId, UserId};

/// A request to change state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A group room owned by the actor, who becomes its first member with `members`.
    CreateRoom {
        title: String,
        /// Other users to add at once (duplicates and the actor are ignored).
        members: Vec<UserId>,
    },
    /// The one direct room of the actor and `peer`: created with both as members on first
    /// use, returned as it is afterwards.
    OpenDirectRoom { peer: UserId },
    /// The owner of a group room adds a member.
    AddMember { room: RoomId, user: UserId },
    /// The owner of a group room removes a member.
    RemoveMember { room: RoomId, user: UserId },
    /// A member leaves a group room (the owner only once alone).
    LeaveRoom { room: RoomId },
    /// A read receipt: the actor has read `room` up to `up_to` (default: everything so far).
    /// A receipt that would move the marker backwards changes nothing.
    MarkRead { room: RoomId, up_to: Option<Seq> },
    SendMessage {
        room: RoomId,
        body: String,
        client_id: Option<String>,
        /// The id of a message of the same room this one answers.
        reply_to: Option<EventId>,
    },
    /// Replaces the text of one of your messages. `in_room`: the room the caller addressed
    /// (a REST path); a message of another room is then not found.
    EditMessage {
        message: EventId,
        body: String,
        in_room: Option<RoomId>,
    },
    /// Removes one of your messages from every view (`in_room` as for edits).
    DeleteMessage {
        message: EventId,
        in_room: Option<RoomId>,
    },
    /// Accounts and sessions (validated by the accounts module before submission).
    Account(AccountCommand),
    /// Posts, likes, comments, follows and notification receipts.
    Feed(FeedCommand),
}

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
}

impl Ack {
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
        }
    }
}

/// A command with the principal who issued it, as the sequencer receives it.
pub struct Submission {
    pub actor: UserId,
    pub command: Command,
    /// Pre-generated so the writer thread does not spend time on it.
    pub new_id: EventId,
}

impl Command {
    /// Checks and normalizes client input (trims the title; keeps message bodies verbatim).
    pub fn validated(self) -> Result<Command> {
        match self {
            Command::CreateRoom { title, members } => {
                let title = crate::text::name("title", &title, MAX_ROOM_TITLE_CHARS)?;
                let mut members = members;
                members.sort();
                members.dedup();
                if members.len() >= MAX_ROOM_MEMBERS {
                    return Err(Error::invalid(
                        "members",
                        format!(
                            "a room has at most {MAX_ROOM_MEMBERS} members, its owner included"
                        ),
                    ));
                }
                Ok(Command::CreateRoom { title, members })
            }
            Command::EditMessage {
                message,
                body,
                in_room,
            } => {
                check_body(&body)?;
                Ok(Command::EditMessage {
                    message,
                    body,
                    in_room,
                })
            }
            Command::SendMessage {
                room,
                body,
                client_id,
                reply_to,
            } => {
                check_body(&body)?;
                if let Some(id) = &client_id {
                    let printable = id.bytes().all(|b| b.is_ascii_graphic());
                    if id.is_empty() || id.len() > MAX_CLIENT_ID_BYTES || !printable {
                        return Err(Error::invalid(
                            "clientId",
                            format!("1 to {MAX_CLIENT_ID_BYTES} printable ASCII characters"),
                        ));
                    }
                }
                Ok(Command::SendMessage {
                    room,
                    body,
                    client_id,
                    reply_to,
                })
            }
            Command::Feed(command) => Ok(Command::Feed(command.validated()?)),
            other @ (Command::OpenDirectRoom { .. }
            | Command::AddMember { .. }
            | Command::RemoveMember { .. }
            | Command::LeaveRoom { .. }
            | Command::MarkRead { .. }
            | Command::DeleteMessage { .. }
            | Command::Account(_)) => Ok(other),
        }
    }
}

/// 1 byte to 4 KiB of UTF-8, not only whitespace, no control characters but newlines and tabs.
fn check_body(body: &str) -> Result<()> {
    if body.trim().is_empty() {
        return Err(Error::invalid("body", "must not be empty"));
    }
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(Error::invalid(
            "body",
            format!(
                "at most {MAX_MESSAGE_BYTES} bytes of UTF-8 (got {})",
                body.len()
            ),
        ));
    }
    // After the length: an oversized body is refused without a scan.
    crate::text::body("body", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(body: &str, client_id: Option<&str>) -> Result<Command> {
        Command::SendMessage {
            room: RoomId::new_v7(),
            body: body.into(),
            client_id: client_id.map(Into::into),
            reply_to: None,
        }
        .validated()
    }

    #[test]
    fn message_limits() {
        assert!(send("hi", None).is_ok());
        assert!(send(&"a".repeat(MAX_MESSAGE_BYTES), None).is_ok());
        assert_eq!(
            send(&"a".repeat(MAX_MESSAGE_BYTES + 1), None)
                .unwrap_err()
                .code(),
            "INVALID_ARGUMENT"
        );
        // 4 KiB counts bytes, not characters: 1366 three-byte characters are 4098 bytes.
        assert!(send(&"가".repeat(1366), None).is_err());
        assert!(send("   ", None).is_err());
        assert!(send("ok", Some("")).is_err());
        assert!(send("ok", Some("has space")).is_err());
        assert!(send("ok", Some(&"k".repeat(MAX_CLIENT_ID_BYTES + 1))).is_err());
        assert!(send("ok", Some("retry-1")).is_ok());
    }

    #[test]
    fn title_limits() {
        let create = |t: &str| {
            Command::CreateRoom {
                title: t.into(),
                members: Vec::new(),
            }
            .validated()
        };
        assert_eq!(
            create("  lobby ").unwrap(),
            Command::CreateRoom {
                title: "lobby".into(),
                members: Vec::new(),
            }
        );
        assert!(create(&"é".repeat(MAX_ROOM_TITLE_CHARS)).is_ok());
        assert!(create(&"é".repeat(MAX_ROOM_TITLE_CHARS + 1)).is_err());
        assert!(create(" ").is_err());
        assert!(create("a\u{0}b").is_err());
    }

    #[test]
    fn initial_members_are_deduplicated_and_capped() {
        let users: Vec<UserId> = (0..MAX_ROOM_MEMBERS).map(|_| UserId::new_v7()).collect();
        let create = |members: Vec<UserId>| {
            Command::CreateRoom {
                title: "t".into(),
                members,
            }
            .validated()
        };
        let twice = vec![users[0], users[1], users[0]];
        let Command::CreateRoom { members, .. } = create(twice).unwrap() else {
            unreachable!()
        };
        assert_eq!(members.len(), 2);
        assert!(create(users[..MAX_ROOM_MEMBERS - 1].to_vec()).is_ok());
        assert_eq!(create(users).unwrap_err().code(), "INVALID_ARGUMENT");
    }
}
