//! A girok/1 subscription: a task that opens its own unidirectional stream, says `subscribed`
//! on it, then writes the topic's events there, so one busy room never holds back another
//! (each stream has its own flow control). Rooms, a user's memberships and matching follow
//! their scope through the engine's live-delivery API ([`girok_engine::Follow`]), as the
//! WebSocket's do: a resume from the log, live events after, a catch-up from the log when the
//! task falls behind the hub; an event frame is encoded once per event and the same bytes go
//! to every QUIC subscriber ([`LiveEvent::rendered`]). `feed` and the notifications of
//! `notifications` are live-only read-model items. A stream that takes nothing for
//! `ws.write_timeout_ms` closes the connection as a slow consumer.

use super::frames::encode;
use super::link::{Link, Outgoing};
use super::{CLOSE_SLOW_CONSUMER, ToConnection};
use crate::presence::Signal;
use bytes::Bytes;
use girok_engine::views::NotificationRef;
use girok_engine::{Engine, FollowEnd, FollowOptions, LiveEvent, LiveScope, OnLag, Start};
use girok_schemas::quic::{self, server_frame::Frame};
use girok_schemas::{Seq, UserId};
use std::sync::Arc;
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
    Posts(broadcast::Receiver<girok_engine::views::PostRef>),
}

/// One subscription's task.
pub(super) struct Subscription<L: Link> {
    pub engine: Arc<Engine>,
    pub connection: L,
    pub to_connection: mpsc::Sender<ToConnection>,
    pub topic: String,
    pub user: UserId,
    pub max_resume: u64,
    pub max_scan: u64,
    pub write_timeout: Duration,
    /// Becomes true when the client unsubscribes: the stream ends between two writes.
    pub stop: watch::Receiver<bool>,
    /// Set before a final error goes out (the client may subscribe to the topic again).
    pub ended: Arc<std::sync::atomic::AtomicBool>,
}

/// An event frame's bytes.
pub(super) fn event_frame(event: &girok_schemas::Event) -> Bytes {
    frame(Frame::Event(quic::Event {
        seq: event.seq,
        envelope: Some(girok_schemas::envelope_of(event)),
    }))
}

pub(super) fn frame(frame: Frame) -> Bytes {
    encode(&quic::ServerFrame { frame: Some(frame) })
}

pub(super) fn error_frame(code: &str, message: String, topic: &str) -> Bytes {
    frame(Frame::Error(quic::Error {
        code: code.into(),
        message,
        topic: topic.into(),
        ..Default::default()
    }))
}

