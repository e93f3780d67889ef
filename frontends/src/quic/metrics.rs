//! QUIC metrics: open connections (`girok_quic_connections`), connections refused at
//! `quic.max_connections` or `quic.max_connections_per_ip`
//! (`girok_quic_connections_refused_total`), control streams that
//! started in 0-RTT data (`girok_quic_zero_rtt_total`), WebTransport sessions
//! (`girok_quic_webtransport_sessions_total`), and connections closed as slow
//! consumers (`girok_quic_slow_consumer_closes_total`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Default)]
pub struct QuicMetrics {
    pub(crate) connections: Gauge,
    pub(crate) refused: Counter,
    pub(crate) zero_rtt: Counter,
    pub(crate) webtransport: Counter,
    pub(crate) slow_consumer_closes: Counter,
}

impl QuicMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "girok_quic_connections",
            "Open QUIC connections",
            self.connections.clone(),
        );
        registry.register(
            "girok_quic_connections_refused",
            "QUIC connections refused at quic.max_connections or quic.max_connections_per_ip",
            self.refused.clone(),
        );
        registry.register(
            "girok_quic_zero_rtt",
            "QUIC control streams opened in 0-RTT data",
            self.zero_rtt.clone(),
        );
        registry.register(
            "girok_quic_webtransport_sessions",
            "QUIC connections that negotiated HTTP/3 for WebTransport (browsers)",
            self.webtransport.clone(),
        );
        registry.register(
            "girok_quic_slow_consumer_closes",
            "QUIC connections closed because they did not read their streams (4003)",
            self.slow_consumer_closes.clone(),
        );
    }
}
