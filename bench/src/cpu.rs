//! CPU time per thread name, read from `/proc/self/task` (Linux), to show which part of the
//! process a suite's throughput is bound by.

use std::collections::BTreeMap;

/// CPU seconds (user + system) per thread-name prefix, for live threads.
pub fn by_thread() -> BTreeMap<String, f64> {
    let mut totals = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return totals;
    };
    // Clock ticks per second: 100 on every Linux this runs on.
    let ticks = 100.0;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = group(&stat[open + 1..close]);
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // After the name: state is field 0; utime is 11, stime is 12.
        let cpu = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        *totals.entry(name).or_insert(0.0) += (cpu(11) + cpu(12)) / ticks;
    }
    totals
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
