//! One girok/1 connection: its control stream's loop reads the client's frames and writes the
//! connection's own answers (welcome, acks, errors, pongs, read responses), several to one
//! write; each subscription writes its events to a stream of its own (`subscription.rs`).
//! Sends are pipelined as on the WebSocket (each waits for its ack apart, in order; past
//! `ws.max_sends_in_flight` the loop stops reading, and QUIC's flow control pushes back), and
//! so are reads (at most `quic.max_requests_in_flight`). Authorization, send and resume
//! budgets, the user's connection ceiling, presence and session ends are the WebSocket's.
//!
//! 0-RTT: frames on a control stream opened in 0-RTT data that arrive before the handshake is
//! confirmed could be a replay; only replay-safe ones are taken then (auth, subscribe,
//! unsubscribe, ping, reads, and sends that carry a `client_id`, which a replay turns into a
//! duplicate, not a second message); the rest are refused with `NOT_REPLAY_SAFE`.

use super::frames::{Chunks, FrameError, FrameReader};
use super::link::{Link, Outgoing};
use super::reads::Reads;
use super::subscription::{Feed, Subscription, error_frame, frame};
use super::{
    CLOSE_AUTH_TIMEOUT, CLOSE_PROTOCOL, CLOSE_SESSION_ENDED, CLOSE_SLOW_CONSUMER,
    CLOSE_TOKEN_EXPIRED, CLOSE_TOO_MANY_SOCKETS, QuicLimits, ToConnection,
};
use crate::auth::live_sessions::Ending;
use crate::auth::{Principal, bearer_principal};
use crate::presence::{HEARTBEAT_EVERY, Signal};
use crate::state::Shared;
use crate::stopping::{CLOSE_GOING_AWAY, Stopping};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{FutureExt, StreamExt};
use girok_engine::{ChatCommand, Command, LiveScope};
use girok_schemas::quic::{self, ClientFrame, client_frame, server_frame::Frame};
use girok_schemas::{RoomId, Seq, UserId};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Resumes (`from_seq`) per connection and minute, and at once (as on the WebSocket).
const RESUMES_PER_MINUTE: NonZeroU32 = NonZeroU32::new(30).unwrap();
const RESUME_BURST: NonZeroU32 = NonZeroU32::new(10).unwrap();

/// Longest a close waits for the client to receive the control stream's last frames.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Longest a shutdown waits for the answers of sends in flight.
const SHUTDOWN_ANSWERS_WITHIN: std::time::Duration = std::time::Duration::from_millis(500);

/// A connection whose control stream the client opened.
pub(super) struct Opened<L: Link, R> {
    pub connection: L,
    pub send: L::Send,
    pub recv: R,
    /// Whether the control stream was opened in 0-RTT data.
    pub early: bool,
    /// Resolves once the handshake is confirmed.
    pub handshake: BoxFuture<'static, ()>,
}

