//! WebSocket delivery metrics: how often subscriptions fell behind the live hub and caught up
//! from the log (`girok_ws_catch_ups_total`), how many connections were closed as slow
//! consumers (`girok_ws_slow_consumer_closes_total`), and where a command's time goes between
//! the connection's read of its frame and its answer (`girok_ws_command_seconds{stage}`). A
//! stage ends when the connection's task sees it end, so each includes the wait for that task
//! to run; a command whose connection closes before its answer is written counts in `queued`
//! only.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

/// The one label of `girok_ws_command_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

/// The counters and histograms, shared by every connection and the registry.
#[derive(Clone)]
pub struct WsMetrics {
    pub(super) catch_ups: Counter,
    pub(super) slow_consumer_closes: Counter,
    command_seconds: Family<StageLabel, Histogram>,
    /// `queued`: from the connection's read of the frame to its command in the log writer's
    /// queue.
    queued: Histogram,
    /// `durable`: from there to its acknowledgement (durable) or refusal.
    durable: Histogram,
    /// `answered`: from there to its answer frame taken for writing (the answer made, and the
    /// wait for the connection's earlier answers and its loop).
    answered: Histogram,
}

impl Default for WsMetrics {
    fn default() -> Self {
        // 0.1 ms to about 2.5 s, in steps of 1.5: fine enough to tell a millisecond from two.
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

/// Observes the time since `start` in `stage`; returns now, the next stage's start.
fn end_stage(stage: &Histogram, start: Instant) -> Instant {
    let now = Instant::now();
    stage.observe(now.saturating_duration_since(start).as_secs_f64());
    now
}

/// A command in the log writer's queue, whose `durable` stage runs until [`Queued::acked`]:
/// it carries that one histogram, so a command's answer holds no more of the metrics.
pub(super) struct Queued {
    durable: Histogram,
    since: Instant,
}

impl Queued {
    /// The command is acknowledged (or refused) now; returns now.
    pub(super) fn acked(self) -> Instant {
        end_stage(&self.durable, self.since)
    }
}

impl WsMetrics {
    /// A command whose frame was read at `read_at` is in the writer's queue now.
    pub(super) fn queued(&self, read_at: Instant) -> Queued {
        Queued {
            durable: self.durable.clone(),
            since: end_stage(&self.queued, read_at),
        }
    }

    /// The answer to a command acknowledged at `acked_at` is taken for writing now.
    pub(super) fn answered(&self, acked_at: Instant) {
        end_stage(&self.answered, acked_at);
    }

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
            "Where a WebSocket command's time goes, by stage: queued (from the connection's read of its frame to the log writer's queue), durable (to its acknowledgement or refusal), answered (to its answer taken for writing)",
            self.command_seconds.clone(),
        );
    }
}
