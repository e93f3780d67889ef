//! Operators' endpoints: liveness, readiness per component, Prometheus metrics.

use crate::app::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

/// The operators' endpoints: on the main listener, and alone on `server.ops_addr`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// `GET /healthz`: 200 while girok can serve, 503 once its log writer is gone for good (so a
/// supervisor restarts it); a writer that is only degraded (see `/readyz`) is still healthy.
pub async fn healthz(State(state): State<AppState>) -> Response {
    if state.engine.writer_running() {
        "ok".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the log writer has stopped",
        )
            .into_response()
    }
}

/// `GET /readyz`: 200 when the log writer runs and every view has rebuilt what the log held at
/// start; 503 otherwise. The body gives each component's state, each view's lag, and the
/// analytics sink's state and lag (which never makes girok unready: an outage of ClickHouse
/// only delays analytics).
pub async fn readyz(State(state): State<AppState>) -> Response {
    let status = state.engine.status();
    let code = if status.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // The sink's lag reads the log: off the async runtime.
    let sink = state.analytics.clone();
    let analytics = tokio::task::spawn_blocking(move || sink.status())
        .await
        .unwrap_or_default();
    let mut body = serde_json::to_value(&status).unwrap_or_default();
    body["analytics"] = analytics;
    (code, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus (OpenMetrics) text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    // The gauges walk some views' maps and read /proc: off the async runtime.
    let engine = state.engine.clone();
    let _ = tokio::task::spawn_blocking(move || engine.refresh_metrics()).await;
    let sink = state.analytics.clone();
    let _ = tokio::task::spawn_blocking(move || sink.refresh_metrics()).await;
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        tracing::error!(%error, "metrics encoding failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
