//! One WebSocket connection: reads client frames, runs one task per subscription (log backlog,
//! then live events from the hub), and writes everything through one bounded outbound queue.
//! A client that cannot keep up with that queue (or with the hub) is disconnected with a
//! reason instead of letting memory grow.

use super::protocol::{ClientFrame, ServerFrame};
use crate::auth::{Principal, bearer_principal};
use crate::config::WsConfig;
use crate::http::AppState;
use crate::presence::{HEARTBEAT_EVERY, Signal};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use girok_engine::{Command, Error as EngineError, Topic};
use girok_schemas::{Event, Payload, RoomId, Seq, UserId};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Close codes (4000-4999 are the application's).
pub const CLOSE_AUTH_TIMEOUT: u16 = 4001;
pub const CLOSE_IDLE: u16 = 4002;
pub const CLOSE_SLOW_CONSUMER: u16 = 4003;
/// How long a server-initiated close waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The per-connection limits (`[ws]` in the configuration).
#[derive(Clone, Copy, Debug)]
pub struct WsLimits {
    pub max_frame_bytes: usize,
    pub max_subscriptions: usize,
    pub sends_per_second: u32,
    pub send_burst: u32,
    pub heartbeat: Duration,
    pub idle_timeout: Duration,
    pub auth_timeout: Duration,
    pub outbound_queue: usize,
    pub max_resume_events: u64,
}

impl From<&WsConfig> for WsLimits {
    fn from(c: &WsConfig) -> Self {
        Self {
            max_frame_bytes: c.max_frame_bytes.max(1024),
            max_subscriptions: c.max_subscriptions.max(1),
            sends_per_second: c.sends_per_second.max(1),
            send_burst: c.send_burst.max(1),
            heartbeat: Duration::from_millis(c.heartbeat_ms.max(100)),
            idle_timeout: Duration::from_millis(c.idle_timeout_ms.max(200)),
            auth_timeout: Duration::from_millis(c.auth_timeout_ms.max(100)),
            outbound_queue: c.outbound_queue.max(16),
            max_resume_events: c.max_resume_events,
        }
    }
}

/// Why a subscription task wants the connection closed.
type CloseRequest = (u16, String);

fn text(frame: &ServerFrame) -> Message {
    Message::Text(serde_json::to_string(frame).unwrap_or_default().into())
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_owned().into(),
    }))
}

/// Runs a connection until either side closes it.
pub async fn serve(
    socket: WebSocket,
    state: AppState,
    principal: Option<Principal>,
    limits: WsLimits,
) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut outbound) = mpsc::channel::<ServerFrame>(limits.outbound_queue);
    let (closer, mut close_requests) = mpsc::channel::<CloseRequest>(4);
    let mut connection = Connection {
        state,
        principal: None,
        limits,
        out,
        closer,
        subscriptions: HashMap::new(),
        sends: RateLimiter::direct(
            Quota::per_second(NonZeroU32::new(limits.sends_per_second).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(limits.send_burst).unwrap_or(NonZeroU32::MIN)),
        ),
    };
    if let Some(principal) = principal {
        connection.welcome(principal);
    }
    let auth_deadline = Instant::now() + limits.auth_timeout;
    let mut last_seen = Instant::now();
    // `welcome` told the registry the user is here; later frames report at most this often.
    let mut last_beat = Instant::now();
    let mut heartbeat = tokio::time::interval(limits.heartbeat);
    heartbeat.tick().await;
    let mut closing: Option<CloseRequest> = None;
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let Some(Ok(message)) = incoming else { break };
                last_seen = Instant::now();
                if let Some(principal) = connection.principal
                    && last_beat.elapsed() >= HEARTBEAT_EVERY
                {
                    connection.state.presence.heartbeat(principal.user);
                    last_beat = last_seen;
                }
                match message {
                    Message::Text(text) => connection.handle(text.as_str()).await,
                    Message::Binary(_) => connection.reply(ServerFrame::error("BAD_FRAME", "frames are JSON text")),
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            frame = outbound.recv() => {
                let Some(frame) = frame else { break };
                if sink.send(text(&frame)).await.is_err() {
                    break;
                }
            }
            request = close_requests.recv() => {
                if let Some((code, reason)) = request {
                    closing = Some((code, reason));
                }
                break;
            }
            _ = heartbeat.tick() => {
                if last_seen.elapsed() > limits.idle_timeout {
                    closing = Some((CLOSE_IDLE, "idle timeout".into()));
                    break;
                }
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(auth_deadline), if connection.principal.is_none() => {
                closing = Some((CLOSE_AUTH_TIMEOUT, "no auth frame in time".into()));
                break;
            }
        }
    }
    if let Some((code, reason)) = closing
        && sink.send(close(code, &reason)).await.is_ok()
    {
        // The closing handshake: give the client a moment to read the reason and answer.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    for (_, task) in connection.subscriptions.drain() {
        task.abort();
    }
    if let Some(principal) = connection.principal
        && connection.state.presence.disconnected(principal.user)
    {
        announce_presence(&connection.state, principal.user, false);
    }
}

