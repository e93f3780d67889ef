//! Accounts' write-time rules, run by the sequencer on the writer thread: uniqueness of
//! usernames and emails, sessions as refresh-token families with single-use rotation,
//! revocation of a whole family when a rotated token comes back, and revocation of every
//! session on a password change.

use super::command::{AccountCommand, REVOKED_PASSWORD_CHANGED, REVOKED_REUSE};
use crate::ack::Ack;
use crate::error::{Error, Result};
use crate::records::record;
use crate::staging::{append, append_as};
use girok_schemas::proto::{SessionRecord, UserRecord};
use girok_schemas::{EventId, Payload, SessionId, UserId};
use girok_storage::{Table, Txn};

fn load_user(txn: &Txn<'_>, user: UserId) -> Result<UserRecord> {
    record(txn.get(Table::UseridUser, user.as_bytes())?, "user")?.ok_or(Error::UserNotFound)
}

fn load_session(txn: &Txn<'_>, session: SessionId) -> Result<SessionRecord> {
    record(
        txn.get(Table::SessionidSession, session.as_bytes())?,
        "session",
    )?
    .ok_or(Error::SessionNotFound)
}

fn with_session(mut ack: Ack, user: UserId, session: SessionId) -> Ack {
    ack.session = Some((user, session));
    ack
}

fn revoke(txn: &mut Txn<'_>, user: UserId, session: SessionId, reason: &str) -> Result<Ack> {
    append(
        txn,
        user,
        EventId::new_v7(),
        Payload::SessionRevoked {
            session,
            reason: reason.to_owned(),
        },
    )
}

/// Stages one account command: checks it, then appends its events (the write model follows
/// from them).
pub(crate) fn stage(txn: &mut Txn<'_>, new_id: EventId, command: AccountCommand) -> Result<Ack> {
    match command {
        AccountCommand::Register {
            user,
            username,
            email,
            display_name,
            password_hash,
        } => {
            if txn.contains(Table::UsernameUserid, username.to_lowercase().as_bytes())? {
                return Err(Error::UsernameTaken(username));
            }
            if txn.contains(Table::EmailUserid, email.to_lowercase().as_bytes())? {
                return Err(Error::EmailTaken(email));
            }
            append(
                txn,
                user,
                new_id,
                Payload::UserRegistered {
                    user,
                    username,
                    email,
                    display_name,
                    password_hash,
                },
            )
        }
        AccountCommand::RecordLogin {
            user,
            verified_hash,
            session,
            refresh_hash,
            ip,
            user_agent,
            expires_ms,
        } => {
            if load_user(txn, user)?.password_hash != verified_hash {
                return Err(Error::InvalidCredentials);
            }
            let ack = append(
                txn,
                user,
                new_id,
                Payload::LoggedIn {
                    user,
                    session,
                    refresh_hash,
                    ip,
                    user_agent,
                    expires_ms,
                },
            )?;
            Ok(with_session(ack, user, session))
        }
        AccountCommand::RecordLoginFailure {
            username,
            ip,
            reason,
        } => append_as(
            txn,
            None,
            new_id,
            Payload::LoginFailed {
                username,
                ip,
                reason: reason.to_owned(),
            },
        ),
        AccountCommand::Refresh {
            presented_hash,
            new_hash,
            ip,
            expires_ms,
        } => {
            let Some(session_bytes) = txn.get(Table::RefreshhashSessionid, &presented_hash)? else {
                return Err(Error::InvalidRefreshToken);
            };
            let session = SessionId::from_slice(&session_bytes)
                .ok_or_else(|| Error::Internal("corrupt refresh token index".into()))?;
            let record = load_session(txn, session)?;
            let user = UserId::from_slice(&record.user_id)
                .ok_or_else(|| Error::Internal("corrupt session record".into()))?;
            if !record.revoked_reason.is_empty() || record.expires_ms <= txn.commit_time_ms() {
                return Err(Error::InvalidRefreshToken);
            }
            if record.refresh_hash != presented_hash {
                // A token that was already rotated came back: someone else holds the family.
                let mut ack = revoke(txn, user, session, REVOKED_REUSE)?;
                ack.reuse_detected = true;
                return Ok(ack);
            }
            let ack = append(
                txn,
                user,
                new_id,
                Payload::TokenRefreshed {
                    session,
                    refresh_hash: new_hash,
                    ip,
                    expires_ms,
                },
            )?;
            Ok(with_session(ack, user, session))
        }
        AccountCommand::RevokeSession {
            user,
            session,
            reason,
        } => {
            let record = load_session(txn, session)?;
            if record.user_id != user.as_bytes() || !record.revoked_reason.is_empty() {
                return Err(Error::SessionNotFound);
            }
            revoke(txn, user, session, reason)
        }
        AccountCommand::ChangePassword {
            user,
            verified_hash,
            new_hash,
        } => {
            if load_user(txn, user)?.password_hash != verified_hash {
                return Err(Error::InvalidCredentials);
            }
            let mut ack = append(
                txn,
                user,
                new_id,
                Payload::PasswordChanged {
                    user,
                    password_hash: new_hash,
                },
            )?;
            for (key, _) in txn.scan_prefix(Table::UseridSessionid, user.as_bytes())? {
                let Some(session) = key.get(16..).and_then(SessionId::from_slice) else {
                    continue;
                };
                if load_session(txn, session)?.revoked_reason.is_empty() {
                    ack = revoke(txn, user, session, REVOKED_PASSWORD_CHANGED)?;
                }
            }
            Ok(ack)
        }
        AccountCommand::UpdateProfile {
            user,
            display_name,
            bio,
            avatar_media_id,
        } => {
            let record = load_user(txn, user)?;
            if let Some(avatar) = avatar_media_id.as_ref().filter(|a| !a.is_empty()) {
                let current = std::slice::from_ref(&record.avatar_media_id);
                crate::media::check_usable(txn, user, std::slice::from_ref(avatar), current)?;
            }
            append(
                txn,
                user,
                new_id,
                Payload::ProfileUpdated {
                    user,
                    display_name,
                    bio,
                    avatar_media_id,
                },
            )
        }
    }
}
