//! Account commands: built by the `Engine`'s account methods after input validation and
//! password hashing (never by frontends directly), staged by `stage.rs`.

use girok_schemas::{SessionId, UserId};

/// Why a session ended (stored in the log and the session record).
pub const REVOKED_LOGOUT: &str = "logout";
pub const REVOKED_PASSWORD_CHANGED: &str = "password_changed";
pub const REVOKED_REUSE: &str = "refresh_token_reused";
pub const REVOKED_BY_USER: &str = "revoked_by_user";

/// A change to accounts or sessions. Built by [`crate::Engine`]'s account methods after input
/// validation and password hashing, never by frontends directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountCommand {
    Register {
        user: UserId,
        username: String,
        email: String,
        display_name: String,
        password_hash: String,
    },
    /// A successful password check; `verified_hash` is the hash it was checked against, so a
    /// password changed meanwhile fails the login.
    RecordLogin {
        user: UserId,
        verified_hash: String,
        session: SessionId,
        refresh_hash: Vec<u8>,
        ip: String,
        user_agent: String,
        expires_ms: i64,
    },
    RecordLoginFailure {
        username: String,
        ip: String,
        reason: &'static str,
    },
    Refresh {
        presented_hash: Vec<u8>,
        new_hash: Vec<u8>,
        ip: String,
        expires_ms: i64,
    },
    RevokeSession {
        user: UserId,
        session: SessionId,
        reason: &'static str,
    },
    ChangePassword {
        user: UserId,
        verified_hash: String,
        new_hash: String,
    },
    UpdateProfile {
        user: UserId,
        display_name: Option<String>,
        bio: Option<String>,
        avatar_media_id: Option<String>,
    },
}
