//! Chat queries and mutations: rooms (group and direct), members, messages, read receipts and
//! typing. The objects they answer with are in `chat_types.rs`; subscriptions in
//! `subscriptions.rs`.

use super::args::{
    engine, message_id_arg, page_size, parse_id, presence, room_id_arg, user_id_arg,
};
use super::chat_types::{
    CreatedRoom, LogHead, MessageAck, MessageConnection, MessageNode, PageInfo, ReadReceipt, Room,
    RoomConnection, RoomPageInfo,
};
use super::errors::{changing_principal, gql, principal};
use super::scalars::Seq;
use async_graphql::{Context, ID, Object, Result};
use girok_engine::{ChatCommand, Command, HistoryQuery, RoomCursor, RoomsQuery};
use girok_schemas::{RoomId, rfc3339_millis};

/// Chat queries.
#[derive(Default)]
pub struct ChatQuery;

#[Object]
impl ChatQuery {
    /// The newest durable event.
    async fn log_head(&self, ctx: &Context<'_>) -> Result<LogHead> {
        let status = engine(ctx)?.status();
        Ok(LogHead {
            seq: Seq(status.log.head),
            durability: format!("{:?}", status.log.durability).to_lowercase(),
        })
    }

    /// A room you are a member of. `after`: answer once the views reflect this seq.
    async fn room(&self, ctx: &Context<'_>, id: ID, after: Option<Seq>) -> Result<Room> {
        let room = room_id_arg("id", &id)?;
        let actor = principal(ctx)?.user;
        let info = engine(ctx)?
            .room(actor, room, after.map(|s| s.0))
            .await
            .map_err(gql)?;
        Ok(Room(info))
    }

    /// Your rooms, most recent activity first, with their last message and your unread
    /// count. `first`: page size (1 to 100, default 20); `cursor`: the `endCursor` of the
    /// previous page; `after`: answer once the views reflect this seq.
    async fn rooms(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        cursor: Option<String>,
        after: Option<Seq>,
    ) -> Result<RoomConnection> {
        let query = RoomsQuery {
            cursor: cursor
                .map(|c| c.parse::<RoomCursor>())
                .transpose()
                .map_err(gql)?,
            limit: page_size(first, girok_engine::limits::MAX_ROOMS_PAGE_SIZE)?,
            after: after.map(|s| s.0),
        };
        let actor = principal(ctx)?.user;
        let page = engine(ctx)?.rooms(actor, query).await.map_err(gql)?;
        Ok(RoomConnection {
            page_info: RoomPageInfo {
                has_next_page: page.next_cursor.is_some(),
                end_cursor: page.next_cursor.map(|c| c.to_string()),
            },
            nodes: page.rooms.into_iter().map(Room).collect(),
        })
    }

    /// A room's messages, newest first. `first`: page size (1 to 100, default 20); `before`:
    /// the `endCursor` of the previous page (older messages); `since`: the `startCursor` of a
    /// page (newer messages: the oldest ones after it); `after`: answer once the history
    /// reflects this seq (read your writes: pass the seq `sendMessage` returned).
    async fn messages(
        &self,
        ctx: &Context<'_>,
        room_id: ID,
        first: Option<i32>,
        before: Option<Seq>,
        since: Option<Seq>,
        after: Option<Seq>,
    ) -> Result<MessageConnection> {
        let room = room_id_arg("roomId", &room_id)?;
        let query = HistoryQuery {
            before: before.map(|s| s.0),
            since: since.map(|s| s.0),
            limit: page_size(first, girok_engine::limits::MAX_PAGE_SIZE)?,
            after: after.map(|s| s.0),
        };
        let actor = principal(ctx)?.user;
        let page = engine(ctx)?
            .messages(actor, room, query)
            .await
            .map_err(gql)?;
        Ok(MessageConnection {
            page_info: PageInfo {
                has_next_page: page.has_older,
                end_cursor: page.messages.last().map(|m| Seq(m.seq)),
                has_previous_page: page.has_newer,
                start_cursor: page.messages.first().map(|m| Seq(m.seq)),
            },
            nodes: page.messages.into_iter().map(MessageNode).collect(),
        })
    }
}

/// Chat mutations.
#[derive(Default)]
pub struct ChatMutation;

#[Object]
impl ChatMutation {
    /// Creates a group room (title: 1 to 100 characters) that you own, with you and
    /// `memberIds` (existing users; at most 999) as its members.
    async fn create_room(
        &self,
        ctx: &Context<'_>,
        title: String,
        member_ids: Option<Vec<ID>>,
    ) -> Result<CreatedRoom> {
        let members = member_ids
            .unwrap_or_default()
            .iter()
            .map(|m| user_id_arg("memberIds", m))
            .collect::<Result<Vec<_>>>()?;
        let actor = changing_principal(ctx)?.user;
        let ack = engine(ctx)?
            .execute(
                actor,
                Command::Chat(ChatCommand::CreateRoom { title, members }),
            )
            .await
            .map_err(gql)?;
        let info = engine(ctx)?
            .room(actor, RoomId(ack.id.0), None)
            .await
            .map_err(gql)?;
        Ok(CreatedRoom {
            id: ID(info.id.to_string()),
            title: info.title,
            seq: Seq(ack.seq),
            created: true,
        })
    }

