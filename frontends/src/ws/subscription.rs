//! The tasks behind a connection's subscriptions. A room (or user) subscription reads the
//! events it owes from the log, then follows the hub's live events; when it falls behind the
//! hub (the server was busy, or the client is slow to read) it reads the gap from the log
//! again instead of closing, so a client that reads its frames is never cut because the
//! server lagged. Live events go out as frames rendered once per event and shared by every
//! subscriber ([`LiveEvent::rendered`]); each task writes them to the socket itself, every
//! event that already arrived in one write (see `outbox.rs`), so a live event costs one
//! wake-up of this task per subscriber and nothing else.

use super::outbox::Outbox;
use super::protocol::ServerFrame;
use crate::presence::Signal;
use axum::extract::ws::{Message, Utf8Bytes};
use girok_engine::{Engine, LiveEvent, Topic};
use girok_schemas::{Event, Payload, RoomId, Seq, UserId};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Log events read per step while catching up.
const CATCH_UP_CHUNK: usize = 1000;
/// Most live events written with one flush.
const LIVE_BATCH: usize = 64;

/// What a subscription delivers.
#[derive(Clone, Copy)]
pub(super) enum Scope {
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

    fn me(self) -> UserId {
        match self {
            Scope::Room(_, me) | Scope::User(me) => me,
        }
    }

    /// The topic name every subscriber of this scope shares, and the name of its rendering.
    fn shared_topic(self) -> (String, &'static str) {
        match self {
            Scope::Room(room, _) => (format!("chat:{room}"), "ws:chat"),
            Scope::User(_) => ("notifications".into(), "ws:notifications"),
        }
    }
}

/// One room or user subscription.
pub(super) struct Subscription {
    pub engine: Arc<Engine>,
    /// Set before a final error goes out (the connection may take the topic again).
    pub ended: Arc<std::sync::atomic::AtomicBool>,
    pub signals: Option<broadcast::Receiver<Signal>>,
    /// The topic as the client named it (echoed in every frame).
    pub topic: String,
    pub scope: Scope,
    pub from_seq: Option<Seq>,
    /// Most events of the scope a resume or a catch-up replays.
    pub max_resume: u64,
    /// Most log events (of every scope) a resume or a catch-up reads through.
    pub max_scan: u64,
    pub out: Outbox,
}

/// Whether a subscription goes on after a step.
enum Flow {
    Go,
    End,
}

