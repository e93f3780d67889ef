//! The engine as frontends see it: execute commands (durable, acknowledged with their seq),
//! read views with read-your-writes (`after: seq`; each domain's reads are in its `reads.rs`), subscribe
//! to live events, report status.

use crate::ack::Ack;
use crate::command::{Command, Submission};
use crate::dataflow::{self, Dataflow};
use crate::error::{Error, Result};
use crate::hot::{Fillable, HotConfig, HotObjects};
use crate::hub::{self, DEFAULT_TOPIC_CAPACITY, Hub};
use crate::search::{Indexer, SEARCH_DIR, SearchIndex};
use crate::sequencer::Sequencer;
use crate::views::{Digest, Views};
use girok_schemas::{Event, EventId, RoomId, Seq, UserId};
use girok_storage::{Appender, Store, StoreConfig, ViewStore, WriterConfig, WriterHandle};
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The view store's directory inside the data directory.
pub const VIEWS_DIR: &str = "views";

/// Everything the engine needs to start.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub store: StoreConfig,
    /// Timely workers; default: the number of cores.
    pub workers: usize,
    pub writer: WriterConfig,
    /// Longest a read waits for a view to reach its `after` seq.
    pub read_wait: Duration,
    pub topic_capacity: usize,
    /// Threads that may hash passwords at once; default one less than the cores (at least
    /// one), so a login burst always leaves a core to everything else.
    pub password_threads: usize,
    /// Hashes that may wait for a hashing thread; past them logins, registrations and
    /// password changes are refused at once as overloaded.
    pub password_queue: usize,
    /// Most members of a group room (at most [`crate::limits::MAX_ROOM_MEMBERS`]).
    pub max_room_members: usize,
    /// Bounds of the hot-object caches.
    pub hot: HotConfig,
    /// Per-user budgets of each kind of write (none unless set: the server's configuration
    /// sets them).
    pub write_rates: crate::write_rates::WriteRates,
    /// Block cache of the view store, bytes.
    pub view_cache_bytes: u64,
    /// The matcher's rules and timings.
    pub matching: crate::matching::MatchingConfig,
    /// Media's object store, limits and delays.
    pub media: crate::media::MediaConfig,
}

impl EngineConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<std::path::PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            media: crate::media::MediaConfig::new(&data_dir),
            store: StoreConfig::new(data_dir),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            writer: WriterConfig::default(),
            read_wait: Duration::from_secs(5),
            topic_capacity: DEFAULT_TOPIC_CAPACITY,
            password_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1).max(1)),
            password_queue: crate::accounts::DEFAULT_PASSWORD_QUEUE,
            max_room_members: crate::limits::MAX_ROOM_MEMBERS,
            hot: HotConfig::default(),
            write_rates: crate::write_rates::WriteRates::unlimited(),
            view_cache_bytes: 32 << 20,
            matching: crate::matching::MatchingConfig::default(),
        }
    }
}

fn submission(actor: UserId, command: Command) -> Submission {
    Submission {
        actor,
        command,
        new_id: EventId::new_v7(),
    }
}

/// Up to `limit` durable events of `store` with `seq >= from`, decoded.
fn read_events(store: &Store, from: Seq, limit: usize) -> Result<Vec<Event>> {
    crate::tailer::read_events(store, from, store.head().get(), limit)
}

/// Per-view readiness.
#[derive(Clone, Debug, Serialize)]
pub struct ViewStatus {
    pub name: &'static str,
    pub watermark: Seq,
    /// Events of the log the view does not reflect yet.
    pub lag: u64,
    /// True once the view has rebuilt everything the log held at start.
    pub ready: bool,
    pub digest: Digest,
}

/// What `/readyz` shows.
#[derive(Clone, Debug, Serialize)]
pub struct EngineStatus {
    pub ready: bool,
    pub log: LogStatus,
    pub views: Vec<ViewStatus>,
}

/// The log's part of the status.
#[derive(Clone, Debug, Serialize)]
pub struct LogStatus {
    pub head: Seq,
    pub writer_running: bool,
    /// `ok`, `degraded` (a transient storage error: writes refused while the writer retries)
    /// or `failed`.
    pub state: girok_storage::StorageState,
    /// The storage error behind a degraded or failed state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub durability: girok_storage::Durability,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViewLabel {
    view: &'static str,
}

