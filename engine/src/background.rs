//! Scheduling priorities of girok's threads. Threads on the delivery path (the log writer and
//! its sync thread, the hub, the sockets' async runtime) ask for the kernel's shortest time slice
//! ([`latency_critical`], from `girok_storage::sched`), so that they get the core soon after
//! they wake, whatever else is running (without it, the socket runtime waited up to 5 ms for
//! a search indexing thread to finish its slice). Background threads (search indexing, media
//! processing, the analytics pipeline) run at the lowest priority, so that on a saturated
//! machine they take what the log writer, the views and live deliveries leave (not in the
//! idle class, which could starve them for as long as the machine stays busy).
//! The dataflow workers and the view store's flush thread run a little below normal: on a
//! saturated machine the writer and live delivery come first, and the views batch more events
//! per round (which costs less per event) instead of taking the core from them. Work behind a
//! watermark or a lag is delayed, never lost. Work with a fixed cost per run (a dataflow
//! round, a search commit) is also spaced by its own length ([`Pace`]): the busier the
//! machine, the longer a run takes and the rarer runs get.

use std::time::Duration;
use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};

pub use girok_storage::sched::{latency_critical, set_short_slices};

/// A step of `thread_priority`'s 0–99 scale (99 is niceness -20, 0 is +19) that it turns into
/// niceness 4 on Linux (as `/proc/<pid>/task/<tid>/stat` shows).
const SOMEWHAT_LOWER: u8 = 37;

/// Lowers the calling thread's priority (on Linux: niceness 19; threads it starts inherit it).
/// A failure is logged and otherwise ignored: the thread works the same, only less politely.
pub fn lower_priority(what: &str) {
    set(what, ThreadPriority::Min);
}

/// Lowers the calling thread's priority a little (on Linux: niceness 4).
pub fn lower_priority_somewhat(what: &str) {
    match ThreadPriorityValue::try_from(SOMEWHAT_LOWER) {
        Ok(value) => set(what, ThreadPriority::Crossplatform(value)),
        Err(error) => tracing::warn!(what, ?error, "no such thread priority"),
    }
}

fn set(what: &str, priority: ThreadPriority) {
    if let Err(error) = set_current_thread_priority(priority) {
        tracing::warn!(what, ?error, "cannot lower the thread's priority");
    }
}

/// How often work with a fixed cost per run may run: after a run that took `t`, the next one
/// waits `share` times `t`, within `min..=max`, so that the work takes about 1/`share` of the
/// time it spans. A run's length is its wall time, waits for the core included.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub share: u32,
    pub min: Duration,
    pub max: Duration,
}

impl Pace {
    /// The wait before the next run, after a run that took `took`.
    pub fn gap(&self, took: Duration) -> Duration {
        (took * self.share).clamp(self.min, self.max)
    }
}
