//! REST for chat under `/v1/rooms`, for simple clients: the same operations as GraphQL.
//! `after` (query) is the read-your-writes seq; `before`/`since` the history cursors and
//! `cursor` the room list's.

use super::accounts::Auth;
use super::execute_as_caller;
use super::json::{AfterQuery, JsonBody, JsonPage, QueryParams, path_id};
use crate::app::AppState;
use crate::dto::{AckDto, MessageDto, PageInfoDto, RoomDto};
use crate::error::ApiError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use girok_engine::{ChatCommand, Command, HistoryQuery, RoomCursor, RoomsQuery};
use girok_schemas::{EventId, RoomId, Seq, UserId, rfc3339_millis};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/rooms", get(list_rooms).post(create_room))
        .route("/v1/rooms/direct", post(open_direct_room))
        .route("/v1/rooms/{room}", get(room))
        .route("/v1/rooms/{room}/members", get(members).post(add_member))
        .route("/v1/rooms/{room}/members/{user}", delete(remove_member))
        .route("/v1/rooms/{room}/leave", post(leave))
        .route("/v1/rooms/{room}/read", post(mark_read))
        .route("/v1/rooms/{room}/typing", post(typing))
        .route("/v1/rooms/{room}/messages", get(messages).post(send))
        .route(
            "/v1/rooms/{room}/messages/{message}",
            patch(edit).delete(delete_message),
        )
}

fn room_id(raw: &str) -> Result<RoomId, ApiError> {
    path_id("room", "a room id", raw)
}

fn message_id(field: &str, raw: &str) -> Result<EventId, ApiError> {
    path_id(field, "a message id", raw)
}

