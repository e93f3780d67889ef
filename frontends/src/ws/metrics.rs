//! WebSocket delivery metrics: how often subscriptions fell behind the live hub and caught up
//! from the log (`girok_ws_catch_ups_total`), and how many connections were closed as slow
//! consumers (`girok_ws_slow_consumer_closes_total`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// The counters, shared by every connection and the registry.
#[derive(Clone, Default)]
pub struct WsMetrics {
    pub(super) catch_ups: Counter,
    pub(super) slow_consumer_closes: Counter,
}

impl WsMetrics {
    /// Counts a connection closed because it did not read its frames.
    pub(crate) fn slow_consumer_closed(&self) {
        self.slow_consumer_closes.inc();
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "girok_ws_catch_ups",
            "Times a WebSocket subscription fell behind the live hub and read the gap from the log",
            self.catch_ups.clone(),
        );
        registry.register(
            "girok_ws_slow_consumer_closes",
            "WebSocket connections closed because they did not read their frames (4003)",
            self.slow_consumer_closes.clone(),
        );
    }
}
