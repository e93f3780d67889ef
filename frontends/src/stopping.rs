//! Shutdown as long-lived requests see it. When girok starts to stop, long polls answer at
//! once and every WebSocket (`/ws` and `/graphql/ws`) sends a close frame (1001, going away)
//! and ends; the server then waits a moment for the sockets to finish before it exits, since
//! upgraded sockets are not among the HTTP connections a graceful shutdown waits for.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Close code of a socket ended by shutdown.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Whether girok is stopping, and how many sockets are still open; cheap to clone.
#[derive(Clone)]
pub struct Stopping {
    stopping: Arc<watch::Sender<bool>>,
    open_sockets: Arc<watch::Sender<usize>>,
}

impl Default for Stopping {
    fn default() -> Self {
        Self {
            stopping: Arc::new(watch::Sender::new(false)),
            open_sockets: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl Stopping {
    /// Starts the shutdown: every watcher wakes.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// A watch that [`Stopping::stopped`] waits on (take it once per connection).
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Resolves once the shutdown has started.
    pub async fn stopped(watch: &mut watch::Receiver<bool>) {
        if watch.wait_for(|stopping| *stopping).await.is_err() {
            // The sender lives as long as any clone of `Stopping`: never stopping.
            std::future::pending::<()>().await;
        }
    }

    /// Counts a socket as open until the guard is dropped.
    pub fn socket_opened(&self) -> OpenSocket {
        self.open_sockets.send_modify(|open| *open += 1);
        OpenSocket(self.open_sockets.clone())
    }

    /// Waits until every socket has closed, at most `within`.
    pub async fn sockets_closed(&self, within: Duration) {
        let mut open = self.open_sockets.subscribe();
        let _ = tokio::time::timeout(within, open.wait_for(|open| *open == 0)).await;
    }
}

/// An open socket, counted until dropped.
pub struct OpenSocket(Arc<watch::Sender<usize>>);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.send_modify(|open| *open = open.saturating_sub(1));
    }
}
