//! REST for media: ask for an upload (`POST /v1/media`), send its bytes to the URL it names
//! (an S3 store's presigned URL, or girok's own signed `PUT /v1/media/{id}/upload`), complete
//! it (`POST /v1/media/{id}/complete`), or do all three at once (`POST /v1/media/upload`, a
//! raw body or a multipart form); read its metadata (`GET /v1/media/{id}`), its variants
//! (`GET /v1/media/{id}/{variant}`: immutable, cacheable, ranges, never executable), and
//! delete it. Upload bodies may be as large as `media.max_mib`, past the general request limit.

use super::accounts::Auth;
use super::json::{JsonBody, QueryParams};
use crate::app::AppState;
use crate::dto::media_json;
use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use girok_engine::MediaVariant;
use girok_schemas::{EventId, rfc3339_millis};
use serde::Deserialize;
use serde_json::json;

/// Headroom over `media.max_mib` for a multipart form's boundaries and headers.
const FORM_OVERHEAD: usize = 64 << 10;

pub fn routes(max_upload_bytes: u64) -> Router<AppState> {
    let limit = usize::try_from(max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(FORM_OVERHEAD);
    let uploads = Router::new()
        .route("/v1/media/upload", post(upload_at_once))
        .route("/v1/media/{id}/upload", put(receive))
        .layer(DefaultBodyLimit::max(limit));
    Router::new()
        .route("/v1/media", post(request))
        .route("/v1/media/{id}", get(metadata).delete(delete))
        .route("/v1/media/{id}/complete", post(complete))
        .route("/v1/media/{id}/{variant}", get(variant))
        .merge(uploads)
}

/// A media id of a path: anything that is not one is a media that does not exist.
fn media_id(raw: &str) -> Result<EventId, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::from(girok_engine::Error::MediaNotFound(
            raw.chars().take(64).collect(),
        ))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UploadRequest {
    content_type: String,
    bytes: u64,
}

async fn request(
    State(state): State<AppState>,
    Auth(auth): Auth,
    JsonBody(body): JsonBody<UploadRequest>,
) -> Result<Response, ApiError> {
    let me = auth.require_for_change()?;
    let grant = state
        .engine
        .request_upload(me.user, body.content_type, body.bytes)
        .await?;
    let answer = json!({
        "id": grant.media,
        "seq": grant.seq,
        "uploadUrl": grant.upload_url,
        "method": "PUT",
        "expiresAt": rfc3339_millis(grant.expires_ms),
    });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadUrlParams {
    expires: i64,
    signature: String,
}

/// The local store's upload URL: the signed URL is the credential (no sign-in needed, as
/// with a presigned S3 URL). The signature is checked before any of the body is read.
async fn receive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<UploadUrlParams>,
    body: Body,
) -> Result<Response, ApiError> {
    let media = id
        .parse()
        .map_err(|_| ApiError::from(girok_engine::Error::UploadUrlInvalid))?;
    let engine = &state.engine;
    let declared = engine
        .upload_allowed(media, params.expires, &params.signature)
        .await?;
    // One byte more than declared is enough to tell a mismatch.
    let limit = usize::try_from(declared.saturating_add(1)).unwrap_or(usize::MAX);
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::from(girok_engine::Error::SizeMismatch {
            declared,
            got: declared.saturating_add(1),
        })
    })?;
    let bytes = body.len();
    engine
        .receive_upload(media, params.expires, &params.signature, body)
        .await?;
    Ok(Json(json!({ "id": media, "bytes": bytes })).into_response())
}

/// A body past `media.max_mib`: `TOO_LARGE`, as a declared size past it is.
fn upload_body_refused(
    state: &AppState,
    rejection: axum::extract::rejection::BytesRejection,
) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(state)
    } else {
        ApiError::from_body_rejection(rejection)
    }
}

/// 413 `TOO_LARGE`, as for a declared size past `media.max_mib`.
fn too_large(state: &AppState) -> ApiError {
    let max = state.engine.media_max_bytes();
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "TOO_LARGE",
        format!("the upload is larger than media.max_mib ({max} bytes)"),
    )
}

async fn complete(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let me = auth.require_for_change()?;
    let media = media_id(&id)?;
    let ack = state.engine.complete_upload(me.user, media).await?;
    Ok(processing(media, &ack))
}

/// One step: the body is the image (its `Content-Type` declared), or a multipart form whose
/// first file part is.
async fn upload_at_once(
    State(state): State<AppState>,
    Auth(auth): Auth,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let me = auth.require_for_change()?;
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (content_type, bytes) = if declared.starts_with("multipart/form-data") {
        first_file(
            &state,
            Multipart::from_request(request, &state)
                .await
                .map_err(|e| ApiError::new(e.status(), "BAD_REQUEST", e.body_text()))?,
        )
        .await?
    } else {
        let bytes = Bytes::from_request(request, &state)
            .await
            .map_err(|e| upload_body_refused(&state, e))?;
        (declared, bytes)
    };
    let (media, ack) = state
        .engine
        .upload_media(me.user, content_type, bytes)
        .await?;
    Ok(processing(media, &ack))
}

