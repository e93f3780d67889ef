//! The GraphQL objects of chat: rooms (with the reader's unread count, members, presence and
//! typing), messages, pages and acks.

use super::args::{engine, presence};
use super::errors::{gql, principal};
use super::scalars::Seq;
use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use girok_engine::{Message, RoomInfo};
use girok_schemas::rfc3339_millis;

fn id(value: impl ToString) -> ID {
    ID(value.to_string())
}

/// The log's head.
#[derive(SimpleObject)]
pub struct LogHead {
    /// Seq of the newest durable event (0 for an empty log).
    pub seq: Seq,
    /// `sync` or `buffered`.
    pub durability: String,
}

/// The answer to `createRoom` and `openDirectRoom`.
#[derive(SimpleObject)]
pub struct CreatedRoom {
    pub id: ID,
    pub title: String,
    /// Pass as `after` to read views that include the room.
    pub seq: Seq,
    /// False when `openDirectRoom` found the pair's existing room.
    pub created: bool,
}

/// The ack of a durable send.
#[derive(SimpleObject)]
pub struct MessageAck {
    /// The message's seq; pass as `after` to read your write.
    pub seq: Seq,
    /// The message's id.
    pub id: ID,
    pub created_at: String,
    /// True when this answers a retry of an earlier send with the same `clientId`.
    pub duplicate: bool,
}

/// The answer to `markRead`.
#[derive(SimpleObject)]
pub struct ReadReceipt {
    pub room_id: ID,
    /// How far the room now counts as read (receipts never move back).
    pub read_up_to_seq: Seq,
    /// Pass as `after` to read views that include the receipt.
    pub seq: Seq,
}

/// Cursor pagination of a history, newest first.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Older messages exist: pass `endCursor` as `before`.
    pub has_next_page: bool,
    /// The oldest message of the page.
    pub end_cursor: Option<Seq>,
    /// Newer messages exist: pass `startCursor` as `since`.
    pub has_previous_page: bool,
    /// The newest message of the page.
    pub start_cursor: Option<Seq>,
}

/// A page of messages, newest first.
#[derive(SimpleObject)]
pub struct MessageConnection {
    pub nodes: Vec<MessageNode>,
    pub page_info: PageInfo,
}

/// Cursor pagination of a room list.
#[derive(SimpleObject)]
pub struct RoomPageInfo {
    pub has_next_page: bool,
    /// Pass as `cursor` for the next page.
    pub end_cursor: Option<String>,
}

/// A page of rooms, most recent activity first.
#[derive(SimpleObject)]
pub struct RoomConnection {
    pub nodes: Vec<Room>,
    pub page_info: RoomPageInfo,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum RoomKind {
    /// Two users, one room per pair; its members never change.
    Direct,
    /// A title, an owner who adds and removes members, up to 1,000 members.
    Group,
}

/// A room, as the reader sees it.
pub struct Room(pub RoomInfo);

#[Object]
impl Room {
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    async fn kind(&self) -> RoomKind {
        if self.0.is_direct() {
            RoomKind::Direct
        } else {
            RoomKind::Group
        }
    }
    /// Empty for a direct room (show the other member's name).
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// Who created the room: a group room's owner.
    async fn creator_id(&self) -> Option<ID> {
        self.0.creator.map(id)
    }
    /// For a direct room: the other member.
    async fn direct_with_id(&self) -> Option<ID> {
        self.0.direct_with.map(id)
    }
    async fn created_seq(&self) -> Seq {
        Seq(self.0.created_seq)
    }
    async fn member_count(&self) -> u32 {
        self.0.member_count
    }
    async fn message_count(&self) -> u64 {
        self.0.message_count as u64
    }
    async fn last_message(&self) -> Option<MessageNode> {
        self.0.last_message.clone().map(MessageNode)
    }
    /// Seq of the newest message.
    async fn last_message_seq(&self) -> Option<Seq> {
        self.0.last_message.as_ref().map(|m| Seq(m.seq))
    }
    /// Time of the newest message (RFC 3339).
    async fn last_message_at(&self) -> Option<String> {
        self.0
            .last_message
            .as_ref()
            .map(|m| rfc3339_millis(m.commit_time_ms))
    }
    /// The later of the last message and your joining: room lists are ordered by it.
    async fn last_activity_at(&self) -> String {
        rfc3339_millis(self.0.last_activity.1)
    }
    async fn last_activity_seq(&self) -> Seq {
        Seq(self.0.last_activity.0)
    }
    /// How far you have read (0: nothing yet). Sending a message also marks the room read.
    async fn read_up_to_seq(&self) -> Seq {
        Seq(self.0.read_up_to)
    }
    /// Messages after `readUpToSeq`, counted up to 10,000.
    async fn unread_count(&self) -> u32 {
        self.0.unread_count as u32
    }
    /// Every member (at most 1,000) with their read receipt and presence.
    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<MemberNode>> {
        let actor = principal(ctx)?.user;
        let members = engine(ctx)?
            .members(actor, self.0.id, None)
            .await
            .map_err(gql)?;
        let presence = presence(ctx)?;
        Ok(members
            .into_iter()
            .map(|m| {
                let status = presence.status(m.user);
                MemberNode {
                    user_id: id(m.user),
                    read_up_to_seq: Seq(m.read_up_to),
                    online: status.online,
                    last_seen_at: status.last_seen_ms.map(rfc3339_millis),
                }
            })
            .collect())
    }
    /// Members typing now (within the last 5 seconds).
    async fn typing(&self, ctx: &Context<'_>) -> Result<Vec<ID>> {
        Ok(presence(ctx)?
            .typing_in(self.0.id)
            .into_iter()
            .map(id)
            .collect())
    }
}

/// A member of a room.
#[derive(SimpleObject)]
pub struct MemberNode {
    pub user_id: ID,
    /// Their read receipt: how far they have read (0: nothing yet).
    pub read_up_to_seq: Seq,
    /// A live WebSocket with a heartbeat in the last 60 seconds.
    pub online: bool,
    /// Their last heartbeat since the server started.
    pub last_seen_at: Option<String>,
}

/// A message.
pub struct MessageNode(pub Message);

#[Object(name = "Message")]
impl MessageNode {
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    async fn seq(&self) -> Seq {
        Seq(self.0.seq)
    }
    async fn room_id(&self) -> ID {
        id(self.0.room)
    }
    async fn sender_id(&self) -> Option<ID> {
        self.0.sender.map(id)
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn client_id(&self) -> Option<&str> {
        self.0.client_id.as_deref()
    }
    /// The message this one answers.
    async fn reply_to_id(&self) -> Option<ID> {
        self.0.reply_to.map(id)
    }
    /// Its media that are ready (readable by the room's members; a deleted one is gone).
    async fn attachments(&self, ctx: &Context<'_>) -> Result<Vec<super::media::Media>> {
        let ids: Vec<String> = self.0.attachments.iter().map(|m| m.to_string()).collect();
        super::media::media_of(ctx, &ids).await
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
