//! What a browser's ambient credential (the session cookie) may be used for beyond a plain
//! page load. A WebSocket upgrade is not bound by CORS, so a page of any site could open one
//! with the user's cookie (cross-site WebSocket hijacking): an upgrade signed in by cookie must
//! come from girok's own origin (`Origin` naming the `Host` it was sent to) or one of
//! `server.allowed_origins`. A `POST /graphql` must be JSON: other content types make a CORS
//! "simple request" that any site can send without a preflight — with the user's cookie, or
//! to log the browser into the sender's account.

use super::authenticator::Authenticator;
use super::{AuthVia, RequestAuth};
use crate::error::ApiError;
use axum::http::{HeaderMap, StatusCode, header};

/// Refuses a WebSocket upgrade signed in by cookie from a foreign origin.
pub fn check_socket_origin(
    state: &Authenticator,
    headers: &HeaderMap,
    auth: &RequestAuth,
) -> Result<(), ApiError> {
    let by_cookie = auth.principal.is_some_and(|p| p.via == AuthVia::Cookie);
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(()); // not a browser
    };
    if !by_cookie {
        return Ok(());
    }
    // An Origin that is not text names no origin girok knows (nor an empty allowed entry).
    let Ok(origin) = origin.to_str() else {
        return Err(foreign_origin());
    };
    let origin = origin.trim_end_matches('/');
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let own = origin
        .split_once("://")
        .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && rest == host);
    let allowed = state
        .config
        .server
        .allowed_origins
        .iter()
        .any(|allowed| allowed.trim_end_matches('/') == origin);
    if own || allowed {
        return Ok(());
    }
    Err(foreign_origin())
}

fn foreign_origin() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "ORIGIN_NOT_ALLOWED",
        "a WebSocket signed in with the session cookie must come from this server's origin or \
         one of server.allowed_origins",
    )
}

/// Refuses a GraphQL POST whose body is not declared JSON.
pub fn check_post_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if json {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        "a GraphQL POST must send `Content-Type: application/json`",
    ))
}
