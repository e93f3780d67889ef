//! Chat's effect on the write model: rooms, direct pairs, memberships with their count, read
//! markers, idempotency records of sends, deletion marks of messages.

use crate::error::Result;
use crate::records::{idempotency_key, member_key, pair_key, request_hash, update};
use girok_schemas::proto::{IdempotentAck, MessageRecord, RoomRecord};
use girok_schemas::{Event, Payload, RoomId};
use girok_storage::{Table, Txn};
use prost::Message;

fn update_room(
    txn: &mut Txn<'_>,
    room: RoomId,
    change: impl FnOnce(&mut RoomRecord),
) -> Result<()> {
    update(txn, (Table::RoomidRoom, room.as_bytes(), "room"), change)
}

/// Applies the event's effect on the write model, if it is one of this domain's.
pub(crate) fn apply(txn: &mut Txn<'_>, event: &Event) -> Result<()> {
    let actor = event.actor;
    match &event.payload {
        Payload::RoomCreated {
            room,
            title,
            direct_with,
        } => {
            let record = RoomRecord {
                title: title.clone(),
                creator: actor.map(|a| a.as_bytes().to_vec()).unwrap_or_default(),
                created_seq: event.seq,
                direct_with: direct_with
                    .map(|u| u.as_bytes().to_vec())
                    .unwrap_or_default(),
                member_count: 0,
                matched: false,
            };
            txn.put(
                Table::RoomidRoom,
                room.as_bytes().to_vec(),
                record.encode_to_vec(),
            );
            if let (Some(opener), Some(peer)) = (actor, direct_with) {
                txn.put(
                    Table::UserpairRoomid,
                    pair_key(opener, *peer),
                    room.as_bytes().to_vec(),
                );
            }
        }
        Payload::MemberJoined { room, user } => {
            txn.put(
                Table::RoomidUseridMember,
                member_key(*room, *user),
                Vec::new(),
            );
            update_room(txn, *room, |r| r.member_count += 1)?;
        }
        Payload::MemberLeft { room, user } => {
            txn.delete(Table::RoomidUseridMember, member_key(*room, *user));
            update_room(txn, *room, |r| {
                r.member_count = r.member_count.saturating_sub(1)
            })?;
        }
        // A match that opens its room itself (older logs have the room's events beside it):
        // the room, titled, marked as a match's. Its members are the match's two users while
        // the match lasts, which matching's rows say (`chat/membership.rs`): no member rows,
        // and nothing written when the match ends (README, Benchmarks → Random matching,
        // stop 61).
        Payload::Matched {
            room,
            room_title: Some(title),
            ..
        } => {
            let record = RoomRecord {
                title: title.clone(),
                creator: Vec::new(),
                created_seq: event.seq,
                direct_with: Vec::new(),
                member_count: 2,
                matched: true,
            };
            txn.put(
                Table::RoomidRoom,
                room.as_bytes().to_vec(),
                record.encode_to_vec(),
            );
        }
        // A skip that takes both out of the room itself. Rows of a match made before stop 61
        // (when its members had rows) go; a lookup costs less than a write.
        Payload::MatchSkipped {
            members_left: true, ..
        } => {
            for member in event.memberships() {
                let key = member_key(member.room, member.user);
                if txn.contains(Table::RoomidUseridMember, &key)? {
                    txn.delete(Table::RoomidUseridMember, key);
                }
            }
        }
        Payload::MessagesRead { room, up_to } => {
            if let Some(reader) = actor {
                txn.put(
                    Table::RoomidUseridRead,
                    member_key(*room, reader),
                    up_to.to_be_bytes().to_vec(),
                );
            }
        }
        Payload::MessageSent {
            room,
            body,
            client_id,
            attachments,
            ..
        } => {
            // Messages with seq-derived ids need no row: the log is their index.
            if !super::message_record::id_derived_from(event.id, event.seq) {
                let record = MessageRecord {
                    room_id: room.as_bytes().to_vec(),
                    sender: actor.map(|a| a.as_bytes().to_vec()).unwrap_or_default(),
                    seq: event.seq,
                    commit_time_ms: event.commit_time_ms,
                    deleted: false,
                };
                txn.put(
                    Table::MessageidMessage,
                    event.id.as_bytes().to_vec(),
                    record.encode_to_vec(),
                );
            }
            if let (Some(actor), Some(client_id)) = (actor, client_id) {
                let ack = IdempotentAck {
                    seq: event.seq,
                    event_id: event.id.as_bytes().to_vec(),
                    commit_time_ms: event.commit_time_ms,
                    request_hash: request_hash(*room, body, attachments),
                };
                txn.put(
                    Table::ActorClientidAck,
                    idempotency_key(actor, client_id),
                    ack.encode_to_vec(),
                );
            }
        }
        Payload::MessageEdited { .. } => {}
        Payload::MessageDeleted {
            message,
            message_seq,
            ..
        } => {
            if super::message_record::id_derived_from(*message, *message_seq) {
                txn.put(
                    Table::MessageseqDeleted,
                    message_seq.to_be_bytes().to_vec(),
                    Vec::new(),
                );
            } else {
                let key = (
                    Table::MessageidMessage,
                    message.as_bytes().as_slice(),
                    "message",
                );
                update(txn, key, |record: &mut MessageRecord| record.deleted = true)?;
            }
        }
        _ => {}
    }
    Ok(())
}
