//! Chat's write-time rules, run by the sequencer on the writer thread: a room exists before
//! anything happens in it, only members send and read, only the owner of a group room changes
//! its members (up to 1,000), direct rooms never change, a pair of users has one direct room,
//! read receipts only move forward, a client id names one message only; a match room is left
//! by ending the match; users of whom one blocks the other exchange no direct messages.

use super::command::ChatCommand;
use super::message_record::message_record;
use crate::ack::Ack;
use crate::error::{Error, Result};
use crate::limits::MAX_ROOM_MEMBERS;
use crate::matching::MatchingStage;
use crate::matching::blocks::Blocks;
use crate::records::{idempotency_key, member_key, pair_key, record, request_hash, seq_value};
use crate::staging::{append, receipt};
use girok_schemas::proto::{IdempotentAck, MessageRecord, RoomRecord};
use girok_schemas::{EventId, Payload, RoomId, Seq, UserId};
use girok_storage::{Table, Txn};
use std::collections::{HashMap, HashSet};

/// Most entries the membership cache holds before it starts over (bounds its memory).
const MEMBER_CACHE_CAP: usize = 1 << 20;

/// The chat rules and what they remember. The sequencer is the only writer of the write
/// model, so positive answers can be kept in memory: rooms that exist and their kind (rooms
/// are never deleted and never change kind) and current memberships of rooms with member rows
/// (dropped on leave; a match room's are asked of matching: `membership.rs`). A miss reads
/// fjall through the transaction.
pub(crate) struct ChatStage {
    /// Rooms that exist, with their kind.
    rooms: HashMap<RoomId, KnownRoom>,
    /// Current memberships of rooms with member rows.
    members: HashSet<(RoomId, UserId)>,
    max_room_members: usize,
}

impl ChatStage {
    /// Group rooms hold at most `max_room_members` (capped at [`MAX_ROOM_MEMBERS`]).
    pub fn new(max_room_members: usize) -> Self {
        Self {
            rooms: HashMap::new(),
            members: HashSet::new(),
            max_room_members: max_room_members.clamp(1, MAX_ROOM_MEMBERS),
        }
    }

    /// Forgets what it remembered (the batch it learned it from did not commit).
    pub fn reset(&mut self) {
        self.rooms.clear();
        self.members.clear();
    }

