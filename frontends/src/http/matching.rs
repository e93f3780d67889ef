//! REST for random matching and blocks: the same operations as GraphQL's. Joining answers
//! with the match it made at once (`matched`, if a partner was waiting) and the caller's
//! status; later news arrives on the WebSocket `matching` topic (or GraphQL's
//! `matchingUpdated`).

use super::accounts::Auth;
use super::execute_as_caller;
use super::json::{JsonBody, QueryParams, path_id};
use crate::app::AppState;
use crate::dto::{MatchingStatusDto, PublicUserDto};
use crate::error::ApiError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use girok_engine::matching::CurrentMatch;
use girok_engine::{Ack, Command, Engine, MatchingCommand};
use girok_schemas::UserId;
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/matching", get(status))
        .route("/v1/matching/queue", post(join).delete(leave))
        .route("/v1/matching/skip", post(skip))
        .route("/v1/blocks", get(blocked))
        .route("/v1/users/{user}/block", post(block).delete(unblock))
}

/// A user's status with their partner's profile.
pub(crate) async fn status_of(
    engine: &Engine,
    user: UserId,
) -> girok_engine::Result<MatchingStatusDto> {
    let status = engine.matching_status(user).await?;
    let partner = match &status.current {
        Some(current) => Some(engine.user(current.partner).await?),
        None => None,
    };
    Ok(MatchingStatusDto::new(status, partner.as_ref()))
}

/// The answer to a write that may have queued and matched the caller: its seq, the ticket,
/// the match it made at once (`null` if none: exact, from the write's own events) and the
/// caller's status now (which may already show later changes).
async fn after_joining(engine: &Engine, me: UserId, ack: &Ack) -> girok_engine::Result<Value> {
    let matched = match CurrentMatch::made_by(ack) {
        Some(made) => {
            let partner = engine.user(made.partner).await?;
            json!({ "roomId": made.room, "partner": PublicUserDto::from(&partner), "seq": made.seq })
        }
        None => Value::Null,
    };
    let status = status_of(engine, me).await?;
    Ok(json!({ "seq": ack.seq, "ticketId": ack.id, "matched": matched, "status": status }))
}

async fn run(
    state: &AppState,
    auth: &Auth,
    command: MatchingCommand,
) -> Result<(UserId, Ack), ApiError> {
    execute_as_caller(state, &auth.0, Command::Matching(command)).await
}

async fn status(State(state): State<AppState>, Auth(auth): Auth) -> Result<Response, ApiError> {
    let me = auth.require()?;
    Ok(Json(status_of(&state.engine, me.user).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    #[serde(default)]
    tags: Vec<String>,
    language: Option<String>,
}

async fn join(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody<JoinBody>,
) -> Result<Response, ApiError> {
    let command = MatchingCommand::Join {
        tags: body.tags,
        language: body.language,
    };
    let (me, ack) = run(&state, &auth, command).await?;
    let body = after_joining(&state.engine, me, &ack).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn leave(State(state): State<AppState>, auth: Auth) -> Result<Response, ApiError> {
    let (_, ack) = run(&state, &auth, MatchingCommand::Leave).await?;
    Ok(Json(json!({ "seq": ack.seq })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SkipParams {
    /// Re-queue with the match's preferences (default `true`).
    requeue: Option<bool>,
}

async fn skip(
    State(state): State<AppState>,
    auth: Auth,
    QueryParams(params): QueryParams<SkipParams>,
) -> Result<Response, ApiError> {
    let command = MatchingCommand::Skip {
        requeue: params.requeue.unwrap_or(true),
    };
    let (me, ack) = run(&state, &auth, command).await?;
    Ok(Json(after_joining(&state.engine, me, &ack).await?).into_response())
}

async fn blocked(State(state): State<AppState>, Auth(auth): Auth) -> Result<Response, ApiError> {
    let me = auth.require()?;
    let blocked = state.engine.blocked_users(me.user).await?;
    let users = state.engine.users(blocked.clone()).await?;
    let users: Vec<PublicUserDto> = blocked
        .iter()
        .filter_map(|id| users.get(id).map(|user| PublicUserDto::from(user.as_ref())))
        .collect();
    Ok(Json(json!({ "users": users })).into_response())
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    path_id("user", "a user id (a UUID)", raw)
}

async fn block(
    State(state): State<AppState>,
    auth: Auth,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    let user = user_id(&user)?;
    let (_, ack) = run(&state, &auth, MatchingCommand::Block { user }).await?;
    Ok(Json(json!({ "seq": ack.seq, "blocked": true })).into_response())
}

async fn unblock(
    State(state): State<AppState>,
    auth: Auth,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    let user = user_id(&user)?;
    let (_, ack) = run(&state, &auth, MatchingCommand::Unblock { user }).await?;
    Ok(Json(json!({ "seq": ack.seq, "blocked": false })).into_response())
}
