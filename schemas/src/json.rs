//! The pieces of an event's JSON form (`Event::to_json`, as `girok log tail` prints it): a
//! field's value (ids as UUID strings) and times as RFC 3339 (UTC).

use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, SystemTime};

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