    /// Checks one chat command against the write model and appends its events. `matches`
    /// says who is in a match room.
    pub fn stage(
        &mut self,
        txn: &mut Txn<'_>,
        blocks: &mut Blocks,
        matches: &mut MatchingStage,
        actor: UserId,
        new_id: EventId,
        command: ChatCommand,
    ) -> Result<Ack> {
        match command {
            ChatCommand::CreateRoom { title, members } => {
                self.create_room(txn, actor, new_id, title, members)
            }
            ChatCommand::OpenDirectRoom { peer } => {
                if peer != actor && blocks.between(txn, actor, peer)? {
                    return Err(Error::Blocked);
                }
                self.open_direct_room(txn, actor, new_id, peer)
            }
            ChatCommand::AddMember { room, user } => {
                let record = self.owned_group_room(txn, matches, actor, room)?;
                if self.is_member(txn, matches, room, user)? {
                    return Err(Error::AlreadyMember(room));
                }
                if record.member_count as usize >= self.max_room_members {
                    return Err(Error::RoomFull(room, self.max_room_members));
                }
                require_user(txn, user)?;
                let ack = append(txn, actor, new_id, Payload::MemberJoined { room, user })?;
                self.remember_member(room, user);
                Ok(ack)
            }
            ChatCommand::RemoveMember { room, user } => {
                self.owned_group_room(txn, matches, actor, room)?;
                if user == actor {
                    return Err(Error::invalid(
                        "userId",
                        "the owner cannot remove themselves (leave the room instead)",
                    ));
                }
                if !self.is_member(txn, matches, room, user)? {
                    return Err(Error::invalid("userId", "is not a member of this room"));
                }
                let ack = append(txn, actor, new_id, Payload::MemberLeft { room, user })?;
                self.members.remove(&(room, user));
                Ok(ack)
            }
            ChatCommand::LeaveRoom { room } => {
                let record = room_record(txn, room)?;
                if !self.is_member(txn, matches, room, actor)? {
                    return Err(Error::NotAMember(room));
                }
                if !record.direct_with.is_empty() {
                    return Err(Error::DirectRoom(room));
                }
                if record.matched {
                    return Err(Error::MatchRoom(room));
                }
                if record.creator == actor.as_bytes() && record.member_count > 1 {
                    return Err(Error::OwnerCannotLeave(room));
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
            ChatCommand::MarkRead { room, up_to } => {
                self.require_member(txn, matches, room, actor)?;
                let current = read_marker(txn, room, actor)?;
                receipt(txn, actor, new_id, current, up_to, |up_to| {
                    Payload::MessagesRead { room, up_to }
                })
            }
            ChatCommand::SendMessage {
                room,
                body,
                client_id,
                reply_to,
                attachments,
            } => {
                // A retry answers as the first send did, even after its sender left the room.
                let key = client_id.as_deref();
                if let Some(ack) = stored_send(txn, actor, room, &body, &attachments, key)? {
                    return Ok(ack);
                }
                if let Some((a, b)) = self.require_member(txn, matches, room, actor)?
                    && blocks.between(txn, a, b)?
                {
                    return Err(Error::Blocked);
                }
                if let Some(answered) = reply_to
                    && self.live_message(txn, matches, actor, answered)?.0 != room
                {
                    return Err(Error::MessageNotFound(answered));
                }
                crate::media::check_usable_ids(txn, actor, &attachments)?;
                // A message's id names its seq: the log is its index (no row of its own).
                let id = EventId::for_seq(txn.commit_time_ms(), txn.next_seq());
                let message = Payload::MessageSent {
                    room,
                    body,
                    client_id,
                    reply_to,
                    attachments,
                };
                append(txn, actor, id, message)
            }
            ChatCommand::EditMessage {
                message,
                body,
                in_room,
            } => {
                let (room, record) = self.own_message(txn, matches, actor, message, in_room)?;
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
            ChatCommand::DeleteMessage { message, in_room } => {
                let (room, record) = self.own_message(txn, matches, actor, message, in_room)?;
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
        }
    }

    fn create_room(
        &mut self,
        txn: &mut Txn<'_>,
        actor: UserId,
        new_id: EventId,
        title: String,
        members: Vec<UserId>,
    ) -> Result<Ack> {
        let others: Vec<UserId> = members.into_iter().filter(|m| *m != actor).collect();
        if others.len() >= self.max_room_members {
            return Err(Error::RoomFull(RoomId(new_id.0), self.max_room_members));
        }
        // Every check before the first append: the caches must only learn what commits.
        for user in &others {
            require_user(txn, *user)?;
        }
        let members = std::iter::once(actor).chain(others);
        self.open_room(txn, actor, new_id, title, None, members)
    }

    fn open_direct_room(
        &mut self,
        txn: &mut Txn<'_>,
        actor: UserId,
        new_id: EventId,
        peer: UserId,
    ) -> Result<Ack> {
        if peer == actor {
            return Err(Error::invalid("userId", "a direct room needs another user"));
        }
        require_user(txn, peer)?;
        if let Some(existing) = txn.get(Table::UserpairRoomid, &pair_key(actor, peer))? {
            let room = RoomId::from_slice(&existing)
                .ok_or_else(|| Error::Internal("corrupt direct room id".into()))?;
            let head = txn.next_seq() - 1;
            return Ok(Ack {
                duplicate: true,
                ..Ack::new(head, EventId(room.0), txn.commit_time_ms())
            });
        }
        self.open_room(txn, actor, new_id, String::new(), Some(peer), [actor, peer])
    }

    /// Appends a room's creation and its first members' joins (one batch, so they commit
    /// together); the ack names the room and carries the last join's seq.
    fn open_room(
        &mut self,
        txn: &mut Txn<'_>,
        actor: UserId,
        new_id: EventId,
        title: String,
        direct_with: Option<UserId>,
        members: impl IntoIterator<Item = UserId>,
    ) -> Result<Ack> {
        let room = RoomId(new_id.0);
        let created = append(
            txn,
            actor,
            new_id,
            Payload::RoomCreated {
                room,
                title,
                direct_with,
            },
        )?;
        let mut last = created.seq;
        for user in members {
            let joined = Payload::MemberJoined { room, user };
            last = append(txn, actor, EventId::new_v7(), joined)?.seq;
            self.remember_member(room, user);
        }
        let known = KnownRoom {
            direct: direct_with.map(|peer| (actor, peer)),
            by_match: false,
        };
        self.rooms.insert(room, known);
        Ok(Ack {
            seq: last,
            ..created
        })
    }

    /// A group room whose owner is `actor`.
    fn owned_group_room(
        &mut self,
        txn: &Txn<'_>,
        matches: &mut MatchingStage,
        actor: UserId,
        room: RoomId,
    ) -> Result<RoomRecord> {
        let record = room_record(txn, room)?;
        if !self.is_member(txn, matches, room, actor)? {
            return Err(Error::NotAMember(room));
        }
        if !record.direct_with.is_empty() {
            return Err(Error::DirectRoom(room));
        }
        if record.creator != actor.as_bytes() {
            return Err(Error::NotRoomOwner(room));
        }
        Ok(record)
    }

    /// The room exists and `user` is in it; its two users if it is a direct room.
    fn require_member(
        &mut self,
        txn: &Txn<'_>,
        matches: &mut MatchingStage,
        room: RoomId,
        user: UserId,
    ) -> Result<Option<(UserId, UserId)>> {
        let direct = self.known_room(txn, room)?.direct;
        if self.is_member(txn, matches, room, user)? {
            Ok(direct)
        } else {
            Err(Error::NotAMember(room))
        }
    }

    /// The room's kind, or `ROOM_NOT_FOUND`.
    fn known_room(&mut self, txn: &Txn<'_>, room: RoomId) -> Result<KnownRoom> {
        if let Some(known) = self.rooms.get(&room) {
            return Ok(*known);
        }
        let record = room_record(txn, room)?;
        let known = KnownRoom {
            direct: UserId::from_slice(&record.creator)
                .zip(UserId::from_slice(&record.direct_with)),
            by_match: super::membership::by_match(&record),
        };
        self.rooms.insert(room, known);
        Ok(known)
    }

    /// Whether `user` is in `room`, which exists.
    fn is_member(
        &mut self,
        txn: &Txn<'_>,
        matches: &mut MatchingStage,
        room: RoomId,
        user: UserId,
    ) -> Result<bool> {
        if self.known_room(txn, room)?.by_match {
            return Ok(matches.match_room_of(txn, user)? == Some(room));
        }
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
        matches: &mut MatchingStage,
        actor: UserId,
        message: EventId,
    ) -> Result<(RoomId, MessageRecord)> {
        let record = message_record(txn, message)?;
        let Some(record) = record.filter(|r| !r.deleted) else {
            return Err(Error::MessageNotFound(message));
        };
        let room = RoomId::from_slice(&record.room_id)
            .ok_or_else(|| Error::Internal("corrupt message record room".into()))?;
        if !self.is_member(txn, matches, room, actor)? {
            return Err(Error::MessageNotFound(message));
        }
        Ok((room, record))
    }

    /// A live message written by `actor`, and its room (which must be `in_room` if given).
    fn own_message(
        &mut self,
        txn: &Txn<'_>,
        matches: &mut MatchingStage,
        actor: UserId,
        message: EventId,
        in_room: Option<RoomId>,
    ) -> Result<(RoomId, MessageRecord)> {
        let (room, record) = self.live_message(txn, matches, actor, message)?;
        if in_room.is_some_and(|expected| expected != room) {
            return Err(Error::MessageNotFound(message));
        }
        if record.sender != actor.as_bytes() {
            return Err(Error::NotMessageAuthor(message));
        }
        Ok((room, record))
    }
}

/// What a send or a membership check needs of a room that exists.
#[derive(Clone, Copy)]
struct KnownRoom {
    /// Its two users if it is a direct room (a send checks blocks between them).
    direct: Option<(UserId, UserId)>,
    /// Its members are its match's (`membership.rs`).
    by_match: bool,
}

fn room_record(txn: &Txn<'_>, room: RoomId) -> Result<RoomRecord> {
    record(txn.get(Table::RoomidRoom, room.as_bytes())?, "room")?.ok_or(Error::RoomNotFound(room))
}

fn require_user(txn: &Txn<'_>, user: UserId) -> Result<()> {
    if txn.contains(Table::UseridUser, user.as_bytes())? {
        Ok(())
    } else {
        Err(Error::UserNotFound)
    }
}

/// How far `user` has read `room` (0: nothing yet).
fn read_marker(txn: &Txn<'_>, room: RoomId, user: UserId) -> Result<Seq> {
    Ok(seq_value(
        txn.get(Table::RoomidUseridRead, &member_key(room, user))?,
    ))
}

/// The stored ack of an earlier send with the same client id, if there is one.
fn stored_send(
    txn: &Txn<'_>,
    actor: UserId,
    room: RoomId,
    body: &str,
    attachments: &[EventId],
    client_id: Option<&str>,
) -> Result<Option<Ack>> {
    let Some(id) = client_id else {
        return Ok(None);
    };
    let key = idempotency_key(actor, id);
    match record::<IdempotentAck>(txn.get(Table::ActorClientidAck, &key)?, "idempotency")? {
        Some(stored) => stored_ack(stored, request_hash(room, body, attachments), id).map(Some),
        None => Ok(None),
    }
}

fn stored_ack(stored: IdempotentAck, request_hash: u64, client_id: &str) -> Result<Ack> {
    if stored.request_hash != request_hash {
        return Err(Error::IdempotencyKeyReused(client_id.to_owned()));
    }
    let id = EventId::from_slice(&stored.event_id)
        .ok_or_else(|| Error::Internal("corrupt idempotency record id".into()))?;
    Ok(Ack {
        duplicate: true,
        ..Ack::new(stored.seq, id, stored.commit_time_ms)
    })
}
