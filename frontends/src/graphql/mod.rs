//! GraphQL at `/graphql` (async-graphql; GraphiQL on GET, see `http/graphiql.rs`). The handler reads the body itself so
//! that every failure — an oversized body, JSON that is not a GraphQL request, a query that
//! does not parse or validate — gets a GraphQL-shaped answer with a stable
//! `extensions.code` and a 4xx status, and resolver errors carry the engine's codes.

mod accounts;
mod args;
mod chat;
mod chat_types;
mod direct;
pub mod document_guard;
pub mod documents;
mod errors;
mod feed;
mod feed_types;
pub mod loaders;
mod matching;
mod media;
mod page_values;
mod scalars;
mod schema;
mod socket;
pub mod state;
mod subscriptions;

pub use schema::GirokSchema;
pub use state::GraphqlState;
pub use subscriptions::upgrade as subscriptions_upgrade;

use crate::listener::PeerAddr;
use async_graphql::ServerError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use documents::Documents;
use serde_json::json;

fn api_error_response(error: crate::error::ApiError) -> Response {
    error_response(error.status, error.code, error.message)
}

fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "data": null, "errors": [{ "message": message.into(), "extensions": { "code": code } }] });
    (status, Json(body)).into_response()
}

/// `POST /graphql`.
pub async fn graphql_post(
    State(state): State<GraphqlState>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let error = crate::error::ApiError::from_body_rejection(rejection);
            return api_error_response(error);
        }
    };
    // The cheap check first: nothing is parsed or looked up for a body that is not JSON.
    if let Err(error) = crate::auth::origin::check_post_content_type(&headers) {
        return api_error_response(error);
    }
    let mut request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                format!("the body is not a GraphQL request (JSON with a `query` string): {e}"),
            );
        }
    };
    // Parsed here, or taken from the documents parsed before (a parse failure is answered as
    // such); the request keeps the document, so execution does not parse it again.
    let key = Documents::key(&request);
    let prepared = state.documents.get(&key);
    // A remembered document is set on the request only if the executor runs (below).
    let parsed_now = match &prepared {
        Some(_) => None,
        None => match request.parsed_query() {
            Ok(document) => {
                // A remembered document passed this check when it was parsed.
                if let Err(error) = state.document_guard.check(document) {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        document_guard::TOO_LARGE,
                        error.message,
                    );
                }
                Some(document.clone())
            }
            Err(e) => {
                return error_response(StatusCode::BAD_REQUEST, "GRAPHQL_PARSE_FAILED", e.message);
            }
        },
    };
    let auth = match crate::auth::authenticate(&state.auth, &headers, peer).await {
        Ok(auth) => auth,
        Err(error) => return api_error_response(error),
    };
    // Without variables, validation is a function of the document alone: known to pass once
    // it passed. (Variables' values are checked by validation too, so those requests always
    // get it whole.)
    let constant = request.variables.is_empty();
    if let Some(prepared) = &prepared {
        if constant && prepared.validated() && prepared.direct() {
            let operation = request.operation_name.as_deref();
            match direct::answer(&state, &auth, prepared.document(), operation).await {
                Ok(body) => return crate::http::json::json_bytes(body),
                Err(direct::Fallback::Shape) => prepared.mark_not_direct(),
                Err(direct::Fallback::Request) => {}
            }
        }
        request.set_parsed_query(prepared.document().clone());
    }
    let viewer = auth.principal.map(|p| p.user);
    let loaders = loaders::Loaders::new(state.engine.clone(), state.loader_metrics.clone(), viewer);
    let schema = match &prepared {
        Some(prepared) if constant && prepared.validated() => &state.fast_schema,
        _ => &state.schema,
    };
    let mut response = schema
        .execute(request.data(auth).data(state.shared.clone()).data(loaders))
        .await;
    if response.errors.is_empty() {
        match (prepared, parsed_now) {
            (Some(prepared), _) if constant && !prepared.validated() => prepared.mark_validated(),
            (None, Some(document)) => state.documents.remember(key, document, constant),
            _ => {}
        }
    }
    let mut status = StatusCode::OK;
    for error in &mut response.errors {
        let code = classify(error);
        if code == "GRAPHQL_VALIDATION_FAILED" {
            status = StatusCode::BAD_REQUEST;
        }
    }
    // Resolvers may set cookies (the browser login); pass their headers on.
    let extra = std::mem::take(&mut response.http_headers);
    let mut http = (status, Json(response)).into_response();
    for (name, value) in &extra {
        http.headers_mut().append(name, value.clone());
    }
    http
}

/// Gives every error a code. Resolver errors already carry the engine's (or INTERNAL); errors
/// async-graphql raises before execution (no path) are validation failures; those it raises
/// while coercing a field's arguments (with a path) are invalid arguments.
fn classify(error: &mut ServerError) -> String {
    let existing = error
        .extensions
        .as_ref()
        .and_then(|e| e.get("code"))
        .map(|v| v.to_string().trim_matches('"').to_owned());
    if let Some(code) = existing {
        return code;
    }
    let code = if error.path.is_empty() {
        "GRAPHQL_VALIDATION_FAILED"
    } else {
        "INVALID_ARGUMENT"
    };
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    code.to_owned()
}
