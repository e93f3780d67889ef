//! One girok/1 connection (over QUIC, or over a WebTransport session): its control stream's
//! loop reads the client's frames and writes the connection's own answers (welcome, acks,
//! errors, pongs, read responses), several to one write; each subscription writes its events
//! to a stream of its own (`subscription.rs`). Sends are pipelined as on the WebSocket (each
//! waits for its ack apart, in order; past `ws.max_sends_in_flight` the loop stops reading,
//! and QUIC's flow control pushes back), and so are reads (at most
//! `quic.max_requests_in_flight`). Authorization, send and resume budgets, the user's
//! connection ceiling, presence and session ends are the WebSocket's (`live_socket.rs`).
//! However the loop ends, the connection is closed before its subscription tasks stop, so a
//! task stopped mid-write never puts half a frame on the wire; a client that finishes its
//! control stream first gets the acks of the sends already on their way.
//!
//! 0-RTT: frames on a control stream opened in 0-RTT data that arrive before the handshake is
//! confirmed could be a replay; only replay-safe ones are taken then (auth, subscribe,
//! unsubscribe, ping, reads, and sends that carry a `client_id`, which a replay turns into a
//! duplicate, not a second message); the rest are refused with `NOT_REPLAY_SAFE`.

use super::frames::{Chunks, FrameError, FrameReader, error_frame, frame};
use super::link::{Link, Outgoing};
use super::reads::Reads;
use super::subscription::{Feed, Subscription};
use super::{
    CLOSE_AUTH_TIMEOUT, CLOSE_PROTOCOL, CLOSE_SESSION_ENDED, CLOSE_SLOW_CONSUMER,
    CLOSE_TOKEN_EXPIRED, CLOSE_TOO_MANY_SOCKETS, QuicLimits,
};
use crate::auth::live_sessions::Ending;
use crate::auth::rate_limit::wait_if_spent;
use crate::auth::{Principal, bearer_principal};
use crate::live_socket::{self, BadSendField, SHUTDOWN_ANSWERS_WITHIN, Topic};
use crate::presence::HEARTBEAT_EVERY;
use crate::state::Shared;
use crate::stopping::{CLOSE_GOING_AWAY, Stopping};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{FutureExt, StreamExt};
use girok_engine::LiveScope;
use girok_schemas::quic::{self, ClientFrame, client_frame, server_frame::Frame};
use girok_schemas::{Seq, UserId};
use governor::DefaultDirectRateLimiter;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Longest a close waits for the client to receive the control stream's last frames.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
/// The same on a stop, which waits for every connection at once (within the endpoint's own
/// bound, `CLOSE_WITHIN`).
const STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(1500);

/// A connection whose control stream the client opened.
pub(super) struct Opened<L: Link, R> {
    pub connection: L,
    pub send: L::Send,
    pub recv: R,
    /// Whether the control stream was opened in 0-RTT data.
    pub early: bool,
    /// Resolves once the handshake is confirmed (false: the connection was lost first).
    pub handshake: BoxFuture<'static, bool>,
    /// When the connection was accepted: the `auth` frame is due `ws.auth_timeout_ms` later.
    pub accepted_at: Instant,
}

