//! The fjall database of one data directory: opening it, the keyspace handles, reading the log
//! and the write model. Writing goes through [`crate::writer`] only.

use crate::head::HeadSignal;
use crate::health::{Health, StorageState, is_transient};
use crate::metrics::StorageMetrics;
use crate::op::Op;
use crate::release::SealedMemtables;
use crate::tables::Table;
use crate::{Error, Result, Seq};
use arc_swap::ArcSwapOption;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;

/// How hard an acknowledged write is guaranteed to have hit the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fdatasync once per batch before acknowledging: an acked write survives a process crash,
    /// an OS crash and a power loss.
    #[default]
    Sync,
    /// Written to the OS once per batch before acknowledging, fsynced behind it (by the
    /// background sync, `WriterConfig::background_sync`, and fjall before each memtable
    /// flush): an acked write survives a crash of girok itself (`kill -9`), but an OS crash or
    /// power loss can lose the writes since the last fsync. fjall's recovery keeps the journal
    /// up to its first torn batch, so what remains is always a prefix of the log.
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

/// The memtables' default bound ([`StoreConfig::write_buffer_bytes`]): without one, each
/// table's memtable grew to fjall's 64 MiB before its flush (fjall's own bound on all of them
/// together is not implemented), and the log's alone held up to five times that in heap. At
/// 32 MiB every seal freed that much at once under fjall's version locks, stopping the tables'
/// reads for tens of milliseconds every few seconds under load; 4 MiB makes each stop an
/// eighth (README, Benchmarks → random matching).
pub const DEFAULT_WRITE_BUFFER_BYTES: u64 = 4 << 20;

/// How often the sealer looks for flushed memtables to free while no seal is asked for.
const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Where and how to open the database.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub durability: Durability,
    /// Block cache size in bytes.
    pub cache_bytes: u64,
    /// Most bytes of keys and values the memtables of all tables hold together: past it, a
    /// commit seals the active memtables for fjall to flush (at least 1 MiB). Their heap is
    /// several times that: skip-list nodes and an allocation per key and value.
    pub write_buffer_bytes: u64,
    /// Most table files fjall keeps open at once (its descriptor cache).
    pub max_open_files: usize,
    /// Niceness of fjall's flush and compaction workers (0–19; 0 and anything below the
    /// opener's: the opener's).
    pub workers_niceness: i32,
}

impl StoreConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            durability: Durability::Sync,
            cache_bytes: 64 * 1024 * 1024,
            write_buffer_bytes: DEFAULT_WRITE_BUFFER_BYTES,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            workers_niceness: crate::sched::DEFAULT_WORKERS_NICENESS,
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

/// Memory a store holds in its block cache and memtables, bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreMemory {
    /// Decoded blocks in the block cache (at most its configured capacity).
    pub block_cache: u64,
    /// Writes in memtables, not yet in table files.
    pub memtables: u64,
    /// Sealed memtables the sealer still holds, to free them once fjall lets them go
    /// (`release.rs`), as many bytes as they held when sealed: those being flushed (also in
    /// `memtables` until their flush ends) and those flushed but not yet freed.
    pub flushed_memtables: u64,
}

/// The fjall database and its keyspace handles: replaced as a whole when the store reopens.
struct Handles {
    db: Database,
    tables: Vec<Keyspace>,
}

impl Handles {
    /// Opens (or creates) the database; recovers from a crash, truncating a torn journal tail.
    fn open(config: &StoreConfig) -> Result<Handles> {
        std::fs::create_dir_all(&config.data_dir)?;
        // fjall starts its flush and compaction workers as it opens, at this thread's niceness.
        let db = crate::sched::with_niceness(config.workers_niceness, || {
            Database::builder(&config.data_dir)
                .cache_size(config.cache_bytes)
                .max_cached_files(Some(config.max_open_files.max(16)))
                .open()
        })?
        .map_err(|e| match e {
            fjall::Error::Locked => Error::Locked(config.data_dir.clone()),
            other => Error::Fjall(other),
        })?;
        let tables = Table::ALL
            .iter()
            .map(|t| db.keyspace(t.name(), KeyspaceCreateOptions::default))
            .collect::<fjall::Result<Vec<_>>>()?;
        Ok(Handles { db, tables })
    }

