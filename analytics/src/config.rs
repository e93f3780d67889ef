//! `[analytics]` in girok's configuration: where ClickHouse is, and how the sink batches,
//! retries and trips its circuit breaker. With no `clickhouse_url`, analytics is off.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The sink's configuration (`GIROK__ANALYTICS__CLICKHOUSE_URL` and friends).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// ClickHouse's HTTP endpoint, e.g. `http://127.0.0.1:8123`; unset: analytics is off.
    pub clickhouse_url: Option<String>,
    /// The database girok creates and writes to.
    pub database: String,
    pub user: String,
    pub password: String,
    /// Most rows in one insert (one ClickHouse block, so an insert lands whole or not at all).
    pub max_batch_rows: usize,
    /// Longest the sink gathers events before inserting them.
    pub flush_ms: u64,
    /// Consecutive failures that open the circuit breaker (seed 002: 5).
    pub breaker_failures: u32,
    /// How long the breaker stays open before it lets a trial through (seed 002: 30 s).
    pub breaker_reset_ms: u64,
    /// Successes in a row, while half open, that close it again (seed 002: 2).
    pub breaker_successes: u32,
    /// First retry delay; doubles per failure up to `retry_max_ms`, with jitter.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            clickhouse_url: None,
            database: "girok".into(),
            user: "default".into(),
            password: String::new(),
            max_batch_rows: 100_000,
            flush_ms: 200,
            breaker_failures: 5,
            breaker_reset_ms: 30_000,
            breaker_successes: 2,
            retry_base_ms: 100,
            retry_max_ms: 10_000,
        }
    }
}

impl AnalyticsConfig {
    /// Whether a ClickHouse is configured.
    pub fn enabled(&self) -> bool {
        self.clickhouse_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty())
    }

    pub(crate) fn flush(&self) -> Duration {
        Duration::from_millis(self.flush_ms.max(1))
    }

    /// The name of the sink's checkpointed state in the data directory (`sinks/<name>`): one per
    /// database, since a checkpoint holds only with the rows it was shipped with.
    pub fn state_name(&self) -> crate::Result<String> {
        Ok(format!("analytics-{}", self.database_name()?))
    }

    /// The database name, checked: ClickHouse identifiers are interpolated into DDL.
    pub(crate) fn database_name(&self) -> crate::Result<&str> {
        let valid = !self.database.is_empty()
            && self.database.len() <= 64
            && self
                .database
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !self.database.as_bytes()[0].is_ascii_digit();
        if valid {
            Ok(&self.database)
        } else {
            Err(crate::Error::Config(format!(
                "analytics.database {:?}: 1 to 64 of [A-Za-z0-9_], not starting with a digit",
                self.database
            )))
        }
    }
}
