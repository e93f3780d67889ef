//! Accounts' effect on the write model: users with their username and email indexes, sessions
//! with their refresh-token hashes, password and profile changes.

use crate::error::Result;
use crate::records::update;
use girok_schemas::proto::{SessionRecord, UserRecord};
use girok_schemas::{Event, Payload, SessionId, UserId};
use girok_storage::{Table, Txn};
use prost::Message;

fn put_session(txn: &mut Txn<'_>, session: SessionId, record: &SessionRecord) {
    txn.put(
        Table::SessionidSession,
        session.as_bytes().to_vec(),
        record.encode_to_vec(),
    );
}

fn update_user(
    txn: &mut Txn<'_>,
    user: UserId,
    change: impl FnOnce(&mut UserRecord),
) -> Result<()> {
    update(txn, (Table::UseridUser, user.as_bytes(), "user"), change)
}

fn update_session(
    txn: &mut Txn<'_>,
    session: SessionId,
    change: impl FnOnce(&mut SessionRecord),
) -> Result<()> {
    update(
        txn,
        (Table::SessionidSession, session.as_bytes(), "session"),
        change,
    )
}

/// Applies the event's effect on the write model, if it is one of this domain's.
pub(crate) fn apply(txn: &mut Txn<'_>, event: &Event) -> Result<()> {
    match &event.payload {
        Payload::UserRegistered {
            user,
            username,
            email,
            display_name,
            password_hash,
        } => {
            let record = UserRecord {
                username: username.clone(),
                email: email.clone(),
                display_name: display_name.clone(),
                bio: String::new(),
                avatar_media_id: String::new(),
                password_hash: password_hash.clone(),
                created_ms: event.commit_time_ms,
            };
            let id = user.as_bytes().to_vec();
            txn.put(
                Table::UsernameUserid,
                username.to_lowercase().into_bytes(),
                id.clone(),
            );
            txn.put(
                Table::EmailUserid,
                email.to_lowercase().into_bytes(),
                id.clone(),
            );
            txn.put(Table::UseridUser, id, record.encode_to_vec());
        }
        Payload::LoggedIn {
            user,
            session,
            refresh_hash,
            ip,
            user_agent,
            expires_ms,
        } => {
            let record = SessionRecord {
                user_id: user.as_bytes().to_vec(),
                refresh_hash: refresh_hash.clone(),
                created_ms: event.commit_time_ms,
                last_seen_ms: event.commit_time_ms,
                ip: ip.clone(),
                user_agent: user_agent.clone(),
                expires_ms: *expires_ms,
                revoked_reason: String::new(),
            };
            put_session(txn, *session, &record);
            txn.put(
                Table::RefreshhashSessionid,
                refresh_hash.clone(),
                session.as_bytes().to_vec(),
            );
            txn.put(
                Table::UseridSessionid,
                [user.as_bytes().as_slice(), session.as_bytes().as_slice()].concat(),
                Vec::new(),
            );
        }
        Payload::LoginFailed { .. } => {}
        Payload::TokenRefreshed {
            session,
            refresh_hash,
            ip,
            expires_ms,
        } => {
            update_session(txn, *session, |record| {
                record.refresh_hash = refresh_hash.clone();
                record.last_seen_ms = event.commit_time_ms;
                record.expires_ms = *expires_ms;
                record.ip = ip.clone();
            })?;
            txn.put(
                Table::RefreshhashSessionid,
                refresh_hash.clone(),
                session.as_bytes().to_vec(),
            );
        }
        Payload::SessionRevoked { session, reason } => {
            update_session(txn, *session, |record| {
                record.revoked_reason = reason.clone();
            })?;
        }
        Payload::PasswordChanged {
            user,
            password_hash,
        } => update_user(txn, *user, |record| {
            record.password_hash = password_hash.clone();
        })?,
        Payload::ProfileUpdated {
            user,
            display_name,
            bio,
            avatar_media_id,
        } => update_user(txn, *user, |record| {
            if let Some(name) = display_name {
                record.display_name = name.clone();
            }
            if let Some(bio) = bio {
                record.bio = bio.clone();
            }
            if let Some(avatar) = avatar_media_id {
                record.avatar_media_id = avatar.clone();
            }
        })?,
        _ => {}
    }
    Ok(())
}
