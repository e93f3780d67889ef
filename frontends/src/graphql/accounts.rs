//! Account operations over GraphQL: `register`, `login` (tokens, or the browser session cookie
//! with `useCookie: true`), `refresh`, `logout`, `me`, `user(username)`, `updateMe`,
//! `changePassword`, `sessions`, `revokeSession`.

use super::errors::{api, changing_principal, gql, invalid, principal, request_auth};
use crate::auth::Authenticator;
use crate::auth::{AuthVia, cookies, flows};
use crate::state::Shared;
use async_graphql::{Context, ID, Object, Result, SimpleObject};
use girok_engine::accounts::{ProfilePatch, Registration, SessionView, UserView};
use girok_schemas::{SessionId, rfc3339_millis};

fn state<'a>(ctx: &Context<'a>) -> Result<&'a Authenticator> {
    ctx.data::<Shared>()
        .map(|shared| &shared.auth)
        .map_err(|e| gql(girok_engine::Error::Internal(e.message)))
}

/// An account.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct User {
    id: ID,
    username: String,
    /// Only on your own account (`me`, `register`, `updateMe`).
    email: Option<String>,
    display_name: String,
    bio: String,
    avatar_media_id: Option<String>,
    created_at: String,
}

#[async_graphql::ComplexObject]
impl User {
    /// The avatar, once ready.
    async fn avatar_media(&self, ctx: &Context<'_>) -> Result<Option<super::media::Media>> {
        let ids = self.avatar_media_id.iter().cloned().collect::<Vec<_>>();
        Ok(super::media::media_of(ctx, &ids).await?.pop())
    }
}

impl User {
    fn own(user: UserView) -> Self {
        Self {
            email: Some(user.email.clone()),
            ..Self::public(user)
        }
    }

    pub(super) fn public(user: UserView) -> Self {
        Self {
            id: ID(user.id.to_string()),
            username: user.username,
            email: None,
            display_name: user.display_name,
            bio: user.bio,
            avatar_media_id: user.avatar_media_id,
            created_at: rfc3339_millis(user.created_ms),
        }
    }
}

/// The answer to `login` and `refresh`.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Null in cookie mode: tokens never reach browser JavaScript then.
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    /// Cookie mode: send this as `X-CSRF-Token` with every change.
    csrf_token: Option<String>,
    user: User,
}

/// One of your sessions.
#[derive(SimpleObject)]
pub struct Session {
    id: ID,
    user_agent: String,
    ip: String,
    created_at: String,
    last_seen_at: String,
    expires_at: String,
    /// The session this request uses.
    current: bool,
}

fn session(view: SessionView, current: SessionId) -> Session {
    Session {
        id: ID(view.id.to_string()),
        current: view.id == current,
        user_agent: view.user_agent,
        ip: view.ip,
        created_at: rfc3339_millis(view.created_ms),
        last_seen_at: rfc3339_millis(view.last_seen_ms),
        expires_at: rfc3339_millis(view.expires_ms),
    }
}

/// A login or refresh answered with tokens.
fn tokens_payload(
    state: &Authenticator,
    grant: &girok_engine::accounts::LoginGrant,
    user: User,
) -> Result<AuthPayload> {
    let pair = flows::token_pair(state, grant).map_err(api)?;
    Ok(AuthPayload {
        access_token: Some(pair.access_token),
        refresh_token: Some(pair.refresh_token),
        expires_in: Some(pair.expires_in),
        csrf_token: None,
        user,
    })
}

/// Account queries.
#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// Your account.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let me = principal(ctx)?;
        let user = state(ctx)?.engine.user(me.user).await.map_err(gql)?;
        Ok(User::own(user))
    }

    /// Anyone's public profile, by username (any case).
    async fn user(&self, ctx: &Context<'_>, username: String) -> Result<User> {
        let user = state(ctx)?
            .engine
            .user_by_username(&username)
            .await
            .map_err(gql)?;
        Ok(User::public(user))
    }

    /// Your active sessions, newest first.
    async fn sessions(&self, ctx: &Context<'_>) -> Result<Vec<Session>> {
        let me = principal(ctx)?;
        let sessions = state(ctx)?.engine.sessions(me.user).await.map_err(gql)?;
        Ok(sessions
            .into_iter()
            .map(|s| session(s, me.session))
            .collect())
    }
}

