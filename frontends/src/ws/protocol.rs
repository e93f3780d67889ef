//! The WebSocket protocol's frames (JSON text frames; documented in docs/websocket.md).

use crate::dto::{NotificationDto, PostDto};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum ClientFrame {
    /// First frame when the upgrade carried no cookie or Bearer header.
    Auth {
        token: String,
    },
    /// `topic`: `chat:<roomId>`, `notifications`, `feed` or `matching`. `fromSeq`: resume after this seq
    /// (the last one seen): every event of the topic after it is delivered, then live ones, no
    /// gap, no duplicate (room events and room membership changes; feed posts and feed
    /// notifications are live only: read the timeline or notification list to catch up).
    #[serde(rename_all = "camelCase")]
    Subscribe {
        topic: String,
        from_seq: Option<u64>,
    },
    Unsubscribe {
        topic: String,
    },
    /// Sends a chat message; answered by an `ack` (or an `error`) carrying the same `ref`.
    #[serde(rename_all = "camelCase")]
    Send {
        #[serde(rename = "ref")]
        reference: Option<String>,
        room_id: String,
        body: String,
        client_id: Option<String>,
        /// The id of the message this one answers.
        reply_to: Option<String>,
        /// Media ids (ready media of the sender).
        #[serde(default)]
        attachments: Vec<String>,
    },
    /// You are typing in a room you are a member of (shown to its subscribers for 5 s).
    #[serde(rename_all = "camelCase")]
    Typing {
        room_id: String,
    },
    /// Opens a random-matching ticket (`tags`, `language`: preferences, as REST's
    /// `POST /v1/matching/queue`); answered by a `matchingAck` (or an `error`) with the same
    /// `ref`. The news (`queued`, `matched`, …) arrives on the `matching` topic.
    Join {
        #[serde(rename = "ref")]
        reference: Option<String>,
        #[serde(default)]
        tags: Vec<String>,
        language: Option<String>,
    },
    /// Withdraws the open ticket; answered by a `matchingAck`.
    Leave {
        #[serde(rename = "ref")]
        reference: Option<String>,
    },
    /// Ends the current match; `requeue` (default `true`) opens a new ticket with the match's
    /// preferences. Answered by a `matchingAck`.
    Skip {
        #[serde(rename = "ref")]
        reference: Option<String>,
        requeue: Option<bool>,
    },
    Ping,
}

/// The match a `join` (or a re-queueing `skip`) made at once, as its `matchingAck` says.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchedNow {
    pub room_id: String,
    pub partner_id: String,
    /// The partner's public profile (`null` if it could not be read), as the `matched`
    /// frame has it: the connection that sent the join gets no such frame.
    pub partner: Option<crate::dto::PublicUserDto>,
    pub seq: u64,
}

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerFrame {
    #[serde(rename_all = "camelCase")]
    Welcome {
        user_id: String,
        head_seq: u64,
    },
    /// The subscription is active; events after `fromSeq` (or from now) follow.
    #[serde(rename_all = "camelCase")]
    Subscribed {
        topic: String,
        head_seq: u64,
    },
    Unsubscribed {
        topic: String,
    },
    /// One committed event (the same JSON as `girok log tail` prints).
    Event {
        topic: String,
        seq: u64,
        event: Value,
    },
    /// A new post by you or someone you follow (`feed` topic).
    Post {
        topic: String,
        seq: u64,
        post: PostDto<'static>,
    },
    /// A new notification (`notifications` topic): a like or comment on your post, a new
    /// follower, a mention.
    Notification {
        topic: String,
        seq: u64,
        notification: NotificationDto,
    },
    // The `matching` topic's frames (`queued`, `matched`, `expired`, `dequeued`, `skipped`)
    // are made by `live_items::matching_item`, shared with QUIC (see `subscription.rs`).
    #[serde(rename_all = "camelCase")]
    Ack {
        #[serde(rename = "ref")]
        reference: Option<String>,
        seq: u64,
        message_id: String,
        duplicate: bool,
    },
    /// A durable `join`, `leave` or `skip`: its last event's `seq`, the ticket it opened
    /// (`ticketId`, absent when it opened none) and the match it made at once (`null` if
    /// none).
    #[serde(rename_all = "camelCase")]
    MatchingAck {
        #[serde(rename = "ref")]
        reference: Option<String>,
        seq: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        ticket_id: Option<String>,
        matched: Option<MatchedNow>,
    },
    Error {
        code: &'static str,
        message: String,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        /// For refusals that pass (`RATE_LIMITED`, `OVERLOADED`, `STORAGE_UNAVAILABLE`,
        /// `NOT_READY`): how long to wait first.
        #[serde(rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// A member of the subscribed room is typing (ephemeral, never logged).
    #[serde(rename_all = "camelCase")]
    Typing {
        topic: String,
        user_id: String,
    },
    /// A member of the subscribed room came online or went offline.
    #[serde(rename_all = "camelCase")]
    Presence {
        topic: String,
        user_id: String,
        online: bool,
    },
    Pong,
}

impl ServerFrame {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            code,
            message: message.into(),
            reference: None,
            topic: None,
            retry_after_ms: None,
        }
    }

    /// An engine error answering the frame `reference` named.
    pub fn engine_error(error: &girok_engine::Error, reference: Option<String>) -> Self {
        ServerFrame::Error {
            code: error.code(),
            message: error.to_string(),
            reference,
            topic: None,
            retry_after_ms: error.retry_after().map(girok_engine::error::retry_millis),
        }
    }
}