#[derive(Default)]
struct EngineMetrics {
    watermark: Family<ViewLabel, Gauge>,
    lag: Family<ViewLabel, Gauge>,
    entries: Family<ViewLabel, Gauge>,
    topics: Gauge,
    hub_lag: Gauge,
    memory: crate::memory::MemoryMetrics,
}

/// The running engine.
pub struct Engine {
    pub(crate) passwords: Arc<crate::accounts::PasswordPool>,
    store: Arc<Store>,
    writer: Mutex<Option<WriterHandle<Sequencer>>>,
    appender: Appender<Sequencer>,
    pub(crate) views: Arc<Views>,
    dataflow: Mutex<Option<Dataflow>>,
    hub: Arc<Hub>,
    hub_thread: Mutex<Option<hub::HubThread>>,
    search: Arc<SearchIndex>,
    indexer: Mutex<Option<Indexer>>,
    read_wait: Duration,
    /// Whether consumers outside the engine (analytics) follow the log only as far as an fsync
    /// covers it (the background sync is on), so that they never hold what a power loss could
    /// take back from the log.
    outside_follows_synced: bool,
    head_at_start: Seq,
    /// The views' checkpoint this start resumed from (0: built from the log).
    views_resumed: Seq,
    pub(crate) hot: Arc<HotObjects>,
    /// The matching pool's figures, published by the writer thread.
    pub(crate) matching_pool: Arc<crate::matching::PoolGauge>,
    matcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(crate) media: Arc<crate::media::MediaRuntime>,
    write_limiter: crate::write_rates::WriteLimiter,
    metrics: EngineMetrics,
}

impl Engine {
    /// Opens the data directory, starts the writer, the dataflow (which resumes the views
    /// from their checkpoint in the view store and reads the log after it, or rebuilds them
    /// from the whole log) and the hub. Must be called inside a tokio runtime.
    pub fn open(config: EngineConfig) -> Result<Arc<Engine>> {
        let store = Store::open(config.store.clone())?;
        let hot = Arc::new(HotObjects::new(config.hot));
        let head_time_ms = match store.head().get() {
            0 => 0,
            // An unreadable head event (a corrupt record) only loses this floor.
            head => crate::tailer::read_events(&store, head, head, 1)
                .ok()
                .and_then(|events| events.first().map(|event| event.commit_time_ms))
                .unwrap_or(0),
        };
        let matching_pool = Arc::new(crate::matching::PoolGauge::default());
        let writer = WriterHandle::spawn_after(
            store.clone(),
            Sequencer::new(
                config.max_room_members,
                config.matching,
                matching_pool.clone(),
                hot.clone(),
            ),
            config.writer,
            head_time_ms,
        )?;
        let head_at_start = store.head().get();
        let view_store = ViewStore::open(
            &store.path().join(VIEWS_DIR),
            config.view_cache_bytes,
            crate::background::lower_priority_somewhat,
        )?;
        let (views, resumed) = Views::resume(Arc::new(view_store), head_at_start)?;
        let views = Arc::new(views);
        let flow = dataflow::start(
            store.clone(),
            views.clone(),
            dataflow::DataflowConfig {
                workers: config.workers,
            },
            None,
            resumed,
        )?;
        views.feed.go_live(head_at_start);
        let search = Arc::new(SearchIndex::open(
            &store.path().join(SEARCH_DIR),
            head_at_start,
        )?);
        let indexer = Indexer::start(store.clone(), search.clone(), None)?;
        let hub = Arc::new(Hub::new(config.topic_capacity));
        let hub_thread =
            hub::HubThread::start(hub.clone(), store.clone(), hot.clone(), head_at_start)
                .map_err(|e| Error::Internal(format!("cannot start the hub's thread: {e}")))?;
        tracing::info!(
            head = head_at_start,
            views_from = resumed.seq,
            workers = config.workers,
            durability = ?config.store.durability,
            "engine started; views catching up with the log"
        );
        let matcher = crate::matching::matcher::spawn(
            writer.appender(),
            matching_pool.clone(),
            config.matching.wave_interval,
        );
        let media = Arc::new(crate::media::MediaRuntime::start(
            config.media,
            store.clone(),
            writer.appender(),
        )?);
        Ok(Arc::new(Engine {
            passwords: Arc::new(crate::accounts::PasswordPool::new(
                config.password_threads,
                config.password_queue,
            )),
            appender: writer.appender(),
            writer: Mutex::new(Some(writer)),
            store,
            views,
            dataflow: Mutex::new(Some(flow)),
            hub,
            hub_thread: Mutex::new(Some(hub_thread)),
            search,
            indexer: Mutex::new(Some(indexer)),
            read_wait: config.read_wait,
            outside_follows_synced: !config.writer.background_sync.is_zero(),
            head_at_start,
            views_resumed: resumed.seq,
            hot,
            matching_pool,
            matcher: Mutex::new(Some(matcher)),
            media,
            write_limiter: crate::write_rates::WriteLimiter::new(&config.write_rates),
            metrics: EngineMetrics::default(),
        }))
    }