fn user_id(field: &str, raw: &str) -> Result<UserId, ApiError> {
    path_id(field, "a user id", raw)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateRoomBody {
    title: String,
    #[serde(default)]
    member_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomListParams {
    first: Option<usize>,
    cursor: Option<String>,
    after: Option<u64>,
}

async fn list_rooms(
    State(state): State<AppState>,
    Auth(auth): Auth,
    QueryParams(params): QueryParams<RoomListParams>,
) -> Result<Response, ApiError> {
    let me = auth.require()?;
    let cursor = params.cursor.map(|c| c.parse::<RoomCursor>()).transpose()?;
    let query = RoomsQuery {
        cursor,
        limit: params.first,
        after: params.after,
    };
    let page = state.engine.rooms(me.user, query).await?;
    let json = RoomPageJson {
        rooms: page.rooms.iter().map(RoomDto::from).collect(),
        page_info: PageInfoDto {
            has_next_page: page.next_cursor.is_some(),
            end_cursor: page.next_cursor.map(|c| c.to_string()),
        },
    };
    Ok(JsonPage(json).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserBody {
    user_id: String,
}

async fn open_direct_room(
    State(state): State<AppState>,
    Auth(auth): Auth,
    JsonBody(body): JsonBody<UserBody>,
) -> Result<(StatusCode, Response), ApiError> {
    let me = auth.require_for_change()?;
    let peer = user_id("userId", &body.user_id)?;
    let ack = state
        .engine
        .execute(me.user, Command::Chat(ChatCommand::OpenDirectRoom { peer }))
        .await?;
    let room = state
        .engine
        .room(me.user, RoomId(ack.id.0), Some(ack.seq))
        .await?;
    let json = Json(RoomDto::from(&room).written_at(ack.seq)).into_response();
    let status = if ack.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, json))
}

async fn members(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(room): Path<String>,
    QueryParams(query): QueryParams<AfterQuery>,
) -> Result<Json<Value>, ApiError> {
    let me = auth.require()?;
    let room = room_id(&room)?;
    let members = state.engine.members(me.user, room, query.after).await?;
    let members: Vec<Value> = members
        .into_iter()
        .map(|m| {
            let status = state.presence.status(m.user);
            json!({
                "userId": m.user,
                "readUpToSeq": m.read_up_to,
                "online": status.online,
                "lastSeenAt": status.last_seen_ms.map(rfc3339_millis),
            })
        })
        .collect();
    Ok(Json(json!({
        "members": members,
        "typing": state.presence.typing_in(room),
    })))
}

async fn add_member(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(room): Path<String>,
    JsonBody(body): JsonBody<UserBody>,
) -> Result<Response, ApiError> {
    let command = Command::Chat(ChatCommand::AddMember {
        room: room_id(&room)?,
        user: user_id("userId", &body.user_id)?,
    });
    execute_for_seq(&state, &auth, command).await
}

async fn remove_member(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path((room, user)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let command = Command::Chat(ChatCommand::RemoveMember {
        room: room_id(&room)?,
        user: user_id("user", &user)?,
    });
    execute_for_seq(&state, &auth, command).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReadBody {
    up_to_seq: Option<u64>,
}

async fn mark_read(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(room): Path<String>,
    JsonBody(body): JsonBody<ReadBody>,
) -> Result<Response, ApiError> {
    let me = auth.require_for_change()?;
    let command = Command::Chat(ChatCommand::MarkRead {
        room: room_id(&room)?,
        up_to: body.up_to_seq,
    });
    let ack = state.engine.execute(me.user, command).await?;
    Ok(Json(AckDto::read_up_to(&ack)).into_response())
}

async fn typing(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(room): Path<String>,
) -> Result<StatusCode, ApiError> {
    let me = auth.require_for_change()?;
    let room = room_id(&room)?;
    state
        .presence
        .member_typing(&state.engine, room, me.user)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_room(
    State(state): State<AppState>,
    Auth(auth): Auth,
    JsonBody(body): JsonBody<CreateRoomBody>,
) -> Result<(StatusCode, Response), ApiError> {
    let me = auth.require_for_change()?;
    let members = body
        .member_ids
        .iter()
        .map(|m| user_id("memberIds", m))
        .collect::<Result<Vec<_>, _>>()?;
    let command = Command::Chat(ChatCommand::CreateRoom {
        title: body.title,
        members,
    });
    let ack = state.engine.execute(me.user, command).await?;
    let room = state.engine.room(me.user, RoomId(ack.id.0), None).await?;
    let json = Json(RoomDto::from(&room).written_at(ack.seq)).into_response();
    Ok((StatusCode::CREATED, json))
}

async fn room(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(room): Path<String>,
    QueryParams(query): QueryParams<AfterQuery>,
) -> Result<Response, ApiError> {
    let me = auth.require()?;
    let room = state
        .engine
        .room(me.user, room_id(&room)?, query.after)
        .await?;
    Ok(Json(RoomDto::from(&room)).into_response())
}

/// Executes a change as the caller; answers `{ "seq": N }` (pass it as `after` to read it).
async fn execute_for_seq(
    state: &AppState,
    auth: &crate::auth::RequestAuth,
    command: Command,
) -> Result<Response, ApiError> {
    let (_, ack) = execute_as_caller(state, auth, command).await?;
    Ok(Json(AckDto::seq(&ack)).into_response())
}

async fn leave(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    execute_for_seq(
        &state,
        &auth,
        Command::Chat(ChatCommand::LeaveRoom { room }),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    first: Option<usize>,
    before: Option<u64>,
    since: Option<u64>,
    after: Option<u64>,
}

async fn messages(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(room): Path<String>,
    QueryParams(params): QueryParams<HistoryParams>,
) -> Result<Response, ApiError> {
    let me = auth.require()?;
    let page = state
        .engine
        .messages(
            me.user,
            room_id(&room)?,
            HistoryQuery {
                before: params.before,
                since: params.since,
                limit: params.first,
                after: params.after,
            },
        )
        .await?;
    // One read for every attachment of the page (none when it has none).
    let attached: Vec<String> = page
        .messages
        .iter()
        .flat_map(|m| m.attachments.iter().map(|a| a.to_string()))
        .collect();
    let media = state.engine.media_many(Some(me.user), attached).await?;
    let json = MessagePageJson {
        messages: page
            .messages
            .iter()
            .map(|m| MessageDto::from(m).with_media(&media))
            .collect(),
        page_info: HistoryPageInfo {
            has_next_page: page.has_older,
            end_cursor: page.messages.last().map(|m| m.seq),
            has_previous_page: page.has_newer,
            start_cursor: page.messages.first().map(|m| m.seq),
        },
    };
    Ok(JsonPage(json).into_response())
}

/// Pages are serialized straight from the engine's objects (no intermediate JSON values): the
/// history page and the room list are the busiest chat reads.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessagePageJson<'a> {
    messages: Vec<MessageDto<'a>>,
    page_info: HistoryPageInfo,
}

/// A history page's neighbours: older (`endCursor`, as `before`) and newer (`startCursor`,
/// as `since`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryPageInfo {
    has_next_page: bool,
    end_cursor: Option<Seq>,
    has_previous_page: bool,
    start_cursor: Option<Seq>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomPageJson<'a> {
    rooms: Vec<RoomDto<'a>>,
    page_info: PageInfoDto<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendBody {
    body: String,
    client_id: Option<String>,
    reply_to: Option<String>,
    /// Media ids (ready media of the sender).
    #[serde(default)]
    attachments: Vec<String>,
}

async fn send(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(room): Path<String>,
    JsonBody(body): JsonBody<SendBody>,
) -> Result<(StatusCode, Response), ApiError> {
    let me = auth.require_for_change()?;
    let reply_to = body
        .reply_to
        .as_deref()
        .map(|r| message_id("replyTo", r))
        .transpose()?;
    let attachments = body
        .attachments
        .iter()
        .map(|id| path_id("attachments", "a media id", id))
        .collect::<Result<Vec<_>, _>>()?;
    let command = Command::Chat(ChatCommand::SendMessage {
        room: room_id(&room)?,
        body: body.body,
        client_id: body.client_id,
        reply_to,
        attachments,
    });
    let ack = state.engine.execute(me.user, command).await?;
    let status = if ack.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(AckDto::message(&ack)).into_response()))
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
) -> Result<Response, ApiError> {
    let command = Command::Chat(ChatCommand::EditMessage {
        message: message_id("message", &message)?,
        body: body.body,
        in_room: Some(room_id(&room)?),
    });
    execute_for_seq(&state, &auth, command).await
}

async fn delete_message(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path((room, message)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let command = Command::Chat(ChatCommand::DeleteMessage {
        message: message_id("message", &message)?,
        in_room: Some(room_id(&room)?),
    });
    execute_for_seq(&state, &auth, command).await
}
