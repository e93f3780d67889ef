//! A girok/1 subscription: a task that opens its own unidirectional stream, says `subscribed`
//! on it, then writes the topic's events there, so one busy room never holds back another
//! (each stream has its own flow control). Rooms and a user's memberships follow their scope
//! through the engine's live-delivery API ([`girok_engine::Follow`]), as the WebSocket's do: a
//! resume from the log, live events after, a catch-up from the log when the task falls behind
//! the hub; a room's event frame is encoded once per event and the same bytes go to every
//! QUIC subscriber ([`LiveEvent::rendered`]). Matching events are reduced to what they say to
//! the subscriber (`live_items.rs`), and `feed` and the notifications of `notifications` are
//! live-only read-model items. A stream that takes nothing for `ws.write_timeout_ms` closes
//! the connection as a slow consumer at once (the connection, not the stream: a write cut
//! short never reaches the client as half a frame).

use super::CLOSE_SLOW_CONSUMER;
use super::frames::{error_frame, frame};
use super::link::{Link, Outgoing};
use super::metrics::QuicMetrics;
use crate::live_socket::next_signal;
use crate::presence::Signal;
use bytes::Bytes;
use futures::FutureExt;
use girok_engine::views::{NotificationRef, PostRef};
use girok_engine::{Engine, FollowEnd, FollowOptions, LiveEvent, LiveScope, OnLag, Start};
use girok_schemas::quic::{self, server_frame::Frame};
use girok_schemas::{Seq, UserId};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// Most live events written with one call.
const LIVE_BATCH: usize = 64;

/// The name of the shared rendering of an event frame.
const RENDERING: &str = "quic:event";

/// What a subscription follows.
pub(super) enum Feed {
    /// Events of a scope (rooms, memberships, matching); with the room's typing and presence.
    Follow {
        scope: LiveScope,
        from_seq: Option<Seq>,
        signals: Option<broadcast::Receiver<Signal>>,
        /// The `notifications` topic: the user's feed notifications too.
        notes: Option<broadcast::Receiver<NotificationRef>>,
    },
    /// New posts of the user and everyone they follow.
    Posts(broadcast::Receiver<PostRef>),
}

/// One subscription's task.
pub(super) struct Subscription<L: Link> {
    pub engine: Arc<Engine>,
    pub connection: L,
    /// Frames for the control stream (said before the subscription's stream exists).
    pub to_connection: mpsc::Sender<Bytes>,
    pub metrics: QuicMetrics,
    pub topic: String,
    pub user: UserId,
    pub max_resume: u64,
    pub max_scan: u64,
    pub write_timeout: Duration,
    /// Becomes true when the client unsubscribes: the stream ends between two writes.
    pub stop: watch::Receiver<bool>,
    /// Set once the subscription is over (the client may subscribe to the topic again).
    pub ended: Arc<AtomicBool>,
}

/// An event frame's bytes.
fn event_frame(event: &girok_schemas::Event) -> Bytes {
    frame(Frame::Event(quic::Event {
        seq: event.seq,
        envelope: Some(girok_schemas::envelope_of(event)),
    }))
}

/// An item frame's bytes.
fn item_frame(kind: &str, seq: Seq, json: &impl serde::Serialize) -> Bytes {
    frame(Frame::Item(quic::Item {
        kind: kind.into(),
        seq,
        json: serde_json::to_vec(json).unwrap_or_default().into(),
    }))
}

impl<L: Link> Subscription<L> {
    pub async fn run(self, feed: Feed) {
        if let Some(mut stream) = self.open_and_follow(feed).await {
            stream.finish();
            self.ended.store(true, Ordering::Release);
            // Wait (a little) for the client to take the stream's end.
            let _ = tokio::time::timeout(self.write_timeout, stream.stopped()).await;
        }
        self.ended.store(true, Ordering::Release);
    }

