//! `girok analytics rebuild`: drops girok's ClickHouse tables and refills them from the log
//! (audit events and every rollup), with a progress bar. It reads the data directory itself,
//! so stop `girok serve` first (a running server's sink would write at the same time).

use super::AnalyticsArgs;
use crate::config::Config;
use anyhow::Context;
use girok_engine::Offline;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;

pub fn rebuild(config: Config, args: AnalyticsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.analytics.enabled(),
        "analytics is off: set analytics.clickhouse_url (or GIROK__ANALYTICS__CLICKHOUSE_URL)"
    );
    let log = Offline::open_with(&config.engine_config()?).with_context(|| {
        format!(
            "cannot open {} (stop `girok serve` first)",
            config.storage.data_dir.display()
        )
    })?;
    let bar = ProgressBar::new(log.head());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} rebuilding ClickHouse [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let state = log.sink_state(&config.analytics.state_name()?)?;
    let source = Arc::new(log);
    let report = runtime.block_on(girok_analytics::rebuild(
        source,
        state,
        config.analytics.clone(),
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    ))?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "rebuilt database {} from {} events: {} rows in {:.3} s ({:.0} rows/s)",
            config.analytics.database,
            report.to_seq,
            report.rows,
            report.elapsed_ms as f64 / 1000.0,
            report.rows_per_sec
        );
    }
    Ok(())
}
