//! Request bodies and query strings with typed errors: broken JSON is 400 `BAD_REQUEST`, JSON
//! of the wrong shape (missing field, wrong type, unknown field) is 422 `INVALID_ARGUMENT`, too
//! large is 413 `PAYLOAD_TOO_LARGE`, a malformed query string is 400 `INVALID_ARGUMENT`.

use crate::error::ApiError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON body of type `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_ARGUMENT",
                e.body_text(),
            )),
            Err(JsonRejection::BytesRejection(e)) => Err(ApiError::from_body_rejection(e)),
            Err(other) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                other.body_text(),
            )),
        }
    }
}

/// Query-string parameters of type `T`; a malformed query is 400 `INVALID_ARGUMENT`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", e.body_text()))
    }
}

/// An id in a path or body: 422 `INVALID_ARGUMENT` naming the field when it does not parse.
pub fn path_id<T: std::str::FromStr>(field: &str, what: &str, raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_ARGUMENT",
            format!("`{field}` is not {what}"),
        )
    })
}

/// `?after=SEQ`, the read-your-writes query of single-object reads.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AfterQuery {
    pub after: Option<girok_schemas::Seq>,
}

/// Bytes a page answer's buffer starts with: a page of 20 posts or 50 messages is 5–10 KiB.
pub(crate) const PAGE_BYTES: usize = 16 << 10;

/// A page answered as JSON, serialized into one buffer of about its size. axum's `Json` starts
/// at 128 bytes and doubles by copying (six copies for a page of posts) and writes through
/// `BytesMut` a slice at a time: a tenth of a timeline page's CPU, measured.
pub struct JsonPage<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for JsonPage<T> {
    fn into_response(self) -> axum::response::Response {
        let mut body = Vec::with_capacity(PAGE_BYTES);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => json_bytes(body),
            Err(error) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                format!("the answer could not be written: {error}"),
            )
            .into_response(),
        }
    }
}

/// An answer already written as JSON.
pub fn json_bytes(body: Vec<u8>) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
