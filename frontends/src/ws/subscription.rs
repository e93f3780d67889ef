//! The tasks behind a connection's subscriptions. A room (or user) subscription follows its
//! scope through the engine's live-delivery API ([`girok_engine::Follow`]): the events it owes
//! from the log, then the hub's live events; when it falls behind the hub (the server was
//! busy, or the client is slow to read) the follow reads the gap from the log again instead
//! of ending, so a client that reads its frames is never cut because the server lagged. Live
//! events go out as frames rendered once per event and shared by every subscriber
//! ([`LiveEvent::rendered`]); each task writes them to the socket itself, every event that
//! already arrived in one write (see `outbox.rs`), so a live event costs one wake-up of this
//! task per subscriber and nothing else. The `matching` topic is the exception: its events
//! reach one or two users, and each frame names the reader's own partner.

use super::outbox::Outbox;
use super::own_commands::OwnCommands;
use super::protocol::ServerFrame;
use crate::presence::Signal;
use axum::extract::ws::{Message, Utf8Bytes};
use girok_engine::{Engine, FollowEnd, FollowOptions, LiveEvent, LiveScope, OnLag, Start};
use girok_schemas::{Event, Payload, Seq, UserId};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{OnceCell, broadcast};

/// The name under which a message's media objects, read once, are shared by subscribers.
const MEDIA_READ: &str = "ws:media";

/// Most live events written with one flush.
const LIVE_BATCH: usize = 64;

/// The topic name every subscriber of a scope shares, and the name of its rendering.
fn shared_topic(scope: LiveScope) -> (String, &'static str) {
    match scope {
        LiveScope::Room { room, .. } => (format!("chat:{room}"), "ws:chat"),
        LiveScope::User(_) => ("notifications".into(), "ws:notifications"),
        // Each subscriber's frame names their own partner: not shared.
        LiveScope::Matching(_) => ("matching".into(), "ws:matching"),
    }
}