/// Tells the live subscribers of every room of `user` that they came online or went offline.
fn announce_presence(state: &AppState, user: UserId, online: bool) {
    for (room, _) in state.engine.views().memberships.rooms_of(user) {
        state
            .presence
            .signal(room, Signal::Presence { user, online });
    }
}

struct Connection {
    state: AppState,
    principal: Option<Principal>,
    limits: WsLimits,
    out: mpsc::Sender<ServerFrame>,
    closer: mpsc::Sender<CloseRequest>,
    subscriptions: HashMap<String, JoinHandle<()>>,
    sends: DefaultDirectRateLimiter,
}

fn engine_error(error: EngineError) -> ServerFrame {
    ServerFrame::error(error.code(), error.to_string())
}

impl Connection {
    /// Queues a reply; a full queue means the client is not reading: close it.
    fn reply(&self, frame: ServerFrame) {
        push(&self.out, &self.closer, frame);
    }

    fn welcome(&mut self, principal: Principal) {
        self.principal = Some(principal);
        if self.state.presence.connected(principal.user) {
            announce_presence(&self.state, principal.user, true);
        }
        self.reply(ServerFrame::Welcome {
            user_id: principal.user.to_string(),
            head_seq: self.state.engine.head(),
        });
    }

    async fn handle(&mut self, raw: &str) {
        let frame = match serde_json::from_str::<ClientFrame>(raw) {
            Ok(frame) => frame,
            Err(e) => {
                return self.reply(ServerFrame::error(
                    "BAD_FRAME",
                    format!("not a client frame: {e}"),
                ));
            }
        };
        match frame {
            ClientFrame::Ping => self.reply(ServerFrame::Pong),
            ClientFrame::Auth { token } => self.authenticate(&token).await,
            other => match self.principal {
                None => self.reply(ServerFrame::error(
                    "UNAUTHENTICATED",
                    "send an auth frame first (or connect with the session cookie)",
                )),
                Some(principal) => self.handle_authenticated(principal, other).await,
            },
        }
    }

    async fn authenticate(&mut self, token: &str) {
        if self.principal.is_some() {
            return self.reply(ServerFrame::error(
                "ALREADY_AUTHENTICATED",
                "this connection is signed in",
            ));
        }
        match bearer_principal(&self.state, token).await {
            Ok(principal) => self.welcome(principal),
            Err(error) => self.reply(ServerFrame::error(error.code, error.message)),
        }
    }

    async fn handle_authenticated(&mut self, principal: Principal, frame: ClientFrame) {
        match frame {
            ClientFrame::Subscribe { topic, from_seq } => {
                self.subscribe(principal.user, topic, from_seq).await
            }
            ClientFrame::Unsubscribe { topic } => match self.subscriptions.remove(&topic) {
                Some(task) => {
                    task.abort();
                    self.reply(ServerFrame::Unsubscribed { topic })
                }
                None => self.reply(ServerFrame::Error {
                    code: "NOT_SUBSCRIBED",
                    message: "no such subscription".into(),
                    reference: None,
                    topic: Some(topic),
                }),
            },
            ClientFrame::Send {
                reference,
                room_id,
                body,
                client_id,
                reply_to,
            } => {
                let target = (room_id, reply_to);
                self.send(principal.user, reference, target, body, client_id)
                    .await
            }
            ClientFrame::Typing { room_id } => self.typing(principal.user, &room_id).await,
            ClientFrame::Ping | ClientFrame::Auth { .. } => {}
        }
    }

