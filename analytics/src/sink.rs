//! The sink: the pipeline thread produces batches; the shipper task gathers them for up to
//! `flush_ms` and writes them to ClickHouse, table by table, each insert one block (whole or
//! nothing), then commits the batch's checkpoint (`state.rs`) so that the next start resumes
//! after it. Exactly once: the shipper knows, per table, the highest seq ClickHouse holds (read
//! at connection, advanced by each successful insert, and read again after any failure, since
//! a failed insert may have landed), and writes only rows above it. Retries back off
//! exponentially with jitter behind the circuit breaker; none of this is on the path of a
//! client's write, so an outage only grows the lag.

use crate::breaker::{BreakerState, CircuitBreaker};
use crate::config::AnalyticsConfig;
use crate::pipeline::{Batch, EventSource, Pipeline, Progress};
use crate::retry::Backoff;
use crate::rollups::Rollup;
use crate::rows::{RollupRow, max_seq};
use crate::state::{self, StateChanges};
use crate::warehouse::{Offsets, Warehouse};
use crate::{Error, Result};
use girok_engine::{LogSource, SinkCheckpoint, SinkState};
use girok_schemas::Seq;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Batches waiting between the pipeline and the shipper.
const CHANNEL: usize = 8;

/// What `/readyz` shows of the sink.
#[derive(Clone, Debug, Serialize)]
pub struct SinkStatus {
    /// `off` (no ClickHouse configured), `connecting` (never reached yet), or the breaker's
    /// state: `closed`, `open`, `half_open`.
    pub state: &'static str,
    pub database: Option<String>,
    /// Every table holds everything up to this seq.
    pub shipped_seq: Seq,
    /// The pipeline's state is checkpointed up to this seq (a restart resumes after it).
    pub checkpoint_seq: Seq,
    /// The checkpoint this run resumed from (0: it fed the log from seq 1).
    pub resumed_from: Seq,
    /// Log events not in ClickHouse yet.
    pub lag_events: u64,
    /// How long ago the oldest of them was committed (0 when none).
    pub lag_seconds: f64,
    pub rows_written: u64,
    pub last_error: Option<String>,
}

