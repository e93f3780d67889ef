//! Chat commands: rooms, members, read receipts and messages, validated before they reach the
//! sequencer so that the writer thread only does write-model checks.

use crate::error::{Error, Result};
use crate::limits::{
    MAX_CLIENT_ID_BYTES, MAX_MESSAGE_ATTACHMENTS, MAX_MESSAGE_BYTES, MAX_ROOM_MEMBERS,
    MAX_ROOM_TITLE_CHARS,
};
use crate::write_kind::WriteKind;
use girok_schemas::{EventId, RoomId, Seq, UserId};

/// A change to rooms, their members or their messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatCommand {
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
        /// Ready media of the sender (at most [`MAX_MESSAGE_ATTACHMENTS`]).
        attachments: Vec<EventId>,
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
}

impl ChatCommand {
    /// The per-user write budget it spends from; leaving and read receipts spend none (they
    /// are cheap and bounded by the rooms one is in).
    pub(crate) fn write_kind(&self) -> Option<WriteKind> {
        match self {
            ChatCommand::SendMessage { .. }
            | ChatCommand::EditMessage { .. }
            | ChatCommand::DeleteMessage { .. } => Some(WriteKind::Messages),
            ChatCommand::CreateRoom { .. }
            | ChatCommand::OpenDirectRoom { .. }
            | ChatCommand::AddMember { .. }
            | ChatCommand::RemoveMember { .. } => Some(WriteKind::Rooms),
            ChatCommand::LeaveRoom { .. } | ChatCommand::MarkRead { .. } => None,
        }
    }

    /// Checks and normalizes client input (trims the title; keeps message bodies verbatim).
    pub fn validated(self) -> Result<ChatCommand> {
        match self {
            ChatCommand::CreateRoom { title, members } => {
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
                Ok(ChatCommand::CreateRoom { title, members })
            }
            ChatCommand::EditMessage {
                message,
                body,
                in_room,
            } => {
                check_body(&body)?;
                Ok(ChatCommand::EditMessage {
                    message,
                    body,
                    in_room,
                })
            }
            ChatCommand::SendMessage {
                room,
                body,
                client_id,
                reply_to,
                attachments,
            } => {
                check_body(&body)?;
                let max = MAX_MESSAGE_ATTACHMENTS;
                crate::media::check_media_list("attachments", &attachments, max, "message")?;
                if let Some(id) = &client_id {
                    let printable = id.bytes().all(|b| b.is_ascii_graphic());
                    if id.is_empty() || id.len() > MAX_CLIENT_ID_BYTES || !printable {
                        return Err(Error::invalid(
                            "clientId",
                            format!("1 to {MAX_CLIENT_ID_BYTES} printable ASCII characters"),
                        ));
                    }
                }
                Ok(ChatCommand::SendMessage {
                    room,
                    body,
                    client_id,
                    reply_to,
                    attachments,
                })
            }
            other @ (ChatCommand::OpenDirectRoom { .. }
            | ChatCommand::AddMember { .. }
            | ChatCommand::RemoveMember { .. }
            | ChatCommand::LeaveRoom { .. }
            | ChatCommand::MarkRead { .. }
            | ChatCommand::DeleteMessage { .. }) => Ok(other),
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

    fn send(body: &str, client_id: Option<&str>) -> Result<ChatCommand> {
        ChatCommand::SendMessage {
            room: RoomId::new_v7(),
            body: body.into(),
            client_id: client_id.map(Into::into),
            reply_to: None,
            attachments: Vec::new(),
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
            ChatCommand::CreateRoom {
                title: t.into(),
                members: Vec::new(),
            }
            .validated()
        };
        assert_eq!(
            create("  lobby ").unwrap(),
            ChatCommand::CreateRoom {
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
            ChatCommand::CreateRoom {
                title: "t".into(),
                members,
            }
            .validated()
        };
        let twice = vec![users[0], users[1], users[0]];
        let ChatCommand::CreateRoom { members, .. } = create(twice).unwrap() else {
            unreachable!()
        };
        assert_eq!(members.len(), 2);
        assert!(create(users[..MAX_ROOM_MEMBERS - 1].to_vec()).is_ok());
        assert_eq!(create(users).unwrap_err().code(), "INVALID_ARGUMENT");
    }
}
