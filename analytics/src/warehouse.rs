//! ClickHouse as the sink uses it: the connection (RowBinary over HTTP with TCP_NODELAY, no
//! schema validation — ClickHouse 18.16 lacks what the crate validates with, so every table is
//! covered by a test that reads back what it wrote), migrations, the resume offsets, inserts.

use crate::config::AnalyticsConfig;
use crate::rollups::Rollup;
use crate::rows::{AuditRow, RollupRow};
use crate::{Error, Result};
use clickhouse::Client;
use girok_schemas::Seq;
use girok_schemas::clickhouse::{MIGRATIONS, MIGRATIONS_TABLE, ROLLUPS};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// How far ClickHouse already holds each table: the sink writes only what comes after.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    pub audit: Seq,
    /// In [`Rollup::ALL`] order.
    pub rollups: [Seq; Rollup::ALL.len()],
}

impl Offsets {
    pub fn rollup(&self, rollup: Rollup) -> Seq {
        self.rollups[rollup as usize]
    }
}

/// A connected, migrated ClickHouse database.
pub struct Warehouse {
    client: Client,
    database: String,
}

fn connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    // Without it each small insert waits ~40 ms for Nagle and delayed ACKs.
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    connector
}

impl Warehouse {
    /// Connects, creates the database if needed and applies pending migrations.
    pub async fn connect(config: &AnalyticsConfig) -> Result<Self> {
        let url = config
            .clickhouse_url
            .clone()
            .ok_or_else(|| Error::Config("analytics.clickhouse_url is not set".into()))?;
        let database = config.database_name()?.to_owned();
        let http = HyperClient::builder(TokioExecutor::new())
            // Below the 3 s keep-alive of older ClickHouse servers.
            .pool_idle_timeout(Duration::from_millis(2_500))
            .build(connector());
        let base = Client::with_http_client(http)
            .with_url(url)
            .with_user(config.user.clone())
            .with_password(config.password.clone())
            .with_validation(false);
        base.query(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
            .execute()
            .await?;
        let warehouse = Self {
            client: base.with_database(database.clone()),
            database,
        };
        warehouse.migrate().await?;
        Ok(warehouse)
    }

    /// The client, on the sink's database (for tests and the bench).
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn migrate(&self) -> Result<()> {
        self.client.query(MIGRATIONS_TABLE).execute().await?;
        let applied: Vec<u32> = self
            .client
            .query("SELECT toUInt32(version) FROM girok_migrations")
            .fetch_all()
            .await?;
        for migration in MIGRATIONS {
            if applied.contains(&migration.version) {
                continue;
            }
            for statement in migration.statements() {
                self.client.query(&statement).execute().await?;
            }
            self.client
                .query(
                    "INSERT INTO girok_migrations (version, name, applied_at) VALUES (?, ?, now())",
                )
                .bind(migration.version)
                .bind(migration.name)
                .execute()
                .await?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                database = %self.database,
                "analytics migration applied"
            );
        }
        Ok(())
    }

    /// What ClickHouse holds: the highest seq of each table.
    pub async fn offsets(&self) -> Result<Offsets> {
        let audit: u64 = self
            .client
            .query("SELECT toUInt64(max(seq)) FROM audit_events")
            .fetch_one()
            .await?;
        let mut offsets = Offsets {
            audit,
            rollups: [0; Rollup::ALL.len()],
        };
        for rollup in Rollup::ALL {
            let sql = format!(
                "SELECT toUInt64(maxMerge(max_seq)) FROM {}_state",
                rollup.table()
            );
            offsets.rollups[rollup as usize] = self.client.query(&sql).fetch_one().await?;
        }
        Ok(offsets)
    }

    pub async fn insert_audit(&self, rows: &[AuditRow]) -> Result<()> {
        let mut insert = self.client.insert::<AuditRow>("audit_events").await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await?;
        Ok(())
    }

    pub async fn insert_rollup(&self, rollup: Rollup, rows: &[RollupRow]) -> Result<()> {
        let table = format!("{}_diffs", rollup.table());
        let mut insert = self.client.insert::<RollupRow>(&table).await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await?;
        Ok(())
    }

    /// Drops every table, view and the migration record (`girok analytics rebuild`).
    pub async fn drop_all(&self) -> Result<()> {
        let mut objects = vec!["audit_events".to_owned(), "girok_migrations".to_owned()];
        for rollup in ROLLUPS {
            for suffix in ["", "_mv", "_state", "_diffs"] {
                objects.push(format!("{rollup}{suffix}"));
            }
        }
        for object in objects {
            self.client
                .query(&format!("DROP TABLE IF EXISTS {object}"))
                .execute()
                .await?;
        }
        Ok(())
    }
}
