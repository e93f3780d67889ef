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
use girok_schemas::EventId;
use girok_schemas::proto::MediaRecord;
use girok_storage::{Appender, BlobStore, Store, Table};
use parking_lot::{Condvar, Mutex};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an idle worker sleeps before it looks at the write model again (a completion
/// wakes it sooner).
const IDLE_LOOK: Duration = Duration::from_secs(1);
/// The first wait before an upload whose processing failed (a storage error) is tried again;
/// it doubles with each failure, up to [`MOST_RETRY_AFTER`]. Other uploads go on meanwhile.
const RETRY_AFTER: Duration = Duration::from_secs(1);
const MOST_RETRY_AFTER: Duration = Duration::from_secs(60);

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
    metrics: ProcessingMetrics,
}

/// What `/metrics` shows of processing.
#[derive(Clone)]
pub(crate) struct ProcessingMetrics {
    processed: Counter,
    rejected: Counter,
    seconds: Histogram,
}

impl Default for ProcessingMetrics {
    fn default() -> Self {
        Self {
            processed: Counter::default(),
            rejected: Counter::default(),
            seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
        }
    }
}

impl ProcessingMetrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "girok_media_processed",
            "Uploads processed into variants",
            self.processed.clone(),
        );
        registry.register(
            "girok_media_rejected",
            "Uploads processing refused",
            self.rejected.clone(),
        );
        registry.register(
            "girok_media_processing_seconds",
            "Time to process one upload (read, decode, variants, store, outcome committed)",
            self.seconds.clone(),
        );
    }
}

#[derive(Default)]
struct State {
    in_flight: HashSet<EventId>,
    /// Uploads whose processing failed: how often, and not before when to try again.
    failed: HashMap<EventId, (u32, Instant)>,
    stopping: bool,
}

