//! Media's write-model rows: the record's states, the keys of the sweeper's schedule and of
//! the content-hash references, and reading a media's record. A leaf the stage, apply, the
//! pool, the sweeper and the reads share.

use crate::error::Result;
use crate::records::record;
use girok_schemas::EventId;
use girok_schemas::proto::MediaRecord;
use girok_storage::{Table, Txn};

pub(crate) const REQUESTED: u32 = 1;
pub(crate) const PROCESSING: u32 = 2;
pub(crate) const READY: u32 = 3;
pub(crate) const REJECTED: u32 = 4;
pub(crate) const DELETED: u32 = 5;

/// A `due_mediaid` row of an upload that is swept unless used by then.
pub(crate) const DUE_UNUSED: u8 = 1;
/// A `due_mediaid` row of a deleted media whose objects may go then.
pub(crate) const DUE_PURGE: u8 = 2;

/// A state's name, as errors and reads show it.
pub fn state_name(state: u32) -> &'static str {
    match state {
        REQUESTED => "requested",
        PROCESSING => "processing",
        READY => "ready",
        REJECTED => "rejected",
        DELETED => "deleted",
        _ => "unknown",
    }
}

/// `due ms (i64 BE) ++ kind (1) ++ media id (16)`: time order first.
pub(crate) fn due_key(due_ms: i64, kind: u8, media: EventId) -> Vec<u8> {
    let mut key = Vec::with_capacity(25);
    key.extend_from_slice(&due_ms.to_be_bytes());
    key.push(kind);
    key.extend_from_slice(media.as_bytes());
    key
}

/// The time, kind and media of a [`due_key`].
pub(crate) fn parse_due_key(key: &[u8]) -> Option<(i64, u8, EventId)> {
    let due = i64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let kind = *key.get(8)?;
    Some((due, kind, EventId::from_slice(key.get(9..)?)?))
}

/// `hex hash ++ media id (16)`.
pub(crate) fn hash_key(hash: &str, media: EventId) -> Vec<u8> {
    [hash.as_bytes(), media.as_bytes().as_slice()].concat()
}

/// The object key of a variant with this content hash.
pub fn object_key(hash: &str) -> String {
    format!("objects/{hash}")
}

/// The object key of an upload waiting for processing.
pub fn upload_key(media: EventId) -> String {
    format!("uploads/{media}")
}

/// A media's record as a transaction sees it.
pub(crate) fn load(txn: &Txn<'_>, media: EventId) -> Result<Option<MediaRecord>> {
    record(txn.get(Table::MediaidMedia, media.as_bytes())?, "media")
}

/// Whether anything uses it now (a live post, the avatar) or did (a message).
pub(crate) fn used(record: &MediaRecord) -> bool {
    record.post_uses > 0 || record.avatar || !record.rooms.is_empty()
}
