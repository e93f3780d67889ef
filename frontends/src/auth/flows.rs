//! The account operations shared by REST and GraphQL: what they check (rate limits, CSRF) and
//! what they hand out (access tokens, refresh tokens, cookies).

use super::authenticator::Authenticator;
use super::{RequestAuth, cookies};
use crate::error::ApiError;
use girok_engine::accounts::{LoginGrant, Registration, UserView};
use serde::Serialize;

/// What a login or refresh answers (token mode).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub token_type: &'static str,
}

/// Checks the rate limits, then the password; opens a session.
pub async fn login(
    state: &Authenticator,
    auth: &RequestAuth,
    username: &str,
    password: &str,
) -> Result<LoginGrant, ApiError> {
    let limiter = &state.login_limiter;
    limiter
        .check_ip(&auth.client.ip)
        .map_err(ApiError::rate_limited)?;
    // One budget per account, whether its username or its email is typed.
    let account = state
        .engine
        .account_named(username)
        .await?
        .map_or_else(|| bounded_key(username), |id| id.to_string());
    limiter
        .check_account(&account)
        .map_err(ApiError::rate_limited)?;
    Ok(state.engine.login(username, password, &auth.client).await?)
}

/// What was typed, as a limiter key: at most an email's length (a key per attempt is kept
/// in memory for a while).
fn bounded_key(typed: &str) -> String {
    typed[..typed.floor_char_boundary(girok_engine::accounts::limits::EMAIL_MAX_BYTES)].to_owned()
}

/// Checks the registration limit of the caller's address, then registers.
pub async fn register(
    state: &Authenticator,
    auth: &RequestAuth,
    registration: Registration,
) -> Result<UserView, ApiError> {
    state
        .login_limiter
        .check_registration(&auth.client.ip)
        .map_err(ApiError::rate_limited)?;
    Ok(state.engine.register(registration).await?)
}

/// An access token for a granted session, with its refresh token.
pub fn token_pair(state: &Authenticator, grant: &LoginGrant) -> Result<TokenPair, ApiError> {
    Ok(TokenPair {
        access_token: state.tokens.issue(grant.user, grant.session)?,
        refresh_token: grant.refresh_token.clone(),
        expires_in: state.tokens.ttl_secs,
        token_type: "Bearer",
    })
}

/// The `Set-Cookie` values and CSRF token of a browser session for a grant.
pub fn cookie_session(
    state: &Authenticator,
    grant: &LoginGrant,
) -> Result<(String, [String; 2]), ApiError> {
    let csrf = cookies::new_csrf_token()?;
    let set = cookies::login_cookies(
        &grant.refresh_token,
        &csrf,
        state.config.auth.secure_cookies,
    );
    Ok((csrf, set))
}
