//! A connection's socket as its writers see it: the connection loop (answers, pings) and each
//! subscription task write their frames straight to the socket, several frames to one flush,
//! one writer at a time. No queue and no hop through another task sits between an event and
//! the socket, so a live event costs one task wake-up per subscriber. A full socket makes the
//! writer wait (the kernel's buffer is the only queue; a subscription that waits falls behind
//! the hub and catches up from the log later); a socket that accepts nothing for
//! `ws.write_timeout_ms` closes the connection as a slow consumer, and nothing else does.

use super::metrics::WsMetrics;
use super::protocol::ServerFrame;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures::stream::SplitSink;
use futures::{FutureExt, SinkExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};

/// Close codes (4000-4999 are the application's).
pub const CLOSE_AUTH_TIMEOUT: u16 = 4001;
pub const CLOSE_IDLE: u16 = 4002;
pub const CLOSE_SLOW_CONSUMER: u16 = 4003;
/// The connection's session was revoked (logout, a password change, ...).
pub const CLOSE_SESSION_ENDED: u16 = 4004;
/// The access token the connection signed in with expired, and no fresh one came.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4005;
/// The user has `ws.max_sockets_per_user` live connections already.
pub const CLOSE_TOO_MANY_SOCKETS: u16 = 4006;

/// Longest a close frame (and the client's answer to it) may take.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A close frame with `code` and `reason`.
pub fn close_frame(code: u16, reason: impl Into<Utf8Bytes>) -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Why a task wants the connection closed: a close code and its reason.
pub(super) type CloseRequest = (u16, String);

/// A frame as JSON text.
pub(super) fn render(frame: &ServerFrame) -> Utf8Bytes {
    serde_json::to_string(frame).unwrap_or_default().into()
}

/// The writing half of one connection's socket; cheap to clone.
#[derive(Clone)]
pub(super) struct Outbox {
    sink: Arc<Mutex<SplitSink<WebSocket, Message>>>,
    closer: mpsc::Sender<CloseRequest>,
    metrics: WsMetrics,
    write_timeout: Duration,
}

impl Outbox {
    pub fn new(
        sink: SplitSink<WebSocket, Message>,
        closer: mpsc::Sender<CloseRequest>,
        metrics: WsMetrics,
        write_timeout: Duration,
    ) -> Self {
        Self {
            sink: Arc::new(Mutex::new(sink)),
            closer,
            metrics,
            write_timeout,
        }
    }

    pub fn metrics(&self) -> &WsMetrics {
        &self.metrics
    }

    /// Writes `frames` in order with one flush, waiting while another writer has the socket
    /// or the socket is full; `false` once the connection is gone, or when the socket took
    /// nothing for `ws.write_timeout_ms` (then the connection is asked to close as a slow
    /// consumer).
    pub async fn write(&self, frames: impl IntoIterator<Item = Message>) -> bool {
        // Waiting for another writer is not the client's fault (that writer's own steps are
        // timed); only a step of this write that the socket does not take is.
        let mut sink = self.sink.lock().await;
        for frame in frames {
            if !self.timed(sink.feed(frame)).await {
                return false;
            }
        }
        self.timed(sink.flush()).await
    }

    /// One write step, timed by `ws.write_timeout_ms` only when the socket does not take it at
    /// once (the usual step, a frame into the buffer or a flush the kernel accepts, arms no
    /// timer); a step the socket took nothing of for the whole timeout means the client is not
    /// reading, and the connection is asked to close.
    async fn timed<E>(&self, step: impl Future<Output = Result<(), E>>) -> bool {
        let mut step = std::pin::pin!(step);
        if let Some(done) = step.as_mut().now_or_never() {
            return done.is_ok();
        }
        match tokio::time::timeout(self.write_timeout, step).await {
            Ok(done) => done.is_ok(),
            Err(_) => {
                self.close_slow();
                false
            }
        }
    }

    pub async fn send(&self, frame: Utf8Bytes) -> bool {
        self.write([Message::Text(frame)]).await
    }

    pub async fn send_frame(&self, frame: &ServerFrame) -> bool {
        self.send(render(frame)).await
    }

    /// Asks the connection to close as a slow consumer (a live-only topic it fell behind, or
    /// a socket that takes nothing).
    pub fn close_slow(&self) {
        let _ = self
            .closer
            .try_send((CLOSE_SLOW_CONSUMER, "slow consumer".into()));
    }

    /// Sends the close frame, waiting at most `grace`; whether it went out.
    pub async fn close(&self, code: u16, reason: String, grace: Duration) -> bool {
        let frame = close_frame(code, reason);
        let said =
            tokio::time::timeout(grace, async { self.sink.lock().await.send(frame).await }).await;
        matches!(said, Ok(Ok(())))
    }
}
