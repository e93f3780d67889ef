//! What the seed-design baselines (`matching-baseline`, `chat-baseline`) share: accounts
//! that are names mapped to ids (a token is the user's id; registration and login as girok's
//! API answers them, with no password hashing), the caller of a request, typed refusals,
//! accepting a signed-in WebSocket within girok's frame limit, and serving a router on a
//! loopback port that the load scripts read from stdout.

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Longest user name registration takes (girok's own limit is lower).
pub const MAX_NAME_CHARS: usize = 64;
/// Largest client frame a baseline takes (girok's `ws.max_frame_bytes` default); a larger
/// one closes the connection (tungstenite's check).
pub const MAX_FRAME_BYTES: usize = 64 << 10;
/// tungstenite zero-fills its read buffer before each read: kept as small as girok's.
const READ_BUFFER_BYTES: usize = 4096;

/// Registered users: name → id, and every id (the tokens), under one lock.
#[derive(Default)]
pub struct Accounts {
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    by_name: HashMap<String, String>,
    ids: HashSet<String>,
}

impl Accounts {
    /// The user a request's Bearer token names, if registered.
    fn caller(&self, headers: &HeaderMap) -> Option<String> {
        let token = headers
            .get("authorization")?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?;
        self.exists(token).then(|| token.to_owned())
    }

    /// Whether `id` is a registered user.
    pub fn exists(&self, id: &str) -> bool {
        self.registry.lock().ids.contains(id)
    }
}

/// A baseline's state that holds the accounts.
pub trait HasAccounts: Send + Sync + 'static {
    fn accounts(&self) -> &Accounts;
}

/// The registered user a request's Bearer token names (extracted: `401 UNAUTHENTICATED`
/// without one).
pub struct Caller(pub String);

impl<S: HasAccounts> FromRequestParts<Arc<S>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, Response> {
        state
            .accounts()
            .caller(&parts.headers)
            .map(Caller)
            .ok_or_else(|| refused(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"))
    }
}

/// Accepts `user`'s WebSocket with girok's frame limit and read buffer, and hands it to
/// `serve`.
pub fn accept_socket<S, F, Served>(
    upgrade: WebSocketUpgrade,
    state: Arc<S>,
    user: String,
    serve: F,
) -> Response
where
    S: Send + Sync + 'static,
    F: FnOnce(Arc<S>, String, WebSocket) -> Served + Send + 'static,
    Served: std::future::Future<Output = ()> + Send + 'static,
{
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| serve(state, user, socket))
}

/// A refusal as girok answers one: the status and `{"error":{"code":…}}`.
pub fn refused(status: StatusCode, code: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": code } })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
}

async fn register<S: HasAccounts>(
    State(state): State<Arc<S>>,
    Json(body): Json<Credentials>,
) -> Response {
    if body.username.is_empty() || body.username.chars().count() > MAX_NAME_CHARS {
        return refused(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ARGUMENT");
    }
    let mut registry = state.accounts().registry.lock();
    if registry.by_name.contains_key(&body.username) {
        return refused(StatusCode::CONFLICT, "USERNAME_TAKEN");
    }
    let id = uuid::Uuid::now_v7().to_string();
    registry.by_name.insert(body.username, id.clone());
    registry.ids.insert(id.clone());
    (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
}

async fn login<S: HasAccounts>(
    State(state): State<Arc<S>>,
    Json(body): Json<Credentials>,
) -> Response {
    match state.accounts().registry.lock().by_name.get(&body.username) {
        Some(id) => Json(json!({ "accessToken": id })).into_response(),
        None => refused(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS"),
    }
}

/// The routes every baseline has: `/readyz`, register and login.
pub fn account_routes<S: HasAccounts>() -> Router<Arc<S>> {
    Router::new()
        .route("/readyz", get(|| async { "ready" }))
        .route("/v1/auth/register", post(register::<S>))
        .route("/v1/auth/login", post(login::<S>))
}

/// Serves `app` at `addr` until SIGTERM or SIGINT, after printing `baseline listening on
/// http://ADDR` (which the load scripts wait for).
pub fn serve(addr: std::net::SocketAddr, app: Router) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    println!("baseline listening on http://{}", listener.local_addr()?);
    serve_listener(listener, app)
}

/// Serves `app` on an ephemeral local port from a thread of its own, for a test; its URL.
#[cfg(test)]
pub fn serve_for_test(app: Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    std::thread::spawn(move || serve_listener(listener, app));
    url
}

/// Serves `app` on `listener` until SIGTERM or SIGINT, on a runtime of its own (then returns
/// at once, open sockets and all: the caller's temp files go with its stack). Sockets get
/// TCP_NODELAY: small frames go out at once, as girok's do.
pub fn serve_listener(listener: std::net::TcpListener, app: Router) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            served = axum::serve(listener, app).into_future() => served?,
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    })
}