impl SinkStatus {
    /// The status of a girok with analytics off.
    pub fn off() -> Self {
        Self {
            state: "off",
            database: None,
            shipped_seq: 0,
            checkpoint_seq: 0,
            resumed_from: 0,
            lag_events: 0,
            lag_seconds: 0.0,
            rows_written: 0,
            last_error: None,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: &'static str,
}

#[derive(Default)]
struct Metrics {
    lag_events: Gauge,
    lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    breaker: Gauge,
    shipped_seq: Gauge,
    checkpoint_seq: Gauge,
    rows: Family<TableLabel, Counter>,
    failures: Counter,
}

struct Shared {
    state: &'static str,
    shipped_seq: Seq,
    checkpoint_seq: Seq,
    /// Commit time of the event after `shipped_seq`, once the pipeline has read it.
    next_time_ms: Option<i64>,
    rows_written: u64,
    last_error: Option<String>,
}

impl Shared {
    fn new() -> Arc<Mutex<Shared>> {
        Arc::new(Mutex::new(Shared {
            state: "connecting",
            shipped_seq: 0,
            checkpoint_seq: 0,
            next_time_ms: None,
            rows_written: 0,
            last_error: None,
        }))
    }
}

/// A running sink.
pub struct Sink {
    source: Arc<dyn EventSource>,
    database: String,
    shared: Arc<Mutex<Shared>>,
    metrics: Arc<Metrics>,
    progress: Arc<Progress>,
    state: Arc<SinkState>,
    stop: Arc<AtomicBool>,
    shipper: Mutex<Option<JoinHandle<()>>>,
    pipeline: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Sink {
    /// Starts the pipeline thread and the shipper task (inside a tokio runtime), the pipeline
    /// resuming from the checkpoint in `state` (the engine's `sink_state` named by
    /// [`AnalyticsConfig::state_name`]) when ClickHouse holds what it covers. ClickHouse need
    /// not be up: the shipper keeps trying behind the breaker.
    pub fn start(
        source: Arc<dyn EventSource>,
        state: SinkState,
        config: AnalyticsConfig,
    ) -> Result<Arc<Sink>> {
        let database = config.database_name()?.to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel(CHANNEL);
        let progress = Arc::new(Progress::default());
        let state = Arc::new(state);
        let pipeline = Pipeline {
            source: source.clone(),
            state: state.clone(),
            batches: tx,
            stop: stop.clone(),
            until: None,
            progress: progress.clone(),
        }
        .spawn()?;
        let shared = Shared::new();
        let metrics = Arc::new(Metrics::default());
        let shipper = Shipper::new(
            config,
            shared.clone(),
            metrics.clone(),
            progress.clone(),
            state.clone(),
        );
        let task = tokio::spawn(shipper.run(rx, None, |_| {}));
        Ok(Arc::new(Sink {
            source,
            database,
            shared,
            metrics,
            progress,
            state,
            stop,
            shipper: Mutex::new(Some(task)),
            pipeline: Mutex::new(Some(pipeline)),
        }))
    }

    /// State and lag.
    pub fn status(&self) -> SinkStatus {
        let head = self.source.head();
        // Copied out, so that the log read below never holds up the shipper.
        let shared = self.shared.lock();
        let (state, shipped_seq, checkpoint_seq, next_time_ms, rows_written, last_error) = (
            shared.state,
            shared.shipped_seq,
            shared.checkpoint_seq,
            shared.next_time_ms,
            shared.rows_written,
            shared.last_error.clone(),
        );
        drop(shared);
        let lag_events = head.saturating_sub(shipped_seq);
        let oldest_unshipped_ms = match (lag_events, next_time_ms) {
            (0, _) => None,
            (_, Some(time_ms)) => Some(time_ms),
            // The pipeline has not read past what is shipped yet: read the next event's time.
            (_, None) => self
                .source
                .read(shipped_seq + 1, head, 1)
                .ok()
                .and_then(|events| events.first().map(|e| e.commit_time_ms)),
        };
        SinkStatus {
            state,
            database: Some(self.database.clone()),
            shipped_seq,
            checkpoint_seq,
            resumed_from: self.progress.resumed_from.load(Ordering::Acquire),
            lag_events,
            lag_seconds: oldest_unshipped_ms.map_or(0.0, |t| (now_ms() - t).max(0) as f64 / 1000.0),
            rows_written,
            last_error,
        }
    }

    pub fn register_metrics(&self, registry: &mut Registry) {
        let m = &self.metrics;
        registry.register(
            "girok_analytics_lag_events",
            "Log events not yet in ClickHouse",
            m.lag_events.clone(),
        );
        registry.register(
            "girok_analytics_lag_seconds",
            "Age of the oldest log event not yet in ClickHouse",
            m.lag_seconds.clone(),
        );
        registry.register(
            "girok_analytics_breaker_state",
            "Circuit breaker: 0 closed, 1 half open, 2 open, 3 never connected",
            m.breaker.clone(),
        );
        registry.register(
            "girok_analytics_shipped_seq",
            "Every ClickHouse table holds the log up to this seq",
            m.shipped_seq.clone(),
        );
        registry.register(
            "girok_analytics_checkpoint_seq",
            "The analytics pipeline's state is checkpointed up to this seq",
            m.checkpoint_seq.clone(),
        );
        registry.register(
            "girok_analytics_rows",
            "Rows written to ClickHouse",
            m.rows.clone(),
        );
        registry.register(
            "girok_analytics_insert_failures",
            "Failed ClickHouse calls",
            m.failures.clone(),
        );
    }

    /// Brings the lag gauges up to date (call before encoding metrics).
    pub fn refresh_metrics(&self) {
        let status = self.status();
        self.metrics.lag_events.set(status.lag_events as i64);
        self.metrics.lag_seconds.set(status.lag_seconds);
    }

    /// Stops the pipeline and the shipper (what is not shipped stays in the log), waits for
    /// both, and writes the last checkpoint to disk.
    pub async fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        let shipper = self.shipper.lock().take();
        if let Some(task) = shipper {
            task.abort();
            // Cancelled (or done): either way the shipper no longer runs.
            let _ = task.await;
        }
        let pipeline = self.pipeline.lock().take();
        if let Some(thread) = pipeline {
            // The channel closed with the shipper, so the pipeline ends within a step.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        // A commit the aborted shipper had started holds the state until it ends: let it, so
        // that the last commit is in what `close` seals.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.state) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let state = self.state.clone();
        match tokio::task::spawn_blocking(move || state.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot write the analytics checkpoint"),
            Err(error) => tracing::warn!(%error, "cannot write the analytics checkpoint"),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Writes batches to ClickHouse, exactly once, behind the breaker.
pub(crate) struct Shipper {
    config: AnalyticsConfig,
    shared: Arc<Mutex<Shared>>,
    metrics: Arc<Metrics>,
    breaker: CircuitBreaker,
    backoff: Backoff,
    warehouse: Option<Warehouse>,
    /// What ClickHouse holds; `None` until read (again, after a failure).
    offsets: Option<Offsets>,
    /// Tells the pipeline how far `audit_events` goes (it then skips building those rows).
    progress: Arc<Progress>,
    /// Where delivered batches' checkpoints go; `None` once a commit failed.
    state: Option<Arc<SinkState>>,
}

impl Shipper {
    fn new(
        config: AnalyticsConfig,
        shared: Arc<Mutex<Shared>>,
        metrics: Arc<Metrics>,
        progress: Arc<Progress>,
        state: Arc<SinkState>,
    ) -> Self {
        Self {
            breaker: CircuitBreaker::new(
                config.breaker_failures,
                Duration::from_millis(config.breaker_reset_ms),
                config.breaker_successes,
            ),
            backoff: Backoff::new(
                Duration::from_millis(config.retry_base_ms),
                Duration::from_millis(config.retry_max_ms),
            ),
            config,
            shared,
            metrics,
            warehouse: None,
            offsets: None,
            progress,
            state: Some(state),
        }
    }

    /// Ships every batch `rx` yields; with `until`, returns once that seq is shipped.
    /// `progress` gets the shipped seq after each delivery.
    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Batch>,
        until: Option<Seq>,
        mut progress: impl FnMut(Seq),
    ) {
        self.metrics.breaker.set(3);
        // Connects and reads what ClickHouse holds, which the pipeline waits for to choose
        // where it starts.
        self.deliver(&Batch::default()).await;
        self.progress.clickhouse_read.store(true, Ordering::Release);
        while let Some(mut batch) = rx.recv().await {
            // Gather for up to `flush_ms` (or `max_batch_rows`) into one delivery.
            let deadline = tokio::time::Instant::now() + self.config.flush();
            while batch.rows() < self.config.max_batch_rows {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(next)) => batch.append(next),
                    Ok(None) | Err(_) => break,
                }
            }
            {
                let mut shared = self.shared.lock();
                shared.next_time_ms.get_or_insert(batch.last_time_ms);
            }
            self.deliver(&batch).await;
            let shipped = batch.last;
            self.checkpoint(std::mem::take(&mut batch.state), shipped)
                .await;
            {
                let mut shared = self.shared.lock();
                shared.shipped_seq = shipped;
                shared.next_time_ms = None;
            }
            self.metrics.shipped_seq.set(shipped as i64);
            progress(shipped);
            if until.is_some_and(|u| shipped >= u) {
                return;
            }
        }
    }

    /// Retries until the batch is in ClickHouse.
    async fn deliver(&mut self, batch: &Batch) {
        loop {
            if let Err(wait) = self.breaker.allow(Instant::now()) {
                self.set_state();
                tokio::time::sleep(wait).await;
                continue;
            }
            match self.try_deliver(batch).await {
                Ok(()) => {
                    self.breaker.record_success();
                    self.backoff.reset();
                    self.set_state();
                    return;
                }
                Err(error) => {
                    self.metrics.failures.inc();
                    self.breaker.record_failure(Instant::now());
                    // A failed insert may have landed: read what ClickHouse holds again.
                    self.offsets = None;
                    if matches!(error, Error::Config(_)) {
                        self.warehouse = None;
                    }
                    let delay = self.backoff.next_delay();
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64,
                        breaker = self.breaker.state().name(), "analytics delivery failed");
                    self.shared.lock().last_error = Some(error.to_string());
                    self.set_state();
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Commits a delivered batch's state changes with its checkpoint, off the runtime's
    /// threads. A commit that fails turns checkpoints off for this run, since a later commit
    /// could no longer make the rows whole.
    async fn checkpoint(&mut self, changes: StateChanges, seq: Seq) {
        let Some(state) = self.state.clone() else {
            return;
        };
        let checkpoint = SinkCheckpoint {
            seq,
            format: state::format(),
        };
        let commit = {
            let state = state.clone();
            tokio::task::spawn_blocking(move || {
                let rows = changes.rows(|prefix| state.keys(prefix))?;
                state.commit(rows, checkpoint)
            })
        };
        let error = match commit.await {
            Ok(Ok(())) => {
                self.shared.lock().checkpoint_seq = seq;
                self.metrics.checkpoint_seq.set(seq as i64);
                return;
            }
            Ok(Err(error)) => error.to_string(),
            Err(error) => error.to_string(),
        };
        // The last checkpoint on disk stays whole and behind ClickHouse: the next start resumes
        // from it and reads the log after it.
        tracing::error!(%error, "cannot commit the analytics checkpoint: checkpoints are off \
            until the next start");
        self.state = None;
    }

    fn set_state(&self) {
        let state = self.breaker.state();
        let connected = self.warehouse.is_some();
        self.metrics.breaker.set(match (connected, state) {
            (false, BreakerState::Closed) => 3,
            (_, BreakerState::Closed) => 0,
            (_, BreakerState::HalfOpen) => 1,
            (_, BreakerState::Open) => 2,
        });
        self.shared.lock().state = match (connected, state) {
            (false, BreakerState::Closed) => "connecting",
            (_, state) => state.name(),
        };
    }

    async fn try_deliver(&mut self, batch: &Batch) -> Result<()> {
        if self.warehouse.is_none() {
            self.warehouse = Some(Warehouse::connect(&self.config).await?);
        }
        let Some(warehouse) = self.warehouse.as_ref() else {
            return Err(Error::Config("no warehouse".into()));
        };
        let mut offsets = match self.offsets {
            Some(offsets) => offsets,
            None => {
                let held = warehouse.offsets().await?;
                self.progress
                    .audit_held
                    .fetch_max(held.audit, Ordering::AcqRel);
                held
            }
        };
        self.offsets = Some(offsets);
        let max_rows = self.config.max_batch_rows.max(1);
        let audit: Vec<_> = batch
            .audit
            .iter()
            .filter(|r| r.seq > offsets.audit)
            .cloned()
            .collect();
        for chunk in audit.chunks(max_rows) {
            warehouse.insert_audit(chunk).await?;
            offsets.audit = max_seq(chunk, |r| r.seq).unwrap_or(offsets.audit);
            self.offsets = Some(offsets);
            self.count("audit_events", chunk.len());
        }
        for rollup in Rollup::ALL {
            let held = offsets.rollup(rollup);
            let rows: Vec<RollupRow> = batch.rollups[rollup as usize]
                .iter()
                .filter(|r| r.seq > held)
                .cloned()
                .collect();
            for chunk in rows.chunks(max_rows) {
                warehouse.insert_rollup(rollup, chunk).await?;
                offsets.rollups[rollup as usize] = max_seq(chunk, |r| r.seq).unwrap_or(held);
                self.offsets = Some(offsets);
                self.count(rollup.table(), chunk.len());
            }
        }
        Ok(())
    }

    fn count(&self, table: &'static str, rows: usize) {
        self.metrics
            .rows
            .get_or_create(&TableLabel { table })
            .inc_by(rows as u64);
        self.shared.lock().rows_written += rows as u64;
    }
}

/// What `girok analytics rebuild` did.
#[derive(Clone, Debug, Serialize)]
pub struct RebuildReport {
    pub to_seq: Seq,
    pub rows: u64,
    pub elapsed_ms: u64,
    pub rows_per_sec: f64,
}

/// Drops girok's ClickHouse tables and refills them from the log up to its head, with a new
/// checkpoint in `state`. `progress(shipped, head)` follows it.
pub async fn rebuild(
    source: Arc<dyn EventSource>,
    state: SinkState,
    config: AnalyticsConfig,
    mut progress: impl FnMut(Seq, Seq),
) -> Result<RebuildReport> {
    let warehouse = Warehouse::connect(&config).await?;
    warehouse.drop_all().await?;
    drop(warehouse);
    state.clear()?;
    let state = Arc::new(state);
    let head = source.head();
    let started = Instant::now();
    let shared = Shared::new();
    let pipeline_progress = Arc::new(Progress::default());
    let mut shipper = Shipper::new(
        config,
        shared.clone(),
        Arc::new(Metrics::default()),
        pipeline_progress.clone(),
        state.clone(),
    );
    // Recreates the tables.
    shipper.warehouse = Some(Warehouse::connect(&shipper.config).await?);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel(CHANNEL);
    let thread = Pipeline {
        source,
        state: state.clone(),
        batches: tx,
        stop: stop.clone(),
        until: Some(head),
        progress: pipeline_progress,
    }
    .spawn()?;
    if head > 0 {
        shipper
            .run(rx, Some(head), |shipped| progress(shipped, head))
            .await;
    }
    stop.store(true, Ordering::Release);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    state.close()?;
    let rows = shared.lock().rows_written;
    let elapsed = started.elapsed();
    Ok(RebuildReport {
        to_seq: head,
        rows,
        elapsed_ms: elapsed.as_millis() as u64,
        rows_per_sec: rows as f64 / elapsed.as_secs_f64().max(1e-9),
    })
}