    /// Follows the feed on a stream of its own until it ends; the stream, to finish.
    async fn open_and_follow(&self, feed: Feed) -> Option<L::Send> {
        let (follow, head) = match &feed {
            Feed::Follow {
                scope, from_seq, ..
            } => {
                let options = FollowOptions {
                    start: from_seq.map_or(Start::Head, Start::After),
                    max_resume: self.max_resume,
                    max_scan: self.max_scan,
                    on_lag: OnLag::CatchUp,
                };
                match self.engine.follow(*scope, options).await {
                    Ok(follow) => {
                        let head = follow.head();
                        (Some(follow), head)
                    }
                    Err(end) => {
                        // Said on the control stream: there is no stream yet.
                        if let Some(frame) = self.last_words(end) {
                            self.tell(frame).await;
                        }
                        return None;
                    }
                }
            }
            Feed::Posts(_) => (None, self.engine.head()),
        };
        let mut stream = self.open().await?;
        let subscribed = frame(Frame::Subscribed(quic::Subscribed {
            topic: self.topic.clone(),
            head_seq: head,
        }));
        if !self.write(&mut stream, vec![subscribed]).await {
            return None;
        }
        let last_words = match (follow, feed) {
            (
                Some(follow),
                Feed::Follow {
                    scope,
                    signals,
                    notes,
                    ..
                },
            ) => {
                self.follow(&mut stream, follow, scope, signals, notes)
                    .await?
            }
            (_, Feed::Posts(live)) => self.posts(&mut stream, live).await?,
            (None, Feed::Follow { .. }) => None,
        };
        if let Some(last_words) = last_words
            && !self.write(&mut stream, vec![last_words]).await
        {
            return None;
        }
        Some(stream)
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// A frame for the control stream (none once the client unsubscribed: it asked for
    /// nothing more of this topic).
    async fn tell(&self, frame: Bytes) {
        if !self.stopped() {
            let _ = self.to_connection.send(frame).await;
        }
    }

    /// Opens the subscription's stream (waiting while the client allows no more, until it
    /// unsubscribes or the write timeout passes).
    async fn open(&self) -> Option<L::Send> {
        let mut stop = self.stop.clone();
        let opened = tokio::select! {
            opened = tokio::time::timeout(self.write_timeout, self.connection.open_uni()) => opened,
            () = stopped(&mut stop) => return None,
        };
        match opened {
            Ok(opened) => opened,
            Err(_) => {
                let message = "the client accepts no more streams: unsubscribe first".into();
                self.tell(error_frame("TOO_MANY_STREAMS", message, "", &self.topic))
                    .await;
                None
            }
        }
    }

    /// Writes frames; `false` once the stream or the connection is gone, or the client
    /// unsubscribed while the write waited for it (then the stream is reset: the client asked
    /// for no more of it). A stream that takes nothing for the write timeout closes the
    /// connection as a slow consumer.
    async fn write(&self, stream: &mut L::Send, mut frames: Vec<Bytes>) -> bool {
        // Most writes go straight into the stream's send buffer: no timer, no watch for them.
        if let Some(written) = stream.write_all_chunks(&mut frames).now_or_never() {
            return written;
        }
        // The stream is full (what the first try wrote is gone from `frames`): wait for it.
        let mut stop = self.stop.clone();
        let written = tokio::select! {
            written = tokio::time::timeout(self.write_timeout, stream.write_all_chunks(&mut frames)) => written,
            () = stopped(&mut stop) => {
                stream.reset();
                return false;
            }
        };
        match written {
            Ok(written) => written,
            Err(_) => {
                self.slow_consumer();
                false
            }
        }
    }

    /// Closes the connection as a slow consumer (its streams end with it).
    fn slow_consumer(&self) {
        self.metrics.slow_consumer_closes.inc();
        self.connection.close(CLOSE_SLOW_CONSUMER, "slow consumer");
    }

    /// Events of a scope until the follow ends: `Some(last words)` when the stream should
    /// be finished (after them, if any), `None` when the connection is gone.
    async fn follow(
        &self,
        stream: &mut L::Send,
        mut follow: girok_engine::Follow,
        scope: LiveScope,
        mut signals: Option<broadcast::Receiver<Signal>>,
        mut notes: Option<broadcast::Receiver<NotificationRef>>,
    ) -> Option<Option<Bytes>> {
        let me = self.user;
        let mut events: Vec<Arc<LiveEvent>> = Vec::new();
        let mut stop = self.stop.clone();
        let mut frames = Vec::new();
        loop {
            // A replay (or a catch-up) reads on without waiting: look for an unsubscribe.
            if self.stopped() {
                return Some(None);
            }
            events.clear();
            let next = if follow.replaying() {
                follow.next(LIVE_BATCH, &mut events).await
            } else {
                tokio::select! {
                    next = follow.next(LIVE_BATCH, &mut events) => next,
                    signal = next_signal(&mut signals) => {
                        frames.extend(signal_frame(signal, me));
                        Ok(())
                    }
                    note = next_note(&mut notes) => {
                        let Some(note) = note else {
                            // Fell behind the live notifications: the client re-reads them.
                            self.slow_consumer();
                            return None;
                        };
                        frames.extend(notification_item(&self.engine, note).await);
                        Ok(())
                    }
                    () = stopped(&mut stop) => return Some(None),
                }
            };
            if let Err(end) = next {
                return Some(self.last_words(end));
            }
            for event in &events {
                match scope {
                    LiveScope::Matching(me) => {
                        if let Some(json) =
                            crate::live_items::matching_item(&self.engine, event, me).await
                        {
                            frames.push(item_frame("matching", event.seq, &json));
                        }
                    }
                    _ => frames.push(event.rendered(RENDERING, event_frame)),
                }
            }
            if !frames.is_empty() && !self.write(stream, std::mem::take(&mut frames)).await {
                return None;
            }
        }
    }

    /// The `feed` topic's posts until the client unsubscribes (`Some(None)`), or `None` when
    /// the connection is gone.
    async fn posts(
        &self,
        stream: &mut L::Send,
        mut live: broadcast::Receiver<PostRef>,
    ) -> Option<Option<Bytes>> {
        let mut stop = self.stop.clone();
        loop {
            let post = tokio::select! {
                post = live.recv() => post,
                () = stopped(&mut stop) => return Some(None),
            };
            let post = match post {
                Ok(post) => post,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.slow_consumer();
                    return None;
                }
                Err(broadcast::error::RecvError::Closed) => return Some(None),
            };
            let Some(post) =
                crate::live_items::pushed_post(&self.engine, self.user, post.seq).await
            else {
                continue;
            };
            let item = item_frame("post", post.post_seq(), &post);
            if !self.write(stream, vec![item]).await {
                return None;
            }
        }
    }

