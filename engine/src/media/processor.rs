//! The processing pool: a few threads at the lowest scheduling priority that take uploads
//! waiting for processing from the write model (`mediaid_processing`, so a restart picks up
//! what a crash interrupted), run the image pipeline, store the variants under their content
//! hashes and record the outcome through the log. An upload is never half-visible: its
//! variants become readable only with the `media.ready` event, written after every object.

use super::command::{MediaCommand, ProcessOutcome};
use super::process::{Rejection, process};
use super::rows::{self, PROCESSING};
use crate::command::{Command, Submission};
use crate::error::{Error, Result};
use crate::records::record;
use crate::sequencer::Sequencer;
use bytes::Bytes;
use girok_schemas::proto::MediaRecord;
use girok_schemas::{EventId, UserId};
use girok_storage::{Appender, BlobStore, Store, Table};
use parking_lot::{Condvar, Mutex};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long an idle worker sleeps before it looks at the write model again (a completion
/// wakes it sooner).
const IDLE_LOOK: Duration = Duration::from_secs(1);
/// How long a worker waits after a storage error before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What the workers share.
pub(crate) struct Shared {
    pub store: Arc<Store>,
    pub blobs: BlobStore,
    pub appender: Appender<Sequencer>,
    pub runtime: tokio::runtime::Handle,
    pub max_bytes: u64,
    /// Held from a variant's write to its `media.ready`, and by the sweeper from its check of
    /// a hash's references to the object's removal, so neither undoes the other.
    pub objects: Arc<tokio::sync::Mutex<()>>,
    state: Mutex<State>,
    wake: Condvar,
    pub processed: AtomicU64,
    pub rejected: AtomicU64,
}

#[derive(Default)]
struct State {
    in_flight: HashSet<EventId>,
    stopping: bool,
}

/// The running pool.
pub(crate) struct Processor {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// girok's own commands go as the nil user, nobody's.
pub(crate) fn system_submission(command: MediaCommand) -> Submission {
    Submission {
        actor: UserId(uuid::Uuid::nil()),
        command: Command::Media(command),
        new_id: EventId::new_v7(),
    }
}

impl Processor {
    /// Starts `workers` threads.
    pub(crate) fn start(
        store: Arc<Store>,
        blobs: BlobStore,
        appender: Appender<Sequencer>,
        max_bytes: u64,
        objects: Arc<tokio::sync::Mutex<()>>,
        workers: usize,
    ) -> Result<Processor> {
        let shared = Arc::new(Shared {
            store,
            blobs,
            appender,
            runtime: tokio::runtime::Handle::current(),
            max_bytes,
            objects,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            processed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        });
        let threads = (0..workers.max(1))
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("girok-media-{i}"))
                    .spawn(move || {
                        crate::background::lower_priority("media processing");
                        work(&shared);
                    })
                    .map_err(|e| Error::Internal(format!("cannot start a media worker: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Processor { shared, threads })
    }

    /// Tells the workers an upload was completed.
    pub(crate) fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Uploads processed and rejected since start.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.shared.processed.load(Ordering::Relaxed),
            self.shared.rejected.load(Ordering::Relaxed),
        )
    }

    /// Stops after the images in hand (their outcome may be refused if the writer stopped
    /// first: they stay waiting, and the next start processes them).
    pub(crate) fn stop(self) {
        self.shared.state.lock().stopping = true;
        self.shared.wake.notify_all();
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn work(shared: &Shared) {
    while let Some(media) = next(shared) {
        if let Err(error) = process_one(shared, media) {
            if matches!(error, Error::Unavailable) {
                shared.state.lock().in_flight.remove(&media);
                return;
            }
            tracing::warn!(%media, %error, "media processing failed; will retry");
            std::thread::sleep(RETRY_AFTER);
        }
        shared.state.lock().in_flight.remove(&media);
    }
}

/// The next upload waiting that no other worker has, waiting for one; `None` once stopping.
fn next(shared: &Shared) -> Option<EventId> {
    let mut state = shared.state.lock();
    loop {
        if state.stopping {
            return None;
        }
        match shared.store.scan_prefix(Table::MediaidProcessing, &[]) {
            Ok(rows) => {
                let waiting = rows
                    .into_iter()
                    .filter_map(|(key, _)| EventId::from_slice(&key))
                    .find(|media| !state.in_flight.contains(media));
                if let Some(media) = waiting {
                    state.in_flight.insert(media);
                    return Some(media);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the media waiting for processing"),
        }
        shared.wake.wait_for(&mut state, IDLE_LOOK);
    }
}

fn process_one(shared: &Shared, media: EventId) -> Result<()> {
    let record: Option<MediaRecord> = record(
        shared.store.get(Table::MediaidMedia, media.as_bytes())?,
        "media",
    )?;
    let Some(record) = record.filter(|r| r.state == PROCESSING) else {
        return Ok(());
    };
    let upload_key = rows::upload_key(media);
    let upload = shared.runtime.block_on(shared.blobs.get(&upload_key))?;
    let outcome = match upload {
        None => Err(Rejection {
            code: "UPLOAD_MISSING",
            detail: "the upload is no longer in the object store".into(),
        }),
        Some(bytes) => process(&bytes, record.declared_bytes, shared.max_bytes),
    };
    let ready = outcome.is_ok();
    shared.runtime.block_on(async {
        let _objects = shared.objects.lock().await;
        let outcome = match outcome {
            Ok(done) => {
                let mut variants = Vec::with_capacity(done.variants.len());
                for variant in done.variants {
                    let key = rows::object_key(&variant.hash);
                    let size = variant.bytes.len() as u64;
                    shared.blobs.put(&key, Bytes::from(variant.bytes)).await?;
                    variants.push((variant.name.to_owned(), variant.hash, size));
                }
                ProcessOutcome::Ready {
                    content_type: done.content_type.to_owned(),
                    width: u64::from(done.width),
                    height: u64::from(done.height),
                    placeholder: done.placeholder,
                    variants,
                }
            }
            Err(rejection) => ProcessOutcome::Rejected {
                reason: rejection.code.to_owned(),
                detail: rejection.detail,
            },
        };
        match shared
            .appender
            .submit(system_submission(MediaCommand::Processed {
                media,
                outcome,
            }))
            .await
        {
            // Deleted while processing: its outcome has nowhere to go.
            Ok(_) | Err(Error::MediaNotFound(_)) => Ok(()),
            Err(error) => Err(error),
        }
    })?;
    if ready {
        shared.processed.fetch_add(1, Ordering::Relaxed);
    } else {
        shared.rejected.fetch_add(1, Ordering::Relaxed);
    }
    // The upload's bytes are no longer needed; a failure leaves them for the purge.
    if let Err(error) = shared.runtime.block_on(shared.blobs.delete(&upload_key)) {
        tracing::warn!(%media, %error, "cannot remove a processed upload");
    }
    Ok(())
}
