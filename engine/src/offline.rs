//! The engine's face for the command line when no server runs: a data directory opened for
//! itself (storage locks it, so a running server and an offline handle never share one), to
//! read the log, report on it, rebuild the write model and replay the views. The CLI and the
//! analytics rebuild use it instead of opening storage themselves.

use crate::WriteModelEntry;
use crate::error::Result;
use crate::log_report::LogReport;
use crate::replay::ReplayReport;
use crate::views::Views;
use girok_schemas::{Event, Seq};
use girok_storage::{Store, StoreConfig};
use std::path::Path;
use std::sync::Arc;

/// A data directory no server is using.
pub struct Offline {
    store: Arc<Store>,
}

/// How a replay runs.
#[derive(Clone, Copy, Debug)]
pub struct ReplayOptions {
    /// Rebuild up to and including this seq (`None`: the whole log).
    pub to_seq: Option<Seq>,
    /// Timely worker threads.
    pub workers: usize,
}

impl ReplayOptions {
    /// The whole log on `workers` threads.
    pub fn new(workers: usize) -> Self {
        Self {
            to_seq: None,
            workers,
        }
    }
}

impl Offline {
    /// Opens the data directory at `dir` with default storage settings.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_store(StoreConfig::new(dir))
    }

    /// Opens the data directory with the storage settings a server would use.
    pub fn open_with(config: &crate::EngineConfig) -> Result<Self> {
        Self::open_store(config.store.clone())
    }

    fn open_store(config: StoreConfig) -> Result<Self> {
        Ok(Self {
            store: Store::open(config)?,
        })
    }

    /// The last seq in the log (0 when empty).
    pub fn head(&self) -> Seq {
        self.store.head().get()
    }

    /// Opens the checkpointed state of the sink `name`, as [`crate::Engine::sink_state`].
    pub fn sink_state(&self, name: &str) -> Result<crate::SinkState> {
        crate::SinkState::open(self.store.path(), name)
    }

    /// Up to `limit` events with `seq >= from`, decoded.
    pub fn events(&self, from: Seq, limit: usize) -> Result<Vec<Event>> {
        crate::tailer::read_events(&self.store, from, self.head(), limit)
    }

    /// Event count, seq range, size on disk and counts per type (one sequential read).
    pub fn log_report(&self) -> Result<LogReport> {
        crate::log_report::log_report(&self.store)
    }

    /// Clears the write model and applies the whole log to it again; the events applied.
    /// `progress(done)` follows it.
    pub fn rebuild_write_model(&self, progress: impl FnMut(u64)) -> Result<u64> {
        crate::write_model::rebuild(&self.store, progress)
    }

    /// Rebuilds every view (and the search index) from the log as [`ReplayOptions`] say, and
    /// reports each one's digest. `progress(done, total)` follows it.
    pub fn replay(
        &self,
        options: ReplayOptions,
        progress: impl FnMut(Seq, Seq),
    ) -> Result<ReplayReport> {
        self.replay_views(options, progress)
            .map(|(report, _views)| report)
    }

    /// [`Offline::replay`], and the rebuilt views themselves, to read (tests compare them
    /// with a live engine's).
    pub fn replay_views(
        &self,
        options: ReplayOptions,
        progress: impl FnMut(Seq, Seq),
    ) -> Result<(ReplayReport, Arc<Views>)> {
        let dataflow = crate::dataflow::DataflowConfig {
            workers: options.workers,
        };
        crate::replay::replay(self.store.clone(), options.to_seq, dataflow, progress)
    }

    /// A hash of the whole write model ([`crate::write_model::digest`]): `girok replay`
    /// compares it before and after the rebuild.
    pub fn write_model_digest(&self) -> Result<u64> {
        crate::write_model::digest(&self.store)
    }

    /// Every entry of every write-model table, in order: what a rebuilt write model must
    /// equal.
    pub fn write_model_snapshot(&self) -> Result<Vec<WriteModelEntry>> {
        crate::write_model::snapshot(&self.store)
    }
}

/// The log of a data directory no server uses, for a rebuild of a sink (`girok analytics
/// rebuild`).
impl crate::tailer::LogSource for Offline {
    type Entry = Event;

    fn head(&self) -> Seq {
        Offline::head(self)
    }

    fn read(&self, from: Seq, through: Seq, limit: usize) -> Result<Vec<Event>> {
        crate::tailer::read_events(&self.store, from, through, limit)
    }
}