    /// Seals every table's active memtable and hands it to fjall's flush workers (an empty
    /// one stays as it is); `sealed` keeps them, to free them once flushed.
    fn seal_memtables(&self, sealed: &mut SealedMemtables) -> Result<()> {
        for keyspace in &self.tables {
            sealed.seal(keyspace)?;
        }
        Ok(())
    }

    fn keyspace(&self, table: Table) -> &Keyspace {
        &self.tables[table.index()]
    }

    fn last_seq(&self) -> Result<Option<Seq>> {
        match self.keyspace(Table::SeqEvent).last_key_value() {
            Some(guard) => Ok(Some(decode_seq(&guard.key()?)?)),
            None => Ok(None),
        }
    }
}

/// Bytes the heal probe writes (and syncs) before the store reopens: more than a batch of
/// the journal usually takes.
const PROBE_BYTES: usize = 4 << 20;
/// Longest a reopen waits for readers to let go of the old database.
const REOPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// An open data directory. Shared (`Arc`) between the writer thread and all readers.
pub struct Store {
    /// `None` only while the store reopens (reads then fail as unavailable, briefly).
    handles: ArcSwapOption<Handles>,
    head: HeadSignal,
    metrics: StorageMetrics,
    config: StoreConfig,
    health: Health,
    durable: crate::durable::DurableFeed,
    /// Asks the sealer thread to seal the memtables ([`Store::bound_memtables`]).
    sealer: std::sync::OnceLock<std::sync::mpsc::SyncSender<()>>,
    /// Bytes of the sealed memtables the sealer has not freed yet ([`StoreMemory`]).
    flushed_memtables: AtomicU64,
    /// The highest seq an fsync of the log is known to cover ([`Store::synced_through`]).
    synced: AtomicU64,
}

impl Store {
    /// Opens (or creates) the database; recovers from a crash, truncating a torn journal tail.
    pub fn open(config: StoreConfig) -> Result<Arc<Store>> {
        let handles = Handles::open(&config)?;
        // What the journal recovered may sit in the OS only (a kill -9 before it was synced):
        // synced now, the whole log is covered by an fsync ([`Store::synced_through`]).
        handles.db.persist(PersistMode::SyncData)?;
        let head = handles.last_seq()?.unwrap_or(0);
        let store = Store {
            handles: ArcSwapOption::from_pointee(handles),
            head: HeadSignal::new(head),
            metrics: StorageMetrics::default(),
            config,
            health: Health::default(),
            durable: Default::default(),
            sealer: Default::default(),
            flushed_memtables: AtomicU64::new(0),
            synced: AtomicU64::new(head),
        };
        store.metrics.head.set(head as i64);
        store.metrics.synced_head.set(head as i64);
        tracing::info!(dir = %store.config.data_dir.display(), head, "store opened");
        let store = Arc::new(store);
        store.start_sealer();
        Ok(store)
    }

