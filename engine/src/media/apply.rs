//! Media's effect on the write model: each media's record through its states, the uploads
//! waiting for processing, the sweeper's schedule, the content-hash references; and what a
//! post or a profile that uses a media changes of it (readable by others, no longer swept).

use super::rows::{
    self, DELETED, DUE_PURGE, DUE_UNUSED, PROCESSING, READY, REJECTED, REQUESTED, due_key, hash_key,
};
use crate::error::Result;
use crate::records::{decode, update};
use girok_schemas::proto::{MediaRecord, PostRecord, UserRecord};
use girok_schemas::{Event, EventId, Payload};
use girok_storage::{Table, Txn};
use prost::Message;

fn update_media(
    txn: &mut Txn<'_>,
    media: EventId,
    change: impl FnOnce(&mut MediaRecord),
) -> Result<()> {
    update(
        txn,
        (Table::MediaidMedia, media.as_bytes(), "media"),
        change,
    )
}

/// Applies the event's effect on the write model, if it is one of this domain's or uses media.
pub(crate) fn apply(txn: &mut Txn<'_>, event: &Event) -> Result<()> {
    match &event.payload {
        Payload::MediaUploadRequested {
            content_type,
            declared_bytes,
            expires_ms,
            unused_until_ms,
        } => {
            let record = MediaRecord {
                owner: event
                    .actor
                    .map(|a| a.as_bytes().to_vec())
                    .unwrap_or_default(),
                state: REQUESTED,
                seq: event.seq,
                requested_ms: event.commit_time_ms,
                upload_expires_ms: *expires_ms,
                content_type: content_type.clone(),
                declared_bytes: *declared_bytes,
                due_ms: *unused_until_ms,
                ..MediaRecord::default()
            };
            txn.put(
                Table::MediaidMedia,
                event.id.as_bytes().to_vec(),
                record.encode_to_vec(),
            );
            txn.put(
                Table::DueMediaid,
                due_key(*unused_until_ms, DUE_UNUSED, event.id),
                Vec::new(),
            );
        }
        Payload::MediaUploadCompleted { media, .. } => {
            update_media(txn, *media, |r| r.state = PROCESSING)?;
            txn.put(
                Table::MediaidProcessing,
                media.as_bytes().to_vec(),
                Vec::new(),
            );
        }
        Payload::MediaReady {
            media,
            content_type,
            width,
            height,
            placeholder,
            variant_names,
            variant_hashes,
            variant_bytes,
        } => {
            update_media(txn, *media, |r| {
                r.state = READY;
                r.content_type = content_type.clone();
                r.width = *width;
                r.height = *height;
                r.placeholder = placeholder.clone();
                r.variant_names = variant_names.clone();
                r.variant_hashes = variant_hashes.clone();
                r.variant_bytes = variant_bytes.clone();
            })?;
            txn.delete(Table::MediaidProcessing, media.as_bytes().to_vec());
            for hash in variant_hashes {
                txn.put(
                    Table::ContenthashMediaid,
                    hash_key(hash, *media),
                    Vec::new(),
                );
            }
        }
        Payload::MediaRejected { media, reason, .. } => {
            update_media(txn, *media, |r| {
                r.state = REJECTED;
                r.rejected_reason = reason.clone();
            })?;
            txn.delete(Table::MediaidProcessing, media.as_bytes().to_vec());
        }
        Payload::MediaDeleted {
            media,
            purge_after_ms,
            ..
        } => {
            let record: MediaRecord =
                decode(txn.get(Table::MediaidMedia, media.as_bytes())?, "media")?;
            if record.due_ms != 0 {
                txn.delete(
                    Table::DueMediaid,
                    due_key(record.due_ms, DUE_UNUSED, *media),
                );
            }
            update_media(txn, *media, |r| {
                r.state = DELETED;
                r.deleted_ms = event.commit_time_ms;
                r.due_ms = *purge_after_ms;
            })?;
            txn.delete(Table::MediaidProcessing, media.as_bytes().to_vec());
            txn.put(
                Table::DueMediaid,
                due_key(*purge_after_ms, DUE_PURGE, *media),
                Vec::new(),
            );
        }
        Payload::MediaPurged { media } => {
            let record: MediaRecord =
                decode(txn.get(Table::MediaidMedia, media.as_bytes())?, "media")?;
            txn.delete(Table::DueMediaid, due_key(record.due_ms, DUE_PURGE, *media));
            for hash in &record.variant_hashes {
                txn.delete(Table::ContenthashMediaid, hash_key(hash, *media));
            }
            txn.delete(Table::MediaidMedia, media.as_bytes().to_vec());
        }
        Payload::PostCreated { media_ids, .. } => {
            uses(txn, media_ids, &[])?;
        }
        // The post's record is as before the event (media applies before the feed).
        Payload::PostEdited {
            post, media_ids, ..
        } => {
            let before: PostRecord = decode(txn.get(Table::PostidPost, post.as_bytes())?, "post")?;
            uses(txn, media_ids, &before.media_ids)?;
        }
        Payload::PostDeleted { post, .. } => {
            let before: PostRecord = decode(txn.get(Table::PostidPost, post.as_bytes())?, "post")?;
            uses(txn, &[], &before.media_ids)?;
        }
        Payload::MessageSent {
            room, attachments, ..
        } => {
            // Counted per room: the room reads it while any of its messages carries it.
            for media in attachments {
                mark_used(txn, *media, |r| {
                    room_messages_changed(r, room.as_bytes(), 1)
                })?;
            }
        }
        // The message's attachments are in its own event, in the log.
        Payload::MessageDeleted {
            room, message_seq, ..
        } => {
            let Some(sent) = crate::log_reads::logged_event(txn, *message_seq)? else {
                return Ok(());
            };
            if let Payload::MessageSent { attachments, .. } = &sent.payload {
                for media in attachments {
                    mark_used(txn, *media, |r| {
                        room_messages_changed(r, room.as_bytes(), -1)
                    })?;
                }
            }
        }
        // The user's record is as before the event (media applies before accounts).
        Payload::ProfileUpdated {
            user,
            avatar_media_id: Some(id),
            ..
        } => {
            let before: UserRecord = decode(txn.get(Table::UseridUser, user.as_bytes())?, "user")?;
            if before.avatar_media_id != *id {
                if let Ok(old) = before.avatar_media_id.parse() {
                    mark_used(txn, old, |r| r.avatar = false)?;
                }
                if let Ok(new) = id.parse() {
                    mark_used(txn, new, |r| r.avatar = true)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Counts the posts that use each media: one more for the ids of `now` not in `before`, one
/// fewer for those of `before` not in `now`.
fn uses(txn: &mut Txn<'_>, now: &[String], before: &[String]) -> Result<()> {
    let parsed = |ids: &[String], others: &[String]| -> Vec<EventId> {
        ids.iter()
            .filter(|id| !others.contains(id))
            .filter_map(|id| id.parse().ok())
            .collect()
    };
    for media in parsed(now, before) {
        mark_used(txn, media, |r| r.post_uses += 1)?;
    }
    for media in parsed(before, now) {
        mark_used(txn, media, |r| r.post_uses = r.post_uses.saturating_sub(1))?;
    }
    Ok(())
}

/// One more (`change` 1) or one fewer (-1) live message of `room` carrying the media: each
/// room is kept once with its count, and goes when its count does. A record from before the
/// counts (a room once per message) is counted up first.
fn room_messages_changed(record: &mut MediaRecord, room: &[u8], change: i32) {
    if record.room_messages.len() != record.rooms.len() {
        let mut rooms: Vec<Vec<u8>> = Vec::new();
        let mut counts: Vec<u32> = Vec::new();
        for legacy in record.rooms.drain(..) {
            match rooms.iter().position(|known| *known == legacy) {
                Some(at) => counts[at] += 1,
                None => {
                    rooms.push(legacy);
                    counts.push(1);
                }
            }
        }
        record.rooms = rooms;
        record.room_messages = counts;
    }
    match record.rooms.iter().position(|known| known == room) {
        Some(at) => {
            let count = record.room_messages[at].saturating_add_signed(change);
            if count == 0 {
                record.rooms.remove(at);
                record.room_messages.remove(at);
            } else {
                record.room_messages[at] = count;
            }
        }
        None if change > 0 => {
            record.rooms.push(room.to_vec());
            record.room_messages.push(change.unsigned_abs());
        }
        None => {}
    }
}

/// Marks a media used (and takes it off the sweeper's schedule). Ids that name no media (free
/// strings written before media existed, which do not even parse) are left alone.
fn mark_used(
    txn: &mut Txn<'_>,
    media: EventId,
    change: impl FnOnce(&mut MediaRecord),
) -> Result<()> {
    let Some(mut record) = rows::load(txn, media)? else {
        return Ok(());
    };
    if record.state == DELETED {
        return Ok(());
    }
    if record.due_ms != 0 {
        txn.delete(Table::DueMediaid, due_key(record.due_ms, DUE_UNUSED, media));
        record.due_ms = 0;
    }
    change(&mut record);
    txn.put(
        Table::MediaidMedia,
        media.as_bytes().to_vec(),
        record.encode_to_vec(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms(record: &MediaRecord) -> Vec<(u8, u32)> {
        record
            .rooms
            .iter()
            .zip(&record.room_messages)
            .map(|(room, count)| (room[0], *count))
            .collect()
    }

    #[test]
    fn a_room_is_kept_once_with_its_count_of_messages() {
        let mut record = MediaRecord::default();
        for room in [1u8, 2, 1, 1] {
            room_messages_changed(&mut record, &[room], 1);
        }
        assert_eq!(rooms(&record), [(1, 3), (2, 1)]);
        room_messages_changed(&mut record, &[1], -1);
        room_messages_changed(&mut record, &[2], -1);
        assert_eq!(rooms(&record), [(1, 2)]);
        room_messages_changed(&mut record, &[3], -1); // no such room: nothing
        room_messages_changed(&mut record, &[1], -1);
        room_messages_changed(&mut record, &[1], -1);
        assert!(record.rooms.is_empty() && record.room_messages.is_empty());
    }

    #[test]
    fn an_older_record_a_room_per_message_is_counted_up() {
        let mut record = MediaRecord {
            rooms: vec![vec![1], vec![2], vec![1]],
            ..MediaRecord::default()
        };
        room_messages_changed(&mut record, &[1], -1);
        assert_eq!(rooms(&record), [(1, 1), (2, 1)]);
    }
}
