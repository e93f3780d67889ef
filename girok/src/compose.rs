//! The composition root: the one place that builds girok's parts from the configuration and
//! stops them. [`Girok::start`] opens the engine (its log writer, dataflow, hub and search
//! indexer start with it), starts the analytics sink when one is configured, gathers every
//! part's metrics in one registry, and builds the frontends' state around them;
//! [`Girok::stop`] stops them in the reverse order: the sink first (it reads the log), then the
//! engine, which refuses new writes, drains its queue and flushes the log. Serving (the
//! listeners) is the caller's: `girok serve` binds them between the two calls, tests and
//! benches bind their own.

use crate::config::Config;
use anyhow::Context;
use girok_analytics::{Sink, SinkStatus};
use girok_engine::Engine;
use girok_frontends::app::AppState;
use girok_frontends::state::SinkReport;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// girok's running parts.
pub struct Girok {
    engine: Arc<Engine>,
    analytics: Option<Arc<Sink>>,
    state: AppState,
}

impl Girok {
    /// Opens the data directory and starts every part but the listeners (inside the tokio
    /// runtime, which the WebSocket loops and the engine's tasks then run on). `opened` runs
    /// as soon as the directory is this process's (the engine holds its lock), before anything
    /// else starts. A part that cannot start stops the ones started before it.
    pub async fn start(config: &Config, opened: impl FnOnce()) -> anyhow::Result<Self> {
        let engine = Engine::open(config.engine_config()?).with_context(|| {
            format!(
                "cannot open the data directory {}",
                config.storage.data_dir.display()
            )
        })?;
        opened();
        let mut registry = Registry::default();
        engine.register_metrics(&mut registry);
        let analytics = match start_analytics(&engine, config) {
            Ok(analytics) => analytics,
            Err(error) => {
                engine.shutdown().await;
                return Err(error.context("cannot start the analytics sink"));
            }
        };
        if let Some(sink) = &analytics {
            sink.register_metrics(&mut registry);
        }
        let report = Arc::new(AnalyticsReport(analytics.clone()));
        let state = AppState::new(engine.clone(), config.frontend_config(), registry, report);
        match state {
            Ok(state) => Ok(Self {
                engine,
                analytics,
                state,
            }),
            Err(error) => {
                Self::stop_parts(&engine, analytics.as_deref()).await;
                Err(error.context(
                    "cannot start the frontends (signing keys, operator token, cursor key or \
                     server.trusted_proxies)",
                ))
            }
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The state the frontends serve from.
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Stops every part, the analytics sink first, then the engine (drained and flushed).
    pub async fn stop(self) {
        Self::stop_parts(&self.engine, self.analytics.as_deref()).await;
    }

    async fn stop_parts(engine: &Engine, analytics: Option<&Sink>) {
        if let Some(sink) = analytics {
            sink.shutdown().await;
        }
        engine.shutdown().await;
    }
}

/// Starts the ClickHouse sink if one is configured, and says which it is.
fn start_analytics(engine: &Arc<Engine>, config: &Config) -> anyhow::Result<Option<Arc<Sink>>> {
    let analytics = &config.analytics;
    if !analytics.enabled() {
        tracing::warn!("analytics off: no analytics.clickhouse_url configured");
        println!("analytics off (set analytics.clickhouse_url to ship audit events to ClickHouse)");
        return Ok(None);
    }
    let source: Arc<dyn girok_analytics::EventSource> = engine.clone();
    let state = engine.sink_state(&analytics.state_name()?)?;
    let sink = Sink::start(source, state, analytics.clone())?;
    let url = analytics.clickhouse_url.as_deref().unwrap_or_default();
    tracing::info!(url, database = %analytics.database, "analytics on");
    println!(
        "analytics on: ClickHouse at {url}, database {}",
        analytics.database
    );
    Ok(Some(sink))
}

/// The analytics sink as the operators' endpoints show it, on or off.
struct AnalyticsReport(Option<Arc<Sink>>);

impl SinkReport for AnalyticsReport {
    fn status(&self) -> serde_json::Value {
        let status = match &self.0 {
            Some(sink) => sink.status(),
            None => SinkStatus::off(),
        };
        serde_json::to_value(status).unwrap_or_default()
    }

    fn refresh_metrics(&self) {
        if let Some(sink) = &self.0 {
            sink.refresh_metrics();
        }
    }
}
