//! The one place that decides who a request is: a Bearer access token (verified strictly, and
//! its session checked against the log's write model on every request, so revocation is
//! immediate), or the browser session cookie (Full BFF: the cookie holds the session's refresh
//! token, HttpOnly, so tokens never reach browser JavaScript). Cookie-authenticated requests
//! that change state must also send `X-CSRF-Token` equal to the `girok_csrf` cookie.

use super::authenticator::Authenticator;
use crate::error::ApiError;
use axum::http::{HeaderMap, StatusCode, header};
use axum_extra::extract::CookieJar;
use girok_engine::accounts::ClientInfo;
use girok_schemas::{SessionId, UserId};
use std::net::SocketAddr;

pub const SESSION_COOKIE: &str = "girok_session";
pub const CSRF_COOKIE: &str = "girok_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How a principal proved itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthVia {
    Bearer,
    Cookie,
}

/// An authenticated caller.
#[derive(Clone, Copy, Debug)]
pub struct Principal {
    pub user: UserId,
    pub session: SessionId,
    pub via: AuthVia,
    /// The last second (Unix time) the credential is accepted: a Bearer token's `exp` plus
    /// the leeway. `None` for the session cookie, which lasts as long as its session.
    pub accepted_until: Option<i64>,
}

/// What the request's headers say about its caller.
#[derive(Clone, Debug)]
pub struct RequestAuth {
    pub principal: Option<Principal>,
    /// The CSRF header matches the CSRF cookie.
    pub csrf_ok: bool,
    pub client: ClientInfo,
}

pub fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
}

impl RequestAuth {
    /// The caller, for reads.
    pub fn require(&self) -> Result<Principal, ApiError> {
        self.principal.ok_or_else(|| {
            unauthenticated("sign in first: send a Bearer token or the session cookie")
        })
    }

    /// The caller, for requests that change state: cookie callers must pass the CSRF check.
    pub fn require_for_change(&self) -> Result<Principal, ApiError> {
        let principal = self.require()?;
        if principal.via == AuthVia::Cookie && !self.csrf_ok {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "CSRF_FAILED",
                "cookie-authenticated changes need the X-CSRF-Token header (the girok_csrf cookie's value)",
            ));
        }
        Ok(principal)
    }
}

/// The principal of an access token: valid signature and claims, and a session that is still
/// active (so revocation is immediate). Used for the Authorization header and the WebSocket
/// `auth` frame alike.
pub async fn bearer_principal(state: &Authenticator, token: &str) -> Result<Principal, ApiError> {
    let (user, session, accepted_until) = state
        .tokens
        .verify(token)
        .ok_or_else(|| unauthenticated("the access token is invalid or expired"))?;
    match state.engine.active_session(session).await? {
        Some(owner) if owner == user => Ok(Principal {
            user,
            session,
            via: AuthVia::Bearer,
            accepted_until: Some(accepted_until),
        }),
        _ => Err(unauthenticated("the session of this token has ended")),
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme name is
/// case-insensitive, RFC 7235); `None` without one.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// Authenticates a request. A presented but invalid Bearer token is an error (never silently
/// anonymous); a stale cookie is simply no principal.
pub async fn authenticate(
    state: &Authenticator,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<RequestAuth, ApiError> {
    let jar = CookieJar::from_headers(headers);
    let client = ClientInfo {
        ip: state
            .trusted_proxies
            .client_ip(peer.ip(), headers)
            .to_string(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(256)
            .collect(),
    };
    let csrf_ok = match (jar.get(CSRF_COOKIE), headers.get(CSRF_HEADER)) {
        (Some(cookie), Some(header)) => {
            !cookie.value().is_empty() && header.as_bytes() == cookie.value().as_bytes()
        }
        _ => false,
    };
    let principal = if headers.contains_key(header::AUTHORIZATION) {
        let token = bearer_token(headers)
            .ok_or_else(|| unauthenticated("the Authorization header must be `Bearer <token>`"))?;
        Some(bearer_principal(state, token).await?)
    } else if let Some(cookie) = jar.get(SESSION_COOKIE) {
        state
            .engine
            .session_for_refresh_token(cookie.value())
            .await?
            .map(|(user, session)| Principal {
                user,
                session,
                via: AuthVia::Cookie,
                accepted_until: None,
            })
    } else {
        None
    };
    Ok(RequestAuth {
        principal,
        csrf_ok,
        client,
    })
}