#[cfg(test)]
mod fuzz_tests {
    use super::ClientFrame;
    use crate::fuzz::{Mutator, inputs, run};

    const SEEDS: &[&str] = &[
        r#"{"type":"auth","token":"eyJhbGciOiJFZERTQSJ9.e30.c2ln"}"#,
        r#"{"type":"subscribe","topic":"chat:0192f5a0-7c1e-7d3a-9b1e-1c2d3e4f5a6b","fromSeq":42}"#,
        r#"{"type":"subscribe","topic":"notifications"}"#,
        r#"{"type":"unsubscribe","topic":"feed"}"#,
        r#"{"type":"send","ref":"r1","roomId":"0192f5a0-7c1e-7d3a-9b1e-1c2d3e4f5a6b","body":"hi","clientId":"c1","replyTo":"0192f5a0-7c1e-7d3a-9b1e-1c2d3e4f5a6c"}"#,
        r#"{"type":"typing","roomId":"0192f5a0-7c1e-7d3a-9b1e-1c2d3e4f5a6b"}"#,
        r#"{"type":"join","ref":"j1","tags":["go","rust-lang"],"language":"en"}"#,
        r#"{"type":"skip","ref":"s1","requeue":false}"#,
        r#"{"type":"leave"}"#,
        r#"{"type":"ping"}"#,
    ];
    const TOKENS: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\\",
        "null",
        "true",
        "false",
        "\"type\"",
        "\"send\"",
        "\"topic\"",
        "\"fromSeq\"",
        "\"body\"",
        "\"chat:\"",
        "{\"a\":",
        "[[[[",
        "]]]]",
    ];

    #[test]
    fn websocket_frames_never_panic_the_parser() {
        let mut mutator = Mutator::new(7, SEEDS, TOKENS);
        let parsed = std::sync::atomic::AtomicUsize::new(0);
        let count = inputs(20_000);
        run(count, &mut mutator, |input| {
            if let Ok(text) = std::str::from_utf8(input)
                && let Ok(frame) = serde_json::from_str::<ClientFrame>(text)
            {
                parsed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // What the connection parses next: topics and ids.
                if let ClientFrame::Subscribe { topic, .. } = &frame
                    && let Some(room) = topic.strip_prefix("chat:")
                {
                    let _ = room.parse::<girok_schemas::RoomId>();
                }
                let _ = format!("{frame:?}");
            }
        });
        eprintln!("{count} inputs, {} parsed as frames", parsed.into_inner());
    }
}