/// Account mutations.
#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Creates an account: username 3 to 30 of [A-Za-z0-9_] (unique ignoring case), a unique
    /// email, a password of 8 to 128 characters, a display name of 1 to 50.
    async fn register(
        &self,
        ctx: &Context<'_>,
        username: String,
        email: String,
        password: String,
        display_name: String,
    ) -> Result<User> {
        let registration = Registration {
            username,
            email,
            password,
            display_name,
        };
        let user = flows::register(state(ctx)?, request_auth(ctx)?, registration)
            .await
            .map_err(api)?;
        Ok(User::own(user))
    }

    /// Logs in with a username or email. With `useCookie: true` the session goes into an
    /// HttpOnly cookie (Secure, SameSite=Strict, 7 days) and no token is returned.
    async fn login(
        &self,
        ctx: &Context<'_>,
        username: String,
        password: String,
        #[graphql(default = false)] use_cookie: bool,
    ) -> Result<AuthPayload> {
        let state = state(ctx)?;
        let auth = request_auth(ctx)?;
        let grant = flows::login(state, auth, &username, &password)
            .await
            .map_err(api)?;
        let user = User::own(state.engine.user(grant.user).await.map_err(gql)?);
        if use_cookie {
            let (csrf, set) = flows::cookie_session(state, &grant).map_err(api)?;
            for cookie in set {
                ctx.append_http_header("set-cookie", cookie);
            }
            return Ok(AuthPayload {
                access_token: None,
                refresh_token: None,
                expires_in: None,
                csrf_token: Some(csrf),
                user,
            });
        }
        tokens_payload(state, &grant, user)
    }

    /// Exchanges a refresh token for a new pair; the old one stops working. Presenting an
    /// already used token ends the whole session (`REFRESH_TOKEN_REUSED`).
    async fn refresh(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthPayload> {
        let state = state(ctx)?;
        let auth = request_auth(ctx)?;
        let grant = state
            .engine
            .refresh(&refresh_token, &auth.client)
            .await
            .map_err(gql)?;
        let user = User::own(state.engine.user(grant.user).await.map_err(gql)?);
        tokens_payload(state, &grant, user)
    }

    /// Ends this session (and clears the cookies in cookie mode).
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool> {
        let me = changing_principal(ctx)?;
        let state = state(ctx)?;
        state
            .engine
            .logout(me.user, me.session)
            .await
            .map_err(gql)?;
        if me.via == AuthVia::Cookie {
            for cookie in cookies::logout_cookies(state.config.auth.secure_cookies) {
                ctx.append_http_header("set-cookie", cookie);
            }
        }
        Ok(true)
    }

    /// Changes display name, bio (up to 500 characters; empty clears) or avatar media id.
    async fn update_me(
        &self,
        ctx: &Context<'_>,
        display_name: Option<String>,
        bio: Option<String>,
        avatar_media_id: Option<String>,
    ) -> Result<User> {
        let me = changing_principal(ctx)?;
        let user = state(ctx)?
            .engine
            .update_profile(
                me.user,
                ProfilePatch {
                    display_name,
                    bio,
                    avatar_media_id,
                },
            )
            .await
            .map_err(gql)?;
        Ok(User::own(user))
    }

    /// Changes the password; every session ends, this one included.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> Result<bool> {
        let me = changing_principal(ctx)?;
        state(ctx)?
            .engine
            .change_password(me.user, &current_password, &new_password)
            .await
            .map_err(gql)?;
        Ok(true)
    }

    /// Ends one of your sessions.
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let me = changing_principal(ctx)?;
        let session: SessionId = id
            .parse()
            .map_err(|_| invalid("id", "not a session id (a UUID)"))?;
        state(ctx)?
            .engine
            .revoke_session(me.user, session)
            .await
            .map_err(gql)?;
        Ok(true)
    }
}
