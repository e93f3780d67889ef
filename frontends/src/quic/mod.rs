//! QUIC at `quic.addr` (UDP): girok/1, the protocol for native clients (ALPN `girok/1`;
//! docs/quic.md, frames in `schemas/proto/girok/quic/v1/frames.proto`), and the same
//! protocol over WebTransport for browsers (ALPN `h3`, at `/girok/1`). One quinn endpoint;
//! TLS 1.3 with the configured certificate or a short-lived self-signed one
//! (`tls.rs`). Per connection one control stream (auth, subscribe, send with acks,
//! typing, ping, reads) and one unidirectional stream per subscription. The same engine API,
//! authorization, limits, resume and presence as the WebSocket; connection migration (a client
//! whose address changes keeps its connection), keep-alives and 0-RTT come with QUIC.

pub mod client;
mod connection;
pub mod frames;
mod link;
mod metrics;
mod reads;
mod subscription;

pub use metrics::QuicMetrics;
pub use reads::Reads;

use crate::config::QuicConfig;
use crate::state::{QuicInfo, Shared};
use crate::stopping::{CLOSE_GOING_AWAY, Stopping};
use crate::tls::Certificates;
use anyhow::Context;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Either};
use quinn::crypto::rustls::QuicServerConfig;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The ALPN of girok/1.
pub const ALPN: &[u8] = b"girok/1";
/// The ALPN of HTTP/3, which carries WebTransport (browsers).
pub const ALPN_H3: &[u8] = b"h3";
/// The URL path of girok/1 over WebTransport (`https://HOST:PORT/girok/1`).
pub const WEBTRANSPORT_PATH: &str = "/girok/1";

/// Application close codes of a connection (the WebSocket's numbers, where it has them).
pub const CLOSE_AUTH_TIMEOUT: u16 = 4001;
pub const CLOSE_SLOW_CONSUMER: u16 = 4003;
pub const CLOSE_SESSION_ENDED: u16 = 4004;
pub const CLOSE_TOKEN_EXPIRED: u16 = 4005;
pub const CLOSE_TOO_MANY_SOCKETS: u16 = 4006;
/// The control stream cannot be read on (a frame length past the limit, not a varint, or a
/// stream that ended inside a frame).
pub const CLOSE_PROTOCOL: u16 = 4007;

/// Longest a shutdown waits for connections to close.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// What a subscription's task tells its connection.
pub(crate) enum ToConnection {
    /// A frame for the control stream.
    Frame(Bytes),
    /// Close the connection.
    Close(u16, &'static str),
}

/// A connection's limits: `[quic]`'s own, and the WebSocket's per-connection ones.
#[derive(Clone, Copy, Debug)]
pub struct QuicLimits {
    pub ws: crate::ws::WsLimits,
    pub max_frame_bytes: usize,
    pub max_requests_in_flight: usize,
}

/// The bound endpoint, not serving yet.
pub struct QuicServer {
    endpoint: quinn::Endpoint,
    info: QuicInfo,
}

impl QuicServer {
    /// Binds `quic.addr` (inside the runtime the connections will run on) with the
    /// certificate of `data_dir` or the configured one.
    pub fn bind(config: &QuicConfig, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let certificates = Certificates::load(config, data_dir)?;
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(certificates.clone());
        tls.alpn_protocols = vec![ALPN.to_vec(), ALPN_H3.to_vec()];
        if config.zero_rtt {
            // QUIC requires exactly this value when early data is on.
            tls.max_early_data_size = u32::MAX;
        }
        let crypto = QuicServerConfig::try_from(tls)
            .map_err(|e| anyhow::anyhow!("the TLS configuration does not suit QUIC: {e}"))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        // girok/1 takes one control stream from the client (subscriptions are the server's
        // streams; a client that opens another is closed). WebTransport needs one more
        // bidirectional stream (its CONNECT) and three unidirectional ones (HTTP/3's control
        // and QPACK streams).
        transport.max_concurrent_bidi_streams(2u32.into());
        transport.max_concurrent_uni_streams(3u32.into());
        // What a connection may have buffered: its control stream is read at once.
        transport.stream_receive_window((1u32 << 20).into());
        transport.receive_window((4u32 << 20).into());
        transport.max_idle_timeout(Some(
            Duration::from_millis(config.idle_timeout_ms.max(1000)).try_into()?,
        ));
        transport.keep_alive_interval(
            (config.keep_alive_ms > 0).then(|| Duration::from_millis(config.keep_alive_ms)),
        );
        server.transport_config(Arc::new(transport));
        server.migration(true);
        let endpoint = quinn::Endpoint::server(server, config.addr)
            .with_context(|| format!("cannot listen on UDP {} (quic.addr)", config.addr))?;
        let addr = endpoint.local_addr()?;
        certificates.rotate_in_background();
        Ok(Self {
            endpoint,
            info: QuicInfo { addr, certificates },
        })
    }

    pub fn info(&self) -> QuicInfo {
        self.info.clone()
    }

