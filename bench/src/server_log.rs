//! The server's own account of its log over a measured window, from two scrapes of its
//! Prometheus `/metrics`: fsyncs (`girok_log_fsync_seconds`) and each command's time from its
//! submission to its durable answer (`girok_log_commit_seconds`). Beside the latencies a
//! generator sees from outside, it says how much of them the log's commit is.

use crate::start::samples;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// Bounds (in seconds) of the commit histogram's buckets that the report gives shares for.
const REPORTED_BOUNDS: [f64; 5] = [0.0008, 0.0016, 0.0032, 0.0064, 0.0128];
/// Longest a scrape may take: it runs on the generator's one thread, at the window's edges.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// One scrape: every sample line of the text format, by its name and labels.
pub struct Scrape(HashMap<String, f64>);

impl Scrape {
    /// Reads `base/metrics`; `None` when the server does not answer it within
    /// [`SCRAPE_TIMEOUT`] (metrics on another address, an older server, a stalled one).
    pub async fn take(http: &reqwest::Client, base: &str) -> Option<Self> {
        let response = http
            .get(format!("{base}/metrics"))
            .timeout(SCRAPE_TIMEOUT)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        Some(Self::parse(&response.text().await.ok()?))
    }

    /// The samples of a scrape in the text format.
    fn parse(text: &str) -> Self {
        Self(
            samples(text)
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }

    /// A histogram's buckets as counted since `before`: (upper bound in seconds, count), by
    /// bound.
    fn buckets_since(&self, before: &Scrape, histogram: &str) -> Vec<(f64, f64)> {
        let prefix = format!("{histogram}_bucket{{le=\"");
        let mut buckets: Vec<(f64, f64)> = self
            .0
            .iter()
            .filter_map(|(name, count)| {
                let bound = name.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().ok()?
                };
                Some((bound, count - before.get(name)))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets
    }
}

/// What the log did between two scrapes.
#[derive(Debug, Serialize)]
pub struct LogWindow {
    pub fsyncs_per_sec: f64,
    pub fsync_mean_ms: f64,
    pub commands_per_sec: f64,
    pub commit_mean_ms: f64,
    /// The bound (ms) of the first bucket holding half of the commands, and 99 %.
    pub commit_p50_at_most_ms: f64,
    pub commit_p99_at_most_ms: f64,
    /// Share of the commands answered within each bound (ms).
    pub commit_within: Vec<(f64, f64)>,
}

impl LogWindow {
    /// The window between `before` and `after`, `seconds` apart; `None` if no command was
    /// answered in it.
    pub fn between(before: &Scrape, after: &Scrape, seconds: f64) -> Option<Self> {
        let delta = |name: &str| after.get(name) - before.get(name);
        let commands = delta("girok_log_commit_seconds_count");
        if commands <= 0.0 || seconds <= 0.0 {
            return None;
        }
        let fsyncs = delta("girok_log_fsync_seconds_count");
        let shares: Vec<(f64, f64)> = after
            .buckets_since(before, "girok_log_commit_seconds")
            .into_iter()
            .map(|(bound, count)| (bound, count / commands))
            .collect();
        let at_most = |quantile: f64| {
            shares
                .iter()
                .find(|(_, share)| *share >= quantile)
                .map_or(f64::INFINITY, |(bound, _)| bound * 1000.0)
        };
        Some(Self {
            fsyncs_per_sec: fsyncs / seconds,
            fsync_mean_ms: if fsyncs > 0.0 {
                delta("girok_log_fsync_seconds_sum") / fsyncs * 1000.0
            } else {
                0.0
            },
            commands_per_sec: commands / seconds,
            commit_mean_ms: delta("girok_log_commit_seconds_sum") / commands * 1000.0,
            commit_p50_at_most_ms: at_most(0.5),
            commit_p99_at_most_ms: at_most(0.99),
            commit_within: shares
                .iter()
                .filter(|(bound, _)| REPORTED_BOUNDS.iter().any(|b| (b - bound).abs() < 1e-9))
                .map(|(bound, share)| (bound * 1000.0, *share))
                .collect(),
        })
    }
}

impl std::fmt::Display for LogWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let within = self
            .commit_within
            .iter()
            .map(|(ms, share)| format!("{:.1} % ≤ {ms:.1} ms", share * 100.0))
            .collect::<Vec<_>>()
            .join(", ");
        write!(
            f,
            "{:.0} fsyncs/s at {:.2} ms mean; commit of {:.0} commands/s at {:.2} ms mean, \
             p50 ≤ {:.1} ms, p99 ≤ {:.1} ms ({within})",
            self.fsyncs_per_sec,
            self.fsync_mean_ms,
            self.commands_per_sec,
            self.commit_mean_ms,
            self.commit_p50_at_most_ms,
            self.commit_p99_at_most_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scrape as girok writes it (OpenMetrics text), with the log's two histograms cut to
    /// their first buckets.
    fn scrape(fsyncs: u64, fsync_sum: f64, within: [u64; 4], commit_sum: f64) -> Scrape {
        let commands = within[3];
        Scrape::parse(&format!(
            "# HELP girok_log_fsync_seconds Time to make one batch durable.\n\
             # TYPE girok_log_fsync_seconds histogram\n\
             girok_log_fsync_seconds_sum {fsync_sum}\n\
             girok_log_fsync_seconds_count {fsyncs}\n\
             girok_log_commit_seconds_sum {commit_sum}\n\
             girok_log_commit_seconds_count {commands}\n\
             girok_log_commit_seconds_bucket{{le=\"0.0008\"}} {}\n\
             girok_log_commit_seconds_bucket{{le=\"0.0016\"}} {}\n\
             girok_log_commit_seconds_bucket{{le=\"0.0032\"}} {}\n\
             girok_log_commit_seconds_bucket{{le=\"+Inf\"}} {commands}\n\
             # EOF\n",
            within[0], within[1], within[2],
        ))
    }

    #[test]
    fn a_window_is_the_difference_of_two_scrapes() {
        let before = scrape(100, 0.05, [10, 20, 30, 40], 0.04);
        // 1,000 fsyncs at 0.3 ms and 2,000 commands at 1 ms in 2 s; of the commands, 1,000
        // within 0.8 ms, 1,980 within 1.6 ms, all within 3.2 ms.
        let after = scrape(1100, 0.35, [1010, 2000, 2030, 2040], 2.04);
        let window = LogWindow::between(&before, &after, 2.0).unwrap();
        assert_eq!(window.fsyncs_per_sec, 500.0);
        assert!((window.fsync_mean_ms - 0.3).abs() < 1e-9);
        assert_eq!(window.commands_per_sec, 1000.0);
        assert!((window.commit_mean_ms - 1.0).abs() < 1e-9);
        assert!((window.commit_p50_at_most_ms - 0.8).abs() < 1e-9);
        assert!((window.commit_p99_at_most_ms - 1.6).abs() < 1e-9);
        let shares: Vec<f64> = window.commit_within.iter().map(|(_, s)| *s).collect();
        assert_eq!(shares, [0.5, 0.99, 1.0]);
        assert!(window.to_string().contains("p99 ≤ 1.6 ms"), "{window}");
    }

    #[test]
    fn no_window_without_answered_commands() {
        let idle = scrape(5, 0.001, [1, 1, 1, 1], 0.001);
        assert!(LogWindow::between(&idle, &idle, 10.0).is_none());
        // A server without the log's metrics (another address, an older build).
        let empty = Scrape::parse("# EOF\n");
        assert!(LogWindow::between(&empty, &empty, 10.0).is_none());
    }
}
