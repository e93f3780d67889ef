//! The state every transport's handlers reach: the engine, the frontends' configuration, the
//! token and session machinery, the GraphQL schema, presence, metrics and shutdown. Built once
//! by the composition root (the `girok` crate) around a running engine.

use crate::auth::LoginLimiter;
use crate::auth::tokens::Tokens;
use crate::config::FrontendConfig;
use crate::graphql::{self, GirokSchema};
use crate::listener::ListenerMetrics;
use crate::request_metrics::RequestMetrics;
use girok_engine::Engine;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// What operators see of a sink the frontends do not know (the analytics sink, on or off):
/// its state under `analytics` on `/readyz`, its gauges on `/metrics`. Both calls may block
/// (they may read the log): callers run them off the async runtime.
pub trait SinkReport: Send + Sync + 'static {
    /// The sink's state as JSON.
    fn status(&self) -> serde_json::Value;
    /// Brings the sink's gauges up to date.
    fn refresh_metrics(&self);
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// The schema; its callers check each document's size (`document_guard`) first.
    pub schema: GirokSchema,
    /// The same schema with fast validation, for documents that passed full validation.
    pub fast_schema: GirokSchema,
    /// The bound on a GraphQL document's size (`limits.graphql_max_nodes`, `_fragments`).
    pub document_guard: graphql::document_guard::DocumentGuard,
    /// Parsed GraphQL documents by query text.
    pub documents: Arc<graphql::documents::Documents>,
    pub registry: Arc<Registry>,
    pub config: Arc<FrontendConfig>,
    /// Open and refused HTTP connections (`girok_http_connections`,
    /// `girok_http_connections_refused_total`).
    pub connections: ListenerMetrics,
    pub tokens: Arc<Tokens>,
    pub login_limiter: Arc<LoginLimiter>,
    pub request_metrics: RequestMetrics,
    /// Who is online and typing (in memory only).
    pub presence: Arc<crate::presence::Presence>,
    /// Counters of GraphQL's batch loaders.
    pub loader_metrics: graphql::loaders::LoaderMetrics,
    /// WebSocket delivery counters.
    pub ws_metrics: crate::ws::WsMetrics,
    /// The analytics sink as operators see it (on or off: the composition root decides).
    pub analytics: Arc<dyn SinkReport>,
    /// Shutdown, for long polls and WebSockets.
    pub stopping: crate::stopping::Stopping,
    /// The runtime the state was made on, where WebSocket loops run (`ws::on_sockets_runtime`).
    pub sockets: tokio::runtime::Handle,
    /// The sessions live connections run under, to end them with their session.
    pub live_sessions: Arc<crate::auth::live_sessions::LiveSessions>,
    /// The credential of the operators' log endpoints.
    pub operator_token: Arc<crate::auth::operator::OperatorToken>,
    /// The proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<crate::auth::client_ip::TrustedProxies>,
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
        let sockets = tokio::runtime::Handle::try_current()
            .map_err(|e| anyhow::anyhow!("the state must be made inside the runtime: {e}"))?;
        let keys = crate::auth::keys::load_or_create(&config.data_dir)?;
        let operator_token = crate::auth::operator::load_or_create(&config.data_dir)?;
        crate::cursor::init(&config.data_dir)?;
        let trusted_proxies =
            crate::auth::client_ip::TrustedProxies::parse(&config.server.trusted_proxies)?;
        let tokens = Tokens::new(
            &keys,
            &config.auth.issuer,
            &config.auth.audience,
            config.auth.access_token_ttl_secs.clamp(1, 86_400) as i64,
            config.cache.verified_tokens,
        )?;
        let login_limiter = LoginLimiter::new(
            config.auth.login_per_minute_per_username,
            config.auth.login_per_minute_per_ip,
            config.auth.registrations_per_minute_per_ip,
        );
        let request_metrics = RequestMetrics::default();
        request_metrics.register(&mut registry);
        let connections = ListenerMetrics::default();
        registry.register(
            "girok_http_connections",
            "Open HTTP connections",
            connections.open.clone(),
        );
        registry.register(
            "girok_http_connections_refused",
            "Connections refused (503 TOO_MANY_CONNECTIONS) at server.max_connections",
            connections.refused.clone(),
        );
        let loader_metrics = graphql::loaders::LoaderMetrics::default();
        loader_metrics.register(&mut registry);
        let ws_metrics = crate::ws::WsMetrics::default();
        ws_metrics.register(&mut registry);
        let presence = Arc::new(crate::presence::Presence::default());
        let document_guard = graphql::document_guard::DocumentGuard {
            max_nodes: config.limits.graphql_max_nodes,
            max_fragments: config.limits.graphql_max_fragments,
        };
        let schema = |validation| {
            graphql::build_schema(
                engine.clone(),
                presence.clone(),
                loader_metrics.clone(),
                &config,
                validation,
            )
        };
        let (schema, fast_schema) = (
            schema(async_graphql::ValidationMode::Strict),
            schema(async_graphql::ValidationMode::Fast),
        );
        let live_sessions = crate::auth::live_sessions::LiveSessions::start(
            &engine,
            config.ws.max_sockets_per_user,
        );
        Ok(Self {
            engine,
            schema,
            fast_schema,
            document_guard,
            documents: Arc::default(),
            registry: Arc::new(registry),
            config: Arc::new(config),
            connections,
            tokens: Arc::new(tokens),
            login_limiter: Arc::new(login_limiter),
            request_metrics,
            presence,
            loader_metrics,
            ws_metrics,
            analytics,
            stopping: crate::stopping::Stopping::default(),
            sockets,
            live_sessions,
            operator_token: Arc::new(operator_token),
            trusted_proxies: Arc::new(trusted_proxies),
        })
    }
}
