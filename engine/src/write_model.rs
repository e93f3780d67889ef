//! The write model as a function of the log: how each event changes the keyspaces the
//! sequencer checks commands against. The sequencer applies it to every event it appends (in
//! the same atomic batch), and `girok replay` applies it to the whole log to rebuild the write
//! model from scratch, so both always agree.

use crate::error::{Error, Result};
use girok_schemas::proto::{
    CommentRecord, IdempotentAck, MessageRecord, PostRecord, RoomRecord, SessionRecord, UserRecord,
};
use girok_schemas::{Event, EventId, Payload, RoomId, Seq, SessionId, UserId};
use girok_storage::{Store, Table, Txn};
use prost::Message;
use std::sync::Arc;

/// Every write-model table: all but the log.
pub fn tables() -> impl Iterator<Item = Table> {
    Table::ALL.into_iter().filter(|t| *t != Table::SeqEvent)
}

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

/// `actor (16) ++ client id`.
pub(crate) fn idempotency_key(actor: UserId, client_id: &str) -> Vec<u8> {
    [actor.as_bytes().as_slice(), client_id.as_bytes()].concat()
}

/// Identifies a send's content, so a reused client id with other content is refused. Stored
/// on disk, so it must be a hash with a fixed definition (xxh3), not std's `DefaultHasher`.
pub(crate) fn request_hash(room: RoomId, body: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&[room.as_bytes().as_slice(), body.as_bytes()].concat())
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
fn decode<M: Message + Default>(bytes: Option<Vec<u8>>, what: &str) -> Result<M> {
    record(bytes, what)?.ok_or_else(|| Error::Internal(format!("event names a missing {what}")))
}

fn put_session(txn: &mut Txn<'_>, session: SessionId, record: &SessionRecord) {
    txn.put(
        Table::SessionidSession,
        session.as_bytes().to_vec(),
        record.encode_to_vec(),
    );
}

/// Reads the record `key` of `table` (which an event refers to, so it must exist), changes
/// it, and writes it back.
fn update<M: Message + Default>(
    txn: &mut Txn<'_>,
    (table, key, what): (Table, &[u8], &str),
    change: impl FnOnce(&mut M),
) -> Result<()> {
    let mut record: M = decode(txn.get(table, key)?, what)?;
    change(&mut record);
    txn.put(table, key.to_vec(), record.encode_to_vec());
    Ok(())
}

fn update_user(
    txn: &mut Txn<'_>,
    user: UserId,
    change: impl FnOnce(&mut UserRecord),
) -> Result<()> {
    update(txn, (Table::UseridUser, user.as_bytes(), "user"), change)
}

fn update_room(
    txn: &mut Txn<'_>,
    room: RoomId,
    change: impl FnOnce(&mut RoomRecord),
) -> Result<()> {
    update(txn, (Table::RoomidRoom, room.as_bytes(), "room"), change)
}

fn update_post(
    txn: &mut Txn<'_>,
    post: EventId,
    change: impl FnOnce(&mut PostRecord),
) -> Result<()> {
    update(txn, (Table::PostidPost, post.as_bytes(), "post"), change)
}

fn update_session(
    txn: &mut Txn<'_>,
    session: SessionId,
    change: impl FnOnce(&mut SessionRecord),
) -> Result<()> {
    update(
        txn,
        (Table::SessionidSession, session.as_bytes(), "session"),
        change,
    )
}

