//! The sequencer: runs on the log writer thread and decides, against the write model, whether
//! a command may happen; if so it appends the command's events and updates the write model in
//! the same atomic batch. Invariants checked here: a room exists before anything happens in it,
//! only members send, membership changes make sense, and a client id names one message only.

use crate::command::{Ack, Command, Submission};
use crate::error::{Error, Result};
use girok_schemas::proto::{IdempotentAck, RoomRecord};
use girok_schemas::{Event, EventId, Payload, RoomId, UserId, encode_event};
use girok_storage::{Stager, Table, Txn};
use prost::Message;
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
                let ack = create_room(txn, actor, new_id, title)?;
                let room = RoomId(ack.id.0);
                self.rooms.insert(room);
                self.remember_member(room, actor);
                Ok(ack)
            }
            Command::JoinRoom { room } => {
                self.require_room(txn, room)?;
                if self.is_member(txn, room, actor)? {
                    return Err(Error::AlreadyMember(room));
                }
                txn.put(
                    Table::RoomidUseridMember,
                    member_key(room, actor),
                    Vec::new(),
                );
                self.remember_member(room, actor);
                Ok(append(
                    txn,
                    actor,
                    new_id,
                    Payload::MemberJoined { room, user: actor },
                ))
            }
            Command::LeaveRoom { room } => {
                self.require_room(txn, room)?;
                if !self.is_member(txn, room, actor)? {
                    return Err(Error::NotAMember(room));
                }
                txn.delete(Table::RoomidUseridMember, member_key(room, actor));
                self.members.remove(&(room, actor));
                Ok(append(
                    txn,
                    actor,
                    new_id,
                    Payload::MemberLeft { room, user: actor },
                ))
            }
            Command::SendMessage {
                room,
                body,
                client_id,
            } => self.send_message(txn, actor, new_id, room, body, client_id),
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

    fn send_message(
        &mut self,
        txn: &mut Txn<'_>,
        actor: UserId,
        new_id: EventId,
        room: RoomId,
        body: String,
        client_id: Option<String>,
    ) -> Result<Ack> {
        let idempotency = match &client_id {
            Some(id) => {
                let key = idempotency_key(actor, id);
                let request_hash = request_hash(room, &body);
                if let Some(stored) = txn.get(Table::ActorClientidAck, &key)? {
                    return stored_ack(&stored, request_hash, id);
                }
                Some((key, request_hash))
            }
            None => None,
        };
        self.require_room(txn, room)?;
        if !self.is_member(txn, room, actor)? {
            return Err(Error::NotAMember(room));
        }
        let ack = append(
            txn,
            actor,
            new_id,
            Payload::MessageSent {
                room,
                body,
                client_id,
            },
        );
        if let Some((key, request_hash)) = idempotency {
            let stored = IdempotentAck {
                seq: ack.seq,
                event_id: ack.id.as_bytes().to_vec(),
                commit_time_ms: ack.commit_time_ms,
                request_hash,
            };
            txn.put(Table::ActorClientidAck, key, stored.encode_to_vec());
        }
        Ok(ack)
    }
}

fn create_room(txn: &mut Txn<'_>, actor: UserId, new_id: EventId, title: String) -> Result<Ack> {
    let room = RoomId(new_id.0);
    let record = RoomRecord {
        title: title.clone(),
        creator: actor.as_bytes().to_vec(),
        created_seq: txn.next_seq(),
    };
    txn.put(
        Table::RoomidRoom,
        room.as_bytes().to_vec(),
        record.encode_to_vec(),
    );
    txn.put(
        Table::RoomidUseridMember,
        member_key(room, actor),
        Vec::new(),
    );
    let created = append(txn, actor, new_id, Payload::RoomCreated { room, title });
    // The creator is the room's first member; both events commit together.
    let joined = append(
        txn,
        actor,
        EventId::new_v7(),
        Payload::MemberJoined { room, user: actor },
    );
    Ok(Ack {
        seq: joined.seq,
        ..created
    })
}

fn stored_ack(bytes: &[u8], request_hash: u64, client_id: &str) -> Result<Ack> {
    let stored = IdempotentAck::decode(bytes)
        .map_err(|e| Error::Internal(format!("corrupt idempotency record: {e}")))?;
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
    })
}

fn append(txn: &mut Txn<'_>, actor: UserId, id: EventId, payload: Payload) -> Ack {
    let commit_time_ms = txn.commit_time_ms();
    let seq = txn.append(|seq| {
        encode_event(&Event {
            seq,
            commit_time_ms,
            id,
            actor: Some(actor),
            payload,
        })
    });
    Ack {
        seq,
        id,
        commit_time_ms,
        duplicate: false,
    }
}

/// `room (16) ++ user (16)`.
pub(crate) fn member_key(room: RoomId, user: UserId) -> Vec<u8> {
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(room.as_bytes());
    key.extend_from_slice(user.as_bytes());
    key
}

fn idempotency_key(actor: UserId, client_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + client_id.len());
    key.extend_from_slice(actor.as_bytes());
    key.extend_from_slice(client_id.as_bytes());
    key
}

/// Identifies a send's content, so a reused client id with other content is refused. Stored
/// on disk, so it must be a hash with a fixed definition (xxh3), not std's `DefaultHasher`.
fn request_hash(room: RoomId, body: &str) -> u64 {
    let mut bytes = Vec::with_capacity(16 + body.len());
    bytes.extend_from_slice(room.as_bytes());
    bytes.extend_from_slice(body.as_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes)
}
