//! WebSocket delivery metrics: how often subscriptions fell behind the live hub and caught up
//! from the log (`girok_ws_catch_ups_total`), how many connections were closed as slow
//! consumers (`girok_ws_slow_consumer_closes_total`), and where a command's time goes between
//! its frame and its answer (`girok_ws_command_seconds{stage}`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

/// The counters, shared by every connection and the registry.
#[derive(Clone)]
pub struct WsMetrics {
    pub(super) catch_ups: Counter,
    pub(super) slow_consumer_closes: Counter,
    command_seconds: Family<StageLabel, Histogram>,
    /// `queued`: from the frame's arrival to its command in the log writer's queue.
    queued: Histogram,
    /// `durable`: from there to its acknowledgement (durable) or refusal.
    durable: Histogram,
    /// `answered`: from there to its answer frame taken for writing (the answer made, and the
    /// wait for the connection's earlier answers and its loop).
    answered: Histogram,
}

impl Default for WsMetrics {
    fn default() -> Self {
        // 0.1 ms to about 3 s, in steps of 1.5: fine enough to tell a millisecond from two.
        let command_seconds = Family::<StageLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_1, 1.5, 26))
        });
        let stage = |stage| command_seconds.get_or_create(&StageLabel { stage }).clone();
        Self {
            catch_ups: Counter::default(),
            slow_consumer_closes: Counter::default(),
            queued: stage("queued"),
            durable: stage("durable"),
            answered: stage("answered"),
            command_seconds,
        }
    }
}

impl WsMetrics {
    /// A command's frame that arrived at `arrived` is in the writer's queue now.
    pub(super) fn queued(&self, arrived: Instant) -> Instant {
        let now = Instant::now();
        self.queued
            .observe(now.saturating_duration_since(arrived).as_secs_f64());
        now
    }

    /// A command queued at `queued` is acknowledged (or refused) now.
    pub(super) fn durable(&self, queued: Instant) -> Instant {
        let now = Instant::now();
        self.durable
            .observe(now.saturating_duration_since(queued).as_secs_f64());
        now
    }

    /// The answer to a command acknowledged at `acked` is taken for writing now.
    pub(super) fn answered(&self, acked: Instant) {
        self.answered.observe(acked.elapsed().as_secs_f64());
    }
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
        registry.register(
            "girok_ws_command_seconds",
            "Where a WebSocket command's time goes, by stage: queued (frame to the log writer's queue), durable (to its acknowledgement or refusal), answered (to its answer taken for writing)",
            self.command_seconds.clone(),
        );
    }
}
