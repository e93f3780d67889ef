//! REST for accounts, as seed 000 names the paths: `/v1/auth/{register,login,refresh,logout}`,
//! `/v1/users/me` (GET, PATCH), `/v1/users/me/change-password`, `/v1/users/me/sessions`,
//! `/v1/users/{username}`, and the public keys at `/.well-known/jwks.json`. JSON is camelCase.

use super::json::JsonBody;
use crate::app::AppState;
use crate::auth::{RequestAuth, authenticate, cookies, flows};
use crate::error::ApiError;
use crate::listener::PeerAddr;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use girok_engine::accounts::{ProfilePatch, Registration, SessionView, UserView};
use girok_schemas::{SessionId, rfc3339_millis};
use serde::Deserialize;
use serde_json::{Value, json};

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/v1/auth/register", post(register))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/users/me", get(me).patch(update_me))
        .route("/v1/users/me/change-password", post(change_password))
        .route("/v1/users/me/sessions", get(sessions))
        .route("/v1/users/me/sessions/{id}", delete(revoke_session))
        .route("/v1/users/{username}", get(public_profile))
}

/// Extracts the request's authentication (see [`crate::auth`]).
pub struct Auth(pub RequestAuth);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ConnectInfo(PeerAddr(peer)) = ConnectInfo::<PeerAddr>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.body_text())
            })?;
        Ok(Auth(authenticate(&state.auth, &parts.headers, peer).await?))
    }
}

/// An account as its owner sees it.
pub fn user_json(user: &UserView) -> Value {
    json!({
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "displayName": user.display_name,
        "bio": user.bio,
        "avatarMediaId": user.avatar_media_id,
        "createdAt": rfc3339_millis(user.created_ms),
    })
}

/// An account as anyone sees it (no email).
pub fn public_user_json(user: &UserView) -> Value {
    json!(crate::dto::PublicUserDto::from(user))
}

fn session_json(session: &SessionView, current: SessionId) -> Value {
    json!({
        "id": session.id,
        "userAgent": session.user_agent,
        "ip": session.ip,
        "createdAt": rfc3339_millis(session.created_ms),
        "lastSeenAt": rfc3339_millis(session.last_seen_ms),
        "expiresAt": rfc3339_millis(session.expires_ms),
        "current": session.id == current,
    })
}

async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.auth.tokens.jwks().clone()),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterBody {
    username: String,
    email: String,
    password: String,
    display_name: String,
}

async fn register(
    State(state): State<AppState>,
    Auth(auth): Auth,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let registration = Registration {
        username: body.username,
        email: body.email,
        password: body.password,
        display_name: body.display_name,
    };
    let user = flows::register(&state.auth, &auth, registration).await?;
    Ok((StatusCode::CREATED, Json(user_json(&user))))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LoginBody {
    /// A username or an email.
    username: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    Auth(auth): Auth,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Json<flows::TokenPair>, ApiError> {
    let grant = flows::login(&state.auth, &auth, &body.username, &body.password).await?;
    Ok(Json(flows::token_pair(&state.auth, &grant)?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    Auth(auth): Auth,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Json<flows::TokenPair>, ApiError> {
    let grant = state
        .engine
        .refresh(&body.refresh_token, &auth.client)
        .await?;
    Ok(Json(flows::token_pair(&state.auth, &grant)?))
}

async fn logout(State(state): State<AppState>, Auth(auth): Auth) -> Result<Response, ApiError> {
    let principal = auth.require_for_change()?;
    state
        .engine
        .logout(principal.user, principal.session)
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    for cookie in cookies::logout_cookies(state.config.auth.secure_cookies) {
        if let Ok(value) = cookie.parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

async fn me(State(state): State<AppState>, Auth(auth): Auth) -> Result<Json<Value>, ApiError> {
    let principal = auth.require()?;
    Ok(Json(user_json(&state.engine.user(principal.user).await?)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProfileBody {
    display_name: Option<String>,
    bio: Option<String>,
    avatar_media_id: Option<String>,
}

async fn update_me(
    State(state): State<AppState>,
    Auth(auth): Auth,
    JsonBody(body): JsonBody<ProfileBody>,
) -> Result<Json<Value>, ApiError> {
    let principal = auth.require_for_change()?;
    let user = state
        .engine
        .update_profile(
            principal.user,
            ProfilePatch {
                display_name: body.display_name,
                bio: body.bio,
                avatar_media_id: body.avatar_media_id,
            },
        )
        .await?;
    Ok(Json(user_json(&user)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    Auth(auth): Auth,
    JsonBody(body): JsonBody<ChangePasswordBody>,
) -> Result<StatusCode, ApiError> {
    let principal = auth.require_for_change()?;
    state
        .engine
        .change_password(principal.user, &body.current_password, &body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn sessions(
    State(state): State<AppState>,
    Auth(auth): Auth,
) -> Result<Json<Value>, ApiError> {
    let principal = auth.require()?;
    let sessions = state.engine.sessions(principal.user).await?;
    Ok(Json(json!({
        "sessions": sessions.iter().map(|s| session_json(s, principal.session)).collect::<Vec<_>>()
    })))
}

async fn revoke_session(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let principal = auth.require_for_change()?;
    let session: SessionId = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_ARGUMENT",
            "the session id is not a UUID",
        )
    })?;
    state.engine.revoke_session(principal.user, session).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn public_profile(
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(public_user_json(
        &state.engine.user_by_username(&username).await?,
    )))
}
