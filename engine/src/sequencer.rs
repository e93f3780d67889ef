//! The sequencer: runs on the log writer thread and decides, against the write model, whether
//! a command may happen; if so it appends the command's events, and each event's effect on the
//! write model ([`crate::write_model::apply`]) joins the same atomic batch. Invariants checked
//! here: a room exists before anything happens in it, only members send, membership changes
//! make sense, a client id names one message only; account rules live in `accounts::stage`.

use crate::command::{Ack, Command, Submission};
use crate::error::{Error, Result};
use crate::write_model::{idempotency_key, member_key, record, request_hash};
use girok_schemas::proto::{IdempotentAck, MessageRecord};
use girok_schemas::{Event, EventId, Payload, RoomId, UserId, encode_event};
use girok_storage::{Stager, Table, Txn};
use std::collections::HashSet;

/// Most entries the membership cache holds before it starts over (bounds its memory).
const MEMBER_CACHE_CAP: usize = 1 << 20;

/// The engine's [`Stager`]. It is the only writer of the write model, so it can keep positive
/// answers in memory: rooms that exist (rooms are never deleted) and current memberships
/// (dropped on leave). A miss reads fjall through the transaction.
#[derive(Default)]
pub struct Sequencer {
    rooms: HashSet<RoomId>,
    members: HashSet<(RoomId, UserId)>,
}

impl Stager for Sequencer {
    type Command = Submission;
    type Accepted = Ack;
    type Rejected = Error;

    fn stage(&mut self, submission: Submission, txn: &mut Txn<'_>) -> Result<Ack> {
        let Submission {
            actor,
            command,
            new_id,
        } = submission;
        match command {
            Command::CreateRoom { title } => {
                let room = RoomId(new_id.0);
                let created = append(txn, actor, new_id, Payload::RoomCreated { room, title })?;
                // The creator is the room's first member; both events commit together.
                let joined = append(
                    txn,
                    actor,
                    EventId::new_v7(),
                    Payload::MemberJoined { room, user: actor },
                )?;
                self.rooms.insert(room);
                self.remember_member(room, actor);
                Ok(Ack {
                    seq: joined.seq,
                    ..created
                })
            }
            Command::JoinRoom { room } => {
                self.require_room(txn, room)?;
                if self.is_member(txn, room, actor)? {
                    return Err(Error::AlreadyMember(room));
                }
                let ack = append(
                    txn,
                    actor,
                    new_id,
                    Payload::MemberJoined { room, user: actor },
                )?;
                self.remember_member(room, actor);
                Ok(ack)
            }
            Command::LeaveRoom { room } => {
                self.require_room(txn, room)?;
                if !self.is_member(txn, room, actor)? {
                    return Err(Error::NotAMember(room));
                }
                let ack = append(
                    txn,
                    actor,
                    new_id,
                    Payload::MemberLeft { room, user: actor },
                )?;
                self.members.remove(&(room, actor));
                Ok(ack)
            }
            Command::SendMessage {
                room,
                body,
                client_id,
                reply_to,
            } => self.send_message(txn, actor, new_id, room, body, client_id, reply_to),
            Command::EditMessage {
                message,
                body,
                in_room,
            } => {
                let (room, record) = self.own_message(txn, actor, message, in_room)?;
                append(
                    txn,
                    actor,
                    new_id,
                    Payload::MessageEdited {
                        room,
                        message,
                        message_seq: record.seq,
                        body,
                    },
                )
            }
            Command::DeleteMessage { message, in_room } => {
                let (room, record) = self.own_message(txn, actor, message, in_room)?;
                append(
                    txn,
                    actor,
                    new_id,
                    Payload::MessageDeleted {
                        room,
                        message,
                        message_seq: record.seq,
                        message_time_ms: record.commit_time_ms,
                    },
                )
            }
            Command::Account(command) => crate::accounts::stage(txn, new_id, command),
        }
    }
}

impl Sequencer {
    fn require_room(&mut self, txn: &Txn<'_>, room: RoomId) -> Result<()> {
        if self.rooms.contains(&room) {
            return Ok(());
        }
        if txn.contains(Table::RoomidRoom, room.as_bytes())? {
            self.rooms.insert(room);
            Ok(())
        } else {
            Err(Error::RoomNotFound(room))
        }
    }

