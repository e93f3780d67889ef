//! Media's write-time rules, run by the sequencer on the writer thread: only the owner
//! completes or deletes an upload, an upload completes once, a processing outcome lands only
//! on an upload still processing, the sweeper takes only what nothing uses; and the check
//! every domain that attaches media runs (posts, avatars): only ready media of the author.

use super::command::{MediaCommand, ProcessOutcome};
use super::rows::{self, DELETED, PROCESSING, READY, REQUESTED};
use crate::ack::Ack;
use crate::error::{Error, Result};
use crate::staging::{append, append_as};
use girok_schemas::proto::MediaRecord;
use girok_schemas::{EventId, Payload, UserId};
use girok_storage::Txn;

/// A media that exists (not deleted) and belongs to `actor`.
fn own_media(txn: &Txn<'_>, actor: UserId, media: EventId) -> Result<MediaRecord> {
    let record = rows::load(txn, media)?
        .filter(|r| r.state != DELETED)
        .ok_or_else(|| Error::MediaNotFound(media.to_string()))?;
    if record.owner != actor.as_bytes() {
        return Err(Error::NotMediaOwner(media));
    }
    Ok(record)
}

pub(crate) fn stage(
    txn: &mut Txn<'_>,
    actor: UserId,
    new_id: EventId,
    command: MediaCommand,
) -> Result<Ack> {
    match command {
        MediaCommand::RequestUpload {
            content_type,
            declared_bytes,
            expires_ms,
            unused_until_ms,
        } => append(
            txn,
            actor,
            new_id,
            Payload::MediaUploadRequested {
                content_type,
                declared_bytes,
                expires_ms,
                unused_until_ms,
            },
        ),
        MediaCommand::CompleteUpload {
            media,
            received_bytes,
        } => {
            let record = own_media(txn, actor, media)?;
            if record.state != REQUESTED {
                return Err(Error::AlreadyUploaded(media));
            }
            append(
                txn,
                actor,
                new_id,
                Payload::MediaUploadCompleted {
                    media,
                    received_bytes,
                },
            )
        }
        MediaCommand::Delete {
            media,
            purge_after_ms,
        } => {
            own_media(txn, actor, media)?;
            append(
                txn,
                actor,
                new_id,
                Payload::MediaDeleted {
                    media,
                    reason: "owner".into(),
                    purge_after_ms,
                },
            )
        }
        MediaCommand::Processed { media, outcome } => {
            // Deleted (or already decided) meanwhile: the outcome has nowhere to go.
            rows::load(txn, media)?
                .filter(|r| r.state == PROCESSING)
                .ok_or_else(|| Error::MediaNotFound(media.to_string()))?;
            let payload = match outcome {
                ProcessOutcome::Ready {
                    content_type,
                    width,
                    height,
                    placeholder,
                    variant_names,
                    variant_hashes,
                    variant_bytes,
                } => Payload::MediaReady {
                    media,
                    content_type,
                    width,
                    height,
                    placeholder,
                    variant_names,
                    variant_hashes,
                    variant_bytes,
                },
                ProcessOutcome::Rejected { reason, detail } => Payload::MediaRejected {
                    media,
                    reason,
                    detail,
                },
            };
            append_as(txn, None, new_id, payload)
        }
        MediaCommand::Sweep {
            media,
            purge_after_ms,
        } => {
            rows::load(txn, media)?
                .filter(|r| r.state != DELETED && !rows::used(r))
                .ok_or_else(|| Error::MediaNotFound(media.to_string()))?;
            append_as(
                txn,
                None,
                new_id,
                Payload::MediaDeleted {
                    media,
                    reason: "unattached".into(),
                    purge_after_ms,
                },
            )
        }
        MediaCommand::Purged { media } => {
            rows::load(txn, media)?
                .filter(|r| r.state == DELETED)
                .ok_or_else(|| Error::MediaNotFound(media.to_string()))?;
            append_as(txn, None, new_id, Payload::MediaPurged { media })
        }
    }
}

/// [`check_usable`] for ids already parsed (a message's attachments).
pub(crate) fn check_usable_ids(txn: &Txn<'_>, actor: UserId, ids: &[EventId]) -> Result<()> {
    for media in ids {
        let record = own_media(txn, actor, *media)?;
        if record.state != READY {
            return Err(Error::MediaNotReady(*media, rows::state_name(record.state)));
        }
    }
    Ok(())
}

/// Refuses unless every id of `ids` not in `already` (what the post had before an edit)
/// names a ready media of `actor`: `MEDIA_NOT_FOUND`, `NOT_MEDIA_OWNER` or `MEDIA_NOT_READY`.
pub(crate) fn check_usable(
    txn: &Txn<'_>,
    actor: UserId,
    ids: &[String],
    already: &[String],
) -> Result<()> {
    for id in ids.iter().filter(|id| !already.contains(id)) {
        let media: EventId = id.parse().map_err(|_| Error::MediaNotFound(id.clone()))?;
        let record = own_media(txn, actor, media)?;
        if record.state != READY {
            return Err(Error::MediaNotReady(media, rows::state_name(record.state)));
        }
    }
    Ok(())
}
