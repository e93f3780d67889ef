//! Wakes open-loop senders at their scheduled instants with sub-millisecond precision. tokio's
//! timer wheel has a 1 ms tick and rounds deadlines up to it, so a sender sleeping on it left
//! about 0.8 ms after its scheduled instant (which every latency measured from the schedule
//! included). The pacer is one thread that walks every sender's schedule in time order, sleeps
//! until the next instant (`nanosleep`, tens of microseconds late at most on an idle core) and
//! notifies that sender; a sender that is already late does not wait for it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
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

impl Schedule {
    /// When send `n` is due, after the epoch.
    pub fn due_ns(&self, n: u64) -> u64 {
        self.first_ns + n * self.period_ns
    }
}

/// Starts the pacer thread; `wake(i)` is called at each instant of `schedules[i]`, in time
/// order. The thread ends after the last instant.
pub fn start(
    epoch: Instant,
    schedules: Vec<Schedule>,
    wake: impl Fn(usize) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("pacer".into())
        .spawn(move || {
            let mut next: BinaryHeap<Reverse<(u64, usize, u64)>> = schedules
                .iter()
                .enumerate()
                .filter(|(_, s)| s.count > 0)
                .map(|(i, s)| Reverse((s.due_ns(0), i, 0)))
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
                wake(i);
                if n + 1 < schedules[i].count {
                    next.push(Reverse((schedules[i].due_ns(n + 1), i, n + 1)));
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
    use std::sync::{Arc, Mutex};

    #[test]
    fn every_instant_is_woken_once_in_time_order_and_never_before_it() {
        let epoch = Instant::now() + Duration::from_millis(5);
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
        let woken = Arc::new(Mutex::new(Vec::new()));
        let record = woken.clone();
        let pacer = start(epoch, schedules.clone(), move |i| {
            record.lock().unwrap().push((i, Instant::now()));
        })
        .unwrap();
        pacer.join().unwrap();
        let woken = woken.lock().unwrap().clone();
        let mut expected: Vec<(u64, usize)> = schedules
            .iter()
            .enumerate()
            .flat_map(|(i, s)| (0..s.count).map(move |n| (s.first_ns + n * s.period_ns, i)))
            .collect();
        expected.sort();
        assert_eq!(
            woken.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            expected.iter().map(|(_, i)| *i).collect::<Vec<_>>()
        );
        for ((_, at), (due_ns, _)) in woken.iter().zip(&expected) {
            assert!(*at >= epoch + Duration::from_nanos(*due_ns));
        }
    }
}