    fn is_member(&mut self, txn: &Txn<'_>, room: RoomId, user: UserId) -> Result<bool> {
        if self.members.contains(&(room, user)) {
            return Ok(true);
        }
        let member = txn.contains(Table::RoomidUseridMember, &member_key(room, user))?;
        if member {
            self.remember_member(room, user);
        }
        Ok(member)
    }

    fn remember_member(&mut self, room: RoomId, user: UserId) {
        if self.members.len() >= MEMBER_CACHE_CAP {
            self.members.clear();
        }
        self.members.insert((room, user));
    }

    /// A live message and its room; the caller must be a member of that room (to anyone
    /// else it does not exist).
    fn live_message(
        &mut self,
        txn: &Txn<'_>,
        actor: UserId,
        message: EventId,
    ) -> Result<(RoomId, MessageRecord)> {
        let record: Option<MessageRecord> = record(
            txn.get(Table::MessageidMessage, message.as_bytes())?,
            "message",
        )?;
        let Some(record) = record.filter(|r| !r.deleted) else {
            return Err(Error::MessageNotFound(message));
        };
        let room = RoomId::from_slice(&record.room_id)
            .ok_or_else(|| Error::Internal("corrupt message record room".into()))?;
        if !self.is_member(txn, room, actor)? {
            return Err(Error::MessageNotFound(message));
        }
        Ok((room, record))
    }

    /// A live message written by `actor`, and its room (which must be `in_room` if given).
    fn own_message(
        &mut self,
        txn: &Txn<'_>,
        actor: UserId,
        message: EventId,
        in_room: Option<RoomId>,
    ) -> Result<(RoomId, MessageRecord)> {
        let (room, record) = self.live_message(txn, actor, message)?;
        if in_room.is_some_and(|expected| expected != room) {
            return Err(Error::MessageNotFound(message));
        }
        if record.sender != actor.as_bytes() {
            return Err(Error::NotMessageAuthor(message));
        }
        Ok((room, record))
    }

    #[allow(clippy::too_many_arguments)]
    fn send_message(
        &mut self,
        txn: &mut Txn<'_>,
        actor: UserId,
        new_id: EventId,
        room: RoomId,
        body: String,
        client_id: Option<String>,
        reply_to: Option<EventId>,
    ) -> Result<Ack> {
        if let Some(id) = &client_id
            && let Some(stored) = record::<IdempotentAck>(
                txn.get(Table::ActorClientidAck, &idempotency_key(actor, id))?,
                "idempotency",
            )?
        {
            return stored_ack(stored, request_hash(room, &body), id);
        }
        self.require_room(txn, room)?;
        if !self.is_member(txn, room, actor)? {
            return Err(Error::NotAMember(room));
        }
        if let Some(answered) = reply_to
            && self.live_message(txn, actor, answered)?.0 != room
        {
            return Err(Error::MessageNotFound(answered));
        }
        append(
            txn,
            actor,
            new_id,
            Payload::MessageSent {
                room,
                body,
                client_id,
                reply_to,
            },
        )
    }
}

fn stored_ack(stored: IdempotentAck, request_hash: u64, client_id: &str) -> Result<Ack> {
    if stored.request_hash != request_hash {
        return Err(Error::IdempotencyKeyReused(client_id.to_owned()));
    }
    let id = EventId::from_slice(&stored.event_id)
        .ok_or_else(|| Error::Internal("corrupt idempotency record id".into()))?;
    Ok(Ack {
        seq: stored.seq,
        id,
        commit_time_ms: stored.commit_time_ms,
        duplicate: true,
        session: None,
        reuse_detected: false,
    })
}

/// Appends an event by `actor` and applies it to the write model.
pub(crate) fn append(
    txn: &mut Txn<'_>,
    actor: UserId,
    id: EventId,
    payload: Payload,
) -> Result<Ack> {
    append_as(txn, Some(actor), id, payload)
}

/// The same; `actor` is `None` for events girok itself causes (a failed login).
pub(crate) fn append_as(
    txn: &mut Txn<'_>,
    actor: Option<UserId>,
    id: EventId,
    payload: Payload,
) -> Result<Ack> {
    let mut event = Event {
        seq: txn.next_seq(),
        commit_time_ms: txn.commit_time_ms(),
        id,
        actor,
        payload,
    };
    event.seq = txn.append(|_| encode_event(&event));
    crate::write_model::apply(txn, &event)?;
    Ok(Ack {
        seq: event.seq,
        id,
        commit_time_ms: event.commit_time_ms,
        duplicate: false,
        session: None,
        reuse_detected: false,
    })
}
