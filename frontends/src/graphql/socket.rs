//! The socket under `/graphql/ws`. async-graphql speaks the protocol (graphql-transport-ws or
//! the older graphql-ws); this module owns the socket's writing side, so that the limits of
//! `/ws` hold here too: a WebSocket ping every `ws.heartbeat_ms` (clients answer it
//! themselves), a close 4002 after `ws.idle_timeout_ms` without any frame from the client (a
//! pong counts), a close 4003 for a client whose socket takes nothing for
//! `ws.write_timeout_ms` (it stopped reading), a close 1001 when girok shuts down, and the
//! close that `connection_init` asks for when the socket's session ends or its token expires
//! (4403).

use crate::stopping::{CLOSE_GOING_AWAY, Stopping};
use crate::ws::{CLOSE_GRACE, CLOSE_IDLE, CLOSE_SLOW_CONSUMER, WsLimits, WsMetrics, close_frame};
use axum::extract::ws::{Message, WebSocket};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Frames the protocol may have ready before it waits for the socket.
const OUTBOUND_FRAMES: usize = 16;

/// When the client was last heard from, as milliseconds since the socket opened.
#[derive(Clone)]
struct LastHeard {
    opened: Instant,
    at_ms: Arc<AtomicU64>,
}

impl LastHeard {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            at_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn now(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.at_ms.store(ms, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let ms = self.opened.elapsed().as_millis() as u64;
        Duration::from_millis(ms.saturating_sub(self.at_ms.load(Ordering::Relaxed)))
    }
}

/// What the socket's limits need besides the socket.
pub struct SocketLimits {
    pub limits: WsLimits,
    pub metrics: WsMetrics,
    pub stopping: Stopping,
    /// A close (code and reason) for the writer to send, and why: the session ended.
    pub ended: tokio::sync::mpsc::Receiver<(u16, &'static str)>,
}

/// Serves `socket` with `protocol`, built by `serve_protocol` around a sink and a stream of
/// frames (what `GraphQLWebSocket::new_with_pair(..).serve()` takes), under the socket limits.
pub async fn serve<P, F>(socket: WebSocket, mut guard: SocketLimits, serve_protocol: P)
where
    P: FnOnce(
        mpsc::Sender<Message>,
        futures::stream::BoxStream<'static, Result<Message, axum::Error>>,
    ) -> F,
    F: Future<Output = ()>,
{
    let _open = guard.stopping.socket_opened();
    let (sink, stream) = socket.split();
    let heard = LastHeard::new();
    // Set once girok sends its close: the protocol then gets no more requests to run (their
    // answers could not go out), only the client's close.
    let closing = Arc::new(AtomicBool::new(false));
    let input = {
        let (heard, closing) = (heard.clone(), closing.clone());
        stream
            .inspect(move |_| heard.now())
            .filter(move |frame| {
                let request = matches!(frame, Ok(Message::Text(_) | Message::Binary(_)));
                std::future::ready(!(request && closing.load(Ordering::Relaxed)))
            })
            .boxed()
    };
    let (frames, mut outbound) = mpsc::channel(OUTBOUND_FRAMES);
    let mut sink = sink;
    let protocol = serve_protocol(frames, input);
    tokio::pin!(protocol);
    let closed_by_us = {
        let writer = write(&mut sink, &mut outbound, heard, &closing, &mut guard);
        tokio::pin!(writer);
        tokio::select! {
            // The protocol ended (the client closed, or broke it): what it still had to say
            // goes out, then the socket closes.
            () = &mut protocol => {
                writer.await;
                false
            }
            // The writer closed the socket (idle, slow, shutting down) or found it gone.
            () = &mut writer => true,
        }
    };
    if closed_by_us {
        // The closing handshake: the protocol reads on until the client's close ends its
        // stream (what it still writes is dropped), so that the client reads the close frame
        // instead of a reset.
        let drain = async { while outbound.next().await.is_some() {} };
        let _ = tokio::time::timeout(CLOSE_GRACE, futures::future::join(protocol, drain)).await;
    }
}

/// Writes the protocol's frames and the heartbeat to the socket, within the limits.
async fn write(
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    outbound: &mut mpsc::Receiver<Message>,
    heard: LastHeard,
    closing: &AtomicBool,
    guard: &mut SocketLimits,
) {
    let limits = guard.limits;
    let mut stopping = guard.stopping.watch();
    let mut heartbeat = tokio::time::interval(limits.heartbeat);
    heartbeat.tick().await;
    let ending = loop {
        let frame = tokio::select! {
            frame = outbound.next() => match frame {
                Some(frame) => frame,
                None => return, // the protocol is done and said everything
            },
            _ = heartbeat.tick() => {
                if heard.silent_for() > limits.idle_timeout {
                    break (CLOSE_IDLE, "idle timeout");
                }
                Message::Ping(Vec::new().into())
            }
            Some(ended) = guard.ended.recv() => break ended,
            () = Stopping::stopped(&mut stopping) => {
                // What the protocol already has ready (answers to mutations that ran) goes out.
                if let Ok(frame) = outbound.try_recv() {
                    let _ = write_ready(sink, outbound, frame, limits.write_timeout()).await;
                }
                break (CLOSE_GOING_AWAY, "girok is shutting down");
            }
        };
        match write_ready(sink, outbound, frame, limits.write_timeout()).await {
            Written::Open => {}
            Written::Closed | Written::Gone => return, // as the protocol asked, or gone
            Written::TimedOut => {
                guard.metrics.slow_consumer_closed();
                break (CLOSE_SLOW_CONSUMER, "slow consumer");
            }
        }
    };
    closing.store(true, Ordering::Relaxed);
    let (code, reason) = ending;
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close_frame(code, reason))).await;
}

/// async-graphql closes a socket that subscribes before `connection_init` with 1011;
/// graphql-transport-ws says 4401 Unauthorized, which clients know.
fn unauthorized_before_init(frame: Message) -> Message {
    match &frame {
        Message::Close(Some(close))
            if close.code == 1011 && close.reason.as_str() == "The handshake is not completed." =>
        {
            close_frame(4401, "Unauthorized")
        }
        _ => frame,
    }
}

/// How a write of frames ended.
enum Written {
    /// Out; the socket stays open.
    Open,
    /// Out, and one of them was the protocol's close.
    Closed,
    /// The socket is gone.
    Gone,
    /// The socket took nothing for the write timeout: the client does not read.
    TimedOut,
}

/// Writes `first` and every frame the protocol already has ready with one flush (one
/// syscall for a burst of events), within `timeout`.
async fn write_ready(
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    outbound: &mut mpsc::Receiver<Message>,
    first: Message,
    timeout: Duration,
) -> Written {
    let written = tokio::time::timeout(timeout, async {
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            let frame = unauthorized_before_init(frame);
            let closes = matches!(frame, Message::Close(_));
            sink.feed(frame).await?;
            if closes {
                sink.flush().await?;
                return Ok(Written::Closed);
            }
            next = outbound.try_recv().ok();
        }
        sink.flush().await.map(|()| Written::Open)
    })
    .await;
    match written {
        Ok(Ok(written)) => written,
        Ok(Err::<_, axum::Error>(_)) => Written::Gone,
        Err(_) => Written::TimedOut,
    }
}
