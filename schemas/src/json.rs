//! The JSON form of an event, as `girok log tail` prints it: one object per event with the
//! envelope fields and the payload's fields, ids as UUID strings, time as RFC 3339 (UTC). Which
//! fields show, and under which names, is said by the table of event types (`event.rs`).

use crate::event::Event;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

impl Event {
    /// The event as a JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "seq": self.seq,
            "time": rfc3339_millis(self.commit_time_ms),
            "id": self.id,
            "actor": self.actor,
            "type": self.type_name(),
            "payload": self.payload.fields_json(),
        })
    }
}

/// A payload field's JSON value (ids as UUID strings, absent options as `null`).
pub(crate) fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Formats milliseconds since the epoch as RFC 3339 with milliseconds, e.g.
/// `2026-11-22T03:50:11.123Z`.
pub fn rfc3339_millis(ms: i64) -> String {
    let time = SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0).unsigned_abs());
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventId, Payload, RoomId, UserId};

    #[test]
    fn message_json_has_envelope_and_payload() {
        let event = Event {
            seq: 3,
            commit_time_ms: 1_000,
            id: EventId::new_v7(),
            actor: Some(UserId::new_v7()),
            payload: Payload::MessageSent {
                room: RoomId::new_v7(),
                body: "hi".into(),
                client_id: None,
                reply_to: None,
            },
        };
        let v = event.to_json();
        assert_eq!(v["seq"], 3);
        assert_eq!(v["time"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["type"], "chat.message.sent");
        assert_eq!(v["payload"]["body"], "hi");
        assert_eq!(v["payload"]["clientId"], Value::Null);
    }
}
