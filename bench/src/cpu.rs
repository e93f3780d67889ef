//! CPU time per thread name, of this process or another (`/proc/<pid>/task`, Linux), and the
//! machine's counters (busy time, the host's steal, programs started: `/proc/stat`), to show
//! which part of a process a suite's throughput is bound by, and what else disturbed a run.

use std::collections::BTreeMap;
use std::fmt::Display;

/// Clock ticks per second (USER_HZ): 100 on every Linux this runs on.
const TICKS: f64 = 100.0;

/// CPU seconds (user + system) per thread-name prefix, for live threads.
pub fn by_thread() -> BTreeMap<String, f64> {
    by_thread_of("self")
}

/// CPU seconds (user + system) per thread-name prefix of another process's live threads,
/// `pid` being a number or `self`. Read in-process: a sampler that starts a program per
/// thread disturbs what it samples (on this VM each start costs milliseconds of CPU).
pub fn by_thread_of(pid: impl Display) -> BTreeMap<String, f64> {
    let mut totals = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return totals;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = group(&stat[open + 1..close]);
        *totals.entry(name).or_insert(0.0) += stat_cpu_seconds(&stat).unwrap_or(0.0);
    }
    totals
}

/// CPU seconds (user + system) of a process or thread, from its `/proc/.../stat` line.
pub fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace();
    // After the name: state is field 0; utime is 11, stime 12.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS)
}

/// A process's CPU seconds (user + system), `pid` being a number or `self`.
pub fn cpu_seconds(pid: impl Display) -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The machine's counters, from one read of `/proc/stat`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MachineStat {
    /// CPU seconds all cores spent running processes (user, nice, system). Interrupt and
    /// softirq time is left out: on loopback it is the measured processes' own network work,
    /// charged to nobody.
    pub busy: f64,
    /// CPU seconds the hypervisor gave to others while this machine's cores wanted to run
    /// (`steal`): on a shared VM, the host's own noise.
    pub stolen: f64,
    /// Processes (and threads) the machine has started since boot.
    pub forks: u64,
}

impl MachineStat {
    pub fn read() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// From the text of `/proc/stat`: its all-cores line (user, nice, system, idle, iowait,
    /// irq, softirq, steal, …) and its `processes` line.
    fn parse(stat: &str) -> Option<Self> {
        let cpu = stat.lines().find(|l| l.starts_with("cpu "))?;
        let ticks: Vec<f64> = cpu
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        let processes = stat.lines().find(|l| l.starts_with("processes "))?;
        Some(Self {
            busy: ticks.get(..3)?.iter().sum::<f64>() / TICKS,
            stolen: ticks.get(7)? / TICKS,
            forks: processes.split_whitespace().nth(1)?.parse().ok()?,
        })
    }
}

/// A process's resident set, KiB.
pub fn rss_kib(pid: impl Display) -> Option<u64> {
    status_kib(pid, &["VmRSS:"]).map(|kib| kib[0])
}

