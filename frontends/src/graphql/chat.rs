//! The chat operations of the spine: rooms, messages and the log head.

use super::errors::{changing_principal, gql, invalid, principal};
use super::scalars::Seq;
use async_graphql::{Context, ID, Object, Result, SimpleObject};
use girok_engine::{Command, Engine, HistoryQuery, Message, RoomInfo};
use girok_schemas::{RoomId, rfc3339_millis};
use std::sync::Arc;

fn engine<'a>(ctx: &Context<'a>) -> Result<&'a Arc<Engine>> {
    ctx.data::<Arc<Engine>>()
        .map_err(|e| gql(girok_engine::Error::Internal(e.message)))
}

fn room_id(field: &'static str, id: &ID) -> Result<RoomId> {
    id.parse().map_err(|_| {
        invalid(
            field,
            format!("{:?} is not a room id (a UUID)", id.as_str()),
        )
    })
}

/// Chat queries.
#[derive(Default)]
pub struct ChatQuery;

#[Object]
impl ChatQuery {
    /// The newest durable event.
    async fn log_head(&self, ctx: &Context<'_>) -> Result<LogHead> {
        let engine = engine(ctx)?;
        let status = engine.status();
        Ok(LogHead {
            seq: Seq(status.log.head),
            durability: format!("{:?}", status.log.durability).to_lowercase(),
        })
    }

    /// A room you are a member of. `after`: answer once the views reflect this seq.
    async fn room(&self, ctx: &Context<'_>, id: ID, after: Option<Seq>) -> Result<Room> {
        let room = room_id("id", &id)?;
        let actor = principal(ctx)?.user;
        let info = engine(ctx)?
            .room(actor, room, after.map(|s| s.0))
            .await
            .map_err(gql)?;
        Ok(Room(info))
    }

    /// A room's messages, newest first. `first`: page size (1 to 100, default 20); `before`:
    /// the `endCursor` of the previous page; `after`: answer once the history reflects this
    /// seq (read your writes: pass the seq `sendMessage` returned).
    async fn messages(
        &self,
        ctx: &Context<'_>,
        room_id: ID,
        first: Option<i32>,
        before: Option<Seq>,
        after: Option<Seq>,
    ) -> Result<MessageConnection> {
        let room = room_id_arg(&room_id)?;
        let limit = match first {
            Some(n) if n < 1 => return Err(invalid("first", "must be between 1 and 100")),
            Some(n) => Some(n as usize),
            None => None,
        };
        let actor = principal(ctx)?.user;
        let page = engine(ctx)?
            .messages(
                actor,
                room,
                HistoryQuery {
                    before: before.map(|s| s.0),
                    limit,
                    after: after.map(|s| s.0),
                },
            )
            .await
            .map_err(gql)?;
        let end_cursor = page.messages.last().map(|m| Seq(m.seq));
        Ok(MessageConnection {
            nodes: page.messages.into_iter().map(MessageNode).collect(),
            page_info: PageInfo {
                has_next_page: page.has_more,
                end_cursor,
            },
        })
    }
}

fn room_id_arg(id: &ID) -> Result<RoomId> {
    room_id("roomId", id)
}

fn message_id_arg(field: &'static str, id: &ID) -> Result<girok_schemas::EventId> {
    id.parse().map_err(|_| {
        invalid(
            field,
            format!("{:?} is not a message id (a UUID)", id.as_str()),
        )
    })
}

/// Chat mutations.
#[derive(Default)]
pub struct ChatMutation;

#[Object]
impl ChatMutation {
    /// Creates a room (title: 1 to 100 characters); you become its first member.
    async fn create_room(&self, ctx: &Context<'_>, title: String) -> Result<CreatedRoom> {
        let actor = changing_principal(ctx)?.user;
        let engine = engine(ctx)?;
        let ack = engine
            .execute(actor, Command::CreateRoom { title })
            .await
            .map_err(gql)?;
        let info = engine
            .room(actor, RoomId(ack.id.0), None)
            .await
            .map_err(gql)?;
        Ok(CreatedRoom {
            id: ID(info.id.to_string()),
            title: info.title,
            seq: Seq(ack.seq),
        })
    }

