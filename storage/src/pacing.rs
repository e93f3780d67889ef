//! When the process is short of CPU, the log writer spaces its batches: after the fsync in
//! flight it waits until at least `interval` has passed since its previous batch went to the
//! sync thread, so each fsync (and each batch's commit, and each wake-up of the sockets that
//! wait for acks) covers more commands. An fsync costs the core tens of microseconds
//! whatever it carries (on this kind of VM mostly the virtual disk's doorbell); on a core with
//! room that is free, and spacing would only add latency, so the writer spaces only while the
//! process is busy: it starts once the process used more than `busy_share` of the cores it
//! may run on over a sampling period, and stops once it used less than that minus
//! [`HYSTERESIS`] (spacing itself lowers the share; without the gap it would flip every
//! period).

use crate::metrics::StorageMetrics;
use std::time::{Duration, Instant};

/// How often the process's CPU time is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// How far below `busy_share` the share must fall before spacing stops.
pub const HYSTERESIS: f64 = 0.15;

/// The longest interval a configuration may ask for (longer is taken as this).
pub const MAX_INTERVAL: Duration = Duration::from_millis(100);

/// When the writer spaces its batches ([`crate::WriterConfig`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pacing {
    /// Least time between two batches while busy; zero: never spaced.
    pub interval: Duration,
    /// The share of the process's cores (0–1) above which it counts as busy.
    pub busy_share: f64,
}

/// The default least time between two batches while busy, microseconds
/// (`storage.busy_batch_interval_us`).
pub const DEFAULT_BUSY_BATCH_INTERVAL_US: u64 = 1_000;

/// The default share of the process's cores, in percent, above which it counts as busy
/// (`storage.busy_cpu_percent`). Random matching at 10,000 joins/s uses about 0.78 of its one
/// core unspaced and 0.70 spaced (over the 55 % at which spacing stops, so it stays spaced);
/// chat at 2,000 msg/s under half of it, which this leaves unspaced (README, Benchmarks →
/// Random matching, stop 62).
pub const DEFAULT_BUSY_CPU_PERCENT: u32 = 70;

impl Pacing {
    /// Pacing from its two settings as configured: `storage.busy_batch_interval_us` and
    /// `storage.busy_cpu_percent`.
    pub fn from_settings(busy_batch_interval_us: u64, busy_cpu_percent: u32) -> Self {
        Self {
            interval: Duration::from_micros(busy_batch_interval_us),
            busy_share: f64::from(busy_cpu_percent) / 100.0,
        }
    }
}

impl Default for Pacing {
    fn default() -> Self {
        Self::from_settings(DEFAULT_BUSY_BATCH_INTERVAL_US, DEFAULT_BUSY_CPU_PERCENT)
    }
}

pub(crate) struct Pacer {
    pacing: Pacing,
    cores: f64,
    sampled_at: Instant,
    cpu_at: Duration,
    busy: bool,
    last_handoff: Instant,
}

impl Pacer {
    pub fn new(mut pacing: Pacing) -> Self {
        pacing.interval = pacing.interval.min(MAX_INTERVAL);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        Self {
            pacing,
            cores,
            sampled_at: Instant::now(),
            cpu_at: process_cpu(),
            busy: false,
            last_handoff: Instant::now(),
        }
    }

    /// Waits, while the process is busy, until `interval` after the previous batch's
    /// hand-off.
    pub fn pace(&mut self, metrics: &StorageMetrics) {
        if self.pacing.interval.is_zero() {
            return;
        }
        let now = Instant::now();
        let elapsed = now.duration_since(self.sampled_at);
        if elapsed >= SAMPLE_EVERY {
            let cpu = process_cpu();
            let used = cpu.saturating_sub(self.cpu_at).as_secs_f64();
            let share = used / (self.cores * elapsed.as_secs_f64());
            self.busy = next_busy(self.busy, share, self.pacing.busy_share);
            self.sampled_at = now;
            self.cpu_at = cpu;
        }
        if !self.busy {
            return;
        }
        let due = self.last_handoff + self.pacing.interval;
        if due > now {
            std::thread::sleep(due - now);
            metrics.paced.inc();
        }
    }

    /// A batch went to the sync thread.
    pub fn handed_off(&mut self) {
        self.last_handoff = Instant::now();
    }
}

/// Whether the process counts as busy after a period in which it used `share` of its cores.
/// (A `busy_share` under twice the hysteresis stops at half of it instead, so that spacing
/// always can stop.)
fn next_busy(busy: bool, share: f64, busy_share: f64) -> bool {
    if busy {
        share >= (busy_share - HYSTERESIS).max(busy_share / 2.0)
    } else {
        share > busy_share
    }
}

/// The CPU time the process used so far (zero if the clock cannot be read: never busy).
#[allow(unsafe_code)]
fn process_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    if read != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        now.tv_sec.max(0) as u64,
        now.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_starts_above_the_share_and_stops_below_it_less_the_hysteresis() {
        assert!(!next_busy(false, 0.70, 0.75));
        assert!(next_busy(false, 0.80, 0.75));
        assert!(next_busy(true, 0.65, 0.75));
        assert!(!next_busy(true, 0.55, 0.75));
        // A low share still lets spacing stop.
        assert!(next_busy(true, 0.06, 0.10));
        assert!(!next_busy(true, 0.04, 0.10));
    }

    #[test]
    fn a_busy_process_is_spaced_and_an_idle_one_is_not() {
        let metrics = StorageMetrics::default();
        let interval = Duration::from_millis(20);
        let pacing = Pacing {
            interval,
            busy_share: 0.0,
        };
        // Idle: no wait, however soon after the last hand-off.
        let mut idle = Pacer::new(Pacing {
            busy_share: 1.5,
            ..pacing
        });
        idle.sampled_at -= SAMPLE_EVERY;
        idle.handed_off();
        let started = Instant::now();
        idle.pace(&metrics);
        assert!(started.elapsed() < interval, "not spaced");
        assert_eq!(metrics.paced.get(), 0);
        // Busy (any CPU use is over a share of 0): the next batch waits for the interval.
        let mut busy = Pacer::new(pacing);
        busy.sampled_at -= SAMPLE_EVERY;
        busy.cpu_at = Duration::ZERO;
        busy.handed_off();
        let started = Instant::now();
        busy.pace(&metrics);
        assert!(started.elapsed() >= interval * 9 / 10, "spaced");
        assert_eq!(metrics.paced.get(), 1);
    }
}
