//! The HTTP server: one axum router with GraphQL, operators' endpoints and the log API, over
//! one shared [`AppState`]. `run` takes an already bound listener and a shutdown future, so
//! tests bind `127.0.0.1:0` and the binary binds the configured address.

mod accounts;
mod envelope;
pub mod error;
pub mod feed;
mod graphiql;
mod json;
mod listener;
mod log_api;
mod ops;
mod request_metrics;
mod rooms;
mod search;
mod security_headers;
mod serve;

use crate::auth::LoginLimiter;
use crate::auth::tokens::Tokens;
use crate::config::Config;
use crate::graphql::{self, GirokSchema};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use girok_engine::Engine;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use listener::PeerAddr;
pub use log_api::{MAX_EVENTS_PER_CALL, MAX_WAIT_MS};

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
    pub config: Arc<Config>,
    /// Open and refused HTTP connections (`girok_http_connections`,
    /// `girok_http_connections_refused_total`).
    pub connections: listener::ListenerMetrics,
    pub tokens: Arc<Tokens>,
    pub login_limiter: Arc<LoginLimiter>,
    pub request_metrics: request_metrics::RequestMetrics,
    /// Who is online and typing (in memory only).
    pub presence: Arc<crate::presence::Presence>,
    /// Counters of GraphQL's batch loaders.
    pub loader_metrics: graphql::loaders::LoaderMetrics,
    /// WebSocket delivery counters.
    pub ws_metrics: crate::ws::WsMetrics,
    /// The ClickHouse sink, when `[analytics]` configures one.
    pub analytics: Option<Arc<girok_analytics::Sink>>,
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
    /// Builds the state (and the metrics registry) around a running engine; loads (or, on
    /// first start, creates) the token signing keys in the data directory.
    pub fn new(engine: Arc<Engine>, config: Config) -> anyhow::Result<Self> {
        let sockets = tokio::runtime::Handle::try_current()
            .map_err(|e| anyhow::anyhow!("the state must be made inside the runtime: {e}"))?;
        let keys = crate::auth::keys::load_or_create(&config.storage.data_dir)?;
        let operator_token = crate::auth::operator::load_or_create(&config.storage.data_dir)?;
        crate::cursor::init(&config.storage.data_dir)?;
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
        let mut registry = Registry::default();
        engine.register_metrics(&mut registry);
        let request_metrics = request_metrics::RequestMetrics::default();
        request_metrics.register(&mut registry);
        let connections = listener::ListenerMetrics::default();
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
        let analytics = start_analytics(&engine, &config)?;
        if let Some(sink) = &analytics {
            sink.register_metrics(&mut registry);
        }
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

/// Executes a change as the request's principal (cookie callers must pass the CSRF check);
/// the acknowledgement and who made it.
pub(crate) async fn execute_as_caller(
    state: &AppState,
    auth: &crate::auth::RequestAuth,
    command: girok_engine::Command,
) -> Result<(girok_schemas::UserId, girok_engine::Ack), error::ApiError> {
    let me = auth.require_for_change()?;
    let ack = state.engine.execute(me.user, command).await?;
    Ok((me.user, ack))
}

/// Starts the ClickHouse sink if one is configured, and says which it is (must be called
/// inside the tokio runtime).
fn start_analytics(
    engine: &Arc<Engine>,
    config: &Config,
) -> anyhow::Result<Option<Arc<girok_analytics::Sink>>> {
    let analytics = &config.analytics;
    if !analytics.enabled() {
        tracing::warn!("analytics off: no analytics.clickhouse_url configured");
        println!("analytics off (set analytics.clickhouse_url to ship audit events to ClickHouse)");
        return Ok(None);
    }
    let source: Arc<dyn girok_analytics::EventSource> = engine.clone();
    let sink = girok_analytics::Sink::start(source, analytics.clone())?;
    let url = analytics.clickhouse_url.as_deref().unwrap_or_default();
    tracing::info!(url, database = %analytics.database, "analytics on");
    println!(
        "analytics on: ClickHouse at {url}, database {}",
        analytics.database
    );
    Ok(Some(sink))
}

/// The chat WebSocket's route.
pub const WS_PATH: &str = "/ws";
/// The GraphQL subscriptions' WebSocket route.
pub const GRAPHQL_WS_PATH: &str = "/graphql/ws";

/// The routes.
pub fn router(state: AppState) -> Router {
    let limits = &state.config.limits;
    let timeout = Duration::from_secs(state.config.server.request_timeout_secs.max(1));
    let routes = Router::new()
        .merge(ops::routes())
        .route("/v1/log/events", get(log_api::events))
        .route("/v1/log/stats", get(log_api::stats))
        .route(WS_PATH, get(crate::ws::upgrade))
        .route(GRAPHQL_WS_PATH, get(graphql::subscriptions_upgrade))
        .merge(accounts::routes())
        .merge(rooms::routes())
        .merge(search::routes())
        .merge(feed::routes())
        .route("/graphql", get(graphiql::page).post(graphql::graphql_post))
        .route("/graphiql/{version}/{file}", get(graphiql::asset))
        .fallback(|| async {
            error::ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
        })
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_metrics::record,
        ))
        .layer(DefaultBodyLimit::max(limits.max_request_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(axum::middleware::map_response(envelope::json_errors));
    security_headers::add(routes)
        // 5xx answers are logged where they arise (internal errors at ERROR; refusals such as
        // STORAGE_UNAVAILABLE once per episode), not again per response.
        .layer(
            TraceLayer::new_for_http().on_failure(
                tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
            ),
        )
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests and returns.
/// WebSocket connections run on `sockets` (`None`: on this runtime, with the requests).
pub async fn run(
    listener: TcpListener,
    ops_listener: Option<TcpListener>,
    state: AppState,
    sockets: Option<tokio::runtime::Handle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let server = &state.config.server;
    let header_read_timeout = Duration::from_millis(server.header_read_timeout_ms.max(100));
    let listener = listener::LimitedListener::new(
        listener,
        listener::Ceilings {
            total: server.max_connections,
            per_ip: server.max_connections_per_ip,
            total_is: "server.max_connections",
        },
        state.connections.clone(),
    );
    if let Some(ops_listener) = ops_listener {
        // Its own small ceiling, apart from the clients': operators keep their view of girok
        // however many clients wait. It ends with the process.
        let ops_listener = listener::LimitedListener::new(
            ops_listener,
            listener::Ceilings {
                total: OPS_MAX_CONNECTIONS,
                per_ip: 0,
                total_is: "the operators' listener's own ceiling",
            },
            Default::default(),
        );
        let app = ops::routes().with_state(state.clone());
        tokio::spawn(serve::serve(
            ops_listener,
            app,
            header_read_timeout,
            None,
            std::future::pending(),
        ));
    }
    let stopping = state.stopping.clone();
    let app = router(state);
    serve::serve(listener, app, header_read_timeout, sockets, {
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            stopping.stop();
        }
    })
    .await;
    // Upgraded sockets are not connections the graceful shutdown waits for: give them a
    // moment to send their close frames.
    stopping.sockets_closed(SOCKETS_CLOSE_WITHIN).await;
    Ok(())
}

/// Connections the operators' listener (`server.ops_addr`) holds at once.
const OPS_MAX_CONNECTIONS: usize = 64;

/// Sockets girok may hold besides `server.max_connections` clients: the operators'
/// connections and the refusals being written on both listeners.
pub const EXTRA_SOCKETS: usize = OPS_MAX_CONNECTIONS + 2 * listener::REFUSALS_AT_ONCE;

/// Longest the shutdown waits for WebSockets to close after the HTTP connections ended.
const SOCKETS_CLOSE_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);