    /// Starts the thread that seals the memtables when the writer finds them over their bound.
    /// Sealing runs fjall's version upkeep: on the writer thread every command waited for it.
    /// The thread also frees the memtables it sealed once they are flushed (`release.rs`):
    /// after each seal, and every [`RELEASE_EVERY`] while none is asked for. It ends with the
    /// store (its sender goes with it). Without it (the thread could not start) the writer
    /// seals itself, and fjall frees the memtables.
    fn start_sealer(self: &Arc<Store>) {
        let (requests, sealing) = std::sync::mpsc::sync_channel::<()>(1);
        let store = Arc::downgrade(self);
        let started = std::thread::Builder::new()
            .name("girok-sealer".into())
            .spawn(move || {
                let mut sealed = SealedMemtables::default();
                loop {
                    let asked = match sealing.recv_timeout(RELEASE_EVERY) {
                        Ok(()) => true,
                        Err(RecvTimeoutError::Timeout) => false,
                        Err(RecvTimeoutError::Disconnected) => return,
                    };
                    let Some(store) = store.upgrade() else { return };
                    if asked && let Err(error) = store.with(|h| h.seal_memtables(&mut sealed)) {
                        tracing::warn!(%error, "cannot seal the memtables for flushing");
                    }
                    let held = sealed.release();
                    store.flushed_memtables.store(held, Ordering::Relaxed);
                }
            });
        match started {
            Ok(_) => {
                let _ = self.sealer.set(requests);
            }
            Err(error) => tracing::warn!(%error, "cannot start the memtable sealer thread"),
        }
    }

    /// Runs `f` on the current database.
    fn with<T>(&self, f: impl FnOnce(&Handles) -> Result<T>) -> Result<T> {
        match self.handles.load().as_deref() {
            Some(handles) => f(handles),
            None => Err(Error::Unavailable("the database is reopening".into())),
        }
    }