impl<L: Link> Subscription<L> {
    pub async fn run(self, feed: Feed) {
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
                    // Said on the control stream: there is no stream yet.
                    Err(end) => return self.refused(end).await,
                }
            }
            Feed::Posts(_) => (None, self.engine.head()),
        };
        let Some(mut stream) = self.open().await else {
            return;
        };
        let subscribed = frame(Frame::Subscribed(quic::Subscribed {
            topic: self.topic.clone(),
            head_seq: head,
        }));
        if !self.write(&mut stream, vec![subscribed]).await {
            return;
        }
        let ended = match (follow, feed) {
            (Some(follow), Feed::Follow { signals, notes, .. }) => {
                self.follow(&mut stream, follow, signals, notes).await
            }
            (_, Feed::Posts(live)) => self.posts(&mut stream, live).await,
            (None, Feed::Follow { .. }) => None,
        };
        if let Some(last_words) = ended {
            self.write(&mut stream, vec![last_words]).await;
        }
        stream.finish();
        // Wait (a little) for the client to take the stream's end.
        let _ = tokio::time::timeout(self.write_timeout, stream.stopped()).await;
    }

    /// Opens the subscription's stream (waiting while the client allows no more).
    async fn open(&self) -> Option<L::Send> {
        match tokio::time::timeout(self.write_timeout, self.connection.open_uni()).await {
            Ok(opened) => opened,
            Err(_) => {
                self.final_error(
                    "TOO_MANY_STREAMS",
                    "the client accepts no more streams: unsubscribe first".into(),
                )
                .await;
                None
            }
        }
    }

    /// Writes frames; `false` once the stream or the connection is gone (a stream that takes
    /// nothing for the write timeout closes the connection as a slow consumer).
    async fn write(&self, stream: &mut L::Send, mut frames: Vec<Bytes>) -> bool {
        match tokio::time::timeout(self.write_timeout, stream.write_all_chunks(&mut frames)).await {
            Ok(written) => written,
            Err(_) => {
                let _ = self
                    .to_connection
                    .try_send(ToConnection::Close(CLOSE_SLOW_CONSUMER, "slow consumer"));
                false
            }
        }
    }

    /// Events of a scope until the follow ends; the frame that says why, if one should.
    async fn follow(
        &self,
        stream: &mut L::Send,
        mut follow: girok_engine::Follow,
        mut signals: Option<broadcast::Receiver<Signal>>,
        mut notes: Option<broadcast::Receiver<NotificationRef>>,
    ) -> Option<Bytes> {
        let me = self.user;
        let mut events: Vec<Arc<LiveEvent>> = Vec::new();
        let mut stop = self.stop.clone();
        loop {
            events.clear();
            let mut frames = Vec::new();
            let next = if follow.replaying() {
                follow.next(LIVE_BATCH, &mut events).await
            } else {
                tokio::select! {
                    next = follow.next(LIVE_BATCH, &mut events) => next,
                    signal = next_signal(&mut signals) => {
                        if let Some(frame) = signal_frame(signal, me) {
                            frames.push(frame);
                        }
                        Ok(())
                    }
                    note = next_note(&mut notes) => {
                        match note {
                            Some(note) => frames.extend(notification_item(&self.engine, note).await),
                            // Fell behind the live notifications: the client re-reads them.
                            None => {
                                let _ = self.to_connection.try_send(ToConnection::Close(CLOSE_SLOW_CONSUMER, "slow consumer"));
                                return None;
                            }
                        }
                        Ok(())
                    }
                    () = stopped(&mut stop) => return None,
                }
            };
            if let Err(end) = next {
                return self.last_words(end);
            }
            frames.extend(
                events
                    .iter()
                    .map(|event| event.rendered(RENDERING, event_frame)),
            );
            if !frames.is_empty() && !self.write(stream, frames).await {
                return None;
            }
        }
    }

    /// The `feed` topic's posts until the client unsubscribes.
    async fn posts(
        &self,
        stream: &mut L::Send,
        mut live: broadcast::Receiver<girok_engine::views::PostRef>,
    ) -> Option<Bytes> {
        let mut stop = self.stop.clone();
        loop {
            let post = tokio::select! {
                post = live.recv() => post,
                () = stopped(&mut stop) => return None,
            };
            let post = match post {
                Ok(post) => post,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = self
                        .to_connection
                        .try_send(ToConnection::Close(CLOSE_SLOW_CONSUMER, "slow consumer"));
                    return None;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            let Some(post) =
                crate::live_items::pushed_post(&self.engine, self.user, post.seq).await
            else {
                continue;
            };
            let item = frame(Frame::Item(quic::Item {
                kind: "post".into(),
                seq: post.post_seq(),
                json: serde_json::to_vec(&post).unwrap_or_default().into(),
            }));
            if !self.write(stream, vec![item]).await {
                return None;
            }
        }
    }

    /// The follow ended: quietly when the member left or the server stops, as a slow
    /// consumer when too far behind, else with a final error frame.
    fn last_words(&self, end: FollowEnd) -> Option<Bytes> {
        let (code, message) = match end {
            FollowEnd::Left | FollowEnd::Closed => return None,
            FollowEnd::TooFarBehind | FollowEnd::Lagged(_) => {
                let _ = self
                    .to_connection
                    .try_send(ToConnection::Close(CLOSE_SLOW_CONSUMER, "slow consumer"));
                return None;
            }
            FollowEnd::ResumeTooOld(message) => ("RESUME_TOO_OLD", message),
            FollowEnd::Failed(error) => (error.code(), error.to_string()),
        };
        self.ended.store(true, std::sync::atomic::Ordering::Release);
        Some(error_frame(code, message, &self.topic))
    }

    /// A follow that could not start: said on the control stream.
    async fn refused(&self, end: FollowEnd) {
        if let Some(frame) = self.last_words(end) {
            let _ = self.to_connection.send(ToConnection::Frame(frame)).await;
        }
    }

    async fn final_error(&self, code: &str, message: String) {
        self.ended.store(true, std::sync::atomic::Ordering::Release);
        let frame = error_frame(code, message, &self.topic);
        let _ = self.to_connection.send(ToConnection::Frame(frame)).await;
    }
}

/// Resolves once the client unsubscribed.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// A notification item's frame, if it resolves.
async fn notification_item(engine: &Engine, note: NotificationRef) -> Option<Bytes> {
    let (seq, notification) = crate::live_items::pushed_notification(engine, note).await?;
    Some(frame(Frame::Item(quic::Item {
        kind: "notification".into(),
        seq,
        json: serde_json::to_vec(&notification).unwrap_or_default().into(),
    })))
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

/// The next ephemeral signal, or never when the subscription has none.
async fn next_signal(signals: &mut Option<broadcast::Receiver<Signal>>) -> Signal {
    loop {
        let Some(rx) = signals.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Ok(signal) => return signal,
            // Lost typing indicators do no harm.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => *signals = None,
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