    async fn typing(&mut self, user: UserId, room_id: &str) {
        let Ok(room) = room_id.parse::<RoomId>() else {
            return self.reply(ServerFrame::error(
                "INVALID_ARGUMENT",
                "roomId is not a room id",
            ));
        };
        let typed = self
            .state
            .presence
            .member_typing(&self.state.engine, room, user)
            .await;
        if let Err(error) = typed {
            self.reply(engine_error(error));
        }
    }

    async fn send(
        &mut self,
        user: UserId,
        reference: Option<String>,
        (room_id, reply_to): (String, Option<String>),
        body: String,
        client_id: Option<String>,
    ) {
        let with_ref = |frame: ServerFrame| match frame {
            ServerFrame::Error { code, message, .. } => ServerFrame::Error {
                code,
                message,
                reference: reference.clone(),
                topic: None,
            },
            other => other,
        };
        if self.sends.check().is_err() {
            let frame = ServerFrame::error(
                "RATE_LIMITED",
                format!("at most {} sends per second", self.limits.sends_per_second),
            );
            return self.reply(with_ref(frame));
        }
        let Ok(room) = room_id.parse::<RoomId>() else {
            let frame = ServerFrame::error("INVALID_ARGUMENT", "roomId is not a room id");
            return self.reply(with_ref(frame));
        };
        let reply_to = match reply_to.map(|r| r.parse::<girok_schemas::EventId>()) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => {
                let frame = ServerFrame::error("INVALID_ARGUMENT", "replyTo is not a message id");
                return self.reply(with_ref(frame));
            }
        };
        let command = Command::SendMessage {
            room,
            body,
            client_id,
            reply_to,
        };
        let frame = match self.state.engine.execute(user, command).await {
            Ok(ack) => ServerFrame::Ack {
                reference: reference.clone(),
                seq: ack.seq,
                message_id: ack.id.to_string(),
                duplicate: ack.duplicate,
            },
            Err(error) => with_ref(engine_error(error)),
        };
        self.reply(frame)
    }

    async fn subscribe(&mut self, user: UserId, topic: String, from_seq: Option<Seq>) {
        let topic_error = |code: &'static str, message: String| ServerFrame::Error {
            code,
            message,
            reference: None,
            topic: Some(topic.clone()),
        };
        if self
            .subscriptions
            .get(&topic)
            .is_some_and(|task| !task.is_finished())
        {
            return self.reply(topic_error(
                "ALREADY_SUBSCRIBED",
                "already subscribed".into(),
            ));
        }
        self.subscriptions.retain(|_, task| !task.is_finished());
        if self.subscriptions.len() >= self.limits.max_subscriptions {
            let message = format!("at most {} subscriptions", self.limits.max_subscriptions);
            return self.reply(topic_error("TOO_MANY_SUBSCRIPTIONS", message));
        }
        if topic == "feed" {
            let task = tokio::spawn(run_feed(
                self.state.engine.clone(),
                user,
                self.out.clone(),
                self.closer.clone(),
            ));
            self.subscriptions.insert(topic, task);
            return;
        }
        let scope = if topic == "notifications" {
            Scope::User(user)
        } else if let Some(id) = topic.strip_prefix("chat:") {
            let Ok(room) = id.parse::<RoomId>() else {
                return self.reply(topic_error("INVALID_ARGUMENT", "not a room id".into()));
            };
            // Only members may subscribe to a room.
            if let Err(error) = self.state.engine.require_member(user, room).await {
                return self.reply(topic_error(error.code(), error.to_string()));
            }
            Scope::Room(room, user)
        } else {
            let message = "topics are `chat:<roomId>`, `notifications` and `feed`".to_owned();
            return self.reply(topic_error("UNKNOWN_TOPIC", message));
        };
        let signals = match scope {
            Scope::Room(room, _) => Some(self.state.presence.subscribe(room)),
            Scope::User(_) => None,
        };
        let events = run_subscription(
            self.state.engine.clone(),
            signals,
            topic.clone(),
            scope,
            from_seq,
            self.limits.max_resume_events,
            self.out.clone(),
            self.closer.clone(),
        );
        let task = match scope {
            // Room membership changes and feed notifications: whichever ends first ends both.
            Scope::User(user) => {
                // Subscribed before `subscribed` is sent, so nothing after it is missed.
                let notes = run_notifications(
                    self.state.engine.clone(),
                    self.state.engine.subscribe_notifications(user),
                    self.out.clone(),
                    self.closer.clone(),
                );
                tokio::spawn(async move {
                    tokio::select! {
                        () = events => {}
                        () = notes => {}
                    }
                })
            }
            Scope::Room(..) => tokio::spawn(events),
        };
        self.subscriptions.insert(topic, task);
    }
}