    /// Validates and executes a chat command; returns once it is durable. Account commands
    /// go through the account methods (they hash passwords and mint tokens first).
    pub async fn execute(&self, actor: UserId, command: Command) -> Result<Ack> {
        self.enqueue(actor, command).await?.await
    }

    /// [`Engine::execute`] in two steps, for pipelining: queues the command now (commands one
    /// caller queues one after another enter the log in that order) and returns the wait for
    /// its acknowledgement. A write past the actor's budget of its kind
    /// ([`crate::write_rates`]) is refused with [`Error::RateLimited`], and a full writer queue
    /// (`storage.queue`) with [`Error::Overloaded`], both at once.
    pub async fn enqueue(
        &self,
        actor: UserId,
        command: Command,
    ) -> Result<impl std::future::Future<Output = Result<Ack>> + Send + 'static> {
        self.enqueue_with_id(actor, command, EventId::new_v7())
            .await
    }

    /// [`Engine::enqueue`] with the id the command's own event takes (the first it appends:
    /// a message, a ticket, a skip) picked by the caller: a live connection that knows it
    /// before the command commits recognises that event when it comes by. `id` must be
    /// fresh ([`EventId::new_v7`]).
    pub async fn enqueue_with_id(
        &self,
        actor: UserId,
        command: Command,
        id: EventId,
    ) -> Result<impl std::future::Future<Output = Result<Ack>> + Send + 'static> {
        if matches!(command, Command::Account(_)) {
            return Err(Error::Internal(
                "account commands go through the account methods".into(),
            ));
        }
        let command = command.validated()?;
        self.write_limiter.check(actor, &command)?;
        let answer = self.appender.try_enqueue(Submission {
            actor,
            command,
            new_id: id,
        })?;
        Ok(answer.get())
    }

    pub(crate) async fn submit(&self, actor: UserId, command: Command) -> Result<Ack> {
        self.appender.submit(submission(actor, command)).await
    }

    /// Opens the checkpointed state of the sink `name` (`<data>/sinks/<name>`): a sink that
    /// follows the log keeps there what lets it resume from a checkpoint. One holder at a time.
    pub fn sink_state(&self, name: &str) -> Result<crate::SinkState> {
        crate::SinkState::open(self.store.path(), name)
    }

    /// The durable head of the log.
    pub fn head(&self) -> Seq {
        self.store.head().get()
    }

    /// Changes of the durable head, for long polls.
    pub fn head_watch(&self) -> tokio::sync::watch::Receiver<Seq> {
        self.store.head().subscribe()
    }

    /// The live hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The full-text search index.
    pub fn search_index(&self) -> &Arc<SearchIndex> {
        &self.search
    }

    /// Every view's store (for status, benches and tests; frontends read through the
    /// methods below and the domain reads).
    pub fn views(&self) -> &Arc<Views> {
        &self.views
    }

    /// The highest seq every view reflects.
    pub fn views_watermark(&self) -> Seq {
        self.views.watermark.get()
    }

    /// The rooms `user` is a member of, as the memberships view has them now (callers that
    /// must not see a half-built view wait for [`Engine::wait_for_views`] first).
    pub fn rooms_of(&self, user: UserId) -> Vec<RoomId> {
        self.views
            .memberships
            .rooms_of(user)
            .into_iter()
            .map(|(room, _joined)| room)
            .collect()
    }

    /// How many live messages `room` has after seq `from`, counting at most `cap`.
    pub fn room_messages_after(&self, room: RoomId, from: Seq, cap: usize) -> Result<usize> {
        Ok(self.views.room_history.count_after(room, from, cap)?)
    }

    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Arc<Store>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| Error::Internal(format!("blocking read failed: {e}")))?
    }

    /// Looks `keys` up in one of the hot-object caches (`cache` picks it; `name` labels its
    /// metrics), and reads what it misses with `read` in one blocking call that fills the
    /// cache: a read path's one trip off the async runtime, and none when everything is hot.
    /// Keys `read` finds nothing for are left out.
    pub(crate) async fn through_cache<K, V, C>(
        &self,
        name: &'static str,
        cache: fn(&HotObjects) -> &C,
        keys: impl IntoIterator<Item = K>,
        read: fn(&Store, &K) -> Result<Option<V>>,
    ) -> Result<HashMap<K, V>>
    where
        K: std::hash::Hash + Eq + Clone + Send + 'static,
        V: Clone + Send + 'static,
        C: Fillable<K, V>,
    {
        let mut found = HashMap::new();
        let mut missing = HashMap::new();
        for key in keys {
            if found.contains_key(&key) || missing.contains_key(&key) {
                continue;
            }
            match cache(&self.hot).lookup(&key) {
                Some(value) => {
                    found.insert(key, value);
                }
                None => {
                    let ticket = cache(&self.hot).ticket(&key);
                    missing.insert(key, ticket);
                }
            }
        }
        self.hot
            .count(name, found.len() as u64, missing.len() as u64);
        if missing.is_empty() {
            return Ok(found);
        }
        let hot = self.hot.clone();
        let read = self
            .blocking(move |store| {
                let mut values = Vec::with_capacity(missing.len());
                for (key, ticket) in missing {
                    if let Some(value) = read(store, &key)? {
                        cache(&hot).fill(key.clone(), value.clone(), ticket);
                        values.push((key, value));
                    }
                }
                Ok(values)
            })
            .await?;
        found.extend(read);
        Ok(found)
    }

    /// Log events by seq, through the event cache. Every seq must be in the log.
    pub(crate) async fn events_by_seq(&self, seqs: Vec<Seq>) -> Result<HashMap<Seq, Arc<Event>>> {
        self.through_cache("events", HotObjects::events, seqs, |store, seq| {
            crate::log_reads::read_event(store, *seq).map(|event| Some(Arc::new(event)))
        })
        .await
    }

    /// Waits until every view reflects `after` (read your writes), and, until the views have
    /// rebuilt everything the log held at start, that too: no read answers from a half-built
    /// view. `None` after start-up does not wait.
    pub async fn wait_for_views(&self, after: Option<Seq>) -> Result<()> {
        self.wait_for(&self.views.watermark, after).await
    }

    /// The same for the search index.
    pub async fn wait_for_search(&self, after: Option<Seq>) -> Result<()> {
        self.wait_for(&self.search.watermark, after).await
    }

    /// Waits for `watermark` to reach `after` and the log's head at start, at most
    /// `read_wait`; then `VIEW_TIMEOUT` (the caller's `after`) or `NOT_READY` (start-up).
    async fn wait_for(
        &self,
        watermark: &crate::views::Watermark,
        after: Option<Seq>,
    ) -> Result<()> {
        let starting = (watermark.get() < self.head_at_start).then_some(self.head_at_start);
        let Some(target) = after.max(starting) else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        watermark
            .wait_for(target, self.read_wait)
            .await
            .map(drop)
            .map_err(|reached| {
                let waited_ms = started.elapsed().as_millis() as u64;
                if starting == Some(target) {
                    Error::NotReady {
                        watermark: reached,
                        head_at_start: target,
                        waited_ms,
                    }
                } else {
                    Error::ViewTimeout {
                        after: target,
                        watermark: reached,
                        waited_ms,
                    }
                }
            })
    }

    /// Every view's summary and the search index's, once all of them reflect `seq` (for
    /// comparing a live engine with a replay).
    pub async fn summaries_at(&self, seq: Seq) -> Result<Vec<crate::views::ViewSummary>> {
        self.wait_for_views(Some(seq)).await?;
        self.wait_for_search(Some(seq)).await?;
        Ok(self.summaries())
    }

    /// Up to `limit` events with `seq >= from` (for `girok log tail` through the server).
    pub async fn events(&self, from: Seq, limit: usize) -> Result<Vec<Event>> {
        self.blocking(move |store| read_events(store, from, limit))
            .await
    }

    /// Counts per event type and the log's extent (scans the log).
    pub async fn log_report(&self) -> Result<crate::LogReport> {
        self.blocking(crate::log_report::log_report).await
    }

    /// `(events appended, batches committed)` since start: their ratio is the group-commit
    /// batch size.
    pub fn writer_counters(&self) -> (u64, u64) {
        let metrics = self.store.metrics();
        (metrics.appends.get(), metrics.batches.get())
    }

    /// Whether the log writer still runs (it stops at shutdown and on a fatal storage error).
    pub fn writer_running(&self) -> bool {
        self.writer.lock().as_ref().is_some_and(|w| w.is_running())
    }

    /// The fatal storage error that stopped the log writer, if one did.
    pub fn storage_failure(&self) -> Option<String> {
        (self.store.state() == girok_storage::StorageState::Failed)
            .then(|| self.store.unavailable_reason())
    }

    /// Readiness of the log and of each view.
    pub fn status(&self) -> EngineStatus {
        let head = self.head();
        let writer_running = self.writer_running();
        let views: Vec<ViewStatus> = self
            .summaries()
            .into_iter()
            .map(|s| ViewStatus {
                name: s.name,
                watermark: s.watermark,
                lag: head.saturating_sub(s.watermark),
                ready: s.watermark >= self.head_at_start,
                digest: s.digest,
            })
            .collect();
        let state = self.store.state();
        EngineStatus {
            ready: writer_running
                && state == girok_storage::StorageState::Ok
                && views.iter().all(|v| v.ready),
            log: LogStatus {
                head,
                writer_running,
                state,
                error: self.store.state_reason(),
                durability: self.store.config().durability,
            },
            views,
        }
    }

    /// Every view's summary, the search index's last (it has a watermark of its own).
    pub fn summaries(&self) -> Vec<crate::views::ViewSummary> {
        let mut all = self.views.summaries();
        all.push(crate::views::ViewSummary {
            name: "search",
            watermark: self.search.watermark.get(),
            digest: self.search.digest(),
        });
        all
    }

    /// Registers storage and engine metrics.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.store.metrics().register(registry);
        self.hot.register_metrics(registry);
        self.passwords.register_metrics(registry);
        registry.register(
            "girok_view_watermark_seq",
            "Highest log seq a view reflects",
            self.metrics.watermark.clone(),
        );
        registry.register(
            "girok_view_lag_events",
            "Log events a view does not reflect yet",
            self.metrics.lag.clone(),
        );
        registry.register(
            "girok_view_entries",
            "Entries a view holds (its digest's count; in memory, or rows of the view store for room_history, or documents of the search index)",
            self.metrics.entries.clone(),
        );
        registry.register(
            "girok_hub_topics",
            "Live topics with subscribers",
            self.metrics.topics.clone(),
        );
        registry.register(
            "girok_matching_pairs_apart",
            "Skip exclusions the matcher keeps in memory (ended ones until its next wave or skip) (about 120 bytes each)",
            self.matching_pool.pairs_apart.clone(),
        );
        registry.register(
            "girok_matching_matched_users",
            "Matched users the matcher keeps in memory with their room and partner (about 60 bytes each)",
            self.matching_pool.matched_users.clone(),
        );
        registry.register(
            "girok_hub_lag_events",
            "Durable log events the hub has not published to live subscribers yet",
            self.metrics.hub_lag.clone(),
        );
        self.search.register_metrics(registry);
        self.media.register_metrics(registry);
        self.views.register_metrics(registry);
        self.metrics.memory.register(registry);
    }

    /// The seq of the views' checkpoint this start resumed from (the chat views loaded, the
    /// feed views restored from their inputs, the log read after it); 0 when they were built
    /// from the log (no checkpoint, or one of another format).
    pub fn views_resumed_from(&self) -> Seq {
        self.views_resumed
    }

    /// Brings gauges up to date (call before encoding metrics).
    pub fn refresh_metrics(&self) {
        self.views.refresh_metrics();
        let head = self.head();
        for summary in self.summaries() {
            let label = ViewLabel { view: summary.name };
            self.metrics
                .watermark
                .get_or_create(&label)
                .set(summary.watermark as i64);
            self.metrics
                .lag
                .get_or_create(&label)
                .set(head.saturating_sub(summary.watermark) as i64);
            self.metrics
                .entries
                .get_or_create(&label)
                .set(summary.digest.entries);
        }
        self.metrics.topics.set(self.hub.topic_count() as i64);
        let published = self.hub.published();
        self.metrics
            .hub_lag
            .set(head.saturating_sub(published) as i64);
        self.hot.observe();
        let views = self.views.disk_memory();
        let mut components = vec![
            ("view_block_cache", views.block_cache),
            ("view_memtable", views.memtables),
            ("event_cache", self.hot.event_bytes()),
            ("search_writer", crate::search::WRITER_BYTES as u64),
        ];
        // While the log's database reopens its gauges keep their last values.
        if let Some(log) = self.store.memory() {
            components.extend([
                ("log_block_cache", log.block_cache),
                ("log_memtables", log.memtables),
                ("log_flushed_memtables", log.flushed_memtables),
            ]);
        }
        self.metrics.memory.observe(&components, &self.views.held());
    }

    /// Drains and stops: every command queued before the call is made durable and answered,
    /// later ones get `Unavailable`; then the views and the hub stop.
    pub async fn shutdown(&self) {
        if let Some(matcher) = self.matcher.lock().take() {
            matcher.abort();
        }
        // Matching's rows written behind go to the write model before the writer stops, so a
        // stopped server's write model is current (a restart would catch up from the log).
        let checkpoint = Command::Matching(crate::matching::MatchingCommand::Checkpoint);
        if let Err(error) = self.submit(crate::command::NOBODY, checkpoint).await {
            tracing::warn!(%error, "matching's last checkpoint was refused");
        }
        let writer = self.writer.lock().take();
        let flow = self.dataflow.lock().take();
        let indexer = self.indexer.lock().take();
        let hub = self.hub_thread.lock().take();
        let views = self.views.clone();
        let media = self.media.clone();
        let stopped = tokio::task::spawn_blocking(move || {
            // Media first: an image in hand still gets its outcome into the log.
            media.stop();
            if let Some(writer) = writer {
                writer.shutdown();
            }
            if let Some(hub) = hub {
                hub.stop();
            }
            if let Some(flow) = flow {
                flow.stop();
                views.close();
            }
            if let Some(indexer) = indexer {
                indexer.stop();
            }
        })
        .await;
        if stopped.is_err() {
            tracing::error!("engine shutdown task failed");
        }
        tracing::info!(head = self.head(), "engine stopped");
    }
}

/// The log as the engine serves it to consumers outside it (the analytics sink): decoded
/// events, read on the calling thread (a thread of the consumer's own, never async code), up
/// to the head an fsync covers while the background sync runs (`Store::synced_through`: at
/// most about `storage.background_sync_ms` behind for commands that asked for no fsync, and
/// the durable head itself for every other), so that ClickHouse never holds an event a power
/// loss could take back from the log; up to the durable head when it does not.
impl crate::tailer::LogSource for Engine {
    type Entry = Event;

    fn head(&self) -> Seq {
        if self.outside_follows_synced {
            self.store.synced_through()
        } else {
            Engine::head(self)
        }
    }

    fn read(&self, from: Seq, through: Seq, limit: usize) -> Result<Vec<Event>> {
        crate::tailer::read_events(&self.store, from, through, limit)
    }
}
