//! `GET /v1/quic`: where girok's QUIC endpoint listens and the certificate a client pins
//! (its SHA-256, as WebTransport's `serverCertificateHashes` takes it, and the DER itself).
//! Public: it says nothing a handshake would not.

use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use serde_json::{Value, json};

pub async fn info(State(state): State<AppState>) -> Json<Value> {
    let Some(quic) = state.quic.get() else {
        return Json(json!({ "enabled": false }));
    };
    let current = quic.certificates.current();
    let not_after = current.not_after.map(|t| {
        let ms = t
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        girok_schemas::rfc3339_millis(ms)
    });
    Json(json!({
        "enabled": true,
        "addr": quic.addr.to_string(),
        "port": quic.addr.port(),
        "alpn": quic.alpn,
        "webTransportPath": crate::quic::WEBTRANSPORT_PATH,
        "certificateSha256": current.sha256_hex(),
        "certificateNotAfter": not_after,
        "certificateDer": base64::engine::general_purpose::STANDARD.encode(current.der.as_ref()),
    }))
}
