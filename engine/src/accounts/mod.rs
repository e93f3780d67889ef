//! Accounts and sessions: registration, login (argon2id on a bounded pool, the same time
//! whether or not the user exists), refresh-token rotation with reuse detection, logout,
//! password change, profiles and session lists. Every change is an event in the log; the
//! write model (usernames, emails, users, sessions, refresh-token hashes) is updated with it.
//! Refresh tokens are opaque random strings; only their SHA-256 is stored anywhere.
//! Access tokens (JWTs) are the frontends' business: they carry the session id, and every
//! request checks [`Engine::active_session`], so a revocation takes effect at once.

mod password;
mod stage;
mod validate;

pub use password::{DEFAULT_PASSWORD_QUEUE, PasswordPool};
pub use stage::AccountCommand;
pub(crate) use stage::stage;
pub use validate::limits;

use crate::command::Command;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::hot::{HotObjects, SessionState};
use crate::write_model::record;
use base64::Engine as _;
use girok_schemas::proto::{SessionRecord, UserRecord};
use girok_schemas::{SessionId, UserId};
use girok_storage::{Store, Table};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn new_refresh_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Internal(format!("no randomness for a token: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The only form in which a refresh token is stored.
pub fn refresh_token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn user_view(id: UserId, record: UserRecord) -> UserView {
    UserView {
        id,
        username: record.username,
        email: record.email,
        display_name: record.display_name,
        bio: record.bio,
        avatar_media_id: Some(record.avatar_media_id).filter(|a| !a.is_empty()),
        created_ms: record.created_ms,
    }
}

fn stored_user(store: &Store, id: UserId) -> Result<UserRecord> {
    record(store.get(Table::UseridUser, id.as_bytes())?, "user")?.ok_or(Error::UserNotFound)
}

pub(crate) fn read_user(store: &Store, id: UserId) -> Result<UserView> {
    Ok(user_view(id, stored_user(store, id)?))
}

fn read_session(store: &Store, id: SessionId) -> Result<Option<SessionRecord>> {
    record(
        store.get(Table::SessionidSession, id.as_bytes())?,
        "session",
    )
}

fn user_by_login(store: &Store, login: &str) -> Result<Option<UserId>> {
    let table = if login.contains('@') {
        Table::EmailUserid
    } else {
        Table::UsernameUserid
    };
    Ok(store
        .get(table, login.to_lowercase().as_bytes())?
        .and_then(|b| UserId::from_slice(&b)))
}

impl Engine {
    async fn account(&self, command: crate::accounts::AccountCommand) -> Result<crate::Ack> {
        // Account commands name their user themselves (the submitter of a registration or a
        // login is nobody yet), so the submission's actor is unused: the nil id.
        self.submit(UserId(uuid::Uuid::nil()), Command::Account(command))
            .await
    }

    /// Creates an account.
    pub async fn register(&self, registration: Registration) -> Result<UserView> {
        let mut registration = validate::registration(registration)?;
        let password = std::mem::take(&mut registration.password);
        let password_hash = self.passwords.hash(password).await?;
        self.create_account(registration, password_hash).await
    }

    /// Creates an account whose password the caller already hashed (an argon2id PHC string
    /// with girok's parameters, as [`PasswordPool::hash`] makes): the bulk path for imports and benchmark data, which
    /// would otherwise spend about 40 ms of CPU per account. The password itself is not seen,
    /// so `registration.password` is ignored; everything else is validated as in
    /// [`Engine::register`], and the event and write model are the same.
    pub async fn register_prehashed(
        &self,
        registration: Registration,
        password_hash: String,
    ) -> Result<UserView> {
        password::check_hash(&password_hash)?;
        let registration = validate::registration(Registration {
            password: "prehashed".into(),
            ..registration
        })?;
        self.create_account(registration, password_hash).await
    }

    /// Appends the registration of a validated account.
    async fn create_account(
        &self,
        registration: Registration,
        password_hash: String,
    ) -> Result<UserView> {
        let user = UserId::new_v7();
        self.account(AccountCommand::Register {
            user,
            username: registration.username,
            email: registration.email,
            display_name: registration.display_name,
            password_hash,
        })
        .await?;
        self.user(user).await
    }

    /// The account a login names (a username, or an email), if any.
    pub async fn account_named(&self, login: &str) -> Result<Option<UserId>> {
        if !validate::login_in_bounds(login) {
            return Ok(None);
        }
        let lookup = login.to_owned();
        self.blocking(move |store| user_by_login(store, &lookup))
            .await
    }

    /// Checks a username-or-email and password; on success opens a session. A failure is
    /// logged as `auth.login.failed` (never with the password) and answers
    /// `INVALID_CREDENTIALS` after the same work as a success.
    pub async fn login(
        &self,
        login: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<LoginGrant> {
        validate::login(login, password)?;
        let lookup = login.to_owned();
        let found = self
            .blocking(move |store| match user_by_login(store, &lookup)? {
                Some(id) => Ok(Some((id, stored_user(store, id)?.password_hash))),
                None => Ok(None),
            })
            .await?;
        let hash = found.as_ref().map(|(_, h)| h.clone());
        let matches = self.passwords.verify(password.to_owned(), hash).await?;
        let (user, verified_hash) = match (found, matches) {
            (Some(found), true) => found,
            (found, _) => {
                let reason = if found.is_some() {
                    "wrong_password"
                } else {
                    "unknown_user"
                };
                self.account(AccountCommand::RecordLoginFailure {
                    username: login.chars().take(254).collect(),
                    ip: client.ip.clone(),
                    reason,
                })
                .await?;
                return Err(Error::InvalidCredentials);
            }
        };
        let refresh_token = new_refresh_token()?;
        let expires_ms = now_ms() + REFRESH_TTL_MS;
        let session = SessionId::new_v7();
        self.account(AccountCommand::RecordLogin {
            user,
            verified_hash,
            session,
            refresh_hash: refresh_token_hash(&refresh_token),
            ip: client.ip.clone(),
            user_agent: client.user_agent.chars().take(256).collect(),
            expires_ms,
        })
        .await?;
        Ok(LoginGrant {
            user,
            session,
            refresh_token,
            refresh_expires_ms: expires_ms,
        })
    }

    /// Rotates a refresh token: the presented one becomes invalid, a new one is returned.
    /// Presenting an already rotated token revokes the whole session (`REFRESH_TOKEN_REUSED`).
    pub async fn refresh(&self, refresh_token: &str, client: &ClientInfo) -> Result<LoginGrant> {
        if refresh_token.is_empty() || refresh_token.len() > 256 {
            return Err(Error::InvalidRefreshToken);
        }
        let new_token = new_refresh_token()?;
        let expires_ms = now_ms() + REFRESH_TTL_MS;
        let ack = self
            .account(AccountCommand::Refresh {
                presented_hash: refresh_token_hash(refresh_token),
                new_hash: refresh_token_hash(&new_token),
                ip: client.ip.clone(),
                expires_ms,
            })
            .await?;
        if ack.reuse_detected {
            return Err(Error::RefreshTokenReused);
        }
        let (user, session) = ack
            .session
            .ok_or_else(|| Error::Internal("refresh ack without a session".into()))?;
        Ok(LoginGrant {
            user,
            session,
            refresh_token: new_token,
            refresh_expires_ms: expires_ms,
        })
    }

    /// Ends a session (logout).
    pub async fn logout(&self, user: UserId, session: SessionId) -> Result<()> {
        self.account(AccountCommand::RevokeSession {
            user,
            session,
            reason: stage::REVOKED_LOGOUT,
        })
        .await
        .map(drop)
    }

    /// Ends one of the user's sessions from the session list.
    pub async fn revoke_session(&self, user: UserId, session: SessionId) -> Result<()> {
        self.account(AccountCommand::RevokeSession {
            user,
            session,
            reason: stage::REVOKED_BY_USER,
        })
        .await
        .map(drop)
    }

    /// Changes the password after checking the current one; every session is revoked.
    pub async fn change_password(&self, user: UserId, current: &str, new: &str) -> Result<()> {
        validate::password("newPassword", new)?;
        let stored = self.user_password_hash(user).await?;
        if !self
            .passwords
            .verify(current.to_owned(), Some(stored.clone()))
            .await?
        {
            return Err(Error::InvalidCredentials);
        }
        let new_hash = self.passwords.hash(new.to_owned()).await?;
        self.account(AccountCommand::ChangePassword {
            user,
            verified_hash: stored,
            new_hash,
        })
        .await
        .map(drop)
    }

    async fn user_password_hash(&self, user: UserId) -> Result<String> {
        self.blocking(move |store| Ok(stored_user(store, user)?.password_hash))
            .await
    }

    /// Updates display name, bio or avatar.
    pub async fn update_profile(&self, user: UserId, patch: ProfilePatch) -> Result<UserView> {
        let patch = validate::profile(patch)?;
        self.account(AccountCommand::UpdateProfile {
            user,
            display_name: patch.display_name,
            bio: patch.bio,
            avatar_media_id: patch.avatar_media_id,
        })
        .await?;
        self.user(user).await
    }

    /// An account by id.
    pub async fn user(&self, id: UserId) -> Result<UserView> {
        self.users(vec![id])
            .await?
            .remove(&id)
            .map(|user| (*user).clone())
            .ok_or(Error::UserNotFound)
    }

    /// Accounts by id (ids that name nobody are left out), through the hot-object cache: the
    /// batch behind timelines' authors.
    pub async fn users(&self, ids: Vec<UserId>) -> Result<HashMap<UserId, Arc<UserView>>> {
        self.through_cache(
            "users",
            HotObjects::users,
            ids,
            |store, id| match read_user(store, *id) {
                Ok(user) => Ok(Some(Arc::new(user))),
                Err(Error::UserNotFound) => Ok(None),
                Err(other) => Err(other),
            },
        )
        .await
    }

    /// An account by username (any case).
    pub async fn user_by_username(&self, username: &str) -> Result<UserView> {
        // No username is longer than the limit: anything longer never reaches storage.
        if username.len() > *validate::limits::USERNAME_CHARS.end() {
            return Err(Error::UserNotFound);
        }
        let key = username.to_lowercase();
        self.blocking(move |store| {
            let id = store
                .get(Table::UsernameUserid, key.as_bytes())?
                .and_then(|b| UserId::from_slice(&b))
                .ok_or(Error::UserNotFound)?;
            read_user(store, id)
        })
        .await
    }

    /// The user's active sessions, newest first.
    pub async fn sessions(&self, user: UserId) -> Result<Vec<SessionView>> {
        let now = now_ms();
        self.blocking(move |store| {
            let mut sessions = Vec::new();
            for (key, _) in store.scan_prefix(Table::UseridSessionid, user.as_bytes())? {
                let Some(id) = key.get(16..).and_then(SessionId::from_slice) else {
                    continue;
                };
                if let Some(record) = read_session(store, id)?
                    && record.revoked_reason.is_empty()
                    && record.expires_ms > now
                {
                    sessions.push(SessionView {
                        id,
                        user_agent: record.user_agent,
                        ip: record.ip,
                        created_ms: record.created_ms,
                        last_seen_ms: record.last_seen_ms,
                        expires_ms: record.expires_ms,
                    });
                }
            }
            sessions.sort_by_key(|s| std::cmp::Reverse(s.created_ms));
            Ok(sessions)
        })
        .await
    }

    /// The user of a session that is neither revoked nor expired; `None` otherwise. Every
    /// authenticated request asks this, which is what makes revocation immediate.
    /// The session's state is cached: only a session not seen since its last change reads
    /// the store.
    pub async fn active_session(&self, session: SessionId) -> Result<Option<UserId>> {
        Ok(self
            .active_session_until(session)
            .await?
            .map(|(user, _)| user))
    }

    /// The user of a session that is neither revoked nor expired, and when it expires (Unix
    /// milliseconds; a refresh moves it); `None` otherwise.
    pub async fn active_session_until(&self, session: SessionId) -> Result<Option<(UserId, i64)>> {
        let now = now_ms();
        let found = self
            .through_cache("sessions", HotObjects::sessions, [session], |store, id| {
                Ok(read_session(store, *id)?.map(|record| SessionState {
                    user: UserId::from_slice(&record.user_id),
                    revoked: !record.revoked_reason.is_empty(),
                    expires_ms: record.expires_ms,
                }))
            })
            .await?;
        Ok(found
            .get(&session)
            .filter(|state| !state.revoked && state.expires_ms > now)
            .and_then(|state| state.user.map(|user| (user, state.expires_ms))))
    }

    /// The active session a refresh token currently belongs to (the browser cookie carries
    /// one); `None` for an unknown, rotated, revoked or expired token. Does not rotate.
    pub async fn session_for_refresh_token(
        &self,
        token: &str,
    ) -> Result<Option<(UserId, SessionId)>> {
        if token.is_empty() || token.len() > 256 {
            return Ok(None);
        }
        let hash = refresh_token_hash(token);
        let now = now_ms();
        self.blocking(move |store| {
            let Some(id) = store
                .get(Table::RefreshhashSessionid, &hash)?
                .and_then(|b| SessionId::from_slice(&b))
            else {
                return Ok(None);
            };
            Ok(read_session(store, id)?
                .filter(|r| {
                    r.revoked_reason.is_empty() && r.expires_ms > now && r.refresh_hash == hash
                })
                .and_then(|r| UserId::from_slice(&r.user_id))
                .map(|user| (user, id)))
        })
        .await
    }

    /// The password pool (for benchmarks).
    pub fn passwords(&self) -> &Arc<PasswordPool> {
        &self.passwords
    }
}