impl Subscription {
    pub async fn run(mut self) {
        // Subscribe to live events first, then read the head: every event after the head
        // reaches the live receiver, and the log covers the rest up to the head.
        let mut live = self.engine.hub().subscribe(self.scope.topic());
        let head = self.engine.head();
        if let Some(from) = self.from_seq
            && let Some(message) = self.too_old(from, head)
        {
            return self.error("RESUME_TOO_OLD", message).await;
        }
        let subscribed = ServerFrame::Subscribed {
            topic: self.topic.clone(),
            head_seq: head,
        };
        if !self.out.send_frame(&subscribed).await {
            return;
        }
        // The next seq this subscription owes the client (a `fromSeq` past the head counts as
        // the head: nothing replays, live events follow).
        let mut next = self.from_seq.map_or(head, |from| from.min(head)) + 1;
        if let Flow::End = self.catch_up(&mut next, head).await {
            return;
        }
        let shared = self.scope.shared_topic();
        // A topic named otherwise (say, an upper-case room id) cannot share the frame.
        let shared = (shared.0 == self.topic).then_some(shared.1);
        loop {
            let received = tokio::select! {
                received = live.recv() => received,
                signal = next_signal(&mut self.signals) => {
                    if let Some(frame) = signal_frame(&self.topic, signal, self.scope.me())
                        && !self.out.send_frame(&frame).await
                    {
                        return;
                    }
                    continue;
                }
            };
            let flow = match received {
                Ok(event) => {
                    // Whatever else already arrived goes out with it, in one write.
                    let mut frames = Vec::new();
                    let mut flow = self.take_live(&event, &mut next, shared, &mut frames);
                    let mut lagged = false;
                    while matches!(flow, Flow::Go) && frames.len() < LIVE_BATCH {
                        match live.try_recv() {
                            Ok(event) => {
                                flow = self.take_live(&event, &mut next, shared, &mut frames)
                            }
                            Err(broadcast::error::TryRecvError::Lagged(_)) => {
                                lagged = true;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if !frames.is_empty() && !self.out.write(frames).await {
                        return;
                    }
                    match flow {
                        Flow::Go if lagged => self.catch_up_behind(&mut next).await,
                        flow => flow,
                    }
                }
                // Behind the hub: whatever it dropped is in the log.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.catch_up_behind(&mut next).await
                }
                Err(broadcast::error::RecvError::Closed) => Flow::End,
            };
            if let Flow::End = flow {
                return;
            }
        }
    }

    /// Why a resume from `from` is refused, if it is: more of the log to read through than
    /// `max_scan`, or (known from the room's history) more of the room's messages than
    /// `max_resume`. The topic's events are counted exactly while catching up.
    fn too_old(&self, from: Seq, head: Seq) -> Option<String> {
        if head.saturating_sub(from) > self.max_scan {
            return Some(format!(
                "more than {} events in the log since seq {from}: reload the history instead",
                self.max_scan
            ));
        }
        let Scope::Room(room, _) = self.scope else {
            return None;
        };
        let cap = usize::try_from(self.max_resume.saturating_add(1)).unwrap_or(usize::MAX);
        let messages = self.engine.room_messages_after(room, from, cap);
        (messages as u64 > self.max_resume).then(|| {
            format!(
                "more than {} events of this topic since seq {from}: reload the history instead",
                self.max_resume
            )
        })
    }

    /// Reads from the log what the hub dropped for this subscription, up to the head; a
    /// subscription too far behind is closed as a slow consumer.
    async fn catch_up_behind(&self, next: &mut Seq) -> Flow {
        let head = self.engine.head();
        if head.saturating_sub(*next) > self.max_scan {
            self.out.close_slow();
            return Flow::End;
        }
        self.out.metrics().catch_ups.inc();
        self.catch_up(next, head).await
    }

    /// Delivers every event of the scope from `next` up to `head` from the log, a chunk to
    /// one write; more than `max_resume` of them end the subscription with `RESUME_TOO_OLD`.
    async fn catch_up(&self, next: &mut Seq, head: Seq) -> Flow {
        let mut replayed = 0u64;
        while *next <= head {
            let events = match self.engine.events(*next, CATCH_UP_CHUNK).await {
                Ok(events) if !events.is_empty() => events,
                Ok(_) => break,
                Err(error) => {
                    self.error(error.code(), error.to_string()).await;
                    return Flow::End;
                }
            };
            let mut frames = Vec::new();
            let mut flow = Flow::Go;
            for event in events.iter().take_while(|e| e.seq <= head) {
                *next = event.seq + 1;
                if self.scope.matches(event) {
                    replayed += 1;
                    if replayed > self.max_resume {
                        let message = format!(
                            "more than {} events of this topic to replay: reload the history \
                             and subscribe again",
                            self.max_resume
                        );
                        self.error("RESUME_TOO_OLD", message).await;
                        return Flow::End;
                    }
                    flow = self.take(event, event_frame(&self.topic, event), &mut frames);
                    if let Flow::End = flow {
                        break;
                    }
                }
            }
            if !frames.is_empty() && !self.out.write(frames).await {
                return Flow::End;
            }
            if matches!(flow, Flow::End) || events.last().is_some_and(|e| e.seq >= head) {
                return flow;
            }
        }
        Flow::Go
    }

    /// Takes a live event into `frames` (once: an event before `next` was delivered from the
    /// log already).
    fn take_live(
        &self,
        event: &LiveEvent,
        next: &mut Seq,
        shared: Option<&'static str>,
        frames: &mut Vec<Message>,
    ) -> Flow {
        if event.seq < *next {
            return Flow::Go;
        }
        *next = event.seq + 1;
        if !self.scope.matches(event) {
            return Flow::Go;
        }
        let frame = match shared {
            Some(format) => event.rendered(format, |e| event_frame(&self.topic, e)),
            None => event_frame(&self.topic, event),
        };
        self.take(event, frame, frames)
    }

    /// Adds the frame of an event of the scope to `frames`; the subscription ends after the
    /// member's own leaving.
    fn take(&self, event: &Event, frame: Utf8Bytes, frames: &mut Vec<Message>) -> Flow {
        frames.push(Message::Text(frame));
        if self.scope.ends_with(event) {
            Flow::End
        } else {
            Flow::Go
        }
    }

    /// Sends a final error: the subscription ends after it.
    async fn error(&self, code: &'static str, message: String) {
        self.ended.store(true, std::sync::atomic::Ordering::Release);
        let frame = ServerFrame::Error {
            code,
            message,
            reference: None,
            topic: Some(self.topic.clone()),
            retry_after_ms: None,
        };
        self.out.send_frame(&frame).await;
    }
}

/// An `event` frame.
fn event_frame(topic: &str, event: &Event) -> Utf8Bytes {
    super::outbox::render(&ServerFrame::Event {
        topic: topic.to_owned(),
        seq: event.seq,
        event: event.to_json(),
    })
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
        Signal::Typing { user, .. } | Signal::Presence { user, .. } if user == me => None,
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

/// Sends a frame for each value of a live-only topic (`frame` makes it; `None` skips the
/// value), until the channel closes or the connection is gone; falling behind the channel
/// closes the connection as a slow consumer (the client re-reads and subscribes again).
async fn push_live<T: Clone, F: Future<Output = Option<ServerFrame>>>(
    mut live: broadcast::Receiver<T>,
    out: Outbox,
    frame: impl Fn(T) -> F,
) {
    loop {
        let value = match live.recv().await {
            Ok(value) => value,
            Err(broadcast::error::RecvError::Lagged(_)) => return out.close_slow(),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Some(frame) = frame(value).await
            && !out.send_frame(&frame).await
        {
            return;
        }
    }
}

/// The `feed` topic: new posts by the user and everyone they follow, as `post` frames.
pub(super) async fn run_feed(engine: Arc<Engine>, user: UserId, out: Outbox) {
    let live = engine.subscribe_feed(user);
    let subscribed = ServerFrame::Subscribed {
        topic: "feed".into(),
        head_seq: engine.head(),
    };
    if !out.send_frame(&subscribed).await {
        return;
    }
    push_live(live, out, |post| {
        let engine = engine.clone();
        async move {
            let found = match engine.pushed_post(user, post.seq).await {
                Ok(found) => found,
                Err(error) => {
                    tracing::error!(%error, seq = post.seq, "feed push cannot read the post");
                    None
                }
            };
            found.map(|post| ServerFrame::Post {
                topic: "feed".into(),
                seq: post.seq,
                post: crate::shapes::post_json(&post),
            })
        }
    })
    .await
}

/// Feed notifications from `live`, as `notification` frames of the `notifications` topic.
pub(super) async fn run_notifications(
    engine: Arc<Engine>,
    live: broadcast::Receiver<girok_engine::views::NotificationRef>,
    out: Outbox,
) {
    push_live(live, out, |note| {
        let engine = engine.clone();
        async move {
            match engine.resolve_notification(note).await {
                Ok(resolved) => Some(ServerFrame::Notification {
                    topic: "notifications".into(),
                    seq: resolved.seq,
                    notification: crate::shapes::notification_json(&resolved),
                }),
                Err(error) => {
                    tracing::error!(%error, seq = note.seq, "notification push cannot resolve");
                    None
                }
            }
        }
    })
    .await
}