/// What a subscription delivers.
#[derive(Clone, Copy)]
enum Scope {
    /// A room's events, for a member (the subscription ends when that member leaves).
    Room(RoomId, UserId),
    User(UserId),
}

impl Scope {
    fn topic(self) -> Topic {
        match self {
            Scope::Room(room, _) => Topic::Room(room),
            Scope::User(user) => Topic::User(user),
        }
    }

    fn matches(self, event: &Event) -> bool {
        match (self, &event.payload) {
            (Scope::Room(room, _), payload) => payload.room() == Some(room),
            (Scope::User(user), Payload::MemberJoined { user: u, .. })
            | (Scope::User(user), Payload::MemberLeft { user: u, .. }) => *u == user,
            (Scope::User(_), _) => false,
        }
    }

    /// The member left the room: stop delivering after this event.
    fn ends_with(self, event: &Event) -> bool {
        matches!((self, &event.payload),
            (Scope::Room(room, me), Payload::MemberLeft { room: r, user }) if *r == room && *user == me)
    }
}

/// Delivers `event`; `false` when the subscription must end.
fn deliver(
    topic: &str,
    event: &Event,
    out: &mpsc::Sender<ServerFrame>,
    closer: &mpsc::Sender<CloseRequest>,
) -> bool {
    let frame = ServerFrame::Event {
        topic: topic.to_owned(),
        seq: event.seq,
        event: event.to_json(),
    };
    push(out, closer, frame)
}