    /// The frame that says why a follow ended, if one should: none when the member left or
    /// the server stops; a too-far-behind follower's connection closes as a slow consumer.
    fn last_words(&self, end: FollowEnd) -> Option<Bytes> {
        let (code, message) = match end {
            FollowEnd::Left | FollowEnd::Closed => return None,
            FollowEnd::TooFarBehind | FollowEnd::Lagged(_) => {
                self.slow_consumer();
                return None;
            }
            FollowEnd::ResumeTooOld(message) => ("RESUME_TOO_OLD", message),
            FollowEnd::Failed(error) => (error.code(), error.to_string()),
        };
        Some(error_frame(code, message, "", &self.topic))
    }
}

/// Resolves once the client unsubscribed.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// A notification item's frame, if it resolves.
async fn notification_item(engine: &Engine, note: NotificationRef) -> Option<Bytes> {
    let (seq, notification) = crate::live_items::pushed_notification(engine, note).await?;
    Some(item_frame("notification", seq, &notification))
}

/// The next live notification; `None` when the subscription fell behind them; never when it
/// has none.
async fn next_note(
    notes: &mut Option<broadcast::Receiver<NotificationRef>>,
) -> Option<NotificationRef> {
    loop {
        let Some(rx) = notes.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Ok(note) => return Some(note),
            Err(broadcast::error::RecvError::Lagged(_)) => return None,
            Err(broadcast::error::RecvError::Closed) => *notes = None,
        }
    }
}

/// A signal's frame for subscriber `me`; `None` for their own.
fn signal_frame(signal: Signal, me: UserId) -> Option<Bytes> {
    match signal {
        Signal::Typing { user, .. } | Signal::Presence { user, .. } if user == me => None,
        Signal::Typing { user, .. } => Some(frame(Frame::Typing(quic::TypingIndicator {
            user_id: user.to_string(),
        }))),
        Signal::Presence { user, online } => Some(frame(Frame::Presence(quic::Presence {
            user_id: user.to_string(),
            online,
        }))),
    }
}
