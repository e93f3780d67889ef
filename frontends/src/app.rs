//! The frontends assembled: the shared parts and each transport's own, as the HTTP router's
//! state. Handlers take the part they need (`State<Shared>`, `State<GraphqlState>`), or this
//! whole state, which reads as the shared parts.

use crate::config::FrontendConfig;
use crate::graphql::GraphqlState;
use crate::graphql::loaders::LoaderMetrics;
use crate::state::{Shared, SinkReport};
use axum::extract::FromRef;
use girok_engine::Engine;
use prometheus_client::registry::Registry;
use std::ops::Deref;
use std::sync::Arc;

/// What the router's handlers can reach.
#[derive(Clone)]
pub struct AppState {
    pub shared: Shared,
    pub graphql: GraphqlState,
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl FromRef<AppState> for Shared {
    fn from_ref(state: &AppState) -> Shared {
        state.shared.clone()
    }
}

impl FromRef<AppState> for GraphqlState {
    fn from_ref(state: &AppState) -> GraphqlState {
        state.graphql.clone()
    }
}

impl AppState {
    /// Builds the state around a running engine, adding the frontends' metrics to `registry`
    /// (where the composition root put the engine's and the sinks'); loads (or, on first
    /// start, creates) the token signing keys in the data directory.
    pub fn new(
        engine: Arc<Engine>,
        config: FrontendConfig,
        mut registry: Registry,
        analytics: Arc<dyn SinkReport>,
    ) -> anyhow::Result<Self> {
        let loader_metrics = LoaderMetrics::default();
        loader_metrics.register(&mut registry);
        let shared = Shared::new(engine, config, registry, analytics)?;
        let graphql = GraphqlState::new(shared.clone(), loader_metrics);
        Ok(Self { shared, graphql })
    }
}

/// Serves the bound QUIC endpoint (on the current runtime, where its connections run) until
/// the state's stop: publishes it at `GET /v1/quic`, and answers its reads with the HTTP
/// routes on `requests`, the runtime HTTP requests run on.
pub fn serve_quic(
    server: crate::quic::QuicServer,
    state: &AppState,
    requests: tokio::runtime::Handle,
) -> tokio::task::JoinHandle<()> {
    let _ = state.shared.quic.set(server.info());
    let reads = crate::quic::Reads::new(crate::http::router(state.clone()), requests);
    tokio::spawn(server.run(state.shared.clone(), reads))
}
