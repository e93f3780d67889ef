//! The matcher: a task that submits a wave to the sequencer when the pool says one is due (a
//! waiting ticket's preferences relax, or it expires). Pairs of a newcomer with someone who
//! already waits are made at the join itself; waves only catch what time changes. It also
//! submits a checkpoint of the rows written behind (`rows.rs`) when one is due and no
//! command came to write it. It looks every `wave_interval` at three numbers the writer
//! thread publishes, so an idle queue costs nothing but the look.

use super::command::MatchingCommand;
use super::stage::PoolGauge;
use crate::command::{Command, Submission};
use crate::sequencer::Sequencer;
use girok_storage::Appender;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Starts the matcher on the current tokio runtime; abort the handle to stop it.
pub(crate) fn spawn(
    appender: Appender<Sequencer>,
    gauge: Arc<PoolGauge>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first wave goes at once: it loads the pool the log left (tickets opened before
        // a restart), publishes its figures and expires what waited past its time meanwhile.
        let mut first = true;
        loop {
            ticks.tick().await;
            let now_ms = crate::accounts::now_ms();
            let idle = gauge.waiting.load(Ordering::Relaxed) == 0
                || gauge.next_due_ms.load(Ordering::Relaxed) > now_ms;
            let command = if std::mem::take(&mut first) || !idle {
                MatchingCommand::Wave
            } else if gauge.checkpoint_due_ms.load(Ordering::Relaxed) <= now_ms {
                MatchingCommand::Checkpoint
            } else {
                continue;
            };
            let wave = Submission::by_girok(Command::Matching(command));
            match appender.submit(wave).await {
                Ok(_) => {}
                Err(crate::Error::Unavailable) => return,
                Err(error) => tracing::warn!(%error, "matching wave refused; retrying"),
            }
        }
    })
}