    /// Sends a message (1 byte to 4 KiB of UTF-8). `clientId` (1 to 64 printable ASCII
    /// characters) makes the send idempotent: a retry with the same id returns the first ack.
    /// `replyTo`: the id of a message of the same room this one answers.
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        room_id: ID,
        body: String,
        client_id: Option<String>,
        reply_to: Option<ID>,
    ) -> Result<MessageAck> {
        let room = room_id_arg(&room_id)?;
        let reply_to = reply_to
            .map(|id| message_id_arg("replyTo", &id))
            .transpose()?;
        let actor = changing_principal(ctx)?.user;
        let ack = engine(ctx)?
            .execute(
                actor,
                Command::SendMessage {
                    room,
                    body,
                    client_id,
                    reply_to,
                },
            )
            .await
            .map_err(gql)?;
        Ok(MessageAck {
            seq: Seq(ack.seq),
            id: ID(ack.id.to_string()),
            created_at: rfc3339_millis(ack.commit_time_ms),
            duplicate: ack.duplicate,
        })
    }

    /// Replaces the text of one of your messages (1 byte to 4 KiB); history shows it edited.
    async fn edit_message(&self, ctx: &Context<'_>, message_id: ID, body: String) -> Result<Seq> {
        let message = message_id_arg("messageId", &message_id)?;
        let command = Command::EditMessage {
            message,
            body,
            in_room: None,
        };
        execute_for_seq(ctx, command).await
    }

    /// Deletes one of your messages: it leaves the history and every view.
    async fn delete_message(&self, ctx: &Context<'_>, message_id: ID) -> Result<Seq> {
        let message = message_id_arg("messageId", &message_id)?;
        let command = Command::DeleteMessage {
            message,
            in_room: None,
        };
        execute_for_seq(ctx, command).await
    }

    /// Joins a room. (Until the chat issue adds owners and invitations, any room is open.)
    async fn join_room(&self, ctx: &Context<'_>, room_id: ID) -> Result<Seq> {
        let room = room_id_arg(&room_id)?;
        execute_for_seq(ctx, Command::JoinRoom { room }).await
    }

    /// Leaves a room.
    async fn leave_room(&self, ctx: &Context<'_>, room_id: ID) -> Result<Seq> {
        let room = room_id_arg(&room_id)?;
        execute_for_seq(ctx, Command::LeaveRoom { room }).await
    }
}

/// Executes a change as the principal; answers the seq to read it with.
async fn execute_for_seq(ctx: &Context<'_>, command: Command) -> Result<Seq> {
    let actor = changing_principal(ctx)?.user;
    let ack = engine(ctx)?.execute(actor, command).await.map_err(gql)?;
    Ok(Seq(ack.seq))
}

/// The log's head.
#[derive(SimpleObject)]
pub struct LogHead {
    /// Seq of the newest durable event (0 for an empty log).
    seq: Seq,
    /// `sync` or `buffered`.
    durability: String,
}

/// The answer to `createRoom`.
#[derive(SimpleObject)]
pub struct CreatedRoom {
    id: ID,
    title: String,
    /// Pass as `after` to read views that include the new room.
    seq: Seq,
}

/// The ack of a durable send.
#[derive(SimpleObject)]
pub struct MessageAck {
    /// The message's seq; pass as `after` to read your write.
    seq: Seq,
    /// The message's id.
    id: ID,
    created_at: String,
    /// True when this answers a retry of an earlier send with the same `clientId`.
    duplicate: bool,
}

/// Cursor pagination state.
#[derive(SimpleObject)]
pub struct PageInfo {
    has_next_page: bool,
    /// Pass as `before` to get the next (older) page.
    end_cursor: Option<Seq>,
}

/// A page of messages.
#[derive(SimpleObject)]
pub struct MessageConnection {
    nodes: Vec<MessageNode>,
    page_info: PageInfo,
}

/// A room.
pub struct Room(RoomInfo);

#[Object]
impl Room {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn creator_id(&self) -> Option<ID> {
        self.0.creator.map(|c| ID(c.to_string()))
    }
    async fn created_seq(&self) -> Seq {
        Seq(self.0.created_seq)
    }
    async fn message_count(&self) -> u64 {
        self.0.message_count as u64
    }
    /// Seq of the newest message.
    async fn last_message_seq(&self) -> Option<Seq> {
        self.0.last_message.map(|(seq, _)| Seq(seq))
    }
    /// Time of the newest message (RFC 3339).
    async fn last_message_at(&self) -> Option<String> {
        self.0.last_message.map(|(_, ms)| rfc3339_millis(ms))
    }
}

/// A message.
pub struct MessageNode(Message);

#[Object(name = "Message")]
impl MessageNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn seq(&self) -> Seq {
        Seq(self.0.seq)
    }
    async fn room_id(&self) -> ID {
        ID(self.0.room.to_string())
    }
    async fn sender_id(&self) -> Option<ID> {
        self.0.sender.map(|s| ID(s.to_string()))
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn client_id(&self) -> Option<&str> {
        self.0.client_id.as_deref()
    }
    /// The message this one answers.
    async fn reply_to_id(&self) -> Option<ID> {
        self.0.reply_to.map(|r| ID(r.to_string()))
    }
    /// Whether the text was edited, and when last.
    async fn edited(&self) -> bool {
        self.0.edited_ms.is_some()
    }
    async fn edited_at(&self) -> Option<String> {
        self.0.edited_ms.map(rfc3339_millis)
    }
    async fn created_at(&self) -> String {
        rfc3339_millis(self.0.commit_time_ms)
    }
}
