//! Write-model rows: how keys are built (member, pair, idempotency keys, big-endian seqs) and
//! how records are decoded and updated. A leaf every domain's stage, apply and reads share.

use crate::error::{Error, Result};
use girok_schemas::{EventId, RoomId, Seq, UserId};
use girok_storage::{Table, Txn};
use prost::Message;

/// `room (16) ++ user (16)`.
pub(crate) fn member_key(room: RoomId, user: UserId) -> Vec<u8> {
    pair_of(room.0, user.0)
}

/// The room and user a [`member_key`] names (`None` for a key of another shape).
pub(crate) fn member_of_key(key: &[u8]) -> Option<(RoomId, UserId)> {
    let (room, user) = key.split_at_checked(16)?;
    Some((RoomId::from_slice(room)?, UserId::from_slice(user)?))
}

/// `smaller user id (16) ++ larger user id (16)`: the same for both orders.
pub(crate) fn pair_key(a: UserId, b: UserId) -> Vec<u8> {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    [low.as_bytes().as_slice(), high.as_bytes().as_slice()].concat()
}

/// The two users a [`pair_key`] (or a `pair_of` two users) names, in the key's order (`None`
/// for a key of another shape).
pub(crate) fn users_of_key(key: &[u8]) -> Option<(UserId, UserId)> {
    let (a, b) = key.split_at_checked(16)?;
    Some((UserId::from_slice(a)?, UserId::from_slice(b)?))
}

/// `a (16) ++ b (16)`, in that order: a like (post, user) or a follow (follower, followee).
pub(crate) fn pair_of(a: uuid::Uuid, b: uuid::Uuid) -> Vec<u8> {
    [a.as_bytes().as_slice(), b.as_bytes().as_slice()].concat()
}

/// A stored big-endian seq (0 when absent).
pub(crate) fn seq_value(bytes: Option<Vec<u8>>) -> Seq {
    bytes
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
        .map_or(0, u64::from_be_bytes)
}

/// A stored big-endian time in ms (`None` when absent).
pub(crate) fn time_value(bytes: Option<Vec<u8>>) -> Option<i64> {
    bytes
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
        .map(i64::from_be_bytes)
}

/// `actor (16) ++ client id`.
pub(crate) fn idempotency_key(actor: UserId, client_id: &str) -> Vec<u8> {
    [actor.as_bytes().as_slice(), client_id.as_bytes()].concat()
}

/// Identifies a send's content, so a reused client id with other content is refused. Stored
/// on disk, so it must be a hash with a fixed definition (xxh3), not std's `DefaultHasher`
/// (a send without attachments hashes as sends did before they existed).
pub(crate) fn request_hash(room: RoomId, body: &str, attachments: &[EventId]) -> u64 {
    let mut bytes = [room.as_bytes().as_slice(), body.as_bytes()].concat();
    for media in attachments {
        bytes.extend_from_slice(media.as_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// Decodes a write-model record read from storage or a transaction (`None` stays `None`).
/// Every reader of the write model goes through this one function.
pub(crate) fn record<M: Message + Default>(
    bytes: Option<Vec<u8>>,
    what: &str,
) -> Result<Option<M>> {
    bytes
        .map(|b| M::decode(b.as_slice()))
        .transpose()
        .map_err(|e| Error::Internal(format!("corrupt {what} record: {e}")))
}

/// A record an event refers to, which must exist.
pub(crate) fn decode<M: Message + Default>(bytes: Option<Vec<u8>>, what: &str) -> Result<M> {
    record(bytes, what)?.ok_or_else(|| Error::Internal(format!("event names a missing {what}")))
}

/// Reads the record `key` of `table` (which an event refers to, so it must exist), changes
/// it, and writes it back.
pub(crate) fn update<M: Message + Default>(
    txn: &mut Txn<'_>,
    (table, key, what): (Table, &[u8], &str),
    change: impl FnOnce(&mut M),
) -> Result<()> {
    let mut record: M = decode(txn.get(table, key)?, what)?;
    change(&mut record);
    txn.put(table, key.to_vec(), record.encode_to_vec());
    Ok(())
}
