//! REST for chat under `/v1/rooms`, for simple clients: the same operations as GraphQL.
//! `after` (query) is the read-your-writes seq; `before` the cursor of the previous page.

use super::AppState;
use super::accounts::Auth;
use super::error::ApiError;
use super::json::{JsonBody, QueryParams};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use girok_engine::{Ack, Command, HistoryQuery, Message, RoomInfo};
use girok_schemas::{EventId, RoomId, rfc3339_millis};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/rooms", post(create_room))
        .route("/v1/rooms/{room}", get(room))
        .route("/v1/rooms/{room}/join", post(join))
        .route("/v1/rooms/{room}/leave", post(leave))
        .route("/v1/rooms/{room}/messages", get(messages).post(send))
        .route(
            "/v1/rooms/{room}/messages/{message}",
            patch(edit).delete(delete_message),
        )
}

fn invalid(field: &str, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_ARGUMENT",
        format!("`{field}` is not {what}"),
    )
}

fn room_id(raw: &str) -> Result<RoomId, ApiError> {
    raw.parse().map_err(|_| invalid("room", "a room id"))
}

fn message_id(field: &str, raw: &str) -> Result<EventId, ApiError> {
    raw.parse().map_err(|_| invalid(field, "a message id"))
}

fn room_json(room: &RoomInfo) -> Value {
    json!({
        "id": room.id,
        "title": room.title,
        "creatorId": room.creator,
        "createdSeq": room.created_seq,
        "messageCount": room.message_count,
        "lastMessageSeq": room.last_message.map(|m| m.0),
        "lastMessageAt": room.last_message.map(|m| rfc3339_millis(m.1)),
    })
}

fn message_json(message: &Message) -> Value {
    json!({
        "id": message.id,
        "seq": message.seq,
        "roomId": message.room,
        "senderId": message.sender,
        "body": message.body,
        "clientId": message.client_id,
        "replyToId": message.reply_to,
        "createdAt": rfc3339_millis(message.commit_time_ms),
        "edited": message.edited_ms.is_some(),
        "editedAt": message.edited_ms.map(rfc3339_millis),
    })
}

fn ack_json(ack: &Ack) -> Value {
    json!({
        "seq": ack.seq,
        "id": ack.id,
        "createdAt": rfc3339_millis(ack.commit_time_ms),
        "duplicate": ack.duplicate,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateRoomBody {
    title: String,
}

async fn create_room(
    State(state): State<AppState>,
    Auth(auth): Auth,
    JsonBody(body): JsonBody<CreateRoomBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let me = auth.require_for_change()?;
    let ack = state
        .engine
        .execute(me.user, Command::CreateRoom { title: body.title })
        .await?;
    let room = state.engine.room(me.user, RoomId(ack.id.0), None).await?;
    let mut json = room_json(&room);
    json["seq"] = json!(ack.seq);
    Ok((StatusCode::CREATED, Json(json)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AfterQuery {
    after: Option<u64>,
}

async fn room(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(room): Path<String>,
    QueryParams(query): QueryParams<AfterQuery>,
) -> Result<Json<Value>, ApiError> {
    let me = auth.require()?;
    let room = state
        .engine
        .room(me.user, room_id(&room)?, query.after)
        .await?;
    Ok(Json(room_json(&room)))
}

/// Executes a change as the caller; answers `{ "seq": N }` (pass it as `after` to read it).
async fn execute_for_seq(
    state: &AppState,
    auth: &crate::auth::RequestAuth,
    command: Command,
) -> Result<Json<Value>, ApiError> {
    let me = auth.require_for_change()?;
    let ack = state.engine.execute(me.user, command).await?;
    Ok(Json(json!({ "seq": ack.seq })))
}

async fn join(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(room): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let room = room_id(&room)?;
    execute_for_seq(&state, &auth, Command::JoinRoom { room }).await
}

async fn leave(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(room): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let room = room_id(&room)?;
    execute_for_seq(&state, &auth, Command::LeaveRoom { room }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    first: Option<usize>,
    before: Option<u64>,
    after: Option<u64>,
}

async fn messages(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(room): Path<String>,
    QueryParams(params): QueryParams<HistoryParams>,
) -> Result<Json<Value>, ApiError> {
    let me = auth.require()?;
    let page = state
        .engine
        .messages(
            me.user,
            room_id(&room)?,
            HistoryQuery {
                before: params.before,
                limit: params.first,
                after: params.after,
            },
        )
        .await?;
    Ok(Json(json!({
        "messages": page.messages.iter().map(message_json).collect::<Vec<_>>(),
        "pageInfo": {
            "hasNextPage": page.has_more,
            "endCursor": page.messages.last().map(|m| m.seq),
        },
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendBody {
    body: String,
    client_id: Option<String>,
    reply_to: Option<String>,
}

async fn send(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(room): Path<String>,
    JsonBody(body): JsonBody<SendBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let me = auth.require_for_change()?;
    let reply_to = body
        .reply_to
        .as_deref()
        .map(|r| message_id("replyTo", r))
        .transpose()?;
    let command = Command::SendMessage {
        room: room_id(&room)?,
        body: body.body,
        client_id: body.client_id,
        reply_to,
    };
    let ack = state.engine.execute(me.user, command).await?;
    let status = if ack.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(ack_json(&ack))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    body: String,
}

async fn edit(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path((room, message)): Path<(String, String)>,
    JsonBody(body): JsonBody<EditBody>,
) -> Result<Json<Value>, ApiError> {
    let command = Command::EditMessage {
        message: message_id("message", &message)?,
        body: body.body,
        in_room: Some(room_id(&room)?),
    };
    execute_for_seq(&state, &auth, command).await
}

async fn delete_message(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path((room, message)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let command = Command::DeleteMessage {
        message: message_id("message", &message)?,
        in_room: Some(room_id(&room)?),
    };
    execute_for_seq(&state, &auth, command).await
}
