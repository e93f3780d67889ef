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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
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
