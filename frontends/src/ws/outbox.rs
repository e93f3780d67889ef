//! A connection's outbound queue as its subscription tasks see it: rendered text frames in a
//! bounded queue that the connection's writer drains in batches. A full queue makes the
//! sender wait (memory stays bounded); it never closes the connection by itself: only a
//! socket that accepts nothing for `ws.write_timeout_ms` does (see `connection.rs`).

use super::metrics::WsMetrics;
use super::protocol::ServerFrame;
use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;

/// Close codes (4000-4999 are the application's).
pub const CLOSE_AUTH_TIMEOUT: u16 = 4001;
pub const CLOSE_IDLE: u16 = 4002;
pub const CLOSE_SLOW_CONSUMER: u16 = 4003;

/// Why a task wants the connection closed: a close code and its reason.
pub(super) type CloseRequest = (u16, String);

/// A frame as JSON text.
pub(super) fn render(frame: &ServerFrame) -> Utf8Bytes {
    serde_json::to_string(frame).unwrap_or_default().into()
}

/// The sending side of one connection's outbound queue; cheap to clone.
#[derive(Clone)]
pub(super) struct Outbox {
    queue: mpsc::Sender<Utf8Bytes>,
    closer: mpsc::Sender<CloseRequest>,
    metrics: WsMetrics,
}

impl Outbox {
    pub fn new(
        queue: mpsc::Sender<Utf8Bytes>,
        closer: mpsc::Sender<CloseRequest>,
        metrics: WsMetrics,
    ) -> Self {
        Self {
            queue,
            closer,
            metrics,
        }
    }

    pub fn metrics(&self) -> &WsMetrics {
        &self.metrics
    }

    /// Queues a rendered frame, waiting while the queue is full; `false` once the connection
    /// is gone.
    pub async fn send(&self, frame: Utf8Bytes) -> bool {
        self.queue.send(frame).await.is_ok()
    }

    pub async fn send_frame(&self, frame: &ServerFrame) -> bool {
        self.send(render(frame)).await
    }

    /// Asks the connection to close as a slow consumer (a live-only topic it fell behind).
    pub fn close_slow(&self) {
        let _ = self
            .closer
            .try_send((CLOSE_SLOW_CONSUMER, "slow consumer".into()));
    }
}
