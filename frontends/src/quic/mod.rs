//! QUIC at `quic.addr` (UDP): girok/1, the protocol for native clients (ALPN `girok/1`;
//! docs/quic.md, frames in `schemas/proto/girok/quic/v1/frames.proto`), and the same
//! protocol over WebTransport for browsers (ALPN `h3`, at `/girok/1`). One quinn endpoint;
//! TLS 1.3 with the configured certificate or a short-lived self-signed one
//! (`tls.rs`). Per connection one control stream (auth, subscribe, send with acks,
//! typing, ping, reads) and one unidirectional stream per subscription. The same engine API,
//! authorization, limits, resume and presence as the WebSocket; connection migration (a client
//! whose address changes keeps its connection), keep-alives and 0-RTT come with QUIC.

#[cfg(feature = "client")]
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
use crate::live_socket::ConnectionLimits;
use crate::state::{QuicInfo, Shared};
use crate::stopping::{CLOSE_GOING_AWAY, Stopping};
use crate::tls::Certificates;
use anyhow::Context;
use futures::FutureExt;
use futures::future::BoxFuture;
use quinn::crypto::rustls::QuicServerConfig;
use std::collections::HashMap;
use std::net::IpAddr;
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

/// Longest a shutdown waits for connections to write what they owe and close (then again for
/// the endpoint to be idle): the acks of sends in flight (`SHUTDOWN_ANSWERS_WITHIN`) and
/// their delivery.
const CLOSE_WITHIN: Duration = Duration::from_millis(2500);

/// A connection's limits: those of both socket protocols (`[ws]`), and `[quic]`'s own.
#[derive(Clone, Copy, Debug)]
pub struct QuicLimits {
    pub connection: ConnectionLimits,
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
        config.check()?;
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
            // Resumption stays stateful (tickets are taken from this store once: a replayed
            // 0-RTT hello finds none), sized so a returning client's ticket is still there.
            tls.session_storage =
                rustls::server::ServerSessionMemoryCache::new(config.max_connections.max(256) * 2);
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
        // What a connection may have buffered from its client: its control stream is read
        // at once, so a few frames' worth.
        let stream_window = (config.frame_bytes() as u32 * 4).max(256 * 1024);
        transport.stream_receive_window(stream_window.into());
        transport.receive_window((u64::from(stream_window) * 4).try_into()?);
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
            info: QuicInfo {
                addr,
                certificates,
                alpn: [ALPN, ALPN_H3]
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect(),
            },
        })
    }

    pub fn info(&self) -> QuicInfo {
        self.info.clone()
    }

    /// Accepts connections until girok stops; then refuses new ones, lets the open ones
    /// write what they owe and close ("going away"), and closes the endpoint.
    pub async fn run(self, state: Shared, reads: Reads) {
        let config = &state.config.quic;
        let limits = QuicLimits {
            connection: ConnectionLimits::from(&state.config.ws),
            max_frame_bytes: config.frame_bytes(),
            max_requests_in_flight: config.max_requests_in_flight.max(1),
        };
        let zero_rtt = config.zero_rtt;
        let ceilings = Ceilings {
            total: config.max_connections.max(1),
            per_ip: config.max_connections_per_ip,
        };
        let open = Arc::new(OpenConnections {
            gauge: state.quic_metrics.connections.clone(),
            ..OpenConnections::default()
        });
        let mut stopping = state.stopping.watch();
        loop {
            let incoming = tokio::select! {
                incoming = self.endpoint.accept() => incoming,
                () = Stopping::stopped(&mut stopping) => break,
            };
            let Some(incoming) = incoming else { break };
            // Under load, in general or from one address, a client proves its address first
            // (a QUIC Retry): a spoofed one takes no slot.
            let client = crate::listener::address_of_client(incoming.remote_address().ip());
            if !incoming.remote_address_validated() && open.crowded(client, &ceilings) {
                let _ = incoming.retry();
                continue;
            }
            let Some(slot) = open.take(client, &ceilings) else {
                state.quic_metrics.refused.inc();
                incoming.refuse();
                continue;
            };
            let accepted_at = tokio::time::Instant::now();
            let Ok(connecting) = incoming.accept() else {
                continue;
            };
            let (state, reads) = (state.clone(), reads.clone());
            tokio::spawn(async move {
                let _slot = slot;
                if let Some((connection, alpn, handshake)) = establish(connecting, zero_rtt).await {
                    let accepted = Accepted {
                        connection,
                        handshake,
                        accepted_at,
                    };
                    if alpn.as_deref() == Some(ALPN_H3) {
                        if let Some(opened) = webtransport(accepted, &limits).await {
                            state.quic_metrics.webtransport.inc();
                            connection::serve(opened, state.clone(), reads, limits).await;
                        }
                    } else if let Some(opened) = girok1(accepted, &limits).await {
                        connection::serve(opened, state.clone(), reads, limits).await;
                    }
                }
            });
        }
        // No new connections; the open ones drain (acks of durable sends) and say goodbye.
        self.endpoint.set_server_config(None);
        let drained = async {
            while open.total() > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(CLOSE_WITHIN, drained).await;
        self.endpoint
            .close(CLOSE_GOING_AWAY.into(), b"girok is shutting down");
        let _ = tokio::time::timeout(CLOSE_WITHIN, self.endpoint.wait_idle()).await;
    }
}

