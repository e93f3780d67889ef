//! One error shape for every answer: a 4xx or 5xx that some layer wrote without girok's JSON
//! envelope (axum's 405 for a method a route does not take, an extractor's plain-text
//! rejection such as a path segment that is not UTF-8, the timeout layer's empty 408) is given
//! `{"error": {"code", "message"}}`, with a code from its status and its text as the message.
//! Answers that already are JSON (every handler's errors, GraphQL's) pass untouched.

use axum::body::to_bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Most bytes of a plain-text rejection kept as the message.
const MESSAGE_BYTES: usize = 1024;

/// The middleware (`axum::middleware::map_response`).
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = to_bytes(body, MESSAGE_BYTES * 4).await.unwrap_or_default();
    let mut message: String = String::from_utf8_lossy(&text).trim().to_owned();
    message.truncate(message.floor_char_boundary(MESSAGE_BYTES));
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_owned();
    }
    let error = crate::error::ApiError::new(status, code(status), message);
    let mut answer = error.into_response();
    // What the original said beyond its body (`Allow` on a 405, `Retry-After`) stays.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().append(name.clone(), value.clone());
        }
    }
    answer
}

/// Whether a message's headers say its body is JSON.
pub(crate) fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The stable code of a status that arrived without one.
fn code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "BAD_REQUEST",
        StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
        StatusCode::FORBIDDEN => "FORBIDDEN",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::REQUEST_TIMEOUT => "REQUEST_TIMEOUT",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::UNPROCESSABLE_ENTITY => "INVALID_ARGUMENT",
        StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
        StatusCode::UPGRADE_REQUIRED => "UPGRADE_REQUIRED",
        status if status.is_server_error() => "INTERNAL",
        _ => "BAD_REQUEST",
    }
}
