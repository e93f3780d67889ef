//! The account flows, each an `Engine` method: check the input, hash passwords on the bounded
//! pool (never on the writer thread), then submit the domain's `AccountCommand`s.

use super::password;
use super::reads::{stored_user, user_by_login};
use super::{
    AccountCommand, ClientInfo, LoginGrant, ProfilePatch, REFRESH_TTL_MS, REVOKED_BY_USER,
    REVOKED_LOGOUT, Registration, UserView, now_ms, refresh_token_hash, validate,
};
use crate::command::Command;
use crate::engine::Engine;
use crate::error::{Error, Result};
use base64::Engine as _;
use girok_schemas::{SessionId, UserId};

fn new_refresh_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Internal(format!("no randomness for a token: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl Engine {
    async fn account(&self, command: crate::accounts::AccountCommand) -> Result<crate::Ack> {
        // Account commands name their user themselves (the submitter of a registration or a
        // login is nobody yet), so the submission's actor is unused.
        self.submit(crate::command::NOBODY, Command::Account(command))
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
    /// with girok's parameters, as [`super::PasswordPool::hash`] makes): the bulk path for imports and benchmark data, which
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
            reason: REVOKED_LOGOUT,
        })
        .await
        .map(drop)
    }

    /// Ends one of the user's sessions from the session list.
    pub async fn revoke_session(&self, user: UserId, session: SessionId) -> Result<()> {
        self.account(AccountCommand::RevokeSession {
            user,
            session,
            reason: REVOKED_BY_USER,
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
}