/// The next ephemeral signal, or never when the subscription has none (a user topic).
async fn next_signal(signals: &mut Option<broadcast::Receiver<Signal>>) -> Signal {
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

/// The frame of a signal for subscriber `me`; `None` for their own typing.
fn signal_frame(topic: &str, signal: Signal, me: UserId) -> Option<ServerFrame> {
    match signal {
        Signal::Typing { user, .. } if user == me => None,
        Signal::Typing { user, .. } => Some(ServerFrame::Typing {
            topic: topic.to_owned(),
            user_id: user.to_string(),
        }),
        Signal::Presence { user, online } => Some(ServerFrame::Presence {
            topic: topic.to_owned(),
            user_id: user.to_string(),
            online,
        }),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_subscription(
    engine: std::sync::Arc<girok_engine::Engine>,
    mut signals: Option<broadcast::Receiver<Signal>>,
    topic: String,
    scope: Scope,
    from_seq: Option<Seq>,
    max_resume: u64,
    out: mpsc::Sender<ServerFrame>,
    closer: mpsc::Sender<CloseRequest>,
) {
    // Subscribe to live events first, then read the head: every event after the head
    // reaches the live receiver, and the backlog covers the rest up to the head.
    let mut live = engine.hub().subscribe(scope.topic());
    let head = engine.head();
    let topic_error = |code: &'static str, message: String| ServerFrame::Error {
        code,
        message,
        reference: None,
        topic: Some(topic.clone()),
    };
    if let Some(from) = from_seq
        && head.saturating_sub(from) > max_resume
    {
        let message =
            format!("more than {max_resume} events since seq {from}: reload the history instead");
        let _ = out.try_send(topic_error("RESUME_TOO_OLD", message));
        return;
    }
    let subscribed = ServerFrame::Subscribed {
        topic: topic.clone(),
        head_seq: head,
    };
    if !push(&out, &closer, subscribed) {
        return;
    }
    if let Some(from) = from_seq {
        let mut next = from + 1;
        while next <= head {
            let events = match engine.events(next, 1000).await {
                Ok(events) if !events.is_empty() => events,
                Ok(_) => break,
                Err(error) => {
                    let _ = out.try_send(topic_error(error.code(), error.to_string()));
                    return;
                }
            };
            for event in events.iter().take_while(|e| e.seq <= head) {
                next = event.seq + 1;
                if scope.matches(event)
                    && (!deliver(&topic, event, &out, &closer) || scope.ends_with(event))
                {
                    return;
                }
            }
            if events.last().is_some_and(|e| e.seq >= head) {
                break;
            }
        }
    }
    let me = match scope {
        Scope::Room(_, me) | Scope::User(me) => me,
    };
    loop {
        let received = tokio::select! {
            received = next_live(&mut live, &closer) => received,
            signal = next_signal(&mut signals) => {
                if let Some(frame) = signal_frame(&topic, signal, me)
                    && !push(&out, &closer, frame)
                {
                    return;
                }
                continue;
            }
        };
        let Some(event) = received else { return };
        if event.seq > head
            && scope.matches(&event)
            && (!deliver(&topic, &event, &out, &closer) || scope.ends_with(&event))
        {
            return;
        }
    }
}

/// Queues a frame; a full queue closes the connection as a slow consumer.
fn push(
    out: &mpsc::Sender<ServerFrame>,
    closer: &mpsc::Sender<CloseRequest>,
    frame: ServerFrame,
) -> bool {
    if out.try_send(frame).is_ok() {
        return true;
    }
    close_slow(closer);
    false
}

/// Asks the connection to close as a slow consumer.
fn close_slow(closer: &mpsc::Sender<CloseRequest>) {
    let _ = closer.try_send((CLOSE_SLOW_CONSUMER, "slow consumer".into()));
}

/// The next live value; `None` when the channel closed, or lagged (then the connection is
/// closed as a slow consumer: the client re-reads and subscribes again).
async fn next_live<T: Clone>(
    live: &mut broadcast::Receiver<T>,
    closer: &mpsc::Sender<CloseRequest>,
) -> Option<T> {
    match live.recv().await {
        Ok(value) => Some(value),
        Err(broadcast::error::RecvError::Lagged(_)) => {
            close_slow(closer);
            None
        }
        Err(broadcast::error::RecvError::Closed) => None,
    }
}

/// The `feed` topic: new posts by the user and everyone they follow, as `post` frames.
async fn run_feed(
    engine: std::sync::Arc<girok_engine::Engine>,
    user: UserId,
    out: mpsc::Sender<ServerFrame>,
    closer: mpsc::Sender<CloseRequest>,
) {
    let mut live = engine.subscribe_feed(user);
    let subscribed = ServerFrame::Subscribed {
        topic: "feed".into(),
        head_seq: engine.head(),
    };
    if !push(&out, &closer, subscribed) {
        return;
    }
    loop {
        let Some(post) = next_live(&mut live, &closer).await else {
            return;
        };
        let found = match engine.posts_by_seq(user, vec![post.seq]).await {
            Ok(mut found) => found.pop(),
            Err(error) => {
                tracing::error!(%error, seq = post.seq, "feed push cannot read the post");
                None
            }
        };
        let Some(post) = found else { continue };
        let frame = ServerFrame::Post {
            topic: "feed".into(),
            seq: post.seq,
            post: crate::http::feed::post_json(&post),
        };
        if !push(&out, &closer, frame) {
            return;
        }
    }
}

/// Feed notifications from `live`, as `notification` frames of the `notifications` topic.
async fn run_notifications(
    engine: std::sync::Arc<girok_engine::Engine>,
    mut live: broadcast::Receiver<girok_engine::views::NotificationRef>,
    out: mpsc::Sender<ServerFrame>,
    closer: mpsc::Sender<CloseRequest>,
) {
    loop {
        let Some(note) = next_live(&mut live, &closer).await else {
            return;
        };
        let resolved = match engine.resolve_notification(note).await {
            Ok(resolved) => resolved,
            Err(error) => {
                tracing::error!(%error, seq = note.seq, "notification push cannot resolve");
                continue;
            }
        };
        let frame = ServerFrame::Notification {
            topic: "notifications".into(),
            seq: resolved.seq,
            notification: crate::http::feed::notification_json(&resolved),
        };
        if !push(&out, &closer, frame) {
            return;
        }
    }
}
