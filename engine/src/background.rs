//! Background threads (search indexing, the analytics pipeline) run at the lowest scheduling
//! priority, so that on a saturated machine they take what the log writer, the views and live
//! deliveries leave, instead of adding latency to them. Their work is behind a watermark or a
//! lag anyway: it is delayed, never lost.

use thread_priority::{ThreadPriority, set_current_thread_priority};

/// Lowers the calling thread's priority (on Linux: niceness 19; threads it starts inherit it).
/// A failure is logged and otherwise ignored: the thread works the same, only less politely.
pub fn lower_priority(what: &str) {
    if let Err(error) = set_current_thread_priority(ThreadPriority::Min) {
        tracing::warn!(what, ?error, "cannot lower the thread's priority");
    }
}
