//! Matching's effect on the write model: each user's open ticket, each user's current match
//! (and the match room's mark), the pairs apart after a skip, and the current blocks.

use crate::error::Result;
use crate::records::{pair_key, pair_of, update};
use girok_schemas::proto::{MatchRecord, RoomRecord, TicketRecord};
use girok_schemas::{Event, Payload, RoomId};
use girok_storage::{Table, Txn};
use prost::Message;

/// Applies the event's effect on the write model, if it is one of this domain's.
pub(crate) fn apply(txn: &mut Txn<'_>, event: &Event) -> Result<()> {
    match &event.payload {
        Payload::TicketOpened { tags, language } => {
            if let Some(user) = event.actor {
                let record = TicketRecord {
                    ticket_id: event.id.as_bytes().to_vec(),
                    seq: event.seq,
                    opened_ms: event.commit_time_ms,
                    tags: tags.clone(),
                    language: language.clone().unwrap_or_default(),
                };
                txn.put(
                    Table::UseridTicket,
                    user.as_bytes().to_vec(),
                    record.encode_to_vec(),
                );
            }
        }
        Payload::TicketClosed { user, .. } => {
            txn.delete(Table::UseridTicket, user.as_bytes().to_vec());
        }
        Payload::Matched {
            room,
            user_a,
            user_b,
            ..
        } => {
            for (user, partner) in [(user_a, user_b), (user_b, user_a)] {
                // The ticket is still open here: its closing follows in the same batch.
                let ticket: TicketRecord = crate::records::record(
                    txn.get(Table::UseridTicket, user.as_bytes())?,
                    "ticket",
                )?
                .unwrap_or_default();
                let record = MatchRecord {
                    room_id: room.as_bytes().to_vec(),
                    partner: partner.as_bytes().to_vec(),
                    seq: event.seq,
                    matched_ms: event.commit_time_ms,
                    tags: ticket.tags,
                    language: ticket.language,
                };
                txn.put(
                    Table::UseridMatch,
                    user.as_bytes().to_vec(),
                    record.encode_to_vec(),
                );
            }
            mark_match_room(txn, *room)?;
        }
        Payload::MatchSkipped {
            partner, until_ms, ..
        } => {
            if let Some(skipper) = event.actor {
                txn.delete(Table::UseridMatch, skipper.as_bytes().to_vec());
                txn.delete(Table::UseridMatch, partner.as_bytes().to_vec());
                txn.put(
                    Table::UserpairSkip,
                    pair_key(skipper, *partner),
                    until_ms.to_be_bytes().to_vec(),
                );
            }
        }
        Payload::UserBlocked { user } => {
            if let Some(blocker) = event.actor {
                txn.put(
                    Table::BlockerBlocked,
                    pair_of(blocker.0, user.0),
                    event.seq.to_be_bytes().to_vec(),
                );
            }
        }
        Payload::UserUnblocked { user } => {
            if let Some(blocker) = event.actor {
                txn.delete(Table::BlockerBlocked, pair_of(blocker.0, user.0));
            }
        }
        _ => {}
    }
    Ok(())
}

fn mark_match_room(txn: &mut Txn<'_>, room: RoomId) -> Result<()> {
    update(
        txn,
        (Table::RoomidRoom, room.as_bytes(), "room"),
        |record: &mut RoomRecord| record.matched = true,
    )
}
