//! Storage metrics in Prometheus form: appends, batch sizes, fsync latency and each command's
//! time from its submission to its durable answer.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Counters and histograms the log writer updates once per batch (and per command, for
/// `commit_seconds`).
pub struct StorageMetrics {
    pub appends: Counter,
    pub batches: Counter,
    pub rejected: Counter,
    pub batch_commands: Histogram,
    pub fsync_seconds: Histogram,
    /// Groups of batches made durable with an fsync (the others only reached the OS).
    pub syncs: Counter,
    /// fsyncs of the journal by the background sync (`background_sync.rs`).
    pub background_syncs: Counter,
    /// The highest seq an fsync of the log is known to cover.
    pub synced_head: Gauge,
    /// Per command: from its submission (before any wait for room in the queue) to its answer.
    pub commit_seconds: Histogram,
    pub head: Gauge,
    /// 0 ok, 1 degraded (a transient storage error; writes refused), 2 failed.
    pub state: Gauge,
    pub storage_errors: Counter,
    pub heals: Counter,
    /// Commands refused because the writer's queue was full (`OVERLOADED`).
    pub queue_full: Counter,
    /// Batches the writer held back to space them out while the process was busy.
    pub paced: Counter,
}

impl Default for StorageMetrics {
    fn default() -> Self {
        Self {
            appends: Counter::default(),
            batches: Counter::default(),
            rejected: Counter::default(),
            batch_commands: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            fsync_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            syncs: Counter::default(),
            background_syncs: Counter::default(),
            synced_head: Gauge::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            head: Gauge::default(),
            state: Gauge::default(),
            storage_errors: Counter::default(),
            heals: Counter::default(),
            queue_full: Counter::default(),
            paced: Counter::default(),
        }
    }
}

impl StorageMetrics {
    /// Registers every metric under `girok_log_*`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "girok_log_appends",
            "Events appended to the log",
            self.appends.clone(),
        );
        registry.register(
            "girok_log_batches",
            "Group-commit batches written",
            self.batches.clone(),
        );
        registry.register(
            "girok_log_paced_batches",
            "Batches the writer held back to space them out while the process was busy (storage.busy_batch_interval_us)",
            self.paced.clone(),
        );
        registry.register(
            "girok_log_rejected_commands",
            "Commands the sequencer refused (nothing appended)",
            self.rejected.clone(),
        );
        registry.register(
            "girok_log_batch_commands",
            "Commands per group-commit batch",
            self.batch_commands.clone(),
        );
        registry.register(
            "girok_log_fsync_seconds",
            "Time to make one group of batches durable: an fdatasync when one of their commands needs it (girok_log_syncs), a flush to the OS otherwise (storage.durability = buffered, and matching's queue with matching.durability = buffered)",
            self.fsync_seconds.clone(),
        );
        registry.register(
            "girok_log_syncs",
            "Groups of batches made durable with an fdatasync of the log",
            self.syncs.clone(),
        );
        registry.register(
            "girok_log_background_syncs",
            "fdatasyncs of the log's journal by the background sync, behind batches none of whose commands asked for one (storage.background_sync_ms)",
            self.background_syncs.clone(),
        );
        registry.register(
            "girok_log_synced_seq",
            "Highest seq an fsync of the log is known to cover; a power loss may take back what lies between it and girok_log_head_seq",
            self.synced_head.clone(),
        );
        registry.register(
            "girok_log_commit_seconds",
            "Time from a command's submission to the log writer to its answer: any wait for room in the writer's queue, the wait in it, staging, the batch's commit and the fsync that makes it durable",
            self.commit_seconds.clone(),
        );
        registry.register(
            "girok_log_head_seq",
            "Highest durable sequence number",
            self.head.clone(),
        );
        registry.register(
            "girok_log_state",
            "0: writes accepted; 1: degraded by a transient storage error (no space, no descriptors), writes refused while the writer retries; 2: failed",
            self.state.clone(),
        );
        registry.register(
            "girok_log_storage_errors",
            "Storage errors met by the log writer",
            self.storage_errors.clone(),
        );
        registry.register(
            "girok_log_queue_full",
            "Commands refused at once because the log writer's queue (storage.queue) was full",
            self.queue_full.clone(),
        );
        registry.register(
            "girok_log_heals",
            "Times the log writer reopened the database after a transient storage error",
            self.heals.clone(),
        );
    }
}
