//! The ClickHouse schema of the analytics sink, as versioned migrations (the SQL lives in
//! `schemas/clickhouse/`). A migration is applied once, in order, and recorded in the
//! database's `girok_migrations` table; never edit an applied one, add the next.

/// One migration: its version, name and statements.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    sql: &'static str,
}

impl Migration {
    /// The statements, in order (the file separates them with lines holding only `;`).
    pub fn statements(&self) -> Vec<String> {
        self.sql
            .split("\n;\n")
            .map(|statement| {
                statement
                    .lines()
                    .filter(|line| !line.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n")
                    .trim()
                    .to_owned()
            })
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "audit_and_rollups",
        sql: include_str!("../clickhouse/001_audit_and_rollups.sql"),
    },
    Migration {
        version: 2,
        name: "matching",
        sql: include_str!("../clickhouse/002_matching.sql"),
    },
];

/// The rollup tables: each has `<name>_diffs`, `<name>_state` and the view `<name>`.
pub const ROLLUPS: [&str; 7] = [
    "events_per_type_hourly",
    "active_users_daily",
    "messages_per_room_daily",
    "feed_daily",
    "logins_hourly",
    "matches_hourly",
    "match_waits_hourly",
];

/// The table that records applied migrations.
pub const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS girok_migrations (version UInt32, name String, applied_at DateTime('UTC')) ENGINE = MergeTree ORDER BY version";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_split_into_statements_without_comments() {
        let first = MIGRATIONS[0].statements();
        assert!(first[0].starts_with("CREATE TABLE IF NOT EXISTS audit_events"));
        let statements: Vec<String> = MIGRATIONS.iter().flat_map(|m| m.statements()).collect();
        assert_eq!(statements.len(), 1 + 4 * ROLLUPS.len());
        assert!(
            statements
                .iter()
                .all(|s| !s.contains("--") && !s.ends_with(';'))
        );
        for rollup in ROLLUPS {
            assert!(
                statements
                    .iter()
                    .any(|s| s.contains(&format!("VIEW IF NOT EXISTS {rollup} AS")))
            );
        }
    }
}