/// Who the subscriber is (their own typing is not echoed to them).
fn subscriber(scope: LiveScope) -> UserId {
    match scope {
        LiveScope::Room { member, .. } => member,
        LiveScope::User(user) | LiveScope::Matching(user) => user,
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
    pub scope: LiveScope,
    pub from_seq: Option<Seq>,
    /// Most events of the scope a resume or a catch-up replays.
    pub max_resume: u64,
    /// Most log events (of every scope) a resume or a catch-up reads through.
    pub max_scan: u64,
    pub out: Outbox,
    /// The connection's own matching commands, whose events its answers already told.
    pub own: Arc<OwnCommands>,
}

impl Subscription {
    pub async fn run(mut self) {
        let options = FollowOptions {
            start: self.from_seq.map_or(Start::Head, Start::After),
            max_resume: self.max_resume,
            max_scan: self.max_scan,
            on_lag: OnLag::CatchUp,
        };
        let mut follow = match self.engine.follow(self.scope, options).await {
            Ok(follow) => follow,
            Err(end) => return self.end(end).await,
        };
        let subscribed = ServerFrame::Subscribed {
            topic: self.topic.clone(),
            head_seq: follow.head(),
        };
        if !self.out.send_frame(&subscribed).await {
            return;
        }
        let shared = shared_topic(self.scope);
        // A topic named otherwise (say, an upper-case room id) cannot share the frame.
        let shared = (shared.0 == self.topic).then_some(shared.1);
        // Reused from step to step: a step allocates nothing for its batch.
        let (mut events, mut frames) = (Vec::new(), Vec::new());
        let mut catch_ups = 0;
        loop {
            events.clear();
            // A read of the log runs to its end; waiting for live events races the signals.
            let next = if follow.replaying() {
                follow.next(LIVE_BATCH, &mut events).await
            } else {
                tokio::select! {
                    next = follow.next(LIVE_BATCH, &mut events) => next,
                    signal = crate::live_socket::next_signal(&mut self.signals) => {
                        if let Some(frame) = signal_frame(&self.topic, signal, subscriber(self.scope))
                            && !self.out.send_frame(&frame).await
                        {
                            return;
                        }
                        continue;
                    }
                }
            };
            self.out
                .metrics()
                .catch_ups
                .inc_by(follow.catch_ups() - catch_ups);
            catch_ups = follow.catch_ups();
            if let Err(end) = next {
                return self.end(end).await;
            }
            // Every event that already arrived goes out in one write.
            if let LiveScope::Matching(me) = self.scope {
                for event in events.iter().filter(|e| !self.own.answered(e, me)) {
                    frames.extend(matching_frame(&self.engine, &self.topic, event, me).await);
                }
            } else {
                for event in &events {
                    frames.push(self.frame(event, shared).await);
                }
            }
            if !frames.is_empty() && !self.out.write(frames.drain(..)).await {
                return;
            }
        }
    }

    /// The `event` frame of a live event: rendered once for every subscriber of the topic
    /// when the topic is named the shared way. A message's attachments go with it as media
    /// objects, read once per event whichever subscribers wake for it at once (the first
    /// read is everyone's).
    async fn frame(&self, event: &LiveEvent, shared: Option<&'static str>) -> Message {
        let media = match &event.payload {
            Payload::MessageSent { attachments, .. } if !attachments.is_empty() => {
                let read = event.rendered(MEDIA_READ, |_| Arc::new(OnceCell::new()));
                read.get_or_init(|| async { self.attachments(event, attachments).await })
                    .await
                    .clone()
            }
            _ => Vec::new(),
        };
        Message::Text(match shared {
            Some(format) => event.rendered(format, |e| event_frame(&self.topic, e, &media)),
            None => event_frame(&self.topic, event, &media),
        })
    }

    /// A message's attachments as media objects (the ready ones: they are the sender's, and
    /// every member of the room may read them).
    async fn attachments(&self, event: &Event, ids: &[girok_schemas::EventId]) -> Vec<Value> {
        let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        match self.engine.media_many(event.actor, ids.clone()).await {
            Ok(found) => ids
                .iter()
                .filter_map(|id| found.get(id))
                .map(crate::dto::media_json)
                .collect(),
            Err(error) => {
                tracing::warn!(%error, seq = event.seq, "a message's media cannot be read");
                Vec::new()
            }
        }
    }

    /// The follow ended: quietly when the member left or the server stops, as a slow consumer
    /// when it fell too far behind, else with a final error frame.
    async fn end(&self, end: FollowEnd) {
        match end {
            FollowEnd::Left | FollowEnd::Closed => {}
            FollowEnd::TooFarBehind | FollowEnd::Lagged(_) => self.out.close_slow(),
            FollowEnd::ResumeTooOld(message) => self.error("RESUME_TOO_OLD", message).await,
            FollowEnd::Failed(error) => self.error(error.code(), error.to_string()).await,
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

/// An `event` frame (with `media`, the attachments' objects, for a message that has some).
fn event_frame(topic: &str, event: &Event, media: &[Value]) -> Utf8Bytes {
    let mut json = event.to_json();
    if !media.is_empty() {
        json["media"] = Value::Array(media.to_vec());
    }
    super::outbox::render(&ServerFrame::Event {
        topic: topic.to_owned(),
        seq: event.seq,
        event: json,
    })
}

/// The frame of a matching event for `me` (`queued`, `matched` naming their partner,
/// `expired`, `dequeued`, `skipped`: what `live_items::matching_item` says, with the topic and
/// the seq); `None` for one that says nothing to them.
async fn matching_frame(
    engine: &Engine,
    topic: &str,
    event: &Event,
    me: UserId,
) -> Option<Message> {
    let mut frame = crate::live_items::matching_item(engine, event, me).await?;
    frame["topic"] = topic.into();
    frame["seq"] = event.seq.into();
    Some(Message::Text(
        serde_json::to_string(&frame).unwrap_or_default().into(),
    ))
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
            let post = crate::live_items::pushed_post(&engine, user, post.seq).await?;
            Some(ServerFrame::Post {
                topic: "feed".into(),
                seq: post.post_seq(),
                post,
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
            let (seq, notification) = crate::live_items::pushed_notification(&engine, note).await?;
            Some(ServerFrame::Notification {
                topic: "notifications".into(),
                seq,
                notification,
            })
        }
    })
    .await
}
