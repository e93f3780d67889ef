//! The sweeper: a task that looks at the schedule of the write model (`due_mediaid`) every
//! `sweep_interval` and does what is due, through the log: an upload nothing used by its
//! time is deleted (`media.deleted`, reason `unattached`), and a deleted media's objects are
//! removed once its retention passed (those no other media holds), then `media.purged`.

use super::command::MediaCommand;
use super::processor::system_submission;
use super::rows::{self, DUE_PURGE, DUE_UNUSED, parse_due_key};
use crate::error::{Error, Result};
use crate::records::record;
use crate::sequencer::Sequencer;
use girok_schemas::EventId;
use girok_schemas::proto::MediaRecord;
use girok_storage::{Appender, BlobStore, Store, Table};
use std::sync::Arc;
use std::time::Duration;

/// Most due rows one look handles (the rest wait for the next).
const BATCH: usize = 256;

pub(crate) struct Sweeper {
    pub store: Arc<Store>,
    pub blobs: BlobStore,
    pub appender: Appender<Sequencer>,
    pub objects: Arc<tokio::sync::Mutex<()>>,
    pub retention: Duration,
}

/// Starts the sweeper on the current tokio runtime; abort the handle to stop it.
pub(crate) fn spawn(sweeper: Arc<Sweeper>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match sweeper.sweep_due().await {
                Ok(_) => {}
                Err(Error::Unavailable) => return,
                Err(error) => tracing::warn!(%error, "media sweep failed; retrying later"),
            }
        }
    })
}

impl Sweeper {
    /// Handles every row due now (at most [`BATCH`]); returns how many.
    pub(crate) async fn sweep_due(&self) -> Result<usize> {
        let now_ms = crate::accounts::now_ms();
        let store = self.store.clone();
        let due = tokio::task::spawn_blocking(move || -> Result<Vec<(u8, EventId)>> {
            // Keyed by due time: the first rows are the ones due, if any is.
            Ok(store
                .scan_range::<&[u8]>(Table::DueMediaid, .., BATCH)?
                .into_iter()
                .filter_map(|(key, _)| parse_due_key(&key))
                .take_while(|(due, _, _)| *due <= now_ms)
                .map(|(_, kind, media)| (kind, media))
                .collect())
        })
        .await
        .map_err(|e| Error::Internal(format!("media sweep read failed: {e}")))??;
        let count = due.len();
        for (kind, media) in due {
            let outcome = match kind {
                DUE_UNUSED => {
                    let purge_after_ms = now_ms + self.retention.as_millis() as i64;
                    self.submit(MediaCommand::Sweep {
                        media,
                        purge_after_ms,
                    })
                    .await
                }
                DUE_PURGE => self.purge(media).await,
                _ => Ok(()),
            };
            match outcome {
                Ok(()) | Err(Error::MediaNotFound(_)) => {}
                Err(Error::Unavailable) => return Err(Error::Unavailable),
                // One that fails (the object store is away) waits for the next look; the
                // rest go on.
                Err(error) => tracing::warn!(%media, %error, "media sweep of one media failed"),
            }
        }
        Ok(count)
    }

    async fn submit(&self, command: MediaCommand) -> Result<()> {
        self.appender
            .submit(system_submission(command))
            .await
            .map(drop)
    }

    /// Removes a deleted media's upload and the objects of its variants no other media holds,
    /// then records the purge.
    async fn purge(&self, media: EventId) -> Result<()> {
        let _objects = self.objects.lock().await;
        let store = self.store.clone();
        let orphans = tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
            let record: Option<MediaRecord> =
                record(store.get(Table::MediaidMedia, media.as_bytes())?, "media")?;
            let Some(record) = record else {
                return Ok(Vec::new());
            };
            let mut orphans = Vec::new();
            for hash in record.variant_hashes {
                let holders = store.scan_prefix(Table::ContenthashMediaid, hash.as_bytes())?;
                let held_elsewhere = holders
                    .iter()
                    .any(|(key, _)| key.get(hash.len()..) != Some(media.as_bytes().as_slice()));
                if !held_elsewhere && !orphans.contains(&hash) {
                    orphans.push(hash);
                }
            }
            Ok(orphans)
        })
        .await
        .map_err(|e| Error::Internal(format!("media purge read failed: {e}")))??;
        for hash in &orphans {
            self.blobs.delete(&rows::object_key(hash)).await?;
        }
        self.blobs.delete(&rows::upload_key(media)).await?;
        self.submit(MediaCommand::Purged { media }).await
    }
}