/// Runs a connection until either side closes it.
pub(super) async fn serve<L: Link, R: Chunks + Send + 'static>(
    opened: Opened<L, R>,
    state: Shared,
    reads: Reads,
    limits: QuicLimits,
) {
    let Opened {
        connection,
        send,
        recv,
        early,
        handshake,
    } = opened;
    let (to_connection, mut from_tasks) = mpsc::channel(64);
    let mut control = Control {
        state: state.clone(),
        connection: connection.clone(),
        reads,
        limits,
        send,
        principal: None,
        token: None,
        pending: Vec::new(),
        sending: FuturesOrdered::new(),
        reading: FuturesUnordered::new(),
        subscriptions: HashMap::new(),
        session_end: None,
        close_now: None,
        to_connection,
        confirmed: !early,
        sends: RateLimiter::direct(
            Quota::per_second(
                NonZeroU32::new(limits.ws.sends_per_second).unwrap_or(NonZeroU32::MIN),
            )
            .allow_burst(NonZeroU32::new(limits.ws.send_burst).unwrap_or(NonZeroU32::MIN)),
        ),
        resumes: RateLimiter::direct(
            Quota::per_minute(RESUMES_PER_MINUTE).allow_burst(RESUME_BURST),
        ),
    };
    if early {
        state.quic_metrics.zero_rtt.inc();
    }
    let mut frames = FrameReader::new(recv, limits.max_frame_bytes);
    let mut handshake = Some(handshake);
    let auth_deadline = Instant::now() + limits.ws.auth_timeout;
    let mut presence_beat = tokio::time::interval(HEARTBEAT_EVERY);
    let mut closing: Option<(u16, &'static str)> = None;
    let _open = state.stopping.socket_opened();
    let mut stopping = state.stopping.watch();
    loop {
        if !control.pending.is_empty() && !control.flush().await {
            break;
        }
        if let Some(close) = control.close_now.take() {
            closing = Some(close);
            break;
        }
        let reading = control.sending.len() < limits.ws.max_sends_in_flight
            && control.reading.len() < limits.max_requests_in_flight;
        tokio::select! {
            Some(answer) = control.sending.next() => control.pending.push(answer),
            Some(answer) = control.reading.next() => control.pending.push(answer),
            incoming = frames.next::<ClientFrame>(), if reading => match incoming {
                Ok(Some(Ok(frame))) => control.handle(frame).await,
                Ok(Some(Err(undecodable))) => control.reply_error(
                    "BAD_FRAME",
                    format!("not a client frame: {}", undecodable.0),
                    "",
                ),
                // The client finished its control stream: the connection ends.
                Ok(None) => break,
                Err(FrameError::Stream(_)) => break,
                Err(error) => {
                    // The stream cannot be read on past a bad length: say so and close.
                    control.reply_error(error.code(), error.to_string(), "");
                    control.close_now = Some((CLOSE_PROTOCOL, "protocol error"));
                }
            },
            Some(message) = from_tasks.recv() => match message {
                ToConnection::Frame(frame) => control.pending.push(frame),
                ToConnection::Close(code, reason) => {
                    closing = Some((code, reason));
                    break;
                }
            },
            () = async { if let Some(h) = handshake.as_mut() { h.await } else { std::future::pending().await } } => {
                handshake = None;
                control.confirmed = true;
            }
            _ = presence_beat.tick() => {
                if let Some(principal) = control.principal {
                    state.presence.heartbeat(principal.user);
                }
            }
            reason = connection.closed() => {
                tracing::debug!(%reason, "QUIC connection closed");
                break;
            }
            () = connection.unexpected_stream() => {
                control.reply_error("TOO_MANY_STREAMS", "a connection has one control stream; the server opens the others".into(), "");
                control.close_now = Some((CLOSE_PROTOCOL, "unexpected stream"));
            }
            () = Stopping::stopped(&mut stopping) => {
                // What the client is owed goes out first: acks of sends already durable.
                let _ = tokio::time::timeout(SHUTDOWN_ANSWERS_WITHIN, async {
                    while let Some(answer) = control.sending.next().await {
                        control.pending.push(answer);
                    }
                })
                .await;
                control.flush().await;
                closing = Some((CLOSE_GOING_AWAY, "girok is shutting down"));
                break;
            }
            ending = session_ended(&mut control.session_end) => {
                let (code, reason) = match ending {
                    Ending::Revoked => (CLOSE_SESSION_ENDED, "session ended"),
                    Ending::Expired => (CLOSE_TOKEN_EXPIRED, "token expired"),
                };
                control.reply_error(ending.code(), ending.message().into(), "");
                control.close_now = Some((code, reason));
            }
            _ = tokio::time::sleep_until(auth_deadline), if control.principal.is_none() => {
                closing = Some((CLOSE_AUTH_TIMEOUT, "no auth frame in time"));
                break;
            }
        }
    }
    for (_, running) in control.subscriptions.drain() {
        running.task.abort();
    }
    if let Some((code, reason)) = closing {
        if code == CLOSE_SLOW_CONSUMER {
            state.quic_metrics.slow_consumer_closes.inc();
        }
        // Closing discards what the peer has not received yet: let the control stream's last
        // frames (the error that says why) arrive first.
        if control.send.finish() && code != CLOSE_SLOW_CONSUMER {
            let _ = tokio::time::timeout(CLOSE_GRACE, control.send.stopped()).await;
        }
        connection.close(code, reason);
    }
    if let Some(principal) = control.principal
        && state.presence.disconnected(principal.user)
    {
        announce_presence(&state, principal.user, false);
    }
}

/// Tells the live subscribers of every room of `user` that they came online or went offline.
fn announce_presence(state: &Shared, user: UserId, online: bool) {
    for room in state.engine.rooms_of(user) {
        state
            .presence
            .signal(room, Signal::Presence { user, online });
    }
}

/// Waits for the end of the connection's session; forever before it signs in.
async fn session_ended(end: &mut Option<BoxFuture<'static, Ending>>) -> Ending {
    match end {
        Some(end) => end.await,
        None => std::future::pending().await,
    }
}

/// A subscription's task, its stop switch, and whether it said its last word.
struct Running {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
    ended: Arc<AtomicBool>,
}

impl Running {
    fn over(&self) -> bool {
        self.task.is_finished() || self.ended.load(Ordering::Acquire)
    }
}

/// The control stream's side of a connection.
struct Control<L: Link> {
    state: Shared,
    connection: L,
    reads: Reads,
    limits: QuicLimits,
    send: L::Send,
    principal: Option<Principal>,
    /// The access token signed in with (reads run as it).
    token: Option<Arc<str>>,
    /// Answers not written yet (bounded: the loop writes them before it reads on).
    pending: Vec<Bytes>,
    sending: FuturesOrdered<BoxFuture<'static, Bytes>>,
    reading: FuturesUnordered<BoxFuture<'static, Bytes>>,
    subscriptions: HashMap<String, Running>,
    session_end: Option<BoxFuture<'static, Ending>>,
    close_now: Option<(u16, &'static str)>,
    to_connection: mpsc::Sender<ToConnection>,
    /// Whether the handshake is confirmed (or the stream did not start in 0-RTT data).
    confirmed: bool,
    sends: DefaultDirectRateLimiter,
    resumes: DefaultDirectRateLimiter,
}

impl<L: Link> Control<L> {
    /// Writes the pending answers; `false` once the stream is gone or took nothing for the
    /// write timeout (then the connection closes as a slow consumer).
    async fn flush(&mut self) -> bool {
        let mut answers = std::mem::take(&mut self.pending);
        let written = tokio::time::timeout(
            self.limits.ws.write_timeout,
            self.send.write_all_chunks(&mut answers),
        )
        .await;
        match written {
            Ok(written) => written,
            Err(_) => {
                self.close_now = Some((CLOSE_SLOW_CONSUMER, "slow consumer"));
                self.state.quic_metrics.slow_consumer_closes.inc();
                self.connection.close(CLOSE_SLOW_CONSUMER, "slow consumer");
                false
            }
        }
    }

    fn reply(&mut self, answer: Frame) {
        self.pending.push(frame(answer));
    }

    fn reply_error(&mut self, code: &str, message: String, reference: &str) {
        self.reply(Frame::Error(quic::Error {
            code: code.into(),
            message,
            r#ref: reference.into(),
            ..Default::default()
        }));
    }

    fn engine_error(&mut self, error: &girok_engine::Error, reference: &str) {
        self.pending
            .push(engine_error_frame(error, reference.into()));
    }

    async fn handle(&mut self, frame: ClientFrame) {
        let Some(frame) = frame.frame else {
            return self.reply_error("BAD_FRAME", "an empty frame".into(), "");
        };
        if !self.confirmed && !replay_safe(&frame) {
            return self.reply_error(
                "NOT_REPLAY_SAFE",
                "before the handshake is confirmed (0-RTT) only auth, subscribe, unsubscribe, \
                 ping, reads and sends with a client_id are taken"
                    .into(),
                match &frame {
                    client_frame::Frame::Send(send) => &send.r#ref,
                    _ => "",
                },
            );
        }
        match frame {
            client_frame::Frame::Ping(ping) => {
                self.reply(Frame::Pong(quic::Pong { nonce: ping.nonce }))
            }
            client_frame::Frame::Auth(auth) => self.authenticate(auth.token).await,
            other => match self.principal {
                None => self.reply_error("UNAUTHENTICATED", "send an auth frame first".into(), ""),
                Some(principal) => self.handle_authenticated(principal, other).await,
            },
        }
    }

    /// Signs the connection in (or renews it with a fresh token of the same user).
    async fn authenticate(&mut self, token: String) {
        let principal = match bearer_principal(&self.state.auth, &token).await {
            Ok(principal) => principal,
            Err(error) => return self.reply_error(error.code, error.message, ""),
        };
        let renewing = match self.principal {
            None => false,
            Some(current) if current.user == principal.user => true,
            Some(_) => {
                return self.reply_error(
                    "ALREADY_AUTHENTICATED",
                    "this connection is signed in as another user".into(),
                    "",
                );
            }
        };
        let signed_in =
            self.state
                .auth
                .live_sessions
                .sign_in(self.state.engine.clone(), principal, renewing);
        match signed_in {
            Ok(ending) => {
                self.principal = Some(principal);
                self.token = Some(token.into());
                self.session_end = Some(ending.boxed());
            }
            Err(refused) => {
                self.reply_error("TOO_MANY_SOCKETS", refused.to_string(), "");
                self.close_now = Some((CLOSE_TOO_MANY_SOCKETS, "too many sockets"));
                return;
            }
        }
        if !renewing && self.state.presence.connected(principal.user) {
            let user = principal.user;
            let head = self.state.engine.head();
            if self.state.engine.views_watermark() >= head {
                announce_presence(&self.state, user, true);
            } else {
                let state = self.state.clone();
                tokio::spawn(async move {
                    let _ = state.engine.wait_for_views(Some(head)).await;
                    if state.presence.status(user).online {
                        announce_presence(&state, user, true);
                    }
                });
            }
        }
        self.reply(Frame::Welcome(quic::Welcome {
            user_id: principal.user.to_string(),
            head_seq: self.state.engine.head(),
        }));
    }

    async fn handle_authenticated(&mut self, principal: Principal, frame: client_frame::Frame) {
        match frame {
            client_frame::Frame::Subscribe(subscribe) => {
                self.subscribe(principal.user, subscribe.topic, subscribe.from_seq)
                    .await
            }
            client_frame::Frame::Unsubscribe(unsubscribe) => {
                match self.subscriptions.remove(&unsubscribe.topic) {
                    Some(running) => {
                        let _ = running.stop.send(true);
                        self.reply(Frame::Unsubscribed(quic::Unsubscribed {
                            topic: unsubscribe.topic,
                        }));
                    }
                    None => {
                        let error = error_frame(
                            "NOT_SUBSCRIBED",
                            "no such subscription".into(),
                            &unsubscribe.topic,
                        );
                        self.pending.push(error);
                    }
                }
            }
            client_frame::Frame::Send(send) => self.send_message(principal.user, send).await,
            client_frame::Frame::Typing(typing) => {
                let Ok(room) = typing.room_id.parse::<RoomId>() else {
                    return self.reply_error(
                        "INVALID_ARGUMENT",
                        "room_id is not a room id".into(),
                        "",
                    );
                };
                let typed = self
                    .state
                    .presence
                    .member_typing(&self.state.engine, room, principal.user)
                    .await;
                if let Err(error) = typed {
                    self.engine_error(&error, "");
                }
            }
            client_frame::Frame::Request(request) => self.read(request),
            client_frame::Frame::Ping(_) | client_frame::Frame::Auth(_) => {}
        }
    }

    /// Queues a send; its ack (or error) is written when it is durable (or refused).
    async fn send_message(&mut self, user: UserId, send: quic::Send) {
        let reference = send.r#ref;
        if let Some(retry_after_ms) = crate::auth::rate_limit::wait_if_spent(&self.sends) {
            self.pending.push(frame(Frame::Error(quic::Error {
                code: "RATE_LIMITED".into(),
                message: format!(
                    "at most {} sends per second",
                    self.limits.ws.sends_per_second
                ),
                r#ref: reference,
                topic: String::new(),
                retry_after_ms: Some(retry_after_ms),
            })));
            return;
        }
        let Ok(room) = send.room_id.parse::<RoomId>() else {
            return self.reply_error(
                "INVALID_ARGUMENT",
                "room_id is not a room id".into(),
                &reference,
            );
        };
        let reply_to = match send.reply_to.map(|r| r.parse::<girok_schemas::EventId>()) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => {
                return self.reply_error(
                    "INVALID_ARGUMENT",
                    "reply_to is not a message id".into(),
                    &reference,
                );
            }
        };
        let Ok(attachments) = send.attachments.iter().map(|a| a.parse()).collect() else {
            return self.reply_error(
                "INVALID_ARGUMENT",
                "attachments are not media ids".into(),
                &reference,
            );
        };
        let command = Command::Chat(ChatCommand::SendMessage {
            room,
            body: send.body,
            client_id: send.client_id,
            reply_to,
            attachments,
        });
        // Queued now, in the order the client sent: only the wait for the ack is pipelined.
        let acked = match self.state.engine.enqueue(user, command).await {
            Ok(acked) => acked,
            Err(error) => return self.engine_error(&error, &reference),
        };
        let answer = async move {
            match acked.await {
                Ok(ack) => frame(Frame::Ack(quic::Ack {
                    r#ref: reference,
                    seq: ack.seq,
                    message_id: ack.id.to_string(),
                    duplicate: ack.duplicate,
                })),
                Err(error) => engine_error_frame(&error, reference),
            }
        };
        self.sending.push_back(answer.boxed());
    }

    /// Starts a read; its response is written when it is ready.
    fn read(&mut self, request: quic::Request) {
        let Some(token) = self.token.clone() else {
            return;
        };
        let peer = self.connection.remote_address();
        let reads = self.reads.clone();
        self.reading
            .push(async move { reads.answer(request, &token, peer).await }.boxed());
    }

    async fn subscribe(&mut self, user: UserId, topic: String, from_seq: Option<Seq>) {
        if self
            .subscriptions
            .get(&topic)
            .is_some_and(|running| !running.over())
        {
            let error = error_frame("ALREADY_SUBSCRIBED", "already subscribed".into(), &topic);
            return self.pending.push(error);
        }
        self.subscriptions.retain(|_, running| !running.over());
        if self.subscriptions.len() >= self.limits.ws.max_subscriptions {
            let message = format!("at most {} subscriptions", self.limits.ws.max_subscriptions);
            let error = error_frame("TOO_MANY_SUBSCRIPTIONS", message, &topic);
            return self.pending.push(error);
        }
        let engine = self.state.engine.clone();
        let feed = if topic == "feed" {
            Feed::Posts(engine.subscribe_feed(user))
        } else {
            let scope = if topic == "notifications" {
                LiveScope::User(user)
            } else if topic == "matching" {
                LiveScope::Matching(user)
            } else if let Some(id) = topic.strip_prefix("chat:") {
                let Ok(room) = id.parse::<RoomId>() else {
                    let error = error_frame("INVALID_ARGUMENT", "not a room id".into(), &topic);
                    return self.pending.push(error);
                };
                // Only members may subscribe to a room.
                if let Err(error) = engine.require_member(user, room).await {
                    let error = error_frame(error.code(), error.to_string(), &topic);
                    return self.pending.push(error);
                }
                LiveScope::Room { room, member: user }
            } else {
                let message =
                    "topics are `chat:<roomId>`, `notifications`, `feed` and `matching`".into();
                let error = error_frame("UNKNOWN_TOPIC", message, &topic);
                return self.pending.push(error);
            };
            if from_seq.is_some()
                && let Some(retry_after_ms) = crate::auth::rate_limit::wait_if_spent(&self.resumes)
            {
                self.pending.push(frame(Frame::Error(quic::Error {
                    code: "RATE_LIMITED".into(),
                    message: format!(
                        "at most {RESUMES_PER_MINUTE} resumes (from_seq) a minute, {RESUME_BURST} at once"
                    ),
                    r#ref: String::new(),
                    topic: topic.clone(),
                    retry_after_ms: Some(retry_after_ms),
                })));
                return;
            }
            Feed::Follow {
                scope,
                from_seq,
                signals: match scope {
                    LiveScope::Room { room, .. } => Some(self.state.presence.subscribe(room)),
                    _ => None,
                },
                // Subscribed before the follow starts, so nothing after it is missed.
                notes: matches!(scope, LiveScope::User(_))
                    .then(|| engine.subscribe_notifications(user)),
            }
        };
        let (stop, stopped) = watch::channel(false);
        let ended = Arc::new(AtomicBool::new(false));
        let subscription = Subscription {
            engine,
            connection: self.connection.clone(),
            to_connection: self.to_connection.clone(),
            topic: topic.clone(),
            user,
            max_resume: self.limits.ws.max_resume_events,
            max_scan: self.limits.ws.max_resume_scan_events,
            write_timeout: self.limits.ws.write_timeout,
            stop: stopped,
            ended: ended.clone(),
        };
        let task = tokio::spawn(subscription.run(feed));
        self.subscriptions
            .insert(topic, Running { task, stop, ended });
    }
}

/// Whether a frame may be taken before the handshake is confirmed (a replay of it harms
/// nothing).
fn replay_safe(frame: &client_frame::Frame) -> bool {
    match frame {
        client_frame::Frame::Send(send) => send.client_id.as_deref().is_some_and(|c| !c.is_empty()),
        client_frame::Frame::Typing(_) => false,
        client_frame::Frame::Auth(_)
        | client_frame::Frame::Subscribe(_)
        | client_frame::Frame::Unsubscribe(_)
        | client_frame::Frame::Ping(_)
        | client_frame::Frame::Request(_) => true,
    }
}

/// An engine error answering `reference`.
fn engine_error_frame(error: &girok_engine::Error, reference: String) -> Bytes {
    frame(Frame::Error(quic::Error {
        code: error.code().into(),
        message: error.to_string(),
        r#ref: reference,
        topic: String::new(),
        retry_after_ms: error.retry_after().map(girok_engine::error::retry_millis),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_replay_safe_frames_pass_before_the_handshake_is_confirmed() {
        let send = |client_id: Option<&str>| {
            client_frame::Frame::Send(quic::Send {
                client_id: client_id.map(Into::into),
                ..Default::default()
            })
        };
        assert!(replay_safe(&send(Some("c1"))));
        assert!(!replay_safe(&send(None)));
        assert!(!replay_safe(&send(Some(""))));
        assert!(!replay_safe(&client_frame::Frame::Typing(
            quic::Typing::default()
        )));
        assert!(replay_safe(&client_frame::Frame::Request(
            quic::Request::default()
        )));
        assert!(replay_safe(&client_frame::Frame::Subscribe(
            quic::Subscribe::default()
        )));
    }
}
