//! The fjall database of one data directory: opening it, the keyspace handles, reading the log
//! and the write model. Writing goes through [`crate::writer`] only.

use crate::head::HeadSignal;
use crate::metrics::StorageMetrics;
use crate::tables::Table;
use crate::{Error, Result, Seq};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How hard an acknowledged write is guaranteed to have hit the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fdatasync once per batch before acknowledging: an acked write survives a process crash,
    /// an OS crash and a power loss.
    #[default]
    Sync,
    /// Written to the OS once per batch before acknowledging, never fsynced by girok: an acked
    /// write survives a crash of girok itself (`kill -9`), but an OS crash or power loss can
    /// lose the last writes the kernel had not flushed yet (typically up to ~30 s).
    Buffered,
}

impl Durability {
    pub(crate) fn persist_mode(self) -> PersistMode {
        match self {
            Durability::Sync => PersistMode::SyncData,
            Durability::Buffered => PersistMode::Buffer,
        }
    }
}

/// Table files fjall keeps open by default (fjall's own default, 900, nearly fills the usual
/// limit of 1,024 descriptors by itself).
pub const DEFAULT_MAX_OPEN_FILES: usize = 256;

/// Where and how to open the database.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub durability: Durability,
    /// Block cache size in bytes.
    pub cache_bytes: u64,
    /// Most table files fjall keeps open at once (its descriptor cache).
    pub max_open_files: usize,
}

impl StoreConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            durability: Durability::Sync,
            cache_bytes: 64 * 1024 * 1024,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
        }
    }
}

/// What `girok log stats` reports.
#[derive(Clone, Debug, Serialize)]
pub struct LogStats {
    pub first_seq: Option<Seq>,
    pub last_seq: Option<Seq>,
    pub disk_bytes: u64,
}

/// An open data directory. Shared (`Arc`) between the writer thread and all readers.
pub struct Store {
    db: Database,
    tables: Vec<Keyspace>,
    head: HeadSignal,
    metrics: StorageMetrics,
    config: StoreConfig,
    /// Set when a commit or fsync failed: fjall refuses further writes, so must we.
    failed: std::sync::atomic::AtomicBool,
    durable: crate::durable::DurableFeed,
}

impl Store {
    /// Opens (or creates) the database; recovers from a crash, truncating a torn journal tail.
    pub fn open(config: StoreConfig) -> Result<Arc<Store>> {
        std::fs::create_dir_all(&config.data_dir)?;
        let db = Database::builder(&config.data_dir)
            .cache_size(config.cache_bytes)
            .max_cached_files(Some(config.max_open_files.max(16)))
            .open()
            .map_err(|e| match e {
                fjall::Error::Locked => Error::Locked(config.data_dir.clone()),
                other => Error::Fjall(other),
            })?;
        let tables = Table::ALL
            .iter()
            .map(|t| db.keyspace(t.name(), KeyspaceCreateOptions::default))
            .collect::<fjall::Result<Vec<_>>>()?;
        let mut store = Store {
            db,
            tables,
            head: HeadSignal::new(0),
            metrics: StorageMetrics::default(),
            config,
            failed: std::sync::atomic::AtomicBool::new(false),
            durable: Default::default(),
        };
        let head = store.last_seq()?.unwrap_or(0);
        store.head = HeadSignal::new(head);
        store.metrics.head.set(head as i64);
        tracing::info!(dir = %store.config.data_dir.display(), head, "store opened");
        Ok(Arc::new(store))
    }

