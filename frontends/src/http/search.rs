//! `GET /v1/search`: the REST form of GraphQL's `search` — full-text search over posts, users
//! and the messages of your rooms. Query: `q` (required), `kind` (`post`, `user` or
//! `message`), `first` (1 to 100), `after` (the previous page's `endCursor`), `afterSeq`
//! (answer once the index reflects this seq).

use super::accounts::Auth;
use super::json::QueryParams;
use crate::app::AppState;
use crate::dto::{MessageDto, PostDto};
use crate::error::ApiError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use girok_engine::search::SearchKind;
use girok_engine::search::{SearchQuery, SearchResult};
use girok_schemas::Seq;
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/search", get(search))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SearchParams {
    q: String,
    kind: Option<String>,
    first: Option<usize>,
    after: Option<String>,
    after_seq: Option<Seq>,
}

async fn search(
    State(state): State<AppState>,
    Auth(auth): Auth,
    QueryParams(params): QueryParams<SearchParams>,
) -> Result<Json<Value>, ApiError> {
    let me = auth.require()?;
    let kind = match params.kind.as_deref() {
        None => None,
        Some("post") => Some(SearchKind::Post),
        Some("user") => Some(SearchKind::User),
        Some("message") => Some(SearchKind::Message),
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_ARGUMENT",
                "`kind` is one of post, user, message",
            ));
        }
    };
    let page = state
        .engine
        .search(
            me.user,
            SearchQuery {
                text: params.q,
                kind,
                limit: params.first,
                cursor: params.after,
                after: params.after_seq,
            },
        )
        .await?;
    let results: Vec<Value> = page
        .results
        .iter()
        .map(|result| match result {
            SearchResult::Post(post) => json!({ "kind": "post", "post": PostDto::from(post) }),
            SearchResult::User(user) => json!({
                "kind": "user",
                "user": {
                    "id": user.id,
                    "username": user.username,
                    "displayName": user.display_name,
                    "avatarMediaId": user.avatar_media_id,
                },
            }),
            SearchResult::Message(message) => json!({
                "kind": "message",
                "message": MessageDto::from(message),
            }),
        })
        .collect();
    Ok(Json(json!({
        "results": results,
        "pageInfo": {
            "hasNextPage": page.next_cursor.is_some(),
            "endCursor": page.next_cursor,
        },
    })))
}
