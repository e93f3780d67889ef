//! How a thread on the delivery path asks the kernel for the core. On a busy core the log
//! writer, the sync thread, the hub and the sockets' async runtime wake thousands of times a
//! second for microseconds of work each, and Linux's fair scheduler (EEVDF) lets the thread
//! that is running finish its time slice (milliseconds) before a woken one may take the core,
//! unless the woken one asked for a shorter slice than the running one's. So these threads ask for
//! the shortest slice the kernel grants ([`LATENCY_SLICE`]): they get the core sooner when
//! they wake, and give it up sooner when they run long; their share of the core is unchanged.
//! Measured with `scripts/chat-load.sh --rate 2000` and `perf sched`: without it the socket
//! runtime waited up to 5–7 ms, behind a search indexing thread running its whole slice
//! (README, Benchmarks → chat). A kernel before 6.12 ignores the request, and so does every
//! other system. `server.short_slices = false` switches it off ([`set_short_slices`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The slice a thread on the delivery path asks for (the kernel's least, 0.1 ms).
pub const LATENCY_SLICE: Duration = Duration::from_micros(100);

/// Whether [`latency_critical`] asks for the short slice: one choice for the whole process.
static SHORT_SLICES: AtomicBool = AtomicBool::new(true);

/// Chooses whether threads that start from now on ask for the short slice (the default) or
/// keep the kernel's; set once at start, before the threads.
pub fn set_short_slices(on: bool) {
    SHORT_SLICES.store(on, Ordering::Relaxed);
}

/// Asks for [`LATENCY_SLICE`] for the calling thread, unless switched off (`what` names it in
/// the log if the kernel refuses; the thread then works the same, only waits longer for the
/// core when it is busy).
pub fn latency_critical(what: &str) {
    if !SHORT_SLICES.load(Ordering::Relaxed) {
        return;
    }
    if let Err(error) = shorten_slice(LATENCY_SLICE) {
        tracing::debug!(what, %error, "the kernel did not shorten the thread's time slice");
    }
}

/// `sched_setattr(2)` on the calling thread: the normal policy at the thread's niceness (the
/// call sets it too, so it passes the one the thread has: a server started with `nice` stays
/// at it) with a custom slice (`sched_runtime`, which the fair scheduler reads as the slice
/// since Linux 6.12).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn shorten_slice(slice: Duration) -> std::io::Result<()> {
    // SAFETY: a plain system call on the calling thread (who 0), with no pointer.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let attr = libc::sched_attr {
        size: std::mem::size_of::<libc::sched_attr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        sched_runtime: u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX),
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: `attr` is a valid `sched_attr` whose `size` says how much of it the kernel may
    // read; pid 0 is the calling thread; the kernel keeps no pointer to it after the call.
    let done = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const _, 0) };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn shorten_slice(_: Duration) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    /// The calling thread's id, as `/proc/thread-self` names it.
    fn thread_id() -> u64 {
        let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
        link.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .expect("a thread id")
    }

    /// The slice shows in `/proc/thread-self/sched` as `se.slice` (Linux 6.12 and later).
    #[test]
    fn a_latency_critical_thread_gets_the_short_slice() {
        std::thread::spawn(|| {
            shorten_slice(LATENCY_SLICE).expect("sched_setattr for the normal policy");
            let sched = std::fs::read_to_string("/proc/thread-self/sched").expect("sched");
            let line = sched
                .lines()
                .find(|l| l.starts_with("se.slice"))
                .expect("se.slice in /proc/thread-self/sched");
            let slice: u64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.trim().parse().ok())
                .expect("a number of nanoseconds");
            assert_eq!(slice, 100_000, "{line}");
        })
        .join()
        .expect("the thread");
    }

    /// The call keeps the thread's niceness (it sets one too).
    #[test]
    fn the_short_slice_keeps_the_threads_niceness() {
        std::thread::spawn(|| {
            let niceness = || -> i64 {
                let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
                let after_name = &stat[stat.rfind(')').expect("(comm)") + 2..];
                // Field 19 of stat is the niceness; after the name, it is the 17th.
                after_name
                    .split(' ')
                    .nth(16)
                    .expect("nice")
                    .parse()
                    .expect("a number")
            };
            let renice = std::process::Command::new("renice")
                .args(["-n", "3", "-p", &thread_id().to_string()])
                .output()
                .expect("renice (util-linux)");
            assert!(renice.status.success(), "{renice:?}");
            assert_eq!(niceness(), 3);
            shorten_slice(LATENCY_SLICE).expect("sched_setattr for the normal policy");
            assert_eq!(niceness(), 3);
        })
        .join()
        .expect("the thread");
    }
}
