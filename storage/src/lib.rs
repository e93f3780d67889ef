//! girok-storage: everything girok keeps on disk, in one fjall database per data directory.
//!
//! The heart is the log: an append-only keyspace of `seq (u64 big-endian) -> encoded event`.
//! All appends go through one writer thread ([`writer`]) that batches concurrent submitters
//! (group commit): a batch's log entries and write-model updates are committed atomically and
//! made durable with one fsync before any submitter in it is acknowledged (or only handed to the
//! OS, when none of its commands asks for an fsync: [`Stager::durability`]). What a command *means*
//! is decided by the caller's [`Stager`] (the engine's sequencer); this crate only guarantees
//! atomicity, ordering, gap-free seqs and durability. Readers follow the durable head through
//! [`HeadSignal`] and read ranges of the log.

mod background_sync;
mod blobs;
mod durable;
mod error;
mod head;
mod health;
mod metrics;
mod op;
mod pacing;
mod release;
pub mod sched;
mod store;
mod tables;
mod tail;
mod txn;
mod view_store;
pub mod writer;

pub use blobs::{BlobConfig, BlobStore, S3Config};
pub use durable::DurableBatch;
pub use error::{Error, Result};
pub use head::HeadSignal;
pub use health::StorageState;
pub use metrics::StorageMetrics;
pub use pacing::{DEFAULT_BUSY_BATCH_INTERVAL_US, DEFAULT_BUSY_CPU_PERCENT, Pacing};
pub use store::{
    DEFAULT_MAX_OPEN_FILES, DEFAULT_WRITE_BUFFER_BYTES, Durability, LogStats, Store, StoreConfig,
    StoreMemory,
};
pub use tables::{Table, ViewTable};
pub use tail::LogTail;
pub use txn::{Txn, WrittenKeys};
pub use view_store::{ViewStore, ViewWrite};
pub use writer::{Answer, Appender, DEFAULT_BACKGROUND_SYNC, Stager, WriterConfig, WriterHandle};

/// A position in the log (re-exported for callers that do not depend on girok-schemas).
pub type Seq = u64;
