//! Account reads, each an `Engine` method: users by id or name (through the hot-object
//! caches), a user's sessions, and the per-request session check.

use super::{PasswordPool, SessionView, UserView, now_ms, refresh_token_hash, validate};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::hot::{HotObjects, SessionState};
use crate::records::record;
use girok_schemas::proto::{SessionRecord, UserRecord};
use girok_schemas::{SessionId, UserId};
use girok_storage::{Store, Table};
use std::collections::HashMap;
use std::sync::Arc;

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

pub(super) fn stored_user(store: &Store, id: UserId) -> Result<UserRecord> {
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

pub(super) fn user_by_login(store: &Store, login: &str) -> Result<Option<UserId>> {
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
    /// The account a login names (a username, or an email), if any.
    pub async fn account_named(&self, login: &str) -> Result<Option<UserId>> {
        if !validate::login_in_bounds(login) {
            return Ok(None);
        }
        let lookup = login.to_owned();
        self.blocking(move |store| user_by_login(store, &lookup))
            .await
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
