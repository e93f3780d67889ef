//! The HTTP server: one axum router with REST, GraphQL, the WebSocket upgrades, operators'
//! endpoints, the log API and the web app, over one [`AppState`]. `run` takes an already
//! bound listener and a shutdown future, so tests bind `127.0.0.1:0` and the binary binds the
//! configured address.

mod accounts;
pub(crate) mod envelope;
pub mod feed;
mod graphiql;
pub(crate) mod json;
mod log_api;
mod matching;
pub mod media;
mod ops;
mod quic_info;
mod rooms;
mod search;
mod security_headers;
mod serve;
mod web;

use crate::error;
use crate::graphql;
use crate::listener;
use crate::request_metrics;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use crate::app::AppState;
pub use crate::listener::PeerAddr;
pub use log_api::{MAX_EVENTS_PER_CALL, MAX_WAIT_MS};

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
        .route("/v1/quic", get(quic_info::info))
        .route(WS_PATH, get(crate::ws::upgrade))
        .route(GRAPHQL_WS_PATH, get(graphql::subscriptions_upgrade))
        .merge(accounts::routes())
        .merge(rooms::routes())
        .merge(search::routes())
        .merge(feed::routes())
        .merge(matching::routes())
        .merge(media::routes(state.engine.media_max_bytes()))
        .route("/graphql", get(graphiql::page).post(graphql::graphql_post))
        .route("/graphiql/{version}/{file}", get(graphiql::asset))
        .route("/assets/{name}", get(web::asset))
        .fallback(web::fallback)
        .route_layer(axum::middleware::from_fn_with_state(
            state.request_metrics.clone(),
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
/// WebSocket connections run on the runtime the state was made on (`state.sockets`): moved
/// there when this is another one.
pub async fn run(
    listener: TcpListener,
    ops_listener: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sockets = (state.sockets.id() != tokio::runtime::Handle::current().id())
        .then(|| state.sockets.clone());
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

/// Whether a conditional GET's `If-None-Match` (every header line, every tag) names `etag`
/// or `*`: the answer is then 304. Weak comparison (RFC 9110, 13.1.2): a proxy that
/// compressed an answer made its tag `W/"…"`.
pub(crate) fn etag_matches(headers: &axum::http::HeaderMap, etag: &str) -> bool {
    headers
        .get_all(axum::http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}
