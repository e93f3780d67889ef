//! Media writes, each an `Engine` method: asking for an upload (and its URL: presigned by an
//! S3 store, or girok's own signed URL for the local store), receiving a local upload,
//! completing it (which hands it to the processing pool), the one-step upload, and deletion.

use super::command::MediaCommand;
use super::rows::{self, DELETED, REQUESTED};
use crate::ack::Ack;
use crate::command::Command;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::records::record;
use bytes::Bytes;
use girok_schemas::proto::MediaRecord;
use girok_schemas::{EventId, UserId};
use girok_storage::Table;

/// A granted upload: where to PUT the bytes, until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadGrant {
    pub media: EventId,
    pub seq: u64,
    /// An absolute URL of the S3 store, or a path of girok's (`/v1/media/{id}/upload?…`).
    pub upload_url: String,
    pub expires_ms: i64,
}

impl Engine {
    /// The configured most bytes of one upload.
    pub fn media_max_bytes(&self) -> u64 {
        self.media.config.max_bytes
    }

    /// Starts an upload of `bytes` bytes of `content_type` by `owner`.
    pub async fn request_upload(
        &self,
        owner: UserId,
        content_type: String,
        bytes: u64,
    ) -> Result<UploadGrant> {
        let media = &self.media;
        if bytes > media.config.max_bytes {
            return Err(Error::MediaTooLarge {
                what: "the upload",
                got: bytes,
                max: media.config.max_bytes,
            });
        }
        let now_ms = crate::accounts::now_ms();
        let expires_ms = now_ms + media.config.upload_url_ttl.as_millis() as i64;
        let ack = self
            .execute(
                owner,
                Command::Media(MediaCommand::RequestUpload {
                    content_type,
                    declared_bytes: bytes,
                    expires_ms,
                    unused_until_ms: now_ms + media.config.unused_after.as_millis() as i64,
                }),
            )
            .await?;
        let id = ack.id;
        let presigned = media
            .blobs
            .presigned_put(&rows::upload_key(id), media.config.upload_url_ttl)
            .await?;
        let upload_url = presigned.unwrap_or_else(|| {
            let signature = media.signer.sign(id, expires_ms);
            format!("/v1/media/{id}/upload?expires={expires_ms}&signature={signature}")
        });
        Ok(UploadGrant {
            media: id,
            seq: ack.seq,
            upload_url,
            expires_ms,
        })
    }

    async fn media_record(&self, media: EventId) -> Result<Option<MediaRecord>> {
        self.blocking(move |store| {
            record(store.get(Table::MediaidMedia, media.as_bytes())?, "media")
        })
        .await
    }

    /// Whether girok's own upload URL for `media` (the local store) may be used now: its
    /// signature and time, and an upload still waiting for its bytes. Returns the declared
    /// size.
    pub async fn upload_allowed(
        &self,
        media: EventId,
        expires_ms: i64,
        signature: &str,
    ) -> Result<u64> {
        let now_ms = crate::accounts::now_ms();
        if !self
            .media
            .signer
            .verify(media, expires_ms, signature, now_ms)
        {
            return Err(Error::UploadUrlInvalid);
        }
        let record = self
            .media_record(media)
            .await?
            .filter(|r| r.state != DELETED)
            .ok_or_else(|| Error::MediaNotFound(media.to_string()))?;
        if record.state != REQUESTED {
            return Err(Error::AlreadyUploaded(media));
        }
        Ok(record.declared_bytes)
    }

    /// Receives the bytes of an upload to girok's own URL (checked as
    /// [`Engine::upload_allowed`] says); they must be as many as declared.
    pub async fn receive_upload(
        &self,
        media: EventId,
        expires_ms: i64,
        signature: &str,
        bytes: Bytes,
    ) -> Result<()> {
        let declared = self.upload_allowed(media, expires_ms, signature).await?;
        let got = bytes.len() as u64;
        if got != declared {
            return Err(Error::SizeMismatch { declared, got });
        }
        self.media
            .blobs
            .put(&rows::upload_key(media), bytes)
            .await?;
        Ok(())
    }

    /// Completes `owner`'s upload: its bytes must be in the store; processing starts.
    pub async fn complete_upload(&self, owner: UserId, media: EventId) -> Result<Ack> {
        let record = self
            .media_record(media)
            .await?
            .filter(|r| r.state != DELETED)
            .ok_or_else(|| Error::MediaNotFound(media.to_string()))?;
        if record.owner != owner.as_bytes() {
            return Err(Error::NotMediaOwner(media));
        }
        if record.state != REQUESTED {
            return Err(Error::AlreadyUploaded(media));
        }
        let received_bytes = self
            .media
            .blobs
            .size(&rows::upload_key(media))
            .await?
            .ok_or(Error::UploadMissing(media))?;
        // Checked before anything reads the bytes: an upload to a presigned URL may be any
        // size (the URL cannot bound it).
        let max = self.media.config.max_bytes;
        if received_bytes > max {
            return Err(Error::MediaTooLarge {
                what: "the upload",
                got: received_bytes,
                max,
            });
        }
        if received_bytes != record.declared_bytes {
            return Err(Error::SizeMismatch {
                declared: record.declared_bytes,
                got: received_bytes,
            });
        }
        let waiting = self
            .blocking(|store| Ok(store.scan_prefix(Table::MediaidProcessing, &[])?.len()))
            .await?;
        if waiting >= self.media.config.queue {
            return Err(Error::Overloaded {
                what: "processing media",
                retry_after: std::time::Duration::from_secs(5),
            });
        }
        let ack = self
            .execute(
                owner,
                Command::Media(MediaCommand::CompleteUpload {
                    media,
                    received_bytes,
                }),
            )
            .await?;
        self.media.wake();
        Ok(ack)
    }

    /// The one step of simple clients: request, store and complete. Returns the media's id
    /// and the completion's acknowledgement.
    pub async fn upload_media(
        &self,
        owner: UserId,
        content_type: String,
        bytes: Bytes,
    ) -> Result<(EventId, Ack)> {
        let grant = self
            .request_upload(owner, content_type, bytes.len() as u64)
            .await?;
        self.media
            .blobs
            .put(&rows::upload_key(grant.media), bytes)
            .await?;
        let ack = self.complete_upload(owner, grant.media).await?;
        Ok((grant.media, ack))
    }

    /// Deletes one of `owner`'s media: gone from every read at once; its objects are removed
    /// after the retention delay.
    pub async fn delete_media(&self, owner: UserId, media: EventId) -> Result<Ack> {
        let purge_after_ms =
            crate::accounts::now_ms() + self.media.config.retention.as_millis() as i64;
        self.execute(
            owner,
            Command::Media(MediaCommand::Delete {
                media,
                purge_after_ms,
            }),
        )
        .await
    }
}
