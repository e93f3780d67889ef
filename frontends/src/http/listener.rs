//! A TCP listener with a ceiling on open connections (`server.max_connections`, fitted under
//! the descriptor limit at start). At the ceiling a new connection is refused cleanly: it gets
//! `503 TOO_MANY_CONNECTIONS` with `Retry-After` and is closed, instead of taking memory and a
//! file descriptor for as long as it likes (or hanging in the kernel's backlog). Accepted
//! sockets get TCP_NODELAY.

use axum::serve::Listener;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Refusals being written at once; past them a refused connection is just closed.
pub const REFUSALS_AT_ONCE: usize = 64;
/// Most of a refused request's head read before the answer.
const REFUSAL_READ_BYTES: usize = 8192;
/// Longest a refusal may take to read the request's head and write the answer.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);
/// What a connection over the ceiling reads before it is closed.
static REFUSAL: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let body = r#"{"error":{"code":"TOO_MANY_CONNECTIONS","message":"server.max_connections reached; retry later"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// The listener's gauges and counters.
#[derive(Clone, Default)]
pub struct ListenerMetrics {
    /// Open connections (`girok_http_connections`).
    pub open: Gauge,
    /// Connections refused at the ceiling (`girok_http_connections_refused`).
    pub refused: Counter,
}

/// Accepts at most `max` connections at a time.
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    metrics: ListenerMetrics,
}

impl LimitedListener {
    pub fn new(inner: TcpListener, max: usize, metrics: ListenerMetrics) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max.max(1))),
            refusals: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
            metrics,
        }
    }

    /// Answers a connection over the ceiling and closes it, off the accept loop.
    fn refuse(&self, mut stream: TcpStream) {
        self.metrics.refused.inc();
        let Ok(turn) = self.refusals.clone().try_acquire_owned() else {
            return; // a flood: dropping the socket closes it
        };
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
                // The request's head first: an HTTP client takes an answer to a request it is
                // still sending as a broken connection.
                let mut head = Vec::with_capacity(1024);
                let mut chunk = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < REFUSAL_READ_BYTES
                {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = stream.write_all(&REFUSAL).await;
                let _ = stream.shutdown().await;
                // Read what the client still sends (a request body) until it closes: closing
                // with unread data would reset the connection and lose the answer.
                while matches!(stream.read(&mut chunk).await, Ok(n) if n > 0) {}
            })
            .await;
            drop(turn);
        });
    }
}

impl Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = Listener::accept(&mut self.inner).await;
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                self.refuse(stream);
                continue;
            };
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            self.metrics.open.inc();
            let open = self.metrics.open.clone();
            return (
                LimitedStream {
                    stream,
                    _permit: permit,
                    open,
                },
                addr,
            );
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection holding one of the listener's permits until it closes.
pub struct LimitedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for LimitedStream {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The client's address, for handlers (`ConnectInfo<PeerAddr>`).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, LimitedListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, LimitedListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}
