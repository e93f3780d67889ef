//! CPU time per thread name, read from `/proc/self/task` (Linux), to show which part of the
//! process a suite's throughput is bound by.

use std::collections::BTreeMap;
use std::fmt::Display;

/// Clock ticks per second (USER_HZ): 100 on every Linux this runs on.
const TICKS: f64 = 100.0;

/// CPU seconds (user + system) per thread-name prefix, for live threads.
pub fn by_thread() -> BTreeMap<String, f64> {
    let mut totals = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
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

/// CPU seconds all cores spent running processes (user, nice, system), from `/proc/stat`.
/// Interrupt and softirq time is left out: on loopback it is the measured processes' own
/// network work, charged to nobody.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(3)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    Some(ticks.iter().sum::<f64>() / TICKS)
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
    let mut now = by_thread();
    for (name, seconds) in now.iter_mut() {
        *seconds -= before.get(name).copied().unwrap_or(0.0);
    }
    now.retain(|_, s| *s > 0.005);
    now
}

/// CPU counters at one instant: a load generator's server (when its pid is known), the
/// generator itself, and the whole machine.
pub struct CpuReading {
    at: std::time::Instant,
    server: Option<f64>,
    generator: Option<f64>,
    machine: Option<f64>,
}

/// Cores used between two readings.
pub struct Cores {
    pub server: Option<f64>,
    pub generator: Option<f64>,
    /// Whatever else ran on the machine (known only when the server's own CPU is).
    pub other: Option<f64>,
}

impl CpuReading {
    pub fn take(server_pid: Option<u32>) -> Self {
        Self {
            at: std::time::Instant::now(),
            server: server_pid.and_then(cpu_seconds),
            generator: cpu_seconds("self"),
            machine: machine_busy_seconds(),
        }
    }

    /// The cores each used from `before` to this reading.
    pub fn cores_since(&self, before: &CpuReading) -> Cores {
        let wall = self.at.duration_since(before.at).as_secs_f64();
        let cores = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / wall);
        let server = cores(before.server, self.server);
        let generator = cores(before.generator, self.generator);
        let other = cores(before.machine, self.machine)
            .zip(server.zip(generator))
            .map(|(machine, (server, generator))| (machine - server - generator).max(0.0));
        Cores {
            server,
            generator,
            other,
        }
    }
}
