//! The HTTP/1.1 connection loop (hyper), in place of `axum::serve`, for a limit axum does not
//! expose: a request's head must arrive whole within `server.header_read_timeout_ms`, or the
//! connection is closed. hyper starts that clock when it waits for a request, so the same
//! deadline closes a kept-alive connection that stays idle that long: half-sent requests
//! (slowloris) and idle sockets cannot hold connection slots. WebSocket upgrades pass through.
//!
//! Requests and WebSockets can run on two runtimes: a connection whose first request line
//! opens a socket (`GET /ws`, `GET /graphql/ws`) moves to the sockets' runtime, with its
//! reactor registration, before hyper reads it, and serves that one request there. A flood
//! of socket frames then queues behind itself, and a read request's bytes and handler never
//! wait behind it.
//!
//! Graceful shutdown stops accepting, lets requests in progress finish and closes idle
//! connections; upgraded sockets close through their own shutdown watch.

use super::{GRAPHQL_WS_PATH, WS_PATH};
use crate::listener::{LimitedListener, LimitedStream, PeerAddr};
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::serve::Listener;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tower_http::add_extension::AddExtension;
use tower_http::set_header::SetResponseHeader;

/// Serves `router` on `listener` until `shutdown` resolves, then until every connection
/// closed. WebSocket connections run on `sockets` (`None`: on this runtime).
pub async fn serve(
    mut listener: LimitedListener,
    router: Router,
    header_read_timeout: Duration,
    sockets: Option<Handle>,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    // Every connection task holds a clone of `open`; when the last is gone, all closed.
    let (stop, stopped) = watch::channel(false);
    let (all_closed, open) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let connection = Connection {
            http: http.clone(),
            // Handlers read the client's address as `ConnectInfo<PeerAddr>`.
            service: AddExtension::new(router.clone(), ConnectInfo(PeerAddr(peer))),
            stopped: stopped.clone(),
            open: open.clone(),
        };
        match &sockets {
            None => tokio::spawn(connection.serve(stream, keep_open)),
            Some(sockets) => {
                tokio::spawn(connection.place(stream, header_read_timeout, sockets.clone()))
            }
        };
    }
    drop(listener);
    let _ = stop.send(true);
    drop(open);
    all_closed.closed().await;
}

/// One accepted connection and what serving it needs.
struct Connection {
    http: http1::Builder,
    service: AddExtension<Router, ConnectInfo<PeerAddr>>,
    /// Turns true when the server stops.
    stopped: watch::Receiver<bool>,
    /// Held until the connection closed.
    open: watch::Receiver<()>,
}

/// The least time hyper gets for the rest of a request head once its first bytes came.
const HEAD_REST_MIN: Duration = Duration::from_secs(1);

/// The longest start of a request line that opens a socket: `GET /graphql/ws?`.
const SOCKET_REQUEST_LINE_BYTES: usize = {
    let longest = if WS_PATH.len() > GRAPHQL_WS_PATH.len() {
        WS_PATH.len()
    } else {
        GRAPHQL_WS_PATH.len()
    };
    "GET ".len() + longest + 1
};

impl Connection {
    /// Serves the connection here, or on `sockets` when its first request line opens a
    /// WebSocket. A client that sends nothing within `head_within` is closed, as hyper's own
    /// deadline for a request head would; hyper then gets what is left of that time (at
    /// least [`HEAD_REST_MIN`]; for the connection's later requests too, usually all of it),
    /// so a trickled head holds the connection little longer than one that never came.
    async fn place(mut self, stream: LimitedStream, head_within: Duration, sockets: Handle) {
        let accepted = tokio::time::Instant::now();
        let mut start = [0u8; SOCKET_REQUEST_LINE_BYTES];
        let peeked = tokio::select! {
            peeked = tokio::time::timeout(head_within, stream.peek(&mut start)) => peeked,
            () = stopping(&mut self.stopped) => return,
        };
        let Ok(Ok(peeked)) = peeked else {
            return;
        };
        let rest = head_within.saturating_sub(accepted.elapsed());
        self.http.header_read_timeout(rest.max(HEAD_REST_MIN));
        if !opens_a_socket(&start[..peeked]) {
            return self.serve(stream, keep_open).await;
        }
        match stream.detach() {
            Ok(detached) => {
                sockets.spawn(async move {
                    match detached.attach() {
                        // One request only, an upgrade or a refusal: nothing but sockets
                        // is served on the sockets' runtime.
                        Ok(stream) => self.serve(stream, close_unless_upgraded).await,
                        Err(error) => tracing::debug!(%error, "cannot move a socket's connection"),
                    }
                });
            }
            Err(error) => tracing::debug!(%error, "cannot move a socket's connection"),
        }
    }

    /// Serves the connection on this runtime until it closes; `closing` may ask hyper to
    /// close it after an answer (a `connection: close` header).
    async fn serve(mut self, stream: LimitedStream, closing: Closing) {
        let service = SetResponseHeader::overriding(self.service, CONNECTION, closing);
        let connection = self
            .http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        tokio::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => {}
            () = stopping(&mut self.stopped) => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
        drop(self.open);
    }
}

/// Whether an answer closes its connection, as a `connection` header's value.
type Closing = fn(&Response) -> Option<HeaderValue>;

/// Answers leave the connection open (for the client's next request).
fn keep_open(_: &Response) -> Option<HeaderValue> {
    None
}

/// Every answer but an upgrade closes the connection.
fn close_unless_upgraded(answer: &Response) -> Option<HeaderValue> {
    (answer.status() != StatusCode::SWITCHING_PROTOCOLS)
        .then_some(HeaderValue::from_static("close"))
}

/// Resolves once the server stops.
async fn stopping(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Whether a connection's first bytes begin a request line that opens a WebSocket. A line
/// not whole yet counts as not: the connection is then served where requests are, which
/// costs speed, never correctness.
fn opens_a_socket(start: &[u8]) -> bool {
    [WS_PATH, GRAPHQL_WS_PATH].iter().any(|path| {
        let after = start
            .strip_prefix(b"GET ")
            .and_then(|rest| rest.strip_prefix(path.as_bytes()));
        matches!(after, Some([b' ' | b'?', ..]))
    })
}

#[cfg(test)]
mod tests {
    use super::opens_a_socket;

    #[test]
    fn socket_request_lines_are_told_from_the_others() {
        assert!(opens_a_socket(b"GET /ws HTTP/1.1\r\n"));
        assert!(opens_a_socket(b"GET /ws?token=x HTTP/1.1"));
        assert!(opens_a_socket(b"GET /graphql/ws HTTP/1"));
        assert!(opens_a_socket(b"GET /graphql/ws?"));
        for other in [
            &b"GET /wsx HTTP/1.1"[..],
            b"GET /graphql HTTP/1.1",
            b"POST /ws HTTP/1.1",
            b"GET /v1/rooms HTTP/1.1",
            b"GET /ws",
            b"GET /w",
            b"",
        ] {
            assert!(!opens_a_socket(other), "{}", String::from_utf8_lossy(other));
        }
    }
}
