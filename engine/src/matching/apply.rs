//! Matching's effect on the write model: each user's open ticket and current match (said in
//! `rows.rs`, written behind by the stage), the match room's mark, the pairs apart after a
//! skip (with their index by end, from which every skip removes a few that ended), and the
//! current blocks.

use crate::error::Result;
use crate::records::{pair_key, pair_of, time_value, update};
use girok_schemas::proto::RoomRecord;
use girok_schemas::{Event, Payload, RoomId};
use girok_storage::{Table, Txn};

/// Ended skip exclusions a skip removes, at most: each skip adds one, so removal keeps pace
/// with them, and no event pays for a backlog at once.
const ENDED_SKIPS_REMOVED_PER_EVENT: usize = 8;

/// Applies the event's effect on the write model, if it is one of this domain's: all of it,
/// the tickets' and matches' rows included (`girok replay`'s rebuild).
pub(crate) fn apply(txn: &mut Txn<'_>, event: &Event) -> Result<()> {
    super::rows::apply_event(&mut super::rows::Written(txn), event)?;
    apply_live(txn, event)
}

/// The same without the tickets' and matches' rows, which the sequencer's matching stage
/// writes behind (`rows.rs`).
pub(crate) fn apply_live(txn: &mut Txn<'_>, event: &Event) -> Result<()> {
    match &event.payload {
        // A room the match opened itself is marked so already (`chat/apply.rs`).
        Payload::Matched {
            room,
            room_title: None,
            ..
        } => mark_match_room(txn, *room)?,
        Payload::MatchSkipped {
            partner, until_ms, ..
        } => {
            remove_ended_skips(txn, event.commit_time_ms)?;
            if let Some(skipper) = event.actor {
                let pair = pair_key(skipper, *partner);
                index_skip(txn, &pair, *until_ms)?;
                txn.put(Table::UserpairSkip, pair, until_ms.to_be_bytes().to_vec());
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

/// When the skip exclusion of `pair` (a `pair_key`) ends, if there is one.
fn skip_until(txn: &Txn<'_>, pair: &[u8]) -> Result<Option<i64>> {
    Ok(time_value(txn.get(Table::UserpairSkip, pair)?))
}

/// `untilms_userpair`'s key of an exclusion of `pair` ending at `until_ms`.
fn until_key(until_ms: i64, pair: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + pair.len());
    key.extend_from_slice(&until_ms.to_be_bytes());
    key.extend_from_slice(pair);
    key
}

/// `untilms_userpair`'s row holding the end of the last exclusion removed (no exclusion left
/// ends before it): past every other key (ends are positive, so their first byte is below
/// 0x80). Removal reads from there, not over the removed rows' tombstones. An exclusion
/// indexed later never ends before it: its end is its commit time plus a non-negative
/// exclusion, and commit times never go back along the log.
const REMOVAL_CURSOR: &[u8] = &[0xff];

/// Indexes an exclusion of `pair` by its end, in place of its earlier one.
fn index_skip(txn: &mut Txn<'_>, pair: &[u8], until_ms: i64) -> Result<()> {
    if let Some(earlier) = skip_until(txn, pair)? {
        txn.delete(Table::UntilmsUserpair, until_key(earlier, pair));
    }
    txn.put(
        Table::UntilmsUserpair,
        until_key(until_ms, pair),
        Vec::new(),
    );
    Ok(())
}

/// Removes up to [`ENDED_SKIPS_REMOVED_PER_EVENT`] skip exclusions that ended by `now` (the
/// event's commit time: a function of the log alone, so replay removes the same ones). An
/// ended exclusion keeps nobody apart (`Apart::until`), so this changes no decision. Only
/// ended rows are read: none at all while nothing has ended.
fn remove_ended_skips(txn: &mut Txn<'_>, now: i64) -> Result<()> {
    let cursor = time_value(txn.get(Table::UntilmsUserpair, REMOVAL_CURSOR)?).unwrap_or(0);
    let ended = txn.scan_range(
        Table::UntilmsUserpair,
        &cursor.to_be_bytes(),
        &now.saturating_add(1).to_be_bytes(),
        ENDED_SKIPS_REMOVED_PER_EVENT,
    )?;
    let mut removed_through = None;
    for (key, _) in ended {
        let Some((until, pair)) = key.split_first_chunk::<8>() else {
            continue;
        };
        let until = i64::from_be_bytes(*until);
        if skip_until(txn, pair)? == Some(until) {
            txn.delete(Table::UserpairSkip, pair.to_vec());
        }
        txn.delete(Table::UntilmsUserpair, key);
        removed_through = Some(until);
    }
    if let Some(until) = removed_through {
        txn.put(
            Table::UntilmsUserpair,
            REMOVAL_CURSOR.to_vec(),
            until.to_be_bytes().to_vec(),
        );
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
