//! CPU time per thread name, read from `/proc/self/task` (Linux), to show which part of the
//! process a suite's throughput is bound by.

use std::collections::BTreeMap;

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
    // Clock ticks per second (USER_HZ): 100 on every Linux this runs on.
    const TICKS: f64 = 100.0;
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace();
    // After the name: state is field 0; utime is 11, stime 12.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS)
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
