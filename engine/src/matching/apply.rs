//! Matching's effect on the write model: each user's open ticket and current match and the
//! pairs apart after a skip (said in `rows.rs` and `skips.rs`, written behind by the stage),
//! the match room's mark, and the current blocks.

use crate::error::Result;
use crate::records::{pair_of, update};
use girok_schemas::proto::RoomRecord;
use girok_schemas::{Event, Payload, RoomId};
use girok_storage::{Table, Txn};

/// Applies the event's effect on the write model, if it is one of this domain's: all of it,
/// the rows the stage writes behind included (`girok replay`'s rebuild). `skips`: the spans
/// of a whole rebuild, kept in memory until it writes them (`rows::Written`).
pub(crate) fn apply(
    txn: &mut Txn<'_>,
    event: &Event,
    skips: &mut super::rows::SkipRows,
) -> Result<()> {
    super::rows::apply_event(&mut super::rows::Written { txn, skips }, event)?;
    apply_live(txn, event)
}

/// The same without the rows the sequencer's matching stage writes behind (`rows.rs`).
pub(crate) fn apply_live(txn: &mut Txn<'_>, event: &Event) -> Result<()> {
    match &event.payload {
        // A room the match opened itself is marked so already (`chat/apply.rs`).
        Payload::Matched {
            room,
            room_title: None,
            ..
        } => mark_match_room(txn, *room)?,
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
