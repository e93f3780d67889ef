//! One WebSocket connection: one loop reads the client's frames and writes the connection's
//! own answers (acks, errors, pongs, pings), several to one flush; its subscription tasks
//! write their events to the same socket themselves (see `outbox.rs`), so an event reaches
//! the socket without a hop through this loop, and an ack never waits behind a queue of
//! deliveries (at most behind one write in progress). Sends are pipelined: each runs as its
//! own future while the loop goes on reading and writing, so deliveries never wait for the
//! sender's fsync; past `ws.max_sends_in_flight` unacknowledged sends the loop stops reading
//! the client (TCP pushes back on it). A client whose socket accepts nothing for
//! `ws.write_timeout_ms` is closed as a slow consumer; nothing else cuts a client that reads
//! its frames.

use super::outbox::{
    CLOSE_AUTH_TIMEOUT, CLOSE_GRACE, CLOSE_IDLE, CLOSE_SESSION_ENDED, CLOSE_SLOW_CONSUMER,
    CLOSE_TOKEN_EXPIRED, CLOSE_TOO_MANY_SOCKETS, CloseRequest, Outbox, render,
};
use super::own_commands::OwnCommands;
use super::protocol::{ClientFrame, MatchedNow, ServerFrame};
use super::subscription::{Subscription, run_feed, run_notifications};
use crate::auth::live_sessions::Ending;
use crate::auth::{Principal, bearer_principal};
use crate::config::WsConfig;
use crate::live_socket::{self, BadSendField, ConnectionLimits, SHUTDOWN_ANSWERS_WITHIN, Topic};
use crate::presence::HEARTBEAT_EVERY;
use crate::state::Shared;
use crate::stopping::{CLOSE_GOING_AWAY, Stopping};
use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use girok_engine::matching::CurrentMatch;
use girok_engine::{Error as EngineError, LiveScope, MatchingCommand};
use girok_schemas::{RoomId, Seq, UserId};
use governor::DefaultDirectRateLimiter;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One turn of a connection's loop in this many looks at its close requests, the stop and
/// its timers even while answers and client frames keep coming.
const CONTROL_EVERY: u32 = 16;

/// The per-connection limits (`[ws]` in the configuration): those both socket protocols
/// share, and the WebSocket's own.
#[derive(Clone, Copy, Debug)]
pub struct WsLimits {
    pub connection: ConnectionLimits,
    pub max_frame_bytes: usize,
    pub heartbeat: Duration,
    pub idle_timeout: Duration,
}

impl WsLimits {
    pub fn write_timeout(&self) -> Duration {
        self.connection.write_timeout
    }
}

impl From<&WsConfig> for WsLimits {
    fn from(c: &WsConfig) -> Self {
        Self {
            connection: ConnectionLimits::from(c),
            max_frame_bytes: c.max_frame_bytes.max(1024),
            heartbeat: Duration::from_millis(c.heartbeat_ms.max(100)),
            idle_timeout: Duration::from_millis(c.idle_timeout_ms.max(200)),
        }
    }
}

