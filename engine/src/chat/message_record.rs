//! A chat message's write-model facts (room, sender, seq, time, deleted), wherever they live.
//! Messages get seq-derived ids ([`EventId::for_seq`]), so the log itself is their index:
//! sending one writes no row besides the log entry, and only a deletion adds one
//! (`messageseq_deleted`). Messages sent before ids were derived keep their
//! `messageid_message` record, which the same lookups fall back to.

use crate::error::Result;
use crate::log_reads::{Get, logged_event};
use crate::records::record;
use girok_schemas::proto::MessageRecord;
use girok_schemas::{Event, EventId, Payload, Seq};
use girok_storage::Table;

/// Whether message `id`, sent at `seq`, has a seq-derived id, so its facts live in the log.
pub(crate) fn id_derived_from(id: EventId, seq: Seq) -> bool {
    id.derived_seq() == Some(seq)
}

/// The facts of message `id`, deleted or not; `None` if there is no such message.
pub(crate) fn message_record(db: &impl Get, id: EventId) -> Result<Option<MessageRecord>> {
    if let Some(seq) = id.derived_seq()
        && let Some(event) = logged_event(db, seq)?
    {
        // A random id carries the mark by chance: then this is some other event.
        if event.id == id
            && let Payload::MessageSent { room, .. } = &event.payload
        {
            return Ok(Some(MessageRecord {
                room_id: room.as_bytes().to_vec(),
                sender: event
                    .actor
                    .map(|a| a.as_bytes().to_vec())
                    .unwrap_or_default(),
                seq,
                commit_time_ms: event.commit_time_ms,
                deleted: is_deleted(db, seq)?,
            }));
        }
    }
    record(db.get(Table::MessageidMessage, id.as_bytes())?, "message")
}

/// Whether the message `event` (a `chat.message.sent`) has been deleted.
pub(crate) fn message_deleted(db: &impl Get, event: &Event) -> Result<bool> {
    if id_derived_from(event.id, event.seq) {
        return is_deleted(db, event.seq);
    }
    let record: Option<MessageRecord> = record(
        db.get(Table::MessageidMessage, event.id.as_bytes())?,
        "message",
    )?;
    Ok(record.is_none_or(|m| m.deleted))
}

fn is_deleted(db: &impl Get, seq: Seq) -> Result<bool> {
    Ok(db
        .get(Table::MessageseqDeleted, &seq.to_be_bytes())?
        .is_some())
}
