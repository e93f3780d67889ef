//! A TCP listener with ceilings on open connections: all of them (`server.max_connections`,
//! fitted under the descriptor limit at start) and those of one IP address
//! (`server.max_connections_per_ip`). Past a ceiling a new connection is refused cleanly: it
//! gets `503 TOO_MANY_CONNECTIONS` with `Retry-After` and is closed, instead of taking memory
//! and a file descriptor for as long as it likes (or hanging in the kernel's backlog).
//! Accepted sockets get TCP_NODELAY.

use axum::serve::Listener;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
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
/// The answer a connection over a ceiling reads before it is closed.
fn refusal(message: &str) -> Arc<[u8]> {
    let body = serde_json::json!({
        "error": { "code": "TOO_MANY_CONNECTIONS", "message": message }
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
    .into()
}

/// How many connections a listener holds at once.
#[derive(Clone, Copy, Debug)]
pub struct Ceilings {
    /// All of them.
    pub total: usize,
    /// From one IP address; 0: no ceiling of its own.
    pub per_ip: usize,
    /// What sets `total`, as the refusal names it.
    pub total_is: &'static str,
}

/// The listener's gauges and counters.
#[derive(Clone, Default)]
pub struct ListenerMetrics {
    /// Open connections (`girok_http_connections`).
    pub open: Gauge,
    /// Connections refused at the ceiling (`girok_http_connections_refused`).
    pub refused: Counter,
}

/// Accepts connections up to its ceilings.
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    per_ip: usize,
    by_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    refusals: Arc<Semaphore>,
    over_total: Arc<[u8]>,
    over_ip: Arc<[u8]>,
    metrics: ListenerMetrics,
}

impl LimitedListener {
    pub fn new(inner: TcpListener, ceilings: Ceilings, metrics: ListenerMetrics) -> Self {
        let total = ceilings.total.max(1);
        Self {
            inner,
            permits: Arc::new(Semaphore::new(total)),
            per_ip: ceilings.per_ip,
            by_ip: Arc::default(),
            refusals: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
            over_total: refusal(&format!(
                "this listener holds {total} connections at most ({}); retry later",
                ceilings.total_is
            )),
            over_ip: refusal(&format!(
                "{} connections from one address at most (server.max_connections_per_ip); retry later",
                ceilings.per_ip
            )),
            metrics,
        }
    }

    /// A slot for one more connection from `ip`, if its address is under its ceiling.
    fn ip_slot(&self, ip: IpAddr) -> Option<IpSlot> {
        if self.per_ip == 0 {
            return Some(IpSlot { by_ip: None, ip });
        }
        let mut by_ip = self.by_ip.lock();
        let open = by_ip.entry(ip).or_insert(0);
        if *open >= self.per_ip {
            return None;
        }
        *open += 1;
        Some(IpSlot {
            by_ip: Some(self.by_ip.clone()),
            ip,
        })
    }

    /// Answers a connection over a ceiling with `answer` and closes it, off the accept loop.
    fn refuse(&self, mut stream: TcpStream, answer: Arc<[u8]>) {
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
                let _ = stream.write_all(&answer).await;
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
            let Some(ip_slot) = self.ip_slot(address_of_client(addr.ip())) else {
                self.refuse(stream, self.over_ip.clone());
                continue;
            };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                self.refuse(stream, self.over_total.clone());
                continue;
            };
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            self.metrics.open.inc();
            let slot = Slot {
                _permit: permit,
                _ip_slot: ip_slot,
                open: self.metrics.open.clone(),
            };
            return (LimitedStream { stream, slot }, addr);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection holding one of the listener's permits until it closes.
pub struct LimitedStream {
    stream: TcpStream,
    slot: Slot,
}

impl LimitedStream {
    /// Waits until the client has sent something (or closed), then copies the first bytes
    /// into `buf` without taking them from the stream; how many.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.peek(buf).await
    }

    /// The connection apart from the runtime whose reactor it is registered with, so that
    /// another runtime can take it (`Detached::attach`); it keeps its permits.
    pub fn detach(self) -> io::Result<Detached> {
        Ok(Detached {
            stream: self.stream.into_std()?,
            slot: self.slot,
        })
    }
}

/// A connection between two runtimes (`LimitedStream::detach`).
pub struct Detached {
    stream: std::net::TcpStream,
    slot: Slot,
}

impl Detached {
    /// The connection again, registered with the reactor of the runtime this runs in.
    pub fn attach(self) -> io::Result<LimitedStream> {
        Ok(LimitedStream {
            stream: TcpStream::from_std(self.stream)?,
            slot: self.slot,
        })
    }
}

/// What an accepted connection holds until it closes: its permits and its count.
struct Slot {
    _permit: OwnedSemaphorePermit,
    _ip_slot: IpSlot,
    open: Gauge,
}

/// The address one client is counted under: an IPv4 address (also when a dual-stack
/// listener shows it as `::ffff:a.b.c.d`), or an IPv6 address's /64, which one subscriber
/// usually holds whole.
pub(crate) fn address_of_client(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// One connection counted against its address's ceiling until dropped.
struct IpSlot {
    by_ip: Option<Arc<Mutex<HashMap<IpAddr, usize>>>>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let Some(by_ip) = &self.by_ip else {
            return;
        };
        let mut by_ip = by_ip.lock();
        if let Some(open) = by_ip.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                by_ip.remove(&self.ip);
            }
        }
    }
}

impl Drop for Slot {
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
