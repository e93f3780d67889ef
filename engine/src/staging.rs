//! What every domain's stage shares: appending an event (which applies it to the write model
//! in the same batch) and a read receipt's rule. A leaf: it knows no domain.

use crate::ack::Ack;
use crate::error::{Error, Result};
use girok_schemas::{Event, EventId, Payload, Seq, UserId, encode_event};
use girok_storage::Txn;

/// A read receipt (of a room, of notifications) moving a marker from `current` to `up_to`
/// (default: everything before the receipt itself). A receipt beyond the log head is refused;
/// one that would not move the marker forward appends nothing and answers the marker as it is.
pub(crate) fn receipt(
    txn: &mut Txn<'_>,
    actor: UserId,
    new_id: EventId,
    current: Seq,
    up_to: Option<Seq>,
    event: impl FnOnce(Seq) -> Payload,
) -> Result<Ack> {
    let own_seq = txn.next_seq();
    let up_to = up_to.unwrap_or(own_seq);
    if up_to > own_seq {
        return Err(Error::invalid(
            "upToSeq",
            format!("is beyond the log head ({})", own_seq - 1),
        ));
    }
    if up_to <= current {
        return Ok(Ack {
            duplicate: true,
            read_up_to: Some(current),
            ..Ack::new(own_seq - 1, new_id, txn.commit_time_ms())
        });
    }
    let ack = append(txn, actor, new_id, event(up_to))?;
    Ok(Ack {
        read_up_to: Some(up_to),
        ..ack
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
    append_event(txn, actor, id, payload).map(|event| Ack::of(&event))
}

/// The same, returning the event as appended (for a stage that keeps part of its effect in
/// memory).
pub(crate) fn append_event(
    txn: &mut Txn<'_>,
    actor: Option<UserId>,
    id: EventId,
    payload: Payload,
) -> Result<Event> {
    let mut event = Event {
        seq: txn.next_seq(),
        commit_time_ms: txn.commit_time_ms(),
        id,
        actor,
        payload,
    };
    event.seq = txn.append(|_| encode_event(&event));
    crate::write_model::apply_live(txn, &event)?;
    Ok(event)
}