    /// Writes every table's memtable to table files (a clean stop), so that the next open has
    /// next to no journal to replay: replaying the journal a million writes had left took a
    /// second of the next start at the small scale, and several at the large. Waits for fjall's
    /// flush workers up to `wait` (a flush that fails leaves its memtable sealed for good);
    /// returns whether everything was written out. (fjall keeps memtable rotation out of its
    /// documented API; the journal stays the source of truth either way.)
    pub(crate) fn flush_memtables(&self, wait: std::time::Duration) -> Result<bool> {
        self.with(|h| {
            h.seal_memtables(&mut SealedMemtables::default())?;
            let deadline = std::time::Instant::now() + wait;
            while h.db.write_buffer_size() > 0 {
                if std::time::Instant::now() >= deadline {
                    return Ok(false);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok(true)
        })
    }

    /// Makes everything committed so far durable (`mode`).
    pub(crate) fn persist(&self, mode: PersistMode) -> Result<()> {
        self.with(|h| Ok(h.db.persist(mode)?))
    }

    /// Whether the log takes writes.
    pub fn state(&self) -> StorageState {
        self.health.state()
    }

    /// The storage error behind a degraded or failed state.
    pub fn state_reason(&self) -> Option<String> {
        self.health.reason()
    }

    /// Records a storage error: degraded when it may clear by itself, failed otherwise.
    pub(crate) fn storage_error(&self, error: &Error) {
        let before = self.health.state();
        let state = if is_transient(error, before) {
            StorageState::Degraded
        } else {
            StorageState::Failed
        };
        self.metrics.storage_errors.inc();
        let now = self.set_state(state, Some(error.to_string()));
        if now != before {
            match now {
                StorageState::Failed => {
                    tracing::error!(%error, "fatal storage error: no more writes; restart girok to recover")
                }
                _ => tracing::error!(
                    %error,
                    "storage error: writes are refused until it clears (retrying)"
                ),
            }
        }
    }

    /// Marks the store failed for good (the writer stops).
    pub(crate) fn mark_failed(&self, reason: &str) {
        self.set_state(StorageState::Failed, Some(reason.to_owned()));
    }

    /// Moves the health to `state` (a failed store stays failed) and its gauge with it; the
    /// state it is in now.
    fn set_state(&self, state: StorageState, reason: Option<String>) -> StorageState {
        let now = self.health.set(state, reason);
        self.metrics.state.set(now.gauge());
        now
    }

    /// Why the store takes no writes, for the answers that say so.
    pub fn unavailable_reason(&self) -> String {
        self.state_reason()
            .unwrap_or_else(|| "a storage error".into())
    }

    /// Tries to heal a degraded store: writes and syncs a probe file beside the database (so
    /// space and descriptors are back), then reopens the database, recovering its journal as
    /// at start. Returns whether the store takes writes again. Only the writer thread calls
    /// this, with no batch in flight. The head may move forward: batches that were committed
    /// but never acknowledged can be in the recovered journal (as after a crash).
    pub(crate) fn heal(&self) -> bool {
        if let Err(error) = self.probe() {
            tracing::debug!(%error, "storage still unavailable");
            return false;
        }
        let old = self.handles.swap(None);
        if let Some(old) = old {
            let started = std::time::Instant::now();
            // Readers hold the old handles only for one read.
            while Arc::strong_count(&old) > 1 && started.elapsed() < REOPEN_WAIT {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            drop(old);
        }
        let handles = match Handles::open(&self.config) {
            Ok(handles) => Arc::new(handles),
            Err(error) => {
                // Reads fail until a reopen works (or for good, if this error is fatal).
                self.storage_error(&error);
                tracing::warn!(%error, "cannot reopen the database yet");
                return false;
            }
        };
        self.handles.store(Some(handles.clone()));
        // The recovered journal becomes durable before the head may move over it.
        let recovered = handles
            .db
            .persist(PersistMode::SyncData)
            .map_err(Error::from)
            .and_then(|()| handles.last_seq());
        let recovered = match recovered {
            Ok(last) => last.unwrap_or(0),
            Err(error) => {
                self.storage_error(&error);
                return false;
            }
        };
        drop(handles);
        self.synced(recovered);
        let head = self.head.get();
        if recovered < head {
            // Acknowledged entries vanished (fsynced ones, or ones the OS held and dropped after
            // a failed writeback): nothing can be trusted any more.
            self.mark_failed(&format!(
                "the reopened log ends at seq {recovered}, before the durable head {head}"
            ));
            return false;
        }
        if recovered > head {
            self.metrics.head.set(recovered as i64);
            self.head.advance(recovered);
            // Live consumers learn of the recovered entries from a batch that starts past
            // them: the gap sends them to the log for what they missed.
            self.durable.send(Arc::new(crate::DurableBatch {
                first_seq: recovered + 1,
                entries: Vec::new(),
            }));
        }
        if self.set_state(StorageState::Ok, None) != StorageState::Ok {
            return false;
        }
        self.metrics.heals.inc();
        tracing::warn!(head = recovered, "storage healed: writes accepted again");
        true
    }

    /// Writes, syncs and removes a file of [`PROBE_BYTES`] in the data directory.
    fn probe(&self) -> Result<()> {
        use std::io::Write;
        let path = self.config.data_dir.join(".girok-heal-probe");
        let written = (|| {
            let mut file = std::fs::File::create(&path)?;
            file.write_all(&vec![0u8; PROBE_BYTES])?;
            file.sync_data()
        })();
        let _ = std::fs::remove_file(&path);
        Ok(written?)
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

    /// The highest seq an fsync of the log is known to cover: at or below the head, which
    /// batches that asked for no fsync pass until the next fsync (a power loss may take back
    /// what lies between).
    pub fn synced_through(&self) -> Seq {
        self.synced.load(Ordering::Acquire)
    }

    /// An fsync of the log covered everything up to `seq`.
    pub(crate) fn synced(&self, seq: Seq) {
        let before = self.synced.fetch_max(seq, Ordering::AcqRel);
        self.metrics.synced_head.set(before.max(seq) as i64);
    }

    /// Metrics updated by the writer.
    pub fn metrics(&self) -> &StorageMetrics {
        &self.metrics
    }

    /// Reads one write-model (or log) value.
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(|h| Ok(h.keyspace(table).get(key)?.map(|v| v.to_vec())))
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
        self.with(|h| {
            for guard in h
                .keyspace(Table::SeqEvent)
                .range(from.to_be_bytes()..=to.to_be_bytes())
                .take(limit)
            {
                let (key, value) = guard.into_inner()?;
                out.push((decode_seq(&key)?, value.to_vec()));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Every key of `table` starting with `prefix`, with its value.
    pub fn scan_prefix(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.with(|h| {
            h.keyspace(table)
                .prefix(prefix)
                .map(|g| {
                    let (k, v) = g.into_inner()?;
                    Ok((k.to_vec(), v.to_vec()))
                })
                .collect()
        })
    }

    /// The first `limit` entries of `table` with keys in `range`, in key order, without
    /// reading the rest (`..`: the whole table; a schedule keyed by time: what is due first).
    pub fn scan_range<K: AsRef<[u8]>>(
        &self,
        table: Table,
        range: impl std::ops::RangeBounds<K>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.with(|h| {
            h.keyspace(table)
                .range(range)
                .take(limit)
                .map(|g| {
                    let (k, v) = g.into_inner()?;
                    Ok((k.to_vec(), v.to_vec()))
                })
                .collect()
        })
    }

    fn first_seq(&self) -> Result<Option<Seq>> {
        self.with(|h| match h.keyspace(Table::SeqEvent).first_key_value() {
            Some(guard) => Ok(Some(decode_seq(&guard.key()?)?)),
            None => Ok(None),
        })
    }

    fn last_seq(&self) -> Result<Option<Seq>> {
        self.with(Handles::last_seq)
    }

    /// Writes staged operations into fjall (journal + memtables) as one atomic batch, without
    /// syncing: the writer thread and `rewrite` (in `txn.rs`) both commit this way.
    pub(crate) fn commit_ops(&self, ops: Vec<Op>) -> Result<()> {
        self.with(|h| {
            let mut writes = h.db.batch();
            for op in ops {
                match op {
                    Op::Put(table, key, value) => writes.insert(h.keyspace(table), key, value),
                    Op::Delete(table, key) => writes.remove(h.keyspace(table), key),
                }
            }
            writes.commit()?;
            self.bound_memtables(h);
            Ok(())
        })
    }

    /// Has every table's active memtable sealed once the memtables hold more than
    /// [`StoreConfig::write_buffer_bytes`] and none is still waiting for its flush, so their
    /// memory is bounded by about twice that (the sealed ones being written out while new
    /// writes fill the next) whatever the tables' own thresholds. Sealing also lets fjall drop
    /// the journal files the flushed memtables covered: less to replay after a crash. The
    /// sealer thread does it (the writer goes on committing); the batch is committed whatever
    /// happens there, so a seal that fails is only logged (a later commit asks again).
    fn bound_memtables(&self, h: &Handles) {
        if h.db.write_buffer_size() <= self.config.write_buffer_bytes.max(1 << 20)
            || h.tables.iter().any(|t| t.sealed_memtable_count() > 0)
        {
            return;
        }
        // A request already waiting is as good as this one.
        if let Some(sealer) = self.sealer.get()
            && !matches!(
                sealer.try_send(()),
                Err(std::sync::mpsc::TrySendError::Disconnected(_))
            )
        {
            return;
        }
        if let Err(error) = h.seal_memtables(&mut SealedMemtables::default()) {
            tracing::warn!(%error, "cannot seal the memtables for flushing");
        }
    }

    /// Empties a table. Only for tools that own the data directory (replay).
    pub fn clear(&self, table: Table) -> Result<()> {
        self.with(|h| Ok(h.keyspace(table).clear()?))
    }

    /// Seq range and size on disk.
    pub fn stats(&self) -> Result<LogStats> {
        Ok(LogStats {
            first_seq: self.first_seq()?,
            last_seq: self.last_seq()?,
            disk_bytes: self.with(|h| Ok(h.db.disk_space()?))?,
        })
    }

    /// The block cache's and the memtables' bytes (`None` while the store reopens).
    pub fn memory(&self) -> Option<StoreMemory> {
        self.with(|h| {
            Ok(StoreMemory {
                block_cache: h.db.cache_size(),
                memtables: h.db.write_buffer_size(),
                flushed_memtables: self.flushed_memtables.load(Ordering::Relaxed),
            })
        })
        .ok()
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