/// 202: the upload is in, processing has started.
fn processing(media: EventId, ack: &girok_engine::Ack) -> Response {
    let answer = json!({ "id": media, "seq": ack.seq, "state": "processing" });
    (StatusCode::ACCEPTED, Json(answer)).into_response()
}

/// The first part of a form that carries a file: its content type and bytes.
async fn first_file(state: &AppState, mut form: Multipart) -> Result<(String, Bytes), ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(state)
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", e.body_text())
        }
    };
    while let Some(field) = form.next_field().await.map_err(bad)? {
        if field.file_name().is_none() {
            continue;
        }
        let content_type = field.content_type().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(bad)?;
        return Ok((content_type, bytes));
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_ARGUMENT",
        "the form has no file part",
    ))
}

async fn metadata(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let viewer = auth.principal.map(|p| p.user);
    let media = state.engine.media(viewer, &id).await?;
    Ok(Json(media_json(&media)).into_response())
}

async fn delete(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let me = auth.require_for_change()?;
    let media = media_id(&id)?;
    let ack = state.engine.delete_media(me.user, media).await?;
    Ok(Json(json!({ "id": media, "seq": ack.seq, "deleted": true })).into_response())
}

/// A variant's bytes. Immutable (its ETag is its content hash), so cached for a year; a
/// single `Range` is honoured (206, or 416 when it cannot be), several are answered whole.
async fn variant(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = auth.principal.map(|p| p.user);
    let (media, variant) = state.engine.media_variant(viewer, &id, &name).await?;
    let etag = format!("\"{}\"", variant.hash);
    let not_modified = super::etag_matches(&headers, &etag);
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let range = match asked(headers.get(header::RANGE), variant.bytes) {
            Asked::Whole => None,
            Asked::Part(first, last) => Some((first, last)),
            Asked::Unsatisfiable => return Ok(unsatisfiable(variant.bytes)),
        };
        body_of(&state, &variant, range).await?
    };
    let headers = response.headers_mut();
    let value = |text: &str| {
        HeaderValue::from_str(text).map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "bad header value",
            )
        })
    };
    headers.insert(header::ETAG, value(&etag)?);
    // Immutable under its hash; but only an avatar (readable by anyone) may sit in a shared
    // cache: a proxy must not hand a room's attachment to someone who is not a member.
    let cache = if media.avatar {
        "public, max-age=31536000, immutable"
    } else {
        "private, max-age=31536000, immutable"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Authorization, Cookie"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_TYPE, value(&media.content_type)?);
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox; frame-ancestors 'none'"),
    );
    headers.insert(
        axum::http::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-site"),
    );
    let extension = if media.content_type == "image/png" {
        "png"
    } else {
        "jpg"
    };
    headers.insert(
        header::CONTENT_DISPOSITION,
        value(&format!(
            "inline; filename=\"{}-{}.{extension}\"",
            media.id, variant.name
        ))?,
    );
    Ok(response)
}

/// What a `Range` header asks of a variant.
enum Asked {
    /// All of it (no header, or several ranges: answered whole).
    Whole,
    /// Bytes `first..=last`.
    Part(u64, u64),
    /// Nothing it has, or a header that does not parse.
    Unsatisfiable,
}

fn asked(header: Option<&HeaderValue>, size: u64) -> Asked {
    let Some(header) = header else {
        return Asked::Whole;
    };
    let ranges = header
        .to_str()
        .ok()
        .and_then(|text| http_range_header::parse_range_header(text).ok())
        .and_then(|parsed| parsed.validate(size).ok());
    match ranges.as_deref() {
        None => Asked::Unsatisfiable,
        Some([only]) => Asked::Part(*only.start(), *only.end()),
        Some(_) => Asked::Whole,
    }
}

/// 416 with `Content-Range: bytes */size`.
fn unsatisfiable(size: u64) -> Response {
    let mut response = ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "RANGE_NOT_SATISFIABLE",
        format!("the range asked is not within the {size} bytes"),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    response
}

async fn body_of(
    state: &AppState,
    variant: &MediaVariant,
    range: Option<(u64, u64)>,
) -> Result<Response, ApiError> {
    match range {
        None => {
            let bytes = state.engine.media_bytes(variant, None).await?;
            Ok((StatusCode::OK, Body::from(bytes)).into_response())
        }
        Some((first, last)) => {
            let bytes = state
                .engine
                .media_bytes(variant, Some(first..last + 1))
                .await?;
            let mut response = (StatusCode::PARTIAL_CONTENT, Body::from(bytes)).into_response();
            let content_range = format!("bytes {first}-{last}/{}", variant.bytes);
            if let Ok(value) = HeaderValue::from_str(&content_range) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            Ok(response)
        }
    }
}