/// Applies one event's effect on the write model.
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
            ..
        } => {
            // Messages with seq-derived ids need no row: the log is their index.
            if !crate::message_record::id_derived_from(event.id, event.seq) {
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
                    request_hash: request_hash(*room, body),
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
            if crate::message_record::id_derived_from(*message, *message_seq) {
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
        Payload::UserRegistered {
            user,
            username,
            email,
            display_name,
            password_hash,
        } => {
            let record = UserRecord {
                username: username.clone(),
                email: email.clone(),
                display_name: display_name.clone(),
                bio: String::new(),
                avatar_media_id: String::new(),
                password_hash: password_hash.clone(),
                created_ms: event.commit_time_ms,
            };
            let id = user.as_bytes().to_vec();
            txn.put(
                Table::UsernameUserid,
                username.to_lowercase().into_bytes(),
                id.clone(),
            );
            txn.put(
                Table::EmailUserid,
                email.to_lowercase().into_bytes(),
                id.clone(),
            );
            txn.put(Table::UseridUser, id, record.encode_to_vec());
        }
        Payload::LoggedIn {
            user,
            session,
            refresh_hash,
            ip,
            user_agent,
            expires_ms,
        } => {
            let record = SessionRecord {
                user_id: user.as_bytes().to_vec(),
                refresh_hash: refresh_hash.clone(),
                created_ms: event.commit_time_ms,
                last_seen_ms: event.commit_time_ms,
                ip: ip.clone(),
                user_agent: user_agent.clone(),
                expires_ms: *expires_ms,
                revoked_reason: String::new(),
            };
            put_session(txn, *session, &record);
            txn.put(
                Table::RefreshhashSessionid,
                refresh_hash.clone(),
                session.as_bytes().to_vec(),
            );
            txn.put(
                Table::UseridSessionid,
                [user.as_bytes().as_slice(), session.as_bytes().as_slice()].concat(),
                Vec::new(),
            );
        }
        Payload::LoginFailed { .. } => {}
        Payload::TokenRefreshed {
            session,
            refresh_hash,
            ip,
            expires_ms,
        } => {
            update_session(txn, *session, |record| {
                record.refresh_hash = refresh_hash.clone();
                record.last_seen_ms = event.commit_time_ms;
                record.expires_ms = *expires_ms;
                record.ip = ip.clone();
            })?;
            txn.put(
                Table::RefreshhashSessionid,
                refresh_hash.clone(),
                session.as_bytes().to_vec(),
            );
        }
        Payload::SessionRevoked { session, reason } => {
            update_session(txn, *session, |record| {
                record.revoked_reason = reason.clone();
            })?;
        }
        Payload::PasswordChanged {
            user,
            password_hash,
        } => update_user(txn, *user, |record| {
            record.password_hash = password_hash.clone();
        })?,
        Payload::ProfileUpdated {
            user,
            display_name,
            bio,
            avatar_media_id,
        } => update_user(txn, *user, |record| {
            if let Some(name) = display_name {
                record.display_name = name.clone();
            }
            if let Some(bio) = bio {
                record.bio = bio.clone();
            }
            if let Some(avatar) = avatar_media_id {
                record.avatar_media_id = avatar.clone();
            }
        })?,
        Payload::PostCreated { media_ids, .. } => {
            let record = PostRecord {
                author: actor.map(|a| a.as_bytes().to_vec()).unwrap_or_default(),
                seq: event.seq,
                commit_time_ms: event.commit_time_ms,
                deleted: false,
                media_ids: media_ids.clone(),
            };
            txn.put(
                Table::PostidPost,
                event.id.as_bytes().to_vec(),
                record.encode_to_vec(),
            );
        }
        Payload::PostEdited {
            post, media_ids, ..
        } => update_post(txn, *post, |record| record.media_ids = media_ids.clone())?,
        Payload::PostDeleted { post, .. } => {
            update_post(txn, *post, |record| record.deleted = true)?
        }
        Payload::PostLiked { post, .. } => {
            if let Some(liker) = actor {
                txn.put(
                    Table::PostidUseridLike,
                    pair_of(post.0, liker.0),
                    event.seq.to_be_bytes().to_vec(),
                );
            }
        }
        Payload::PostUnliked { post, .. } => {
            if let Some(liker) = actor {
                txn.delete(Table::PostidUseridLike, pair_of(post.0, liker.0));
            }
        }
        Payload::CommentAdded { post, post_seq, .. } => {
            let record = CommentRecord {
                post_id: post.as_bytes().to_vec(),
                author: actor.map(|a| a.as_bytes().to_vec()).unwrap_or_default(),
                seq: event.seq,
                post_seq: *post_seq,
                deleted: false,
            };
            txn.put(
                Table::CommentidComment,
                event.id.as_bytes().to_vec(),
                record.encode_to_vec(),
            );
        }
        Payload::CommentDeleted { comment, .. } => {
            let key = (
                Table::CommentidComment,
                comment.as_bytes().as_slice(),
                "comment",
            );
            update(txn, key, |record: &mut CommentRecord| record.deleted = true)?;
        }
        Payload::UserFollowed { user } => {
            if let Some(follower) = actor {
                txn.put(
                    Table::FollowerFollowee,
                    pair_of(follower.0, user.0),
                    event.seq.to_be_bytes().to_vec(),
                );
            }
        }
        Payload::UserUnfollowed { user, .. } => {
            if let Some(follower) = actor {
                txn.delete(Table::FollowerFollowee, pair_of(follower.0, user.0));
            }
        }
        Payload::NotificationsRead { up_to } => {
            if let Some(reader) = actor {
                txn.put(
                    Table::UseridNotificationsread,
                    reader.as_bytes().to_vec(),
                    up_to.to_be_bytes().to_vec(),
                );
            }
        }
        Payload::Unknown { .. } => {}
    }
    Ok(())
}

/// Rebuilds the whole write model from the log: clears every write-model table and applies
/// every event, in chunks. Returns the number of events applied. Only for a data directory no
/// server is using (`girok replay`).
pub fn rebuild(store: &Arc<Store>, mut progress: impl FnMut(u64)) -> Result<u64> {
    for table in tables() {
        store.clear(table)?;
    }
    let mut tail = store.tail(1);
    let mut applied = 0;
    loop {
        let chunk = tail.next_chunk(4096, None)?;
        if chunk.is_empty() {
            return Ok(applied);
        }
        let events = chunk
            .iter()
            .map(|(seq, bytes)| {
                girok_schemas::decode_event(bytes)
                    .map_err(|source| Error::Decode { seq: *seq, source })
            })
            .collect::<Result<Vec<_>>>()?;
        store.rewrite(|txn| events.iter().try_for_each(|event| apply(txn, event)))?;
        applied += events.len() as u64;
        progress(applied);
    }
}

/// One write-model entry: table, key, value.
pub type Entry = (Table, Vec<u8>, Vec<u8>);

/// Every entry of every write-model table, for comparing a rebuilt write model with a live one.
pub fn snapshot(store: &Store) -> Result<Vec<Entry>> {
    let mut all = Vec::new();
    for table in tables() {
        for (key, value) in store.scan_prefix(table, &[])? {
            all.push((table, key, value));
        }
    }
    Ok(all)
}
