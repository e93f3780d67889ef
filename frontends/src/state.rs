//! What every transport's handlers share: the engine, the frontends' configuration, the
//! authentication parts, presence, the metrics, the operators' credential and shutdown. One
//! [`Shared`] handle (cheap to clone) is built once around a running engine; each transport
//! keeps its own parts beside it (GraphQL its schemas, see `graphql/state.rs`), and the HTTP
//! router's state holds them all (`app.rs`).

use crate::auth::authenticator::Authenticator;
use crate::auth::client_ip::TrustedProxies;
use crate::auth::live_sessions::LiveSessions;
use crate::auth::operator::OperatorToken;
use crate::auth::rate_limit::LoginLimiter;
use crate::auth::tokens::Tokens;
use crate::config::FrontendConfig;
use crate::listener::ListenerMetrics;
use crate::presence::Presence;
use crate::request_metrics::RequestMetrics;
use crate::stopping::Stopping;
use crate::ws::metrics::WsMetrics;
use girok_engine::Engine;
use prometheus_client::registry::Registry;
use std::ops::Deref;
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

/// The shared parts; a clone is one reference count.
#[derive(Clone)]
pub struct Shared(Arc<SharedParts>);

impl Deref for Shared {
    type Target = SharedParts;

    fn deref(&self) -> &SharedParts {
        &self.0
    }
}

/// What [`Shared`] holds.
pub struct SharedParts {
    pub engine: Arc<Engine>,
    pub config: Arc<FrontendConfig>,
    /// Tokens, login limits, client addresses, live sessions.
    pub auth: Authenticator,
    pub registry: Arc<Registry>,
    /// Open and refused HTTP connections (`girok_http_connections`,
    /// `girok_http_connections_refused_total`).
    pub connections: ListenerMetrics,
    pub request_metrics: RequestMetrics,
    /// Who is online and typing (in memory only).
    pub presence: Arc<Presence>,
    /// Delivery counters of both socket protocols (`/ws`, `/graphql/ws`).
    pub ws_metrics: WsMetrics,
    /// The analytics sink as operators see it (on or off: the composition root decides).
    pub analytics: Arc<dyn SinkReport>,
    /// Shutdown, for long polls and WebSockets.
    pub stopping: Stopping,
    /// The runtime the state was made on, where WebSocket loops run (`ws::on_sockets_runtime`).
    pub sockets: tokio::runtime::Handle,
    /// The credential of the operators' log endpoints.
    pub operator_token: Arc<OperatorToken>,
    /// The QUIC endpoint, once bound (`GET /v1/quic`).
    pub quic: std::sync::OnceLock<QuicInfo>,
    pub quic_metrics: crate::quic::QuicMetrics,
}

/// Where the QUIC endpoint listens and the certificate clients pin.
#[derive(Clone, Debug)]
pub struct QuicInfo {
    pub addr: std::net::SocketAddr,
    pub certificates: Arc<crate::tls::Certificates>,
    /// The protocols it speaks (ALPN).
    pub alpn: Vec<String>,
}

impl Shared {
    /// Builds the shared parts around a running engine (inside the runtime the sockets will
    /// run on), adding their metrics to `registry`; loads (or, on first start, creates) the
    /// token signing keys, the operator token and the cursor key in the data directory.
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
        let trusted_proxies = TrustedProxies::parse(&config.server.trusted_proxies)?;
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
        let ws_metrics = WsMetrics::default();
        ws_metrics.register(&mut registry);
        let quic_metrics = crate::quic::QuicMetrics::default();
        quic_metrics.register(&mut registry);
        let live_sessions = LiveSessions::start(&engine, config.ws.max_sockets_per_user);
        let config = Arc::new(config);
        let auth = Authenticator {
            engine: engine.clone(),
            config: config.clone(),
            tokens: Arc::new(tokens),
            login_limiter: Arc::new(login_limiter),
            trusted_proxies: Arc::new(trusted_proxies),
            live_sessions,
        };
        Ok(Self(Arc::new(SharedParts {
            engine,
            config,
            auth,
            registry: Arc::new(registry),
            connections,
            request_metrics,
            presence: Arc::new(Presence::default()),
            ws_metrics,
            analytics,
            stopping: Stopping::default(),
            sockets,
            operator_token: Arc::new(operator_token),
            quic: std::sync::OnceLock::new(),
            quic_metrics,
        })))
    }
}
