//! What the two socket protocols (`/ws` and QUIC's girok/1, with WebTransport) share per
//! connection, so that both mean the same thing by a frame: the per-connection limits (the
//! `[ws]` section), the send and resume budgets, reading a send into a command, naming a
//! topic's scope (members only for a room), presence on arrival and departure, and the wait
//! for a session's end.

use crate::auth::live_sessions::Ending;
use crate::config::WsConfig;
use crate::presence::Signal;
use crate::state::Shared;
use futures::future::BoxFuture;
use girok_engine::{ChatCommand, Command, Engine, LiveScope};
use girok_schemas::{RoomId, UserId};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;
use tokio::sync::broadcast;

/// Resumes (`fromSeq`) per connection and minute, and at once.
pub const RESUMES_PER_MINUTE: NonZeroU32 = NonZeroU32::new(30).unwrap();
pub const RESUME_BURST: NonZeroU32 = NonZeroU32::new(10).unwrap();

/// Longest a shutdown waits for the answers of sends in flight before closing a connection.
pub const SHUTDOWN_ANSWERS_WITHIN: Duration = Duration::from_millis(500);

/// A connection's limits shared by both protocols (`[ws]`).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub max_subscriptions: usize,
    pub sends_per_second: u32,
    pub send_burst: u32,
    pub max_sends_in_flight: usize,
    pub auth_timeout: Duration,
    pub write_timeout: Duration,
    pub max_resume_events: u64,
    pub max_resume_scan_events: u64,
}

impl From<&WsConfig> for ConnectionLimits {
    fn from(c: &WsConfig) -> Self {
        Self {
            max_subscriptions: c.max_subscriptions.max(1),
            sends_per_second: c.sends_per_second.max(1),
            send_burst: c.send_burst.max(1),
            max_sends_in_flight: c.max_sends_in_flight.max(1),
            auth_timeout: Duration::from_millis(c.auth_timeout_ms.max(100)),
            write_timeout: Duration::from_millis(c.write_timeout_ms.max(100)),
            max_resume_events: c.max_resume_events,
            max_resume_scan_events: c.max_resume_scan_events,
        }
    }
}

impl ConnectionLimits {
    /// The connection's budget of sends.
    pub fn send_budget(&self) -> DefaultDirectRateLimiter {
        let rate = NonZeroU32::new(self.sends_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(self.send_burst).unwrap_or(NonZeroU32::MIN);
        RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
    }

    /// The connection's budget of resumes: each may read up to `max_resume_scan_events` of
    /// the log, so a connection gets a few at a time, not a loop of them.
    pub fn resume_budget(&self) -> DefaultDirectRateLimiter {
        RateLimiter::direct(Quota::per_minute(RESUMES_PER_MINUTE).allow_burst(RESUME_BURST))
    }
}

/// The refusal of a resume past the budget.
pub fn resumes_refused() -> String {
    format!("at most {RESUMES_PER_MINUTE} resumes (fromSeq) a minute, {RESUME_BURST} at once")
}

/// The field of a send frame that is not of its kind (`INVALID_ARGUMENT`; each protocol names
/// it its own way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadSendField {
    Room,
    ReplyTo,
    Attachments,
}

/// A send frame's fields as a command, or the field that is wrong.
pub fn send_command(
    room_id: &str,
    reply_to: Option<&str>,
    attachments: &[String],
    body: String,
    client_id: Option<String>,
) -> Result<Command, BadSendField> {
    let room = room_id.parse::<RoomId>().map_err(|_| BadSendField::Room)?;
    let reply_to = reply_to
        .map(|r| r.parse::<girok_schemas::EventId>())
        .transpose()
        .map_err(|_| BadSendField::ReplyTo)?;
    let attachments = attachments
        .iter()
        .map(|a| a.parse())
        .collect::<Result<_, _>>()
        .map_err(|_| BadSendField::Attachments)?;
    Ok(Command::Chat(ChatCommand::SendMessage {
        room,
        body,
        client_id,
        reply_to,
        attachments,
    }))
}

/// What a topic names.
pub enum Topic {
    /// `feed`: new posts of the user and everyone they follow (live only).
    Feed,
    /// A room (the user is a member), the user's own events, or their matching.
    Scope(LiveScope),
}

/// The scope a topic names for `user`; the refusal's code and message otherwise (a room
/// only for its members).
pub async fn topic_scope(
    engine: &Engine,
    user: UserId,
    topic: &str,
) -> Result<Topic, (&'static str, String)> {
    match topic {
        "feed" => Ok(Topic::Feed),
        "notifications" => Ok(Topic::Scope(LiveScope::User(user))),
        "matching" => Ok(Topic::Scope(LiveScope::Matching(user))),
        _ => {
            let Some(id) = topic.strip_prefix("chat:") else {
                let message = "topics are `chat:<roomId>`, `notifications`, `feed` and `matching`";
                return Err(("UNKNOWN_TOPIC", message.into()));
            };
            let room = id
                .parse::<RoomId>()
                .map_err(|_| ("INVALID_ARGUMENT", "not a room id".to_owned()))?;
            engine
                .require_member(user, room)
                .await
                .map_err(|error| (error.code(), error.to_string()))?;
            Ok(Topic::Scope(LiveScope::Room { room, member: user }))
        }
    }
}

/// Tells the live subscribers of every room of `user` that they came online or went offline.
pub fn announce_presence(state: &Shared, user: UserId, online: bool) {
    for room in state.engine.rooms_of(user) {
        state
            .presence
            .signal(room, Signal::Presence { user, online });
    }
}

/// A user's connection signed in: if that made them online, tells every room they are in up
/// to now (a room joined just before connecting included): at once when the memberships view
/// reflects the log's head, else once it does (and only if they are still online by then).
pub fn arrived(state: &Shared, user: UserId) {
    if !state.presence.connected(user) {
        return;
    }
    let head = state.engine.head();
    if state.engine.views_watermark() >= head {
        announce_presence(state, user, true);
    } else {
        let state = state.clone();
        tokio::spawn(async move {
            let _ = state.engine.wait_for_views(Some(head)).await;
            if state.presence.status(user).online {
                announce_presence(&state, user, true);
            }
        });
    }
}

/// A user's connection ended: if that made them offline, tells their rooms.
pub fn departed(state: &Shared, user: UserId) {
    if state.presence.disconnected(user) {
        announce_presence(state, user, false);
    }
}

/// Counts a signed-in connection of `principal` among the user's live ones (a renewal is
/// never refused); what resolves when its session ends, or the refusal (too many sockets).
pub fn sign_in(
    state: &Shared,
    principal: crate::auth::Principal,
    renewing: bool,
) -> Result<BoxFuture<'static, Ending>, String> {
    use futures::FutureExt;
    state
        .auth
        .live_sessions
        .sign_in(state.engine.clone(), principal, renewing)
        .map(FutureExt::boxed)
        .map_err(|refused| refused.to_string())
}

/// Waits for the end of the connection's session; forever before it signs in.
pub async fn session_ended(end: &mut Option<BoxFuture<'static, Ending>>) -> Ending {
    match end {
        Some(end) => end.await,
        None => std::future::pending().await,
    }
}

/// The next ephemeral signal of a room, or never when the subscription has none.
pub async fn next_signal(signals: &mut Option<broadcast::Receiver<Signal>>) -> Signal {
    loop {
        let Some(rx) = signals.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Ok(signal) => return signal,
            // Lost typing indicators do no harm: skip them.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => *signals = None,
        }
    }
}
