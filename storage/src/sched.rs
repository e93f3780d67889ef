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
//!
//! fjall's flush and compaction workers run at a lower priority (`storage.workers_niceness`,
//! inherited from the thread that opens the database: [`with_niceness`]). At the server's own,
//! a seal's flushes and compactions (20–30 ms of CPU every half second at 10,000 joins/s, and
//! 5–7 ms of the sealer's) took their full share of a core already 0.8 busy, and every command
//! queued behind them: most of the 100-ms windows with join→matched p99 over 20 ms were those.
//! At the default, 5, a worker weighs a third of a normal thread (the kernel's weights: 335
//! against 1,024), so a flush spreads over more time and takes less from the threads on the
//! delivery path, yet on a saturated core (about a tenth of it against three busy threads) it
//! still gets what it needs: matching at 13,000 joins/s, 0.064 cores at 5 and 0.063 at 0;
//! chat at 10,000 messages/s, 0.008–0.009. At 19 (a weight of 15) chat's delivery p99 at
//! saturation was longer in each of four pairs, twice by far, though the workers used the
//! same CPU: most likely a worker that holds what the writer waits for (a lock, a flush) gets
//! the core last (README, Benchmarks → Random matching, stops 59 and 60).

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

/// The niceness of fjall's flush and compaction workers by default (`storage.workers_niceness`).
pub const DEFAULT_WORKERS_NICENESS: i32 = 5;

/// Runs `open` on a thread of its own at `niceness` (0, or below the caller's: the caller's), so
/// that the threads it starts (fjall's workers, when it opens the database) inherit it while
/// the caller keeps its own. `Err` only if that thread could not start or panicked.
pub fn with_niceness<T: Send>(
    niceness: i32,
    open: impl FnOnce() -> T + Send,
) -> std::io::Result<T> {
    std::thread::scope(|scope| {
        let opener = std::thread::Builder::new()
            .name("girok-store-open".into())
            .spawn_scoped(scope, || {
                if let Err(error) = lower_niceness(niceness) {
                    tracing::warn!(%error, niceness, "cannot lower the priority of fjall's workers");
                }
                open()
            })?;
        opener
            .join()
            .map_err(|_| std::io::Error::other("the thread opening the database panicked"))
    })
}

/// `setpriority(2)` for the calling thread (on Linux the niceness is a thread's, not the
/// process's), unless `niceness` is 0 (the thread's own, whatever the server was started at)
/// or the thread is at it or above already (raising a priority takes a privilege).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn lower_niceness(niceness: i32) -> std::io::Result<()> {
    // SAFETY: plain system calls on the calling thread (`who` 0), no memory passed.
    let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if niceness <= 0 || current >= niceness {
        return Ok(());
    }
    let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, niceness) };
    os_result(i64::from(done))
}

/// A system call's result: 0 is success, anything else the error in `errno`.
#[cfg(target_os = "linux")]
fn os_result(done: i64) -> std::io::Result<()> {
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_niceness(_: i32) -> std::io::Result<()> {
    Ok(())
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
    os_result(done)
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

    /// A thread's niceness, from its `stat` (`/proc/thread-self` or `/proc/self/task/<tid>`).
    fn niceness_in(dir: &str) -> i64 {
        let stat = std::fs::read_to_string(format!("{dir}/stat")).expect("stat");
        let after_name = &stat[stat.rfind(')').expect("(comm)") + 2..];
        // Field 19 of stat is the niceness; after the name, it is the 17th.
        after_name
            .split(' ')
            .nth(16)
            .expect("nice")
            .parse()
            .expect("a number")
    }

    /// The niceness of each of fjall's workers once a store opens with `config`, and the
    /// opening thread's before and after. Every fjall worker of the process is counted:
    /// nextest runs each test in a process of its own.
    fn workers_niceness_with(config: crate::StoreConfig) -> (Vec<i64>, i64, i64) {
        let before = niceness_in("/proc/thread-self");
        let _store = crate::Store::open(config).expect("the store");
        let workers: Vec<i64> = std::fs::read_dir("/proc/self/task")
            .expect("the tasks")
            .filter_map(|task| {
                let task = task.ok()?.path();
                let name = std::fs::read_to_string(task.join("comm")).ok()?;
                (name.trim() == "fjall:worker").then(|| niceness_in(&task.to_string_lossy()))
            })
            .collect();
        assert!(!workers.is_empty(), "fjall started no workers");
        (workers, before, niceness_in("/proc/thread-self"))
    }

    #[test]
    fn fjalls_workers_run_at_the_configured_niceness_and_the_opener_keeps_its_own() {
        let dir = tempfile::tempdir().expect("a directory");
        let mut config = crate::StoreConfig::new(dir.path());
        config.workers_niceness = 19;
        let (workers, before, after) = workers_niceness_with(config);
        assert!(workers.iter().all(|n| *n == 19), "{workers:?}");
        assert_eq!(after, before);
    }

    /// By default the workers run below the server (niceness 5: a third of a normal thread's
    /// weight on a contested core, README, Benchmarks → Random matching, stop 60), unless the
    /// server itself runs lower still.
    #[test]
    fn fjalls_workers_run_below_the_server_by_default() {
        let dir = tempfile::tempdir().expect("a directory");
        // The default itself, in case the test runs at 5 or above already (then so do the
        // workers).
        assert_eq!(crate::StoreConfig::new(dir.path()).workers_niceness, 5);
        let (workers, before, after) = workers_niceness_with(crate::StoreConfig::new(dir.path()));
        let expected = before.max(5);
        assert!(workers.iter().all(|n| *n == expected), "{workers:?}");
        assert_eq!(after, before);
    }

    /// Threads started inside inherit the lowest niceness; the caller keeps its own.
    #[test]
    fn threads_started_inside_inherit_the_niceness() {
        let before = niceness_in("/proc/thread-self");
        let inherited = with_niceness(19, || {
            std::thread::spawn(|| niceness_in("/proc/thread-self"))
                .join()
                .expect("the thread")
        })
        .expect("the opening thread");
        assert_eq!(inherited, 19);
        assert_eq!(niceness_in("/proc/thread-self"), before);
    }

    /// The call keeps the thread's niceness (it sets one too).
    #[test]
    fn the_short_slice_keeps_the_threads_niceness() {
        std::thread::spawn(|| {
            let niceness = || niceness_in("/proc/thread-self");
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
