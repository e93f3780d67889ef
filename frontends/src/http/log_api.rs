//! `GET /v1/log/events`: operators read the log through a running server (what
//! `girok log tail --follow` uses while `serve` holds the data directory). It exposes every
//! event (private messages, emails, addresses), so it needs the operator token of the data
//! directory as a Bearer token (`<data_dir>/keys/operator-token`, which the CLI reads), answers
//! loopback clients only (a reverse proxy on the same host makes every client loopback: the
//! token is what guards it), and only when `server.log_api` is on.

use super::json::QueryParams;
use crate::app::AppState;
use crate::error::ApiError;
use crate::listener::PeerAddr;
use crate::stopping::Stopping;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

/// Most events one call returns.
pub const MAX_EVENTS_PER_CALL: usize = 1000;
/// Longest a call waits for new events.
pub const MAX_WAIT_MS: u64 = 30_000;
/// What a long poll leaves of the request timeout (`server.request_timeout_secs`) to read and
/// answer.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsQuery {
    /// First seq to return (default 1).
    from: Option<u64>,
    /// Page size (default 100, at most 1000).
    limit: Option<usize>,
    /// If no event at or after `from` exists yet, wait up to this long for one (long poll;
    /// at most 30 s and 1 s less than the request timeout; shutdown ends the wait at once).
    wait_ms: Option<u64>,
}

fn guard(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    if !state.config.server.log_api {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "the log API is disabled",
        ));
    }
    if !peer.ip().is_loopback() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "the log API answers loopback clients only",
        ));
    }
    match crate::auth::bearer_token(headers) {
        Some(token) if state.operator_token.admits(token) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "the log API needs the operator token (the data directory's keys/operator-token) \
             as a Bearer token",
        )),
    }
}

/// `GET /v1/log/stats`: what `girok log stats` prints.
pub async fn stats(
    State(state): State<AppState>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
) -> Result<Json<girok_engine::LogReport>, ApiError> {
    guard(&state, peer, &headers)?;
    Ok(Json(state.engine.log_report().await?))
}

/// `{ "events": [...], "head": N, "next": SEQ }`; `next` is the `from` of the following call.
pub async fn events(
    State(state): State<AppState>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    guard(&state, peer, &headers)?;
    let from = query.from.unwrap_or(1).max(1);
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_EVENTS_PER_CALL).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_ARGUMENT",
            format!("limit must be between 1 and {MAX_EVENTS_PER_CALL}"),
        ));
    }
    // A long poll answers before the request timeout would (408), whatever it asked for.
    let request_timeout = Duration::from_secs(state.config.server.request_timeout_secs);
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0).min(MAX_WAIT_MS))
        .min(request_timeout.saturating_sub(LONG_POLL_MARGIN));
    if state.engine.head() < from && !wait.is_zero() {
        let mut head = state.engine.head_watch();
        let mut stopping = state.stopping.watch();
        tokio::select! {
            _ = tokio::time::timeout(wait, head.wait_for(|h| *h >= from)) => {}
            () = Stopping::stopped(&mut stopping) => {}
        }
    }
    let events = state.engine.events(from, limit).await?;
    let next = events.last().map_or(from, |e| e.seq + 1);
    Ok(Json(json!({
        "events": events.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
        "head": state.engine.head(),
        "next": next,
    })))
}