/// Runs a connection until either side closes it.
pub async fn serve(
    socket: WebSocket,
    state: Shared,
    principal: Option<Principal>,
    limits: WsLimits,
) {
    let (sink, mut stream) = socket.split();
    let (closer, mut close_requests) = mpsc::channel::<CloseRequest>(4);
    let mut connection = Connection {
        state: state.clone(),
        principal: None,
        limits,
        out: Outbox::new(
            sink,
            closer,
            state.ws_metrics.clone(),
            limits.connection.write_timeout,
        ),
        pending: VecDeque::new(),
        sending: FuturesOrdered::new(),
        frame_read_at: Instant::now(),
        subscriptions: HashMap::new(),
        own: Arc::default(),
        session_end: None,
        close_now: None,
        sends: limits.connection.send_budget(),
        resumes: limits.connection.resume_budget(),
    };
    if let Some(principal) = principal {
        connection.welcome(principal);
    }
    let auth_deadline = Instant::now() + limits.connection.auth_timeout;
    let mut last_seen = Instant::now();
    // `welcome` told the registry the user is here; later frames report at most this often.
    let mut last_beat = Instant::now();
    let mut heartbeat = tokio::time::interval(limits.heartbeat);
    heartbeat.tick().await;
    let mut closing: Option<CloseRequest> = None;
    let _open = state.stopping.socket_opened();
    let mut stopping = state.stopping.watch();
    // Made once, not at every turn of the loop (each turn registered a new waiter on the watch).
    let stopped = Stopping::stopped(&mut stopping);
    let mut stopped = std::pin::pin!(stopped);
    let mut turns: u32 = 0;
    loop {
        if !connection.pending.is_empty() {
            let answers = std::mem::take(&mut connection.pending);
            if !connection.out.write(answers).await {
                // Gone, or closed as a slow consumer (then the request says so).
                closing = close_requests.try_recv().ok();
                break;
            }
        }
        if let Some(request) = connection.close_now.take() {
            closing = Some(request);
            break;
        }
        // Read the client only while its earlier frames are answered or in flight within
        // bounds: a client that sends faster than girok acknowledges is pushed back.
        let reading = connection.sending.len() < limits.connection.max_sends_in_flight;
        // Every CONTROL_EVERY-th turn skips answers and client frames, so that the rarer branches
        // below (a close request, the stop, a timer) are looked at however busy the client is.
        turns = turns.wrapping_add(1);
        let control_turn = turns.is_multiple_of(CONTROL_EVERY);
        // In this order: a wake-up is nearly always an answer or a client frame, and polling
        // stops at the first branch that is ready (each branch polled is a few cold cache
        // lines of this connection's state; an unbiased select polls half of them each time).
        tokio::select! {
            biased;
            Some((answer, acked_at)) = connection.sending.next(), if !control_turn => {
                connection.state.ws_metrics.answered(acked_at);
                connection.pending.push_back(Message::Text(answer));
            }
            incoming = stream.next(), if reading && !control_turn => {
                let Some(Ok(message)) = incoming else { break };
                last_seen = Instant::now();
                connection.frame_read_at = last_seen;
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
            request = close_requests.recv() => {
                closing = request;
                break;
            }
            () = &mut stopped => {
                // What the client is owed goes out first: acks of sends already durable.
                let _ = tokio::time::timeout(SHUTDOWN_ANSWERS_WITHIN, async {
                    while let Some((answer, acked_at)) = connection.sending.next().await {
                        connection.state.ws_metrics.answered(acked_at);
                        connection.pending.push_back(Message::Text(answer));
                    }
                })
                .await;
                let answers = std::mem::take(&mut connection.pending);
                connection.out.write(answers).await;
                closing = Some((CLOSE_GOING_AWAY, "girok is shutting down".into()));
                break;
            }
            _ = heartbeat.tick() => {
                if last_seen.elapsed() > limits.idle_timeout {
                    closing = Some((CLOSE_IDLE, "idle timeout".into()));
                    break;
                }
                connection.pending.push_back(Message::Ping(Vec::new().into()));
            }
            ending = live_socket::session_ended(&mut connection.session_end) => {
                let (code, reason) = match ending {
                    Ending::Revoked => (CLOSE_SESSION_ENDED, "session ended"),
                    Ending::Expired => (CLOSE_TOKEN_EXPIRED, "token expired"),
                };
                // Written at the top of the loop, then the close.
                connection.reply(ServerFrame::error(ending.code(), ending.message()));
                connection.close_now = Some((code, reason.into()));
            }
            _ = tokio::time::sleep_until(auth_deadline), if connection.principal.is_none() => {
                closing = Some((CLOSE_AUTH_TIMEOUT, "no auth frame in time".into()));
                break;
            }
            // The control turn waits for nothing: the client's frames are read next turn.
            () = std::future::ready(()), if control_turn => {}
        }
    }
    for (_, running) in connection.subscriptions.drain() {
        running.task.abort();
    }
    if let Some((code, reason)) = closing {
        if code == CLOSE_SLOW_CONSUMER {
            connection.state.ws_metrics.slow_consumer_closes.inc();
        }
        // On shutdown the close frame is all the client gets: the process is about to end.
        if connection.out.close(code, reason, CLOSE_GRACE).await && code != CLOSE_GOING_AWAY {
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
    }
    if let Some(principal) = connection.principal {
        live_socket::departed(&connection.state, principal.user);
    }
}

struct Connection {
    state: Shared,
    principal: Option<Principal>,
    limits: WsLimits,
    out: Outbox,
    /// The connection's own frames not written yet (answers, pings): bounded, because the
    /// loop writes them before it reads the next client frame.
    pending: VecDeque<Message>,
    /// Sends waiting to be durable; each yields its answer and the instant it was
    /// acknowledged or refused, in the order they were sent.
    sending: FuturesOrdered<BoxFuture<'static, (Utf8Bytes, Instant)>>,
    /// When the loop read the client frame being handled.
    frame_read_at: Instant,
    subscriptions: HashMap<String, Running>,
    /// The events of this connection's matching commands, which its `matching` topic does
    /// not repeat (the answers say them).
    own: Arc<OwnCommands>,
    /// Resolves when the session signed in under ends (revoked, or its token expired).
    session_end: Option<BoxFuture<'static, Ending>>,
    /// A close the connection decided on while handling a frame (written after its answers).
    close_now: Option<CloseRequest>,
    sends: DefaultDirectRateLimiter,
    /// Subscriptions with `fromSeq`: each may read up to `ws.max_resume_scan_events` of the
    /// log, so a connection gets a few at a time, not a loop of them.
    resumes: DefaultDirectRateLimiter,
}

/// A subscription's task, and whether it has said its last word (a final error) and is
/// about to end: the client may then subscribe to the topic again at once.
struct Running {
    task: JoinHandle<()>,
    ended: Arc<AtomicBool>,
}

impl Running {
    fn new(task: JoinHandle<()>, ended: Arc<AtomicBool>) -> Self {
        Self { task, ended }
    }

    fn over(&self) -> bool {
        self.task.is_finished() || self.ended.load(Ordering::Acquire)
    }
}

fn engine_error(error: EngineError) -> ServerFrame {
    ServerFrame::error(error.code(), error.to_string())
}

impl Connection {
    /// Queues an answer, written at the top of the loop.
    fn reply(&mut self, frame: ServerFrame) {
        self.pending.push_back(Message::Text(render(&frame)));
    }

    /// Signs the connection in under `principal`, watching its session from now on (a
    /// renewal replaces the watch and is never refused); a user with too many live
    /// connections is refused, and the connection closes.
    fn sign_in(&mut self, principal: Principal) -> bool {
        let renewing = self.principal.is_some();
        match live_socket::sign_in(&self.state, principal, renewing) {
            Ok(ending) => {
                self.principal = Some(principal);
                self.session_end = Some(ending);
                true
            }
            Err(refused) => {
                self.reply(ServerFrame::error("TOO_MANY_SOCKETS", refused));
                self.close_now = Some((CLOSE_TOO_MANY_SOCKETS, "too many sockets".into()));
                false
            }
        }
    }

    fn welcome(&mut self, principal: Principal) {
        if !self.sign_in(principal) {
            return;
        }
        live_socket::arrived(&self.state, principal.user);
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

    /// An `auth` frame: signs the connection in, or, on a signed-in connection, replaces its
    /// token with a fresh one of the same user (so that it outlives the first token's
    /// expiry); a token of someone else is refused.
    async fn authenticate(&mut self, token: &str) {
        let principal = match bearer_principal(&self.state.auth, token).await {
            Ok(principal) => principal,
            Err(error) => return self.reply(ServerFrame::error(error.code, error.message)),
        };
        match self.principal {
            None => self.welcome(principal),
            Some(current) if current.user == principal.user => {
                if !self.sign_in(principal) {
                    return;
                }
                self.reply(ServerFrame::Welcome {
                    user_id: principal.user.to_string(),
                    head_seq: self.state.engine.head(),
                });
            }
            Some(_) => self.reply(ServerFrame::error(
                "ALREADY_AUTHENTICATED",
                "this connection is signed in as another user",
            )),
        }
    }

    async fn handle_authenticated(&mut self, principal: Principal, frame: ClientFrame) {
        match frame {
            ClientFrame::Subscribe { topic, from_seq } => {
                self.subscribe(principal.user, topic, from_seq).await
            }
            ClientFrame::Unsubscribe { topic } => match self.subscriptions.remove(&topic) {
                Some(running) => {
                    running.task.abort();
                    self.reply(ServerFrame::Unsubscribed { topic })
                }
                None => self.reply(ServerFrame::Error {
                    code: "NOT_SUBSCRIBED",
                    message: "no such subscription".into(),
                    reference: None,
                    topic: Some(topic),
                    retry_after_ms: None,
                }),
            },
            ClientFrame::Send {
                reference,
                room_id,
                body,
                client_id,
                reply_to,
                attachments,
            } => {
                let target = (room_id, reply_to, attachments);
                self.send(principal.user, reference, target, body, client_id)
                    .await
            }
            ClientFrame::Typing { room_id } => self.typing(principal.user, &room_id).await,
            ClientFrame::Join {
                reference,
                tags,
                language,
            } => {
                let command = MatchingCommand::Join { tags, language };
                self.matching(principal.user, reference, command).await
            }
            ClientFrame::Leave { reference } => {
                self.matching(principal.user, reference, MatchingCommand::Leave)
                    .await
            }
            ClientFrame::Skip { reference, requeue } => {
                let requeue = requeue.unwrap_or(true);
                let command = MatchingCommand::Skip { requeue };
                self.matching(principal.user, reference, command).await
            }
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

    /// Whether the connection's budget of writing frames (`ws.sends_per_second`) has room; if
    /// not, the refusal is queued for the frame `reference` named.
    fn spend_send(&mut self, reference: &mut Option<String>) -> bool {
        let Some(retry_after_ms) = crate::auth::rate_limit::wait_if_spent(&self.sends) else {
            return true;
        };
        let per_second = self.limits.connection.sends_per_second;
        self.reply(ServerFrame::Error {
            code: "RATE_LIMITED",
            message: format!("at most {per_second} sends per second"),
            reference: reference.take(),
            topic: None,
            retry_after_ms: Some(retry_after_ms),
        });
        false
    }

    /// Queues a `join`, `leave` or `skip`, pipelined like a send: its `matchingAck` (or error)
    /// is written when it is durable (or refused), in the order the client sent its frames.
    async fn matching(
        &mut self,
        user: UserId,
        mut reference: Option<String>,
        command: MatchingCommand,
    ) {
        if !self.spend_send(&mut reference) {
            return;
        }
        let opens_ticket = match &command {
            MatchingCommand::Join { .. } => true,
            MatchingCommand::Skip { requeue } => *requeue,
            _ => false,
        };
        let command = girok_engine::Command::Matching(command);
        let engine = self.state.engine.clone();
        self.pipeline(user, reference, command, move |ack, reference| async move {
            let matched = match CurrentMatch::made_by(&ack) {
                Some(made) => Some(MatchedNow {
                    room_id: made.room.to_string(),
                    partner_id: made.partner.to_string(),
                    partner: crate::live_items::partner_profile(&engine, made.partner).await,
                    seq: made.seq,
                }),
                None => None,
            };
            ServerFrame::MatchingAck {
                reference,
                seq: ack.seq,
                ticket_id: opens_ticket.then(|| ack.id.to_string()),
                matched,
            }
        })
        .await
    }

    /// Queues `command` now, in the order the client sent its frames, and pipelines only the
    /// wait for its acknowledgement: the frame `answer` makes of it (or the refusal, with the
    /// frame's `reference`) is written once it comes. A matching command's own event id is
    /// remembered before it is queued (its answer tells that event: the `matching` topic does
    /// not), and forgotten if it is refused.
    async fn pipeline<Answer: Future<Output = ServerFrame> + Send + 'static>(
        &mut self,
        user: UserId,
        reference: Option<String>,
        command: girok_engine::Command,
        answer: impl FnOnce(girok_engine::Ack, Option<String>) -> Answer + Send + 'static,
    ) {
        let id = girok_schemas::EventId::new_v7();
        let own = matches!(command, girok_engine::Command::Matching(_)).then(|| {
            self.own.sent(id);
            self.own.clone()
        });
        let refused = move |error: &EngineError, reference| {
            if let Some(own) = &own {
                own.forget(id);
            }
            ServerFrame::engine_error(error, reference)
        };
        let acked = match self.state.engine.enqueue_with_id(user, command, id).await {
            Ok(acked) => acked,
            Err(error) => return self.reply(refused(&error, reference)),
        };
        let queued = self.state.ws_metrics.queued(self.frame_read_at);
        let answered = async move {
            let outcome = acked.await;
            let acked_at = queued.acked();
            let frame = match outcome {
                Ok(ack) => answer(ack, reference).await,
                Err(error) => refused(&error, reference),
            };
            (render(&frame), acked_at)
        };
        self.sending.push_back(answered.boxed());
    }

    /// Queues a send; its ack (or error) is written when it is durable (or refused).
    async fn send(
        &mut self,
        user: UserId,
        mut reference: Option<String>,
        (room_id, reply_to, attachments): (String, Option<String>, Vec<String>),
        body: String,
        client_id: Option<String>,
    ) {
        if !self.spend_send(&mut reference) {
            return;
        }
        let command = match live_socket::send_command(
            &room_id,
            reply_to.as_deref(),
            &attachments,
            body,
            client_id,
        ) {
            Ok(command) => command,
            Err(field) => {
                let message = match field {
                    BadSendField::Room => "roomId is not a room id",
                    BadSendField::ReplyTo => "replyTo is not a message id",
                    BadSendField::Attachments => "attachments are not media ids",
                };
                return self.reply(ServerFrame::Error {
                    code: "INVALID_ARGUMENT",
                    message: message.into(),
                    reference,
                    topic: None,
                    retry_after_ms: None,
                });
            }
        };
        self.pipeline(user, reference, command, |ack, reference| {
            std::future::ready(ServerFrame::Ack {
                reference,
                seq: ack.seq,
                message_id: ack.id.to_string(),
                duplicate: ack.duplicate,
            })
        })
        .await
    }

    async fn subscribe(&mut self, user: UserId, topic: String, from_seq: Option<Seq>) {
        let topic_error = |code: &'static str, message: String| ServerFrame::Error {
            code,
            message,
            reference: None,
            topic: Some(topic.clone()),
            retry_after_ms: None,
        };
        if self
            .subscriptions
            .get(&topic)
            .is_some_and(|running| !running.over())
        {
            let frame = topic_error("ALREADY_SUBSCRIBED", "already subscribed".into());
            return self.reply(frame);
        }
        self.subscriptions.retain(|_, running| !running.over());
        if self.subscriptions.len() >= self.limits.connection.max_subscriptions {
            let message = format!(
                "at most {} subscriptions",
                self.limits.connection.max_subscriptions
            );
            return self.reply(topic_error("TOO_MANY_SUBSCRIPTIONS", message));
        }
        let engine = self.state.engine.clone();
        let scope = match live_socket::topic_scope(&engine, user, &topic).await {
            Ok(Topic::Feed) => {
                let task = tokio::spawn(run_feed(engine, user, self.out.clone()));
                self.subscriptions
                    .insert(topic, Running::new(task, Default::default()));
                return;
            }
            Ok(Topic::Scope(scope)) => scope,
            Err((code, message)) => return self.reply(topic_error(code, message)),
        };
        // Only a resume that will read the log spends the connection's resume budget.
        if from_seq.is_some()
            && let Some(retry_after_ms) = crate::auth::rate_limit::wait_if_spent(&self.resumes)
        {
            return self.reply(ServerFrame::Error {
                code: "RATE_LIMITED",
                message: live_socket::resumes_refused(),
                reference: None,
                topic: Some(topic.clone()),
                retry_after_ms: Some(retry_after_ms),
            });
        }
        let ended = Arc::new(AtomicBool::new(false));
        let subscription = Subscription {
            engine: engine.clone(),
            ended: ended.clone(),
            signals: match scope {
                LiveScope::Room { room, .. } => Some(self.state.presence.subscribe(room)),
                LiveScope::User(_) | LiveScope::Matching(_) => None,
            },
            topic: topic.clone(),
            scope,
            from_seq,
            max_resume: self.limits.connection.max_resume_events,
            max_scan: self.limits.connection.max_resume_scan_events,
            out: self.out.clone(),
            own: self.own.clone(),
        };
        let task = match scope {
            // Room membership changes and feed notifications: whichever ends first ends both.
            LiveScope::User(user) => {
                // Subscribed before `subscribed` is sent, so nothing after it is missed.
                let notes = run_notifications(
                    engine.clone(),
                    engine.subscribe_notifications(user),
                    self.out.clone(),
                );
                tokio::spawn(async move {
                    tokio::select! {
                        () = subscription.run() => {}
                        () = notes => {}
                    }
                })
            }
            LiveScope::Room { .. } | LiveScope::Matching(_) => tokio::spawn(subscription.run()),
        };
        self.subscriptions.insert(topic, Running::new(task, ended));
    }
}
