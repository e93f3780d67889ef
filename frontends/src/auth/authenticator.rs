//! What authenticating a caller needs, in one cheap handle every transport holds: the engine
//! (sessions), the token verifier and signer, the login limits, the trusted proxies (who the
//! client is), the live connections by session, and the frontends' configuration.

use super::client_ip::TrustedProxies;
use super::live_sessions::LiveSessions;
use super::rate_limit::LoginLimiter;
use super::tokens::Tokens;
use crate::config::FrontendConfig;
use girok_engine::Engine;
use std::sync::Arc;

/// The authentication parts; cloning copies handles.
#[derive(Clone)]
pub struct Authenticator {
    pub engine: Arc<Engine>,
    pub config: Arc<FrontendConfig>,
    pub tokens: Arc<Tokens>,
    pub login_limiter: Arc<LoginLimiter>,
    /// The proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// The sessions live connections run under, to end them with their session.
    pub live_sessions: Arc<LiveSessions>,
}