    /// Accepts connections until girok stops, then closes them ("going away").
    pub async fn run(self, state: Shared, reads: Reads) {
        let limits = QuicLimits {
            ws: crate::ws::WsLimits::from(&state.config.ws),
            max_frame_bytes: state.config.quic.max_frame_bytes.max(1024),
            max_requests_in_flight: state.config.quic.max_requests_in_flight.max(1),
        };
        let zero_rtt = state.config.quic.zero_rtt;
        let max_connections = state.config.quic.max_connections.max(1);
        let open = Arc::new(AtomicUsize::new(0));
        let mut stopping = state.stopping.watch();
        loop {
            let incoming = tokio::select! {
                incoming = self.endpoint.accept() => incoming,
                () = Stopping::stopped(&mut stopping) => break,
            };
            let Some(incoming) = incoming else { break };
            if open.load(Ordering::Acquire) >= max_connections {
                state.quic_metrics.refused.inc();
                incoming.refuse();
                continue;
            }
            let Ok(connecting) = incoming.accept() else {
                continue;
            };
            open.fetch_add(1, Ordering::AcqRel);
            state.quic_metrics.connections.inc();
            let (state, reads, open) = (state.clone(), reads.clone(), open.clone());
            tokio::spawn(async move {
                if let Some((connection, handshake)) = establish(connecting, zero_rtt).await {
                    let opened = if negotiated(&connection).as_deref() == Some(ALPN_H3) {
                        state.quic_metrics.webtransport.inc();
                        webtransport(connection, handshake, &limits)
                            .await
                            .map(Either::Right)
                    } else {
                        girok1(connection, handshake, &limits)
                            .await
                            .map(Either::Left)
                    };
                    match opened {
                        Some(Either::Left(opened)) => {
                            connection::serve(opened, state.clone(), reads, limits).await
                        }
                        Some(Either::Right(opened)) => {
                            connection::serve(opened, state.clone(), reads, limits).await
                        }
                        None => {}
                    }
                }
                open.fetch_sub(1, Ordering::AcqRel);
                state.quic_metrics.connections.dec();
            });
        }
        self.endpoint
            .close(CLOSE_GOING_AWAY.into(), b"girok is shutting down");
        let _ = tokio::time::timeout(CLOSE_WITHIN, self.endpoint.wait_idle()).await;
    }
}

/// The ALPN the handshake settled on.
fn negotiated(connection: &quinn::Connection) -> Option<Vec<u8>> {
    connection
        .handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

/// A girok/1 connection's control stream, opened by the client within the auth timeout.
async fn girok1(
    connection: quinn::Connection,
    handshake: BoxFuture<'static, ()>,
    limits: &QuicLimits,
) -> Option<connection::Opened<quinn::Connection, quinn::RecvStream>> {
    match tokio::time::timeout(limits.ws.auth_timeout, connection.accept_bi()).await {
        Ok(Ok((send, recv))) => Some(connection::Opened {
            early: recv.is_0rtt(),
            connection,
            send,
            recv,
            handshake,
        }),
        Ok(Err(_)) => None,
        Err(_) => {
            connection.close(CLOSE_AUTH_TIMEOUT.into(), b"no control stream in time");
            None
        }
    }
}

/// A WebTransport session at [`WEBTRANSPORT_PATH`] and its control stream, within the auth
/// timeout (HTTP/3's settings, the CONNECT request, then the client's bidirectional stream).
async fn webtransport(
    connection: quinn::Connection,
    handshake: BoxFuture<'static, ()>,
    limits: &QuicLimits,
) -> Option<connection::Opened<web_transport_quinn::Session, web_transport_quinn::RecvStream>> {
    let opened = async {
        // Browsers do not send WebTransport in 0-RTT data; take nothing before the handshake.
        handshake.await;
        let request = web_transport_quinn::Request::accept(connection.clone())
            .await
            .ok()?;
        if request.url.path() != WEBTRANSPORT_PATH {
            let _ = request.reject(http::StatusCode::NOT_FOUND).await;
            return None;
        }
        let session = request.ok().await.ok()?;
        let (send, recv) = session.accept_bi().await.ok()?;
        Some(connection::Opened {
            connection: session,
            send,
            recv,
            early: false,
            handshake: futures::future::ready(()).boxed(),
        })
    };
    match tokio::time::timeout(limits.ws.auth_timeout, opened).await {
        Ok(opened) => opened,
        Err(_) => {
            connection.close(
                CLOSE_AUTH_TIMEOUT.into(),
                b"no WebTransport session in time",
            );
            None
        }
    }
}

/// Completes a connection's handshake, or (with 0-RTT on) takes it at once with what resolves
/// when the handshake is confirmed.
async fn establish(
    connecting: quinn::Connecting,
    zero_rtt: bool,
) -> Option<(quinn::Connection, BoxFuture<'static, ()>)> {
    if zero_rtt {
        // A server's conversion always succeeds (0.5-RTT).
        match connecting.into_0rtt() {
            Ok((connection, confirmed)) => {
                return Some((connection, confirmed.map(|_| ()).boxed()));
            }
            Err(connecting) => return complete(connecting).await,
        }
    }
    complete(connecting).await
}

async fn complete(
    connecting: quinn::Connecting,
) -> Option<(quinn::Connection, BoxFuture<'static, ()>)> {
    match connecting.await {
        Ok(connection) => Some((connection, futures::future::ready(()).boxed())),
        Err(error) => {
            tracing::debug!(%error, "QUIC handshake failed");
            None
        }
    }
}
