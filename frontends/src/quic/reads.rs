//! Reads over girok/1: a `request` frame names a GET path under `/v1`, and the answer is what
//! the REST endpoint at that path answers the connection's user (status and JSON body), so a
//! native client reads its room list, history pages, timeline and notifications without a
//! second connection, with the same authorization, limits and errors. The router is the HTTP
//! one, handed over by the composition root; the request runs as the connection's access
//! token, from the connection's address.

use super::frames::{error_frame, frame};
use crate::listener::PeerAddr;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use girok_schemas::quic::{self, server_frame::Frame};
use std::net::SocketAddr;
use tower::ServiceExt;

/// Largest response body a read returns (a page is far smaller).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Why an answer is not sent as a read's response, judged by its head before its body is
/// read: reads carry JSON (a media variant's bytes are for HTTP, with its caching and
/// ranges), and no more than [`MAX_RESPONSE_BYTES`] of it.
fn refusal_of(head: &http::response::Parts) -> Option<(&'static str, &'static str)> {
    let json = head
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let declared = head
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if !json {
        Some((
            "UNSUPPORTED_TYPE",
            "reads answer JSON only; fetch media over HTTP",
        ))
    } else if declared.is_some_and(|bytes| bytes > MAX_RESPONSE_BYTES) {
        Some(("TOO_LARGE", "the answer is larger than a read may be"))
    } else {
        None
    }
}

/// The reads a connection may make: the HTTP router, and the runtime HTTP requests run on
/// (reads never queue behind a flood of socket frames, as on HTTP).
#[derive(Clone)]
pub struct Reads {
    router: Router,
    runtime: tokio::runtime::Handle,
}

impl Reads {
    pub fn new(router: Router, runtime: tokio::runtime::Handle) -> Self {
        Self { router, runtime }
    }

    /// The `response` frame (or `error` frame) answering `request`.
    pub async fn answer(&self, request: quic::Request, token: &str, peer: SocketAddr) -> Bytes {
        let id = request.id;
        let refused =
            |code: &str, message: &str| error_frame(code, message.into(), &id.to_string(), "");
        if !request.path.starts_with("/v1/") {
            return refused("INVALID_ARGUMENT", "a read's path is a GET path under /v1/");
        }
        let http_request = http::Request::get(&request.path)
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty());
        let Ok(mut http_request) = http_request else {
            return refused("INVALID_ARGUMENT", "the path is not a valid request target");
        };
        http_request
            .extensions_mut()
            .insert(ConnectInfo(PeerAddr(peer)));
        let router = self.router.clone();
        let answered = self.runtime.spawn(async move {
            let Ok(response) = router.oneshot(http_request).await;
            let (head, body) = response.into_parts();
            if let Some(refusal) = refusal_of(&head) {
                return Err(refusal);
            }
            match axum::body::to_bytes(body, MAX_RESPONSE_BYTES).await {
                Ok(body) => Ok((head.status.as_u16(), body)),
                Err(_) => Err(("TOO_LARGE", "the answer is larger than a read may be")),
            }
        });
        let (status, body) = match answered.await {
            Ok(Ok(answer)) => answer,
            Ok(Err((code, message))) => return refused(code, message),
            Err(_) => return refused("INTERNAL", "the read failed"),
        };
        frame(Frame::Response(quic::Response {
            id,
            status: u32::from(status),
            json: body,
        }))
    }
}