    /// The direct room of you and `userId`: created on first use, the same room afterwards.
    async fn open_direct_room(&self, ctx: &Context<'_>, user_id: ID) -> Result<CreatedRoom> {
        let peer = user_id_arg("userId", &user_id)?;
        let actor = changing_principal(ctx)?.user;
        let ack = engine(ctx)?
            .execute(actor, Command::Chat(ChatCommand::OpenDirectRoom { peer }))
            .await
            .map_err(gql)?;
        Ok(CreatedRoom {
            id: ID(ack.id.to_string()),
            title: String::new(),
            seq: Seq(ack.seq),
            created: !ack.duplicate,
        })
    }

    /// Adds a member to a group room you own (at most 1,000 members).
    async fn add_member(&self, ctx: &Context<'_>, room_id: ID, user_id: ID) -> Result<Seq> {
        let room = room_id_arg("roomId", &room_id)?;
        let user = user_id_arg("userId", &user_id)?;
        execute_for_seq(ctx, Command::Chat(ChatCommand::AddMember { room, user })).await
    }

    /// Removes a member from a group room you own.
    async fn remove_member(&self, ctx: &Context<'_>, room_id: ID, user_id: ID) -> Result<Seq> {
        let room = room_id_arg("roomId", &room_id)?;
        let user = user_id_arg("userId", &user_id)?;
        execute_for_seq(ctx, Command::Chat(ChatCommand::RemoveMember { room, user })).await
    }

    /// Leaves a group room (its owner only once alone; direct rooms cannot be left).
    async fn leave_room(&self, ctx: &Context<'_>, room_id: ID) -> Result<Seq> {
        let room = room_id_arg("roomId", &room_id)?;
        execute_for_seq(ctx, Command::Chat(ChatCommand::LeaveRoom { room })).await
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
        attachments: Option<Vec<ID>>,
    ) -> Result<MessageAck> {
        let room = room_id_arg("roomId", &room_id)?;
        let reply_to = reply_to
            .map(|id| message_id_arg("replyTo", &id))
            .transpose()?;
        let attachments = attachments
            .unwrap_or_default()
            .iter()
            .map(|id| parse_id("attachments", "a media id", id))
            .collect::<Result<Vec<_>>>()?;
        let actor = changing_principal(ctx)?.user;
        let command = Command::Chat(ChatCommand::SendMessage {
            room,
            body,
            client_id,
            reply_to,
            attachments,
        });
        let ack = engine(ctx)?.execute(actor, command).await.map_err(gql)?;
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
        let command = Command::Chat(ChatCommand::EditMessage {
            message,
            body,
            in_room: None,
        });
        execute_for_seq(ctx, command).await
    }

    /// Deletes one of your messages: it leaves the history and every view.
    async fn delete_message(&self, ctx: &Context<'_>, message_id: ID) -> Result<Seq> {
        let message = message_id_arg("messageId", &message_id)?;
        let command = Command::Chat(ChatCommand::DeleteMessage {
            message,
            in_room: None,
        });
        execute_for_seq(ctx, command).await
    }

    /// A read receipt: you have read the room up to `upToSeq` (default: everything so far).
    /// Receipts only move forward; an older one changes nothing.
    async fn mark_read(
        &self,
        ctx: &Context<'_>,
        room_id: ID,
        up_to_seq: Option<Seq>,
    ) -> Result<ReadReceipt> {
        let room = room_id_arg("roomId", &room_id)?;
        let actor = changing_principal(ctx)?.user;
        let command = Command::Chat(ChatCommand::MarkRead {
            room,
            up_to: up_to_seq.map(|s| s.0),
        });
        let ack = engine(ctx)?.execute(actor, command).await.map_err(gql)?;
        Ok(ReadReceipt {
            room_id,
            read_up_to_seq: Seq(ack.read_up_to.unwrap_or_default()),
            seq: Seq(ack.seq),
        })
    }

    /// Tells the room's members you are typing (ephemeral: shown for 5 seconds, never logged).
    async fn typing(&self, ctx: &Context<'_>, room_id: ID) -> Result<bool> {
        let room = room_id_arg("roomId", &room_id)?;
        let actor = changing_principal(ctx)?.user;
        presence(ctx)?
            .member_typing(engine(ctx)?, room, actor)
            .await
            .map_err(gql)?;
        Ok(true)
    }
}

/// Executes a change as the principal; answers the seq to read it with.
async fn execute_for_seq(ctx: &Context<'_>, command: Command) -> Result<Seq> {
    let actor = changing_principal(ctx)?.user;
    let ack = engine(ctx)?.execute(actor, command).await.map_err(gql)?;
    Ok(Seq(ack.seq))
}
