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

/// Whether `path` names a media variant's bytes (`/v1/media/{id}/{variant}`), the one GET
/// under `/v1` that does not answer JSON: refused before it is routed, so the object is
/// never fetched from storage for nothing.
fn is_media_file(path: &str) -> bool {
    let route = path.split(['?', '#']).next().unwrap_or_default();
    route
        .strip_prefix("/v1/media/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(id, variant)| !id.is_empty() && !variant.is_empty())
}

const NOT_JSON: (&str, &str) = (
    "UNSUPPORTED_TYPE",
    "reads answer JSON only; fetch media over HTTP",
);

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
        if is_media_file(&request.path) {
            return refused(NOT_JSON.0, NOT_JSON.1);
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
            // A backstop: every other read answers JSON.
            if !crate::http::envelope::is_json(&head.headers) {
                return Err(NOT_JSON);
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

#[cfg(test)]
mod tests {
    use super::is_media_file;

    #[test]
    fn media_files_are_known_by_their_path_and_metadata_is_not_one() {
        assert!(is_media_file("/v1/media/abc/thumb"));
        assert!(is_media_file("/v1/media/abc/full?download=1"));
        assert!(!is_media_file("/v1/media/abc"));
        assert!(!is_media_file("/v1/media/abc?x=/y"));
        assert!(!is_media_file("/v1/media//thumb"));
        assert!(!is_media_file("/v1/rooms/abc/messages"));
    }
}
