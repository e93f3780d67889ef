//! Wakes open-loop senders at their scheduled instants with sub-millisecond precision. tokio's
//! timer wheel has a 1 ms tick and rounds deadlines up to it, so a sender sleeping on it left
//! about 0.8 ms after its scheduled instant (which every latency measured from the schedule
//! included). The pacer is one thread that walks every sender's schedule in time order, sleeps
//! until the next instant (`nanosleep`, tens of microseconds late at most on an idle core) and
//! notifies that sender; a sender that is already late does not wait for it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One sender's schedule: its `n`-th send is due `first_ns + n * period_ns` after the epoch,
/// for `n` below `count`.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub first_ns: u64,
    pub period_ns: u64,
    pub count: u64,
}

/// Starts the pacer thread; the sender `i` is woken through `wakes[i]` at each instant of
/// `schedules[i]`. The thread ends after the last instant.
pub fn start(
    epoch: Instant,
    schedules: Vec<Schedule>,
    wakes: Vec<Arc<Notify>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("pacer".into())
        .spawn(move || {
            let mut next: BinaryHeap<Reverse<(u64, usize, u64)>> = schedules
                .iter()
                .enumerate()
                .filter(|(_, s)| s.count > 0)
                .map(|(i, s)| Reverse((s.first_ns, i, 0)))
                .collect();
            while let Some(Reverse((due_ns, i, n))) = next.pop() {
                let due = epoch + Duration::from_nanos(due_ns);
                loop {
                    let now = Instant::now();
                    if now >= due {
                        break;
                    }
                    std::thread::sleep(due - now);
                }
                wakes[i].notify_one();
                let schedule = schedules[i];
                if n + 1 < schedule.count {
                    next.push(Reverse((due_ns + schedule.period_ns, i, n + 1)));
                }
            }
        })
}

/// Waits until `due`: woken by the pacer, or by tokio's timer 2 ms late should the pacer miss
/// it (it never should; the timer only keeps a sender from hanging).
pub async fn wait_until(wake: &Notify, due: tokio::time::Instant) {
    while tokio::time::Instant::now() < due {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep_until(due + Duration::from_millis(2)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn every_sender_is_woken_for_each_instant_and_never_before_it() {
        let epoch = tokio::time::Instant::now() + Duration::from_millis(20);
        let schedules = vec![
            Schedule {
                first_ns: 1_000_000,
                period_ns: 3_000_000,
                count: 4,
            },
            Schedule {
                first_ns: 2_500_000,
                period_ns: 5_000_000,
                count: 2,
            },
            Schedule {
                first_ns: 0,
                period_ns: 1,
                count: 0,
            },
        ];
        let wakes: Vec<Arc<Notify>> = (0..3).map(|_| Arc::new(Notify::new())).collect();
        let pacer = start(epoch.into_std(), schedules.clone(), wakes.clone()).unwrap();
        let sender = |i: usize| {
            let (schedule, wake) = (schedules[i], wakes[i].clone());
            async move {
                for n in 0..schedule.count {
                    let due =
                        epoch + Duration::from_nanos(schedule.first_ns + n * schedule.period_ns);
                    wait_until(&wake, due).await;
                    // Never before its instant (how late is the bench's to measure: a
                    // timed assertion would fail on a busy machine).
                    assert!(tokio::time::Instant::now() >= due);
                }
            }
        };
        tokio::join!(sender(0), sender(1));
        pacer.join().unwrap();
    }
}
