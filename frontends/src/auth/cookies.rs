//! The browser session cookies: `girok_session` (HttpOnly: the session's refresh token, never
//! readable by JavaScript) and `girok_csrf` (readable, echoed in `X-CSRF-Token` on changes).
//! Both Secure, SameSite=Strict, Path=/, 7 days.

use super::{CSRF_COOKIE, SESSION_COOKIE};
use base64::Engine as _;

const MAX_AGE_SECS: i64 = 7 * 24 * 3600;

fn cookie(name: &str, value: &str, http_only: bool, max_age: i64, secure: bool) -> String {
    let mut cookie = format!("{name}={value}; Path=/; Max-Age={max_age}; SameSite=Strict");
    if secure {
        cookie.push_str("; Secure");
    }
    if http_only {
        cookie.push_str("; HttpOnly");
    }
    cookie
}

/// A fresh CSRF token.
pub fn new_csrf_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// `Set-Cookie` values that start a browser session.
pub fn login_cookies(refresh_token: &str, csrf: &str, secure: bool) -> [String; 2] {
    [
        cookie(SESSION_COOKIE, refresh_token, true, MAX_AGE_SECS, secure),
        cookie(CSRF_COOKIE, csrf, false, MAX_AGE_SECS, secure),
    ]
}

/// `Set-Cookie` values that end it.
pub fn logout_cookies(secure: bool) -> [String; 2] {
    [
        cookie(SESSION_COOKIE, "", true, 0, secure),
        cookie(CSRF_COOKIE, "", false, 0, secure),
    ]
}
