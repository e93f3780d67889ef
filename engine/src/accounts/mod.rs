//! Accounts and sessions: registration, login (argon2id on a bounded pool, the same time
//! whether or not the user exists), refresh-token rotation with reuse detection, logout,
//! password change, profiles and session lists. Every change is an event in the log; the
//! write model (usernames, emails, users, sessions, refresh-token hashes) is updated with it.
//! Refresh tokens are opaque random strings; only their SHA-256 is stored anywhere.
//! Access tokens (JWTs) are the frontends' business: they carry the session id, and every
//! request checks [`crate::Engine::active_session`], so a revocation takes effect at once.
//!
//! The shape of every domain: its [`AccountCommand`]s (`command.rs`), the write-time rules
//! the sequencer runs (`stage.rs`), its effect on the write model (`apply.rs`), its reads
//! (`reads.rs`); here also the flows that hash passwords before they submit (`flows.rs`), the
//! hashing pool and input validation.

pub(crate) mod apply;
mod command;
mod flows;
mod password;
mod reads;
mod stage;
mod validate;

pub use command::{
    AccountCommand, REVOKED_BY_USER, REVOKED_LOGOUT, REVOKED_PASSWORD_CHANGED, REVOKED_REUSE,
};
pub use password::{DEFAULT_PASSWORD_QUEUE, PasswordPool};
pub(crate) use reads::read_user;
pub(crate) use stage::stage;
pub use validate::limits;

use girok_schemas::{SessionId, UserId};
use sha2::{Digest, Sha256};

/// How long a refresh token (and a browser session cookie) lives.
pub const REFRESH_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// What registration takes.
#[derive(Clone, Debug)]
pub struct Registration {
    pub username: String,
    pub email: String,
    pub password: String,
    pub display_name: String,
}

/// Where a request came from (recorded with logins and refreshes).
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

/// An account as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserView {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub display_name: String,
    pub bio: String,
    pub avatar_media_id: Option<String>,
    pub created_ms: i64,
}

/// A successful login or refresh.
#[derive(Clone, Debug)]
pub struct LoginGrant {
    pub user: UserId,
    pub session: SessionId,
    /// The opaque refresh token; shown to the client once, stored nowhere.
    pub refresh_token: String,
    pub refresh_expires_ms: i64,
}

/// One session in a user's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionView {
    pub id: SessionId,
    pub user_agent: String,
    pub ip: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub expires_ms: i64,
}

/// Fields of a profile update; `None` leaves a field as it is, an empty bio or avatar clears it.
#[derive(Clone, Debug, Default)]
pub struct ProfilePatch {
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_media_id: Option<String>,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The only form in which a refresh token is stored.
pub fn refresh_token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}
