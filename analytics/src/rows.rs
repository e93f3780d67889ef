//! The rows the sink writes: one `audit_events` row per event (typed columns where they fit,
//! a compact JSON payload without secrets or bodies), and rollup diff rows.

use girok_schemas::{Event, Payload, Seq};
use serde::Serialize;
use serde_json::Value;

/// A row of `audit_events` (RowBinary: the field order is the column order).
#[derive(Clone, Debug, PartialEq, clickhouse::Row, Serialize)]
pub struct AuditRow {
    pub seq: u64,
    /// Commit time, seconds (`DateTime('UTC')`).
    pub time: u32,
    pub time_ms: i64,
    pub r#type: String,
    /// Who did it (a user id), empty for girok itself.
    pub actor: String,
    /// What it was done to: a room, message, post, comment, user or session id.
    pub target: String,
    /// Auth events: the client's address and user agent.
    pub ip: String,
    pub user_agent: String,
    /// The event's fields as JSON, without password hashes, token hashes or message and post
    /// text (their length instead).
    pub payload: String,
}

/// A diff of one rollup cell (RowBinary into `<rollup>_diffs`).
#[derive(Clone, Debug, PartialEq, clickhouse::Row, Serialize)]
pub struct RollupRow {
    /// The start of the hour or day, seconds (`DateTime('UTC')`).
    pub bucket: u32,
    pub key: String,
    pub n: i64,
    /// The seq of the event that caused the change.
    pub seq: u64,
}

/// Fields of the JSON payload never written: secrets and bodies.
const REDACTED: [&str; 4] = ["passwordHash", "refreshHash", "body", "content"];

impl AuditRow {
    pub fn of(event: &Event) -> Self {
        let target = event.payload.target().unwrap_or_default();
        let (ip, user_agent) = match &event.payload {
            Payload::LoggedIn { ip, user_agent, .. } => (ip.clone(), user_agent.clone()),
            Payload::LoginFailed { ip, .. } | Payload::TokenRefreshed { ip, .. } => {
                (ip.clone(), String::new())
            }
            _ => (String::new(), String::new()),
        };
        let mut payload = event.to_json()["payload"].take();
        if let Value::Object(fields) = &mut payload {
            for key in REDACTED {
                if let Some(Value::String(text)) = fields.remove(key)
                    && (key == "body" || key == "content")
                {
                    fields.insert(format!("{key}Chars"), text.chars().count().into());
                }
            }
            fields.remove("ip");
            fields.remove("userAgent");
        }
        Self {
            seq: event.seq,
            time: (event.commit_time_ms.max(0) / 1000).clamp(0, u32::MAX as i64) as u32,
            time_ms: event.commit_time_ms,
            r#type: event.type_name().to_owned(),
            actor: event.actor.map(|a| a.to_string()).unwrap_or_default(),
            target,
            ip,
            user_agent,
            payload: payload.to_string(),
        }
    }
}

/// The highest seq among `rows` (by `seq_of`), if any.
pub(crate) fn max_seq<T>(rows: &[T], seq_of: impl Fn(&T) -> Seq) -> Option<Seq> {
    rows.iter().map(seq_of).max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use girok_schemas::{EventId, RoomId, SessionId, UserId};

    fn event(payload: Payload) -> Event {
        Event {
            seq: 9,
            commit_time_ms: 1_700_000_000_999,
            id: EventId::new_v7(),
            actor: Some(UserId::new_v7()),
            payload,
        }
    }

    #[test]
    fn auth_rows_have_typed_columns_and_no_secrets() {
        let user = UserId::new_v7();
        let row = AuditRow::of(&event(Payload::LoggedIn {
            user,
            session: SessionId::new_v7(),
            refresh_hash: vec![1; 32],
            ip: "10.0.0.1".into(),
            user_agent: "curl/8".into(),
            expires_ms: 5,
        }));
        assert_eq!((row.seq, row.time), (9, 1_700_000_000));
        assert_eq!(row.r#type, "auth.user.logged_in");
        assert_eq!(
            (row.ip.as_str(), row.user_agent.as_str()),
            ("10.0.0.1", "curl/8")
        );
        assert_eq!(row.target, user.to_string());
        assert!(!row.payload.contains("10.0.0.1") && !row.payload.contains("refresh"));
        let registered = AuditRow::of(&event(Payload::UserRegistered {
            user,
            username: "ann".into(),
            email: "a@example.org".into(),
            display_name: "Ann".into(),
            password_hash: "$argon2id$v=19$secret".into(),
        }));
        assert!(!registered.payload.contains("argon2") && !registered.payload.contains("password"));
        let sent = AuditRow::of(&event(Payload::MessageSent {
            room: RoomId::new_v7(),
            body: "private words".into(),
            client_id: None,
            reply_to: None,
            attachments: Vec::new(),
        }));
        assert!(!sent.payload.contains("private"), "{}", sent.payload);
        assert!(
            sent.payload.contains("\"bodyChars\":13"),
            "{}",
            sent.payload
        );
    }
}