/// The running pool.
pub(crate) struct Processor {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// girok's own media command.
pub(crate) fn system_submission(command: MediaCommand) -> Submission {
    Submission::by_girok(Command::Media(command))
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
            metrics: ProcessingMetrics::default(),
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

    /// Its metrics.
    pub(crate) fn metrics(&self) -> &ProcessingMetrics {
        &self.shared.metrics
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

fn work(shared: &Arc<Shared>) {
    // At most one upload per worker is being stored and committed while the worker decodes
    // the next: the I/O (object writes, syncs, the log's fsync) overlaps the next image's
    // work, and memory holds at most one finished image besides the one in hand.
    let mut storing: Option<tokio::task::JoinHandle<()>> = None;
    while let Some(media) = next(shared) {
        let outcome = process_one(shared, media);
        if let Some(previous) = storing.take() {
            let _ = shared.runtime.block_on(previous);
        }
        match outcome {
            Ok(Some(store_and_commit)) => storing = Some(shared.runtime.spawn(store_and_commit)),
            Ok(None) => finish(shared, media, Ok(())),
            Err(Error::Unavailable) => {
                finish(shared, media, Err(Error::Unavailable));
                return;
            }
            Err(error) => finish(shared, media, Err(error)),
        }
    }
    if let Some(previous) = storing {
        let _ = shared.runtime.block_on(previous);
    }
}

/// An upload is out of a worker's hands: done, or failed and to be tried again later.
fn finish(shared: &Shared, media: EventId, outcome: Result<()>) {
    let mut state = shared.state.lock();
    state.in_flight.remove(&media);
    match outcome {
        Ok(()) | Err(Error::Unavailable) => {
            state.failed.remove(&media);
        }
        Err(error) => {
            let failures = state.failed.get(&media).map_or(0, |(n, _)| *n) + 1;
            let wait = RETRY_AFTER
                .saturating_mul(1 << failures.min(6))
                .min(MOST_RETRY_AFTER);
            tracing::warn!(%media, %error, failures, ?wait, "media processing failed; will retry");
            state
                .failed
                .insert(media, (failures, Instant::now() + wait));
        }
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
                let now = Instant::now();
                let rows: Vec<EventId> = rows
                    .into_iter()
                    .filter_map(|(key, _)| EventId::from_slice(&key))
                    .collect();
                // A failed upload deleted meanwhile is no longer retried: forget it.
                state.failed.retain(|media, _| rows.contains(media));
                let waiting = rows.into_iter().find(|media| {
                    !state.in_flight.contains(media)
                        && state
                            .failed
                            .get(media)
                            .is_none_or(|(_, after)| *after <= now)
                });
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

/// Processes one upload (the CPU's part, on the worker's thread); returns the rest as a task:
/// storing its variants, committing its outcome, removing the upload, finishing it. `None`
/// when there was nothing to do.
fn process_one(
    shared: &Arc<Shared>,
    media: EventId,
) -> Result<Option<impl Future<Output = ()> + Send + 'static>> {
    let record: Option<MediaRecord> = record(
        shared.store.get(Table::MediaidMedia, media.as_bytes())?,
        "media",
    )?;
    let Some(record) = record.filter(|r| r.state == PROCESSING) else {
        return Ok(None);
    };
    let started = Instant::now();
    let upload_key = rows::upload_key(media);
    let outcome = match read_upload(shared, &upload_key)? {
        Err(rejection) => Err(rejection),
        // A decoder that panics on hostile bytes refuses the image, not the worker.
        Ok(bytes) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            process(&bytes, record.declared_bytes, shared.max_bytes)
        }))
        .unwrap_or_else(|_| {
            Err(Rejection {
                code: "CORRUPT_IMAGE",
                detail: "the image could not be decoded".into(),
            })
        }),
    };
    let shared = shared.clone();
    Ok(Some(async move {
        let ready = outcome.is_ok();
        let committed = store_and_commit(&shared, media, outcome).await;
        if committed.is_ok() {
            let metrics = &shared.metrics;
            metrics.seconds.observe(started.elapsed().as_secs_f64());
            if ready {
                metrics.processed.inc();
            } else {
                metrics.rejected.inc();
            }
            // The upload's bytes are no longer needed; a failure leaves them for the purge.
            if let Err(error) = shared.blobs.delete(&upload_key).await {
                tracing::warn!(%media, %error, "cannot remove a processed upload");
            }
        }
        finish(&shared, media, committed);
    }))
}

/// Stores the variants of a processed upload (synced: `media.ready`, durable once
/// acknowledged, makes them readable) and commits the outcome, holding the objects' lock
/// from the first write until the log has answered.
async fn store_and_commit(
    shared: &Shared,
    media: EventId,
    outcome: Result<super::process::Processed, Rejection>,
) -> Result<()> {
    let _objects = shared.objects.lock().await;
    // The distinct objects written, for a refusal to take back.
    let mut written: Vec<String> = Vec::new();
    let outcome = match outcome {
        Ok(done) => {
            let mut variant_names = Vec::with_capacity(done.variants.len());
            let mut variant_hashes = Vec::with_capacity(done.variants.len());
            let mut variant_bytes = Vec::with_capacity(done.variants.len());
            let mut puts = Vec::with_capacity(done.variants.len());
            for variant in done.variants {
                variant_names.push(variant.name.to_owned());
                variant_bytes.push(variant.bytes.len() as u64);
                variant_hashes.push(variant.hash.clone());
                // A small image's variants are often the same bytes: one object, one write.
                if written.contains(&variant.hash) {
                    continue;
                }
                let key = rows::object_key(&variant.hash);
                written.push(variant.hash);
                let blobs = &shared.blobs;
                let bytes = Bytes::from(variant.bytes);
                puts.push(async move { blobs.put_durable(&key, bytes).await });
            }
            for put in futures::future::join_all(puts).await {
                put?;
            }
            ProcessOutcome::Ready {
                content_type: done.content_type.to_owned(),
                width: u64::from(done.width),
                height: u64::from(done.height),
                placeholder: done.placeholder,
                variant_names,
                variant_hashes,
                variant_bytes,
            }
        }
        Err(rejection) => ProcessOutcome::Rejected {
            reason: rejection.code.to_owned(),
            detail: rejection.detail,
        },
    };
    let command = system_submission(MediaCommand::Processed { media, outcome });
    match shared.appender.submit(command).await {
        Ok(_) => Ok(()),
        // Deleted while processing: its outcome has nowhere to go, nor its variants (those
        // no other media holds; the lock keeps a purge from deciding meanwhile).
        Err(Error::MediaNotFound(_)) => remove_unheld(shared, &written).await,
        Err(error) => Err(error),
    }
}

/// The upload's bytes, or why it is refused without reading them (missing, or larger than
/// uploads may be: the answer's size is looked at before its body is read).
fn read_upload(shared: &Shared, key: &str) -> Result<Result<Bytes, Rejection>> {
    let read = shared
        .runtime
        .block_on(shared.blobs.get_at_most(key, shared.max_bytes))?;
    Ok(match read {
        Some(Ok(bytes)) => Ok(bytes),
        Some(Err(size)) => Err(Rejection {
            code: "TOO_LARGE",
            detail: format!("{size} bytes; the most is {}", shared.max_bytes),
        }),
        None => Err(Rejection {
            code: "UPLOAD_MISSING",
            detail: "the upload is no longer in the object store".into(),
        }),
    })
}

/// Removes the objects of `hashes` that no media holds.
async fn remove_unheld(shared: &Shared, hashes: &[String]) -> Result<()> {
    let store = shared.store.clone();
    let hashes = hashes.to_vec();
    let unheld = tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
        let mut unheld = Vec::new();
        for hash in hashes {
            if store
                .scan_prefix(Table::ContenthashMediaid, hash.as_bytes())?
                .is_empty()
            {
                unheld.push(hash);
            }
        }
        Ok(unheld)
    })
    .await
    .map_err(|e| Error::Internal(format!("media reference read failed: {e}")))??;
    for hash in unheld {
        shared.blobs.delete(&rows::object_key(&hash)).await?;
    }
    Ok(())
}