    pub(crate) fn keyspace(&self, table: Table) -> &Keyspace {
        &self.tables[table.index()]
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    pub(crate) fn mark_failed(&self) {
        self.failed
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether a write failed at the disk; the writer then stops and `/readyz` says so.
    pub fn is_failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Every batch of log entries from now on, as it becomes durable (after the head has
    /// moved past it). A receiver that lags reads the missed entries with [`Store::read_range`].
    pub fn durable_batches(&self) -> tokio::sync::broadcast::Receiver<Arc<crate::DurableBatch>> {
        self.durable.subscribe()
    }

    pub(crate) fn durable_feed(&self) -> &crate::durable::DurableFeed {
        &self.durable
    }

    /// The durable head and its change notifications.
    pub fn head(&self) -> &HeadSignal {
        &self.head
    }

    /// Metrics updated by the writer.
    pub fn metrics(&self) -> &StorageMetrics {
        &self.metrics
    }

    /// Reads one write-model (or log) value.
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.keyspace(table).get(key)?.map(|v| v.to_vec()))
    }

    /// Reads one log entry.
    pub fn event(&self, seq: Seq) -> Result<Option<Vec<u8>>> {
        self.get(Table::SeqEvent, &seq.to_be_bytes())
    }

    /// Reads up to `limit` log entries with `from <= seq <= to`, in seq order.
    pub fn read_range(&self, from: Seq, to: Seq, limit: usize) -> Result<Vec<(Seq, Vec<u8>)>> {
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        // Preallocate for what is likely, not for what was asked (`to` may be u64::MAX).
        let span = usize::try_from(to - from)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let mut out = Vec::with_capacity(limit.min(span).min(4096));
        for guard in self
            .keyspace(Table::SeqEvent)
            .range(from.to_be_bytes()..=to.to_be_bytes())
            .take(limit)
        {
            let (key, value) = guard.into_inner()?;
            out.push((decode_seq(&key)?, value.to_vec()));
        }
        Ok(out)
    }

    /// Every key of `table` starting with `prefix`, with its value.
    pub fn scan_prefix(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.keyspace(table)
            .prefix(prefix)
            .map(|g| {
                let (k, v) = g.into_inner()?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn first_seq(&self) -> Result<Option<Seq>> {
        match self.keyspace(Table::SeqEvent).first_key_value() {
            Some(guard) => Ok(Some(decode_seq(&guard.key()?)?)),
            None => Ok(None),
        }
    }

    fn last_seq(&self) -> Result<Option<Seq>> {
        match self.keyspace(Table::SeqEvent).last_key_value() {
            Some(guard) => Ok(Some(decode_seq(&guard.key()?)?)),
            None => Ok(None),
        }
    }

    /// Writes staged operations into fjall (journal + memtables) as one atomic batch, without
    /// syncing: the writer thread and `rewrite` both commit this way.
    pub(crate) fn commit_ops(&self, ops: Vec<crate::txn::Op>) -> Result<()> {
        let mut writes = self.db.batch();
        for op in ops {
            match op {
                crate::txn::Op::Put(table, key, value) => {
                    writes.insert(self.keyspace(table), key, value)
                }
                crate::txn::Op::Delete(table, key) => writes.remove(self.keyspace(table), key),
            }
        }
        Ok(writes.commit()?)
    }

    /// Empties a table. Only for tools that own the data directory (replay).
    pub fn clear(&self, table: Table) -> Result<()> {
        Ok(self.keyspace(table).clear()?)
    }

    /// Runs `f` on a fresh batch and commits its writes durably, outside the log writer. Only
    /// for tools that own the data directory (replay rebuilding the write model); `f` may not
    /// append to the log.
    pub fn rewrite<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&mut crate::Txn<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let head = self.head.get();
        let mut batch = crate::txn::BatchState::new(head + 1, 0);
        let mut txn = crate::Txn::new(self, &mut batch);
        let out = f(&mut txn)?;
        txn.accept();
        if batch.appended() > 0 {
            return Err(
                Error::Io(std::io::Error::other("a rewrite may not append to the log")).into(),
            );
        }
        self.commit_ops(batch.ops)?;
        self.db
            .persist(fjall::PersistMode::SyncData)
            .map_err(Error::from)?;
        Ok(out)
    }

    /// Seq range and size on disk.
    pub fn stats(&self) -> Result<LogStats> {
        Ok(LogStats {
            first_seq: self.first_seq()?,
            last_seq: self.last_seq()?,
            disk_bytes: self.db.disk_space()?,
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.config.data_dir
    }
}

fn decode_seq(key: &[u8]) -> Result<Seq> {
    key.try_into()
        .map(Seq::from_be_bytes)
        .map_err(|_| Error::BadKey)
}