/// Why the loop ended, and the close that says so.
struct Closing {
    code: u16,
    reason: &'static str,
    /// Write the control stream's last frames before closing.
    linger: bool,
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
        accepted_at,
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
        stopping: Vec::new(),
        session_end: None,
        close_now: None,
        to_connection,
        confirmed: !early,
        sends: limits.connection.send_budget(),
        resumes: limits.connection.resume_budget(),
    };
    if early {
        state.quic_metrics.zero_rtt.inc();
    }
    let mut frames = FrameReader::new(recv, limits.max_frame_bytes);
    let mut handshake = Some(handshake);
    let auth_deadline = accepted_at + limits.connection.auth_timeout;
    let mut presence_beat = tokio::time::interval(HEARTBEAT_EVERY);
    let _open = state.stopping.socket_opened();
    let mut stopping = state.stopping.watch();
    let ending = loop {
        if !control.pending.is_empty() && !control.flush().await {
            break None;
        }
        if let Some((code, reason)) = control.close_now.take() {
            break Some(Closing {
                code,
                reason,
                linger: true,
            });
        }
        let reading = control.sending.len() < limits.connection.max_sends_in_flight
            && control.reading.len() < limits.max_requests_in_flight;
        tokio::select! {
            // In this order: the handshake's confirmation first (a frame that arrives with it
            // is not early), then whatever ends the connection, then what it owes, and the
            // client's next frame last, so that a client that always has one buffered cannot
            // hold off its own end (a deadline, a revoked session, a stop).
            biased;
            confirmed = async { if let Some(h) = handshake.as_mut() { h.await } else { std::future::pending().await } } => {
                handshake = None;
                if !confirmed {
                    break None;
                }
                control.confirmed = true;
            }
            () = Stopping::stopped(&mut stopping) => {
                // What the client is owed goes out first: acks of sends already durable.
                control.drain_acks().await;
                break Some(Closing { code: CLOSE_GOING_AWAY, reason: "girok is shutting down", linger: true });
            }
            reason = connection.closed() => {
                tracing::debug!(%reason, "QUIC connection closed");
                break None;
            }
            ending = live_socket::session_ended(&mut control.session_end) => {
                let (code, reason) = match ending {
                    Ending::Revoked => (CLOSE_SESSION_ENDED, "session ended"),
                    Ending::Expired => (CLOSE_TOKEN_EXPIRED, "token expired"),
                };
                control.reply_error(ending.code(), ending.message().into(), "");
                control.close_now = Some((code, reason));
            }
            _ = tokio::time::sleep_until(auth_deadline), if control.principal.is_none() => {
                break Some(Closing { code: CLOSE_AUTH_TIMEOUT, reason: "no auth frame in time", linger: false });
            }
            () = connection.unexpected_stream() => {
                control.reply_error(
                    "TOO_MANY_STREAMS",
                    "a connection has one control stream; the server opens the others".into(),
                    "",
                );
                control.close_now = Some((CLOSE_PROTOCOL, "unexpected stream"));
            }
            Some(answer) = control.sending.next() => control.pending.push(answer),
            Some(answer) = control.reading.next() => control.pending.push(answer),
            Some(frame) = from_tasks.recv() => control.pending.push(frame),
            _ = presence_beat.tick() => {
                if let Some(principal) = control.principal {
                    state.presence.heartbeat(principal.user);
                }
            }
            incoming = frames.next::<ClientFrame>(), if reading => match incoming {
                Ok(Some(Ok(frame))) => control.handle(frame).await,
                Ok(Some(Err(undecodable))) => control.reply_error(
                    "BAD_FRAME",
                    format!("not a client frame: {}", undecodable.0),
                    "",
                ),
                // The client finished its control stream: what it is owed, then goodbye.
                Ok(None) => {
                    control.drain_acks().await;
                    break Some(Closing { code: 0, reason: "control stream finished", linger: true });
                }
                Err(FrameError::Stream(_)) => {
                    break Some(Closing { code: 0, reason: "control stream ended", linger: false });
                }
                Err(error) => {
                    // The stream cannot be read on past a bad length or a cut frame.
                    control.reply_error(error.code(), error.to_string(), "");
                    control.close_now = Some((CLOSE_PROTOCOL, "protocol error"));
                }
            },
        }
    };
    if let Some(ending) = ending {
        // Closing discards what the peer has not received yet: let the control stream's last
        // frames (the acks owed, the error that says why) arrive first.
        if control.send.finish() && ending.linger {
            let grace = if ending.code == CLOSE_GOING_AWAY {
                STOP_GRACE
            } else {
                CLOSE_GRACE
            };
            let _ = tokio::time::timeout(grace, control.send.stopped()).await;
        }
        connection.close(ending.code, ending.reason);
    } else {
        connection.close(0, "");
    }
    // Only now, with the connection closed, may a task stop in the middle of a write.
    for running in control.subscriptions.into_values().chain(control.stopping) {
        running.task.abort();
    }
    if let Some(principal) = control.principal {
        live_socket::departed(&state, principal.user);
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
    /// Unsubscribed tasks finishing their streams: they count against the limit until done.
    stopping: Vec<Running>,
    session_end: Option<BoxFuture<'static, Ending>>,
    close_now: Option<(u16, &'static str)>,
    /// Where subscription tasks send frames for the control stream (refusals that come
    /// before their stream opens).
    to_connection: mpsc::Sender<Bytes>,
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
            self.limits.connection.write_timeout,
            self.send.write_all_chunks(&mut answers),
        )
        .await;
        match written {
            Ok(written) => written,
            Err(_) => {
                self.state.quic_metrics.slow_consumer_closes.inc();
                self.connection.close(CLOSE_SLOW_CONSUMER, "slow consumer");
                false
            }
        }
    }

    /// Writes the acks of sends in flight (bounded in time): the client is owed them.
    async fn drain_acks(&mut self) {
        let _ = tokio::time::timeout(SHUTDOWN_ANSWERS_WITHIN, async {
            while let Some(answer) = self.sending.next().await {
                self.pending.push(answer);
            }
        })
        .await;
        if !self.pending.is_empty() {
            self.flush().await;
        }
    }

    fn reply(&mut self, answer: Frame) {
        self.pending.push(frame(answer));
    }

    fn reply_error(&mut self, code: &str, message: String, reference: &str) {
        self.pending.push(error_frame(code, message, reference, ""));
    }

    fn topic_error(&mut self, code: &str, message: String, topic: &str) {
        self.pending.push(error_frame(code, message, "", topic));
    }

    /// A `RATE_LIMITED` refusal of the send `reference` or the subscription to `topic`.
    fn rate_limited(
        &mut self,
        message: String,
        reference: String,
        topic: &str,
        retry_after_ms: u64,
    ) {
        self.reply(Frame::Error(quic::Error {
            code: "RATE_LIMITED".into(),
            message,
            r#ref: reference,
            topic: topic.into(),
            retry_after_ms: Some(retry_after_ms),
        }));
    }

    async fn handle(&mut self, frame: ClientFrame) {
        let Some(frame) = frame.frame else {
            return self.reply_error("BAD_FRAME", "an empty frame".into(), "");
        };
        if !self.confirmed && !replay_safe(&frame) {
            let reference = match &frame {
                client_frame::Frame::Send(send) => send.r#ref.clone(),
                _ => String::new(),
            };
            return self.reply_error(
                "NOT_REPLAY_SAFE",
                "before the handshake is confirmed (0-RTT) only auth, subscribe, unsubscribe, \
                 ping, reads and sends with a client_id are taken"
                    .into(),
                &reference,
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
        match live_socket::sign_in(&self.state, principal, renewing) {
            Ok(ending) => {
                self.principal = Some(principal);
                self.token = Some(token.into());
                self.session_end = Some(ending);
            }
            Err(refused) => {
                self.reply_error("TOO_MANY_SOCKETS", refused, "");
                self.close_now = Some((CLOSE_TOO_MANY_SOCKETS, "too many sockets"));
                return;
            }
        }
        if !renewing {
            live_socket::arrived(&self.state, principal.user);
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
                        // The task finishes its stream between two writes, then ends.
                        let _ = running.stop.send(true);
                        self.stopping.push(running);
                        self.reply(Frame::Unsubscribed(quic::Unsubscribed {
                            topic: unsubscribe.topic,
                        }));
                    }
                    None => self.topic_error(
                        "NOT_SUBSCRIBED",
                        "no such subscription".into(),
                        &unsubscribe.topic,
                    ),
                }
            }
            client_frame::Frame::Send(send) => self.send_message(principal.user, send).await,
            client_frame::Frame::Typing(typing) => {
                let Ok(room) = typing.room_id.parse() else {
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
                    self.pending.push(engine_error_frame(&error, String::new()));
                }
            }
            client_frame::Frame::Request(request) => self.read(request),
            client_frame::Frame::Ping(_) | client_frame::Frame::Auth(_) => {}
        }
    }

    /// Queues a send; its ack (or error) is written when it is durable (or refused).
    async fn send_message(&mut self, user: UserId, send: quic::Send) {
        let reference = send.r#ref;
        if let Some(retry_after_ms) = wait_if_spent(&self.sends) {
            let message = format!(
                "at most {} sends per second",
                self.limits.connection.sends_per_second
            );
            return self.rate_limited(message, reference, "", retry_after_ms);
        }
        let command = match live_socket::send_command(
            &send.room_id,
            send.reply_to.as_deref(),
            &send.attachments,
            send.body,
            send.client_id,
        ) {
            Ok(command) => command,
            Err(field) => {
                let message = match field {
                    BadSendField::Room => "room_id is not a room id",
                    BadSendField::ReplyTo => "reply_to is not a message id",
                    BadSendField::Attachments => "attachments are not media ids",
                };
                return self.reply_error("INVALID_ARGUMENT", message.into(), &reference);
            }
        };
        // Queued now, in the order the client sent: only the wait for the ack is pipelined.
        let acked = match self.state.engine.enqueue(user, command).await {
            Ok(acked) => acked,
            Err(error) => return self.pending.push(engine_error_frame(&error, reference)),
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
            return self.topic_error("ALREADY_SUBSCRIBED", "already subscribed".into(), &topic);
        }
        self.subscriptions.retain(|_, running| !running.over());
        self.stopping.retain(|running| !running.task.is_finished());
        let most = self.limits.connection.max_subscriptions;
        if self.subscriptions.len() + self.stopping.len() >= most {
            let message =
                format!("at most {most} subscriptions (unsubscribed ones until their streams end)");
            return self.topic_error("TOO_MANY_SUBSCRIPTIONS", message, &topic);
        }
        let engine = self.state.engine.clone();
        let feed = match live_socket::topic_scope(&engine, user, &topic).await {
            Ok(Topic::Feed) => Feed::Posts(engine.subscribe_feed(user)),
            Ok(Topic::Scope(scope)) => {
                // Only a resume that will read the log spends the connection's resume budget.
                if from_seq.is_some()
                    && let Some(retry_after_ms) = wait_if_spent(&self.resumes)
                {
                    let message = live_socket::resumes_refused();
                    return self.rate_limited(message, String::new(), &topic, retry_after_ms);
                }
                Feed::Follow {
                    scope,
                    from_seq,
                    signals: match scope {
                        LiveScope::Room { room, .. } => Some(self.state.presence.subscribe(room)),
                        LiveScope::User(_) | LiveScope::Matching(_) => None,
                    },
                    // Subscribed before the follow starts, so nothing after it is missed.
                    notes: matches!(scope, LiveScope::User(_))
                        .then(|| engine.subscribe_notifications(user)),
                }
            }
            Err((code, message)) => return self.topic_error(code, message, &topic),
        };
        let (stop, stopped) = watch::channel(false);
        let ended = Arc::new(AtomicBool::new(false));
        let subscription = Subscription {
            engine,
            connection: self.connection.clone(),
            to_connection: self.to_connection.clone(),
            metrics: self.state.quic_metrics.clone(),
            topic: topic.clone(),
            user,
            max_resume: self.limits.connection.max_resume_events,
            max_scan: self.limits.connection.max_resume_scan_events,
            write_timeout: self.limits.connection.write_timeout,
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
