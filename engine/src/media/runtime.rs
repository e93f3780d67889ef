//! Media's running parts, which the engine holds: the object store, the upload signer, the
//! processing pool and the sweeper.

use super::config::{MEDIA_DIR, MediaConfig};
use super::processor::Processor;
use super::signing::UploadSigner;
use super::sweeper::{self, Sweeper};
use crate::error::Result;
use crate::sequencer::Sequencer;
use girok_storage::{Appender, BlobStore, Store};
use parking_lot::Mutex;
use std::sync::Arc;

pub(crate) struct MediaRuntime {
    pub config: MediaConfig,
    pub blobs: BlobStore,
    pub signer: UploadSigner,
    processor: Mutex<Option<Processor>>,
    sweeping: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl MediaRuntime {
    /// Opens the object store and starts the pool and the sweeper (inside a tokio runtime).
    pub(crate) fn start(
        config: MediaConfig,
        store: Arc<Store>,
        appender: Appender<Sequencer>,
    ) -> Result<MediaRuntime> {
        let blobs = BlobStore::open(&config.blobs)?;
        let signer = UploadSigner::load_or_create(&store.path().join(MEDIA_DIR))?;
        let objects = Arc::new(tokio::sync::Mutex::new(()));
        let processor = Processor::start(
            store.clone(),
            blobs.clone(),
            appender.clone(),
            config.max_bytes,
            objects.clone(),
            config.workers,
        )?;
        let sweeper = Arc::new(Sweeper {
            store,
            blobs: blobs.clone(),
            appender,
            objects,
            retention: config.retention,
        });
        let sweeping = sweeper::spawn(sweeper, config.sweep_interval);
        tracing::info!(
            store = blobs.kind(),
            workers = config.workers,
            "media started"
        );
        Ok(MediaRuntime {
            config,
            blobs,
            signer,
            processor: Mutex::new(Some(processor)),
            sweeping: Mutex::new(Some(sweeping)),
        })
    }

    /// Tells the pool an upload was completed.
    pub(crate) fn wake(&self) {
        if let Some(processor) = self.processor.lock().as_ref() {
            processor.wake();
        }
    }

    /// Registers processing's metrics.
    pub(crate) fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        if let Some(processor) = self.processor.lock().as_ref() {
            processor.metrics().register(registry);
        }
    }

    /// Stops the sweeper and the pool (blocking: call off the async runtime).
    pub(crate) fn stop(&self) {
        if let Some(sweeping) = self.sweeping.lock().take() {
            sweeping.abort();
        }
        if let Some(processor) = self.processor.lock().take() {
            processor.stop();
        }
    }
}
