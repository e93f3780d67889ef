//! girok-analytics: the ClickHouse sink. It reads committed events from the log by seq and
//! writes one `audit_events` row per event and the signed diffs of the rollup dataflow
//! (`rollups.rs`, its own) into ClickHouse, in batches, off the acknowledgement path.
//! It resumes exactly once from what ClickHouse already holds (the highest seq per table), and
//! guards ClickHouse with seed 002's circuit breaker and exponential retry with jitter. With no
//! ClickHouse configured, girok runs with analytics off.

mod breaker;
mod config;
mod flow;
mod pipeline;
mod retry;
mod rollups;
mod rows;
mod sink;
mod state;
mod warehouse;

pub use breaker::{BreakerState, CircuitBreaker};
pub use config::AnalyticsConfig;
pub use pipeline::EventSource;
pub use rollups::{Rollup, RollupKey};
pub use rows::{AuditRow, RollupRow};
pub use sink::{RebuildReport, Sink, SinkStatus, rebuild};
pub use warehouse::{Offsets, Warehouse};

/// What can go wrong talking to ClickHouse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("analytics configuration: {0}")]
    Config(String),
    #[error("reading the log: {0}")]
    Log(#[from] girok_engine::Error),
}

/// Result with the analytics error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
