//! Memory per component on `/metrics`, for a memory budget: the process's resident memory (in
//! all and anonymous, read from `/proc/self/status` on Linux), the log's and the view store's
//! block caches and memtables, the event cache, the search writer's buffer, and the entries
//! each view holds in memory. README "Sizing memory" turns them into a budget: the anonymous
//! memory is about a fixed base, plus the caches and memtables, plus a measured amount per
//! live post, like and comment (the in-memory indexes and the dataflow's arrangements, which
//! no gauge counts).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabel {
    component: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViewLabel {
    view: &'static str,
}

/// The gauges.
#[derive(Default)]
pub(crate) struct MemoryMetrics {
    bytes: Family<ComponentLabel, Gauge>,
    view_entries: Family<ViewLabel, Gauge>,
}

impl MemoryMetrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "girok_memory_bytes",
            "Memory by component: process_resident and process_anonymous (the whole process), \
             log_block_cache, log_memtables, log_flushed_memtables (sealed ones held until freed: being flushed, also in log_memtables, or flushed), \
             view_block_cache, view_memtable, event_cache, \
             search_writer (its buffer's budget)",
            self.bytes.clone(),
        );
        registry.register(
            "girok_view_memory_entries",
            "Entries a view holds in memory (room_history: each room's newest messages and the \
             latest edits; timelines: the profiles; follows: the followee lists cached; \
             notifications: none, they are in the view store; the rest whole)",
            self.view_entries.clone(),
        );
    }

    /// Sets the gauges: `components` as `(name, bytes)`, `views` as `(view, entries)`, and the
    /// process's own figures where the system tells them.
    pub(crate) fn observe(
        &self,
        components: &[(&'static str, u64)],
        views: &[(&'static str, usize)],
    ) {
        let process = process_memory();
        let process = [
            ("process_resident", process.map(|p| p.resident)),
            ("process_anonymous", process.map(|p| p.anonymous)),
        ];
        let components = components.iter().map(|&(name, bytes)| (name, Some(bytes)));
        for (component, bytes) in process.into_iter().chain(components) {
            if let Some(bytes) = bytes {
                self.bytes
                    .get_or_create(&ComponentLabel { component })
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
        }
        for &(view, entries) in views {
            self.view_entries
                .get_or_create(&ViewLabel { view })
                .set(i64::try_from(entries).unwrap_or(i64::MAX));
        }
    }
}

/// Resident bytes of this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ProcessMemory {
    resident: u64,
    anonymous: u64,
}

/// From `/proc/self/status` (`None` where there is none).
fn process_memory() -> Option<ProcessMemory> {
    parse_status(&std::fs::read_to_string("/proc/self/status").ok()?)
}

fn parse_status(status: &str) -> Option<ProcessMemory> {
    let kib = |field: &str| -> Option<u64> {
        let line = status.lines().find_map(|line| line.strip_prefix(field))?;
        line.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
    };
    Some(ProcessMemory {
        resident: kib("VmRSS:")? * 1024,
        anonymous: kib("RssAnon:")? * 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resident_and_anonymous_memory_from_a_status_file() {
        let status =
            "Name:\tgirok\nVmRSS:\t  204800 kB\nRssAnon:\t  153600 kB\nRssFile:\t 51200 kB\n";
        assert_eq!(
            parse_status(status),
            Some(ProcessMemory {
                resident: 200 << 20,
                anonymous: 150 << 20,
            })
        );
        assert_eq!(parse_status("Name:\tgirok\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_reports_its_memory_here() {
        let memory = process_memory().expect("Linux has /proc/self/status");
        assert!(memory.anonymous > 0 && memory.resident >= memory.anonymous);
    }
}