/// The connection ceilings: all together, and from one address (0: none).
struct Ceilings {
    total: usize,
    per_ip: usize,
}

/// The open connections, all together and per address (and in `girok_quic_connections`).
#[derive(Default)]
struct OpenConnections {
    per_ip: parking_lot::Mutex<HashMap<IpAddr, usize>>,
    total: AtomicUsize,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl OpenConnections {
    fn total(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Whether half a ceiling is reached, in general or for `ip`'s address.
    fn crowded(&self, ip: IpAddr, ceilings: &Ceilings) -> bool {
        let from_ip = self.per_ip.lock().get(&ip).copied().unwrap_or(0);
        self.total() >= ceilings.total / 2
            || (ceilings.per_ip > 0 && from_ip >= ceilings.per_ip / 2)
    }

    /// A slot for a connection from `ip`, given back when dropped; `None` past a ceiling.
    fn take(self: &Arc<Self>, ip: IpAddr, ceilings: &Ceilings) -> Option<Slot> {
        let mut per_ip = self.per_ip.lock();
        let from_ip = per_ip.entry(ip).or_default();
        if self.total() >= ceilings.total || (ceilings.per_ip > 0 && *from_ip >= ceilings.per_ip) {
            if *from_ip == 0 {
                per_ip.remove(&ip);
            }
            return None;
        }
        *from_ip += 1;
        self.total.fetch_add(1, Ordering::AcqRel);
        self.gauge.inc();
        Some(Slot {
            open: self.clone(),
            ip,
        })
    }
}

/// One connection's place among the open ones.
struct Slot {
    open: Arc<OpenConnections>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self.open.per_ip.lock();
        if let Some(from_ip) = per_ip.get_mut(&self.ip) {
            *from_ip -= 1;
            if *from_ip == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.open.total.fetch_sub(1, Ordering::AcqRel);
        // Here, not at the end of the connection's task: a slot is given back however the
        // task ends.
        self.open.gauge.dec();
    }
}

/// A connection past its handshake (or in 0-RTT), not yet serving.
struct Accepted {
    connection: quinn::Connection,
    /// Resolves once the handshake is confirmed (false: the connection was lost first).
    handshake: BoxFuture<'static, bool>,
    accepted_at: tokio::time::Instant,
}

/// A girok/1 connection's control stream, opened by the client within the auth timeout.
async fn girok1(
    accepted: Accepted,
    limits: &QuicLimits,
) -> Option<connection::Opened<quinn::Connection, quinn::RecvStream>> {
    let Accepted {
        connection,
        handshake,
        accepted_at,
    } = accepted;
    let deadline = accepted_at + limits.connection.auth_timeout;
    match tokio::time::timeout_at(deadline, connection.accept_bi()).await {
        Ok(Ok((send, recv))) => Some(connection::Opened {
            early: recv.is_0rtt(),
            connection,
            send,
            recv,
            handshake,
            accepted_at,
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
    accepted: Accepted,
    limits: &QuicLimits,
) -> Option<connection::Opened<web_transport_quinn::Session, web_transport_quinn::RecvStream>> {
    let Accepted {
        connection,
        handshake,
        accepted_at,
    } = accepted;
    let opened = async {
        // Browsers do not send WebTransport in 0-RTT data; take nothing before the handshake.
        if !handshake.await {
            return None;
        }
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
            handshake: futures::future::ready(true).boxed(),
            accepted_at,
        })
    };
    match tokio::time::timeout_at(accepted_at + limits.connection.auth_timeout, opened).await {
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

/// Takes a connection once its client's hello is read (which names the ALPN): at once with
/// 0-RTT on (with what resolves when the handshake is confirmed), else once the handshake
/// completes.
async fn establish(
    mut connecting: quinn::Connecting,
    zero_rtt: bool,
) -> Option<(quinn::Connection, Option<Vec<u8>>, BoxFuture<'static, bool>)> {
    let alpn = connecting
        .handshake_data()
        .await
        .ok()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol;
    let connecting = if zero_rtt {
        // A server's conversion always succeeds (0.5-RTT).
        match connecting.into_0rtt() {
            Ok((connection, confirmed)) => {
                // Resolves to false if the connection is lost before the handshake completes.
                let alive = connection.clone();
                let confirmed = confirmed.map(move |_| alive.close_reason().is_none());
                return Some((connection, alpn, confirmed.boxed()));
            }
            Err(connecting) => connecting,
        }
    } else {
        connecting
    };
    match connecting.await {
        Ok(connection) => Some((connection, alpn, futures::future::ready(true).boxed())),
        Err(error) => {
            tracing::debug!(%error, "QUIC handshake failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_limit_past_the_ceiling_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let config = QuicConfig {
            max_frame_bytes: crate::config::MAX_QUIC_FRAME_BYTES + 1,
            ..QuicConfig::default()
        };
        let Err(refused) = QuicServer::bind(&config, dir.path()) else {
            panic!("a 16 MiB + 1 frame limit was taken");
        };
        assert!(
            refused.to_string().contains("quic.max_frame_bytes"),
            "{refused}"
        );
    }
}