/// Fields of `/proc/<pid>/status` given in KiB (`VmRSS:`, `RssAnon:`, ...), in the order
/// asked.
pub fn status_kib(pid: impl Display, fields: &[&str]) -> Option<Vec<u64>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    fields
        .iter()
        .map(|name| {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .collect()
}

/// Folds numbered threads into one group (`timely:work-1` -> `timely:work`).
fn group(name: &str) -> String {
    name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
        .to_owned()
}

/// The difference of two readings.
pub fn since(before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    difference(before, by_thread())
}

/// `after` less `before`, per thread group, leaving out groups that used under 5 ms.
pub fn difference(
    before: &BTreeMap<String, f64>,
    mut after: BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    for (name, seconds) in after.iter_mut() {
        *seconds -= before.get(name).copied().unwrap_or(0.0);
    }
    after.retain(|_, s| *s > 0.005);
    after
}

/// A process's CPU by thread name at one instant, for its share per thread over a window.
pub struct ThreadsReading {
    at: std::time::Instant,
    threads: BTreeMap<String, f64>,
}

impl ThreadsReading {
    pub fn take(pid: impl Display) -> Self {
        Self {
            at: std::time::Instant::now(),
            threads: by_thread_of(pid),
        }
    }

    /// CPU seconds per wall second by thread name since this reading (per second of the time
    /// between the two reads, as the other figures are; groups under 5 ms left out).
    pub fn cores_since(self, pid: impl Display) -> BTreeMap<String, f64> {
        let wall = self.at.elapsed().as_secs_f64().max(f64::EPSILON);
        let mut threads = difference(&self.threads, by_thread_of(pid));
        threads.values_mut().for_each(|seconds| *seconds /= wall);
        threads
    }
}

/// CPU counters at one instant: a load generator's server (when its pid is known), the
/// generator itself, and the whole machine.
pub struct CpuReading {
    at: std::time::Instant,
    server: Option<f64>,
    generator: Option<f64>,
    machine: Option<MachineStat>,
}

/// Processes and threads started on the machine between the first and the last of
/// `readings`: other work that may have disturbed a run even where its CPU time is too
/// short to show (on this VM each program start costs about a millisecond of CPU, and a
/// burst of them stalled a run's deliveries by up to 300 ms).
pub fn forks_between(readings: &[CpuReading]) -> Option<u64> {
    let (first, last) = (readings.first()?, readings.last()?);
    Some(last.machine?.forks.saturating_sub(first.machine?.forks))
}

/// The most processes and threads started between two consecutive `readings`: a burst (a
/// sampler starting programs) stands out from a server's own occasional threads.
pub fn busiest_forks(readings: &[CpuReading]) -> Option<u64> {
    readings.windows(2).filter_map(forks_between).max()
}

/// The most cores `pick` finds between two consecutive `readings` (say, one a second): a
/// burst of other work, or of the host's, that a whole window's average hides.
pub fn busiest(readings: &[CpuReading], pick: impl Fn(&Cores) -> Option<f64>) -> Option<f64> {
    readings
        .windows(2)
        .filter_map(|pair| pick(&pair[1].cores_since(&pair[0])))
        .reduce(f64::max)
}

/// Cores used between two readings.
pub struct Cores {
    pub server: Option<f64>,
    pub generator: Option<f64>,
    /// Whatever else ran on the machine (known only when the server's own CPU is).
    pub other: Option<f64>,
    /// What the host took from the machine's cores (steal).
    pub stolen: Option<f64>,
}

impl CpuReading {
    pub fn take(server_pid: Option<u32>) -> Self {
        Self {
            at: std::time::Instant::now(),
            server: server_pid.and_then(cpu_seconds),
            generator: cpu_seconds("self"),
            machine: MachineStat::read(),
        }
    }

    /// The cores each used from `before` to this reading.
    pub fn cores_since(&self, before: &CpuReading) -> Cores {
        let wall = self.at.duration_since(before.at).as_secs_f64();
        let cores = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / wall);
        let server = cores(before.server, self.server);
        let generator = cores(before.generator, self.generator);
        let machine = |field: fn(&MachineStat) -> f64| {
            cores(
                before.machine.as_ref().map(field),
                self.machine.as_ref().map(field),
            )
        };
        let other = machine(|m| m.busy)
            .zip(server.zip(generator))
            .map(|(machine, (server, generator))| (machine - server - generator).max(0.0));
        Cores {
            server,
            generator,
            other,
            stolen: machine(|m| m.stolen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A reading `secs` after `start` with the counters given (CPU seconds since boot).
    fn reading(start: Instant, secs: u64, server: f64, generator: f64, machine: f64) -> CpuReading {
        CpuReading {
            at: start + Duration::from_secs(secs),
            server: Some(server),
            generator: Some(generator),
            machine: Some(MachineStat {
                busy: machine,
                stolen: secs as f64 * 0.01,
                forks: 100 + secs * secs,
            }),
        }
    }

    #[test]
    fn the_busiest_second_shows_a_burst_the_average_hides() {
        let start = Instant::now();
        // Server and generator use one core each second in all; in the third second other
        // work takes 0.4 cores more.
        let readings = [
            reading(start, 0, 10.0, 5.0, 15.0),
            reading(start, 1, 10.6, 5.4, 16.0),
            reading(start, 2, 11.2, 5.8, 17.0),
            reading(start, 3, 11.8, 6.2, 18.4),
            reading(start, 4, 12.4, 6.6, 19.4),
        ];
        let other = busiest(&readings, |cores| cores.other).unwrap();
        assert!((other - 0.4).abs() < 1e-9, "{other}");
        let average = readings[4].cores_since(&readings[0]).other.unwrap();
        assert!((average - 0.1).abs() < 1e-9, "{average}");
        assert_eq!(busiest(&readings[..1], |cores| cores.other), None);
        let stolen = busiest(&readings, |cores| cores.stolen).unwrap();
        assert!((stolen - 0.01).abs() < 1e-9, "{stolen}");
        assert_eq!(forks_between(&readings), Some(16));
        assert_eq!(busiest_forks(&readings), Some(7));
        assert_eq!(forks_between(&[]), None);
        assert_eq!(busiest_forks(&readings[..1]), None);
    }

    #[test]
    fn the_machine_counters_come_from_one_text() {
        let stat = "cpu  2371559 131801 547237 1847789 51274 0 163526 2417 0 0\n\
                    cpu0 1 2 3 4 5 6 7 8 0 0\n\
                    intr 1 2 3\n\
                    processes 98231\n\
                    procs_running 2\n";
        let counters = MachineStat::parse(stat).unwrap();
        assert!((counters.busy - 30_505.97).abs() < 1e-6, "{counters:?}");
        assert!((counters.stolen - 24.17).abs() < 1e-9, "{counters:?}");
        assert_eq!(counters.forks, 98_231);
        assert_eq!(MachineStat::parse("cpu  1 2 3\n"), None);
    }

    #[test]
    fn the_machine_counts_the_processes_it_starts() {
        let counters = MachineStat::read().unwrap();
        assert!(counters.busy > 0.0);
        assert!(counters.stolen >= 0.0);
        let before = counters.forks;
        std::process::Command::new("true").status().unwrap();
        assert!(MachineStat::read().unwrap().forks > before);
    }

    #[test]
    fn another_process_threads_are_read_by_name() {
        let pid = std::process::id();
        let threads = by_thread_of(pid);
        assert!(!threads.is_empty());
        // The test harness names its threads after the test.
        std::thread::Builder::new()
            .name("cpu-probe-7".into())
            .spawn(move || {
                let names = by_thread_of(pid);
                assert!(names.contains_key("cpu-probe"), "{names:?}");
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
