//! girok's configuration, layered: built-in defaults, then an optional TOML file
//! (`--config FILE` or `GIROK_CONFIG`), then `GIROK__SECTION__KEY` environment variables, then
//! command-line flags. Unknown keys in the file are an error, so a typo is never silently ignored.
//! The sections the transports read (`server`, `limits`, `auth`, `ws`, `quic`, `cache`, `web`) are declared by
//! girok-frontends; this file adds the rest and hands each part its own share
//! ([`Config::engine_config`], [`Config::frontend_config`]).

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use girok_engine::Durability;
use girok_frontends::config::{
    AuthConfig, CacheConfig, FrontendConfig, LimitsConfig, QuicConfig, ServerConfig, WebConfig,
    WsConfig,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub engine: EngineSection,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub ws: WsConfig,
    pub quic: QuicConfig,
    pub cache: CacheConfig,
    /// `[web]`: the web app at `/`.
    pub web: WebConfig,
    /// `[rate_limits]`: per-user budgets of each kind of write, on every frontend.
    pub rate_limits: girok_engine::write_rates::WriteRates,
    pub matching: MatchingSection,
    pub media: MediaSection,
    pub log: LogConfig,
    /// `[analytics]`: the ClickHouse sink (off unless `clickhouse_url` is set).
    pub analytics: girok_analytics::AnalyticsConfig,
}

/// `[storage]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Where the fjall database lives.
    pub data_dir: PathBuf,
    /// `sync` (fsync each batch before acking) or `buffered` (flush to the OS only).
    pub durability: Durability,
    /// Most commands in one group-commit batch.
    pub max_batch: usize,
    /// Commands that may wait for the log writer; past them a write is refused at once (HTTP
    /// 429 `OVERLOADED` with `Retry-After`, a WebSocket error frame with `retryAfterMs`)
    /// instead of queuing behind everyone else.
    pub queue: usize,
    /// Block cache, MiB.
    pub cache_mib: u64,
    /// Keys and values the log's memtables hold together before a commit seals them for
    /// flushing, MiB (at least 1).
    pub write_buffer_mib: u64,
    /// Block cache of the view store (`<data_dir>/views`, where large views keep their rows),
    /// MiB.
    pub view_cache_mib: u64,
    /// Most table files kept open at once; with a reserve for everything else, these
    /// descriptors are kept from client connections (see `server.max_connections`).
    pub max_open_files: usize,
    /// Niceness of fjall's flush and compaction workers, 0–19 (0: the server's own, as its
    /// other threads; the default, 5: a third of a normal thread's weight on a contested core,
    /// so a seal's flushes do not hold up the delivery path; 19: they take what the log writer
    /// and the sockets leave).
    pub workers_niceness: i32,
    /// While the process is busy, the least time between two of the log writer's batches
    /// (so each fsync covers more commands), microseconds; 0: never spaced.
    pub busy_batch_interval_us: u64,
    /// Busy: the process used more than this share of its cores, in percent, over 50 ms
    /// (spacing stops below this less 15).
    pub busy_cpu_percent: u32,
    /// How often the log's journal is fsynced in the background behind commands that asked
    /// for no fsync (random matching's queue, `matching.durability = buffered`), milliseconds;
    /// 0: never by girok. At most 3,600,000.
    pub background_sync_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            durability: Durability::Sync,
            max_batch: 4096,
            queue: 16_384,
            cache_mib: 64,
            write_buffer_mib: girok_engine::DEFAULT_WRITE_BUFFER_BYTES >> 20,
            view_cache_mib: 32,
            max_open_files: girok_engine::DEFAULT_MAX_OPEN_FILES,
            workers_niceness: girok_engine::DEFAULT_WORKERS_NICENESS,
            busy_batch_interval_us: girok_engine::DEFAULT_BUSY_BATCH_INTERVAL_US,
            busy_cpu_percent: girok_engine::DEFAULT_BUSY_CPU_PERCENT,
            background_sync_ms: girok_engine::DEFAULT_BACKGROUND_SYNC.as_millis() as u64,
        }
    }
}

/// `[engine]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// Timely workers; 0 means one per core.
    pub workers: usize,
    /// Longest a read with `after: seq` waits for its view, in milliseconds.
    pub read_wait_ms: u64,
    /// Events a live subscriber may fall behind before it is told it lagged.
    pub topic_capacity: usize,
    /// No longer used: home timelines are merged from the profile timelines when read, not
    /// fanned out on write. Accepted so that older files still load; `serve` warns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fanout_max_followers: Option<usize>,
    /// No longer used, as `fanout_max_followers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home_timeline_entries: Option<usize>,
}

impl Default for EngineSection {
    fn default() -> Self {
        Self {
            workers: 0,
            read_wait_ms: 5_000,
            topic_capacity: 1024,
            fanout_max_followers: None,
            home_timeline_entries: None,
        }
    }
}

/// `[matching]`: random matching's timings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchingSection {
    /// A ticket open this long closes as expired.
    pub ticket_ttl_secs: u64,
    /// From this wait on any partner will do; from half of it shared tags are no longer
    /// required (the same language still is).
    pub relax_after_secs: u64,
    /// How long a pair is not matched again after one of them skipped the other.
    pub skip_exclusion_secs: u64,
    /// How often the matcher looks whether waiting tickets relaxed or expired, milliseconds.
    pub wave_interval_ms: u64,
    /// How durable joins, leaves, skips and the matches they make are before they are
    /// answered: `buffered` (written to the OS: they survive `kill -9` of girok, and a power
    /// loss may lose the last ones before the log's next fsync) or `sync` (fsynced, as every
    /// other write). Blocks are always fsynced; `storage.durability = "buffered"` makes
    /// everything buffered.
    pub durability: Durability,
}

impl Default for MatchingSection {
    fn default() -> Self {
        let defaults = girok_engine::MatchingConfig::default();
        Self {
            ticket_ttl_secs: (defaults.rules.ticket_ttl_ms / 1000) as u64,
            relax_after_secs: (defaults.rules.relax_after_ms / 1000) as u64,
            skip_exclusion_secs: (defaults.skip_exclusion_ms / 1000) as u64,
            wave_interval_ms: defaults.wave_interval.as_millis() as u64,
            durability: defaults.durability,
        }
    }
}

impl MatchingSection {
    fn engine_config(&self) -> girok_engine::MatchingConfig {
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        girok_engine::MatchingConfig {
            rules: girok_engine::matching::MatchRules {
                relax_after_ms: ms(self.relax_after_secs),
                ticket_ttl_ms: ms(self.ticket_ttl_secs.max(1)),
            },
            skip_exclusion_ms: ms(self.skip_exclusion_secs),
            wave_interval: std::time::Duration::from_millis(
                self.wave_interval_ms.clamp(10, 60_000),
            ),
            durability: self.durability,
        }
    }
}

/// `[media]`: uploads, their processing and the object store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSection {
    /// `local` (a directory of the data directory, the default) or `s3`.
    pub store: String,
    /// The local store's directory; default `<data_dir>/media/objects`.
    pub dir: Option<PathBuf>,
    /// Most bytes of one upload, MiB.
    pub max_mib: u64,
    /// Images processed at once.
    pub workers: usize,
    /// Most uploads waiting for processing.
    pub queue: usize,
    /// How long an upload URL works, seconds.
    pub upload_url_ttl_secs: u64,
    /// An upload nothing uses is deleted this long after its request, seconds.
    pub unused_after_secs: u64,
    /// A deleted media's objects are removed this long after, seconds.
    pub retention_secs: u64,
    /// How often the sweeper looks for what is due, seconds.
    pub sweep_interval_secs: u64,
    /// `[media.s3]`, used when `store = "s3"`: endpoint, bucket, region, access_key_id,
    /// secret_access_key, path_style (the secret never reaches a log line).
    pub s3: girok_engine::S3Config,
}

impl Default for MediaSection {
    fn default() -> Self {
        Self {
            store: "local".into(),
            dir: None,
            max_mib: 20,
            workers: 1,
            queue: 256,
            upload_url_ttl_secs: 900,
            unused_after_secs: 86_400,
            retention_secs: 86_400,
            sweep_interval_secs: 60,
            s3: girok_engine::S3Config::default(),
        }
    }
}

impl MediaSection {
    /// The engine's media settings; an unknown store is an error.
    fn engine_config(&self, data_dir: &Path) -> anyhow::Result<girok_engine::MediaConfig> {
        use std::time::Duration;
        let mut config = girok_engine::MediaConfig::new(data_dir);
        match self.store.as_str() {
            "local" => {
                if let Some(dir) = &self.dir {
                    config.blobs = girok_engine::BlobConfig::Local { dir: dir.clone() };
                }
            }
            "s3" => {
                if self.s3.bucket.is_empty() {
                    anyhow::bail!("media.store is s3 but media.s3.bucket is not set");
                }
                config.blobs = girok_engine::BlobConfig::S3(self.s3.clone());
            }
            other => anyhow::bail!("media.store is {other:?}; it is \"local\" or \"s3\""),
        }
        config.max_bytes = self.max_mib.clamp(1, 1024) << 20;
        config.workers = self.workers.clamp(1, 64);
        config.queue = self.queue.max(1);
        config.upload_url_ttl = Duration::from_secs(self.upload_url_ttl_secs.clamp(1, 7 * 86_400));
        // Ten years at most: a due time is a time of the log (milliseconds in an i64).
        const MOST_SECS: u64 = 10 * 365 * 86_400;
        config.unused_after = Duration::from_secs(self.unused_after_secs.clamp(1, MOST_SECS));
        config.retention = Duration::from_secs(self.retention_secs.min(MOST_SECS));
        config.sweep_interval = Duration::from_secs(self.sweep_interval_secs.max(1));
        Ok(config)
    }
}

/// `[log]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter, e.g. `info` or `girok_engine=debug,info`; `RUST_LOG` wins if set.
    pub filter: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info,tantivy=warn".into(),
            format: LogFormat::Text,
        }
    }
}

/// Bytes in `n` MiB (a huge setting saturates rather than overflow).
fn mib(n: u64) -> u64 {
    n.saturating_mul(1 << 20)
}

impl Config {
    /// Defaults, then `file` (which must exist if given), then `GIROK__*` variables.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(Box::new(figment::Error::from(format!(
                    "config file {} does not exist",
                    file.display()
                ))));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(Env::prefixed("GIROK__").split("__"))
            .extract()
            .map_err(Box::new)
    }

    /// What the frontends need: their sections and the data directory (for the signing keys,
    /// the operator token and the cursor key).
    pub fn frontend_config(&self) -> FrontendConfig {
        FrontendConfig {
            server: self.server.clone(),
            limits: self.limits.clone(),
            auth: self.auth.clone(),
            ws: self.ws.clone(),
            quic: self.quic.clone(),
            cache: self.cache.clone(),
            web: self.web.clone(),
            data_dir: self.storage.data_dir.clone(),
        }
    }

    /// Keys that are set but no longer mean anything (still accepted, so that older files
    /// load): `serve` logs a warning for each.
    pub fn ignored_keys(&self) -> Vec<&'static str> {
        let engine = &self.engine;
        [
            (
                engine.fanout_max_followers.is_some(),
                "engine.fanout_max_followers",
            ),
            (
                engine.home_timeline_entries.is_some(),
                "engine.home_timeline_entries",
            ),
            (self.ws.outbound_queue.is_some(), "ws.outbound_queue"),
        ]
        .into_iter()
        .filter_map(|(set, key)| set.then_some(key))
        .collect()
    }

    /// The engine's configuration (an error names a setting that cannot work).
    pub fn engine_config(&self) -> anyhow::Result<girok_engine::EngineConfig> {
        let mut config = girok_engine::EngineConfig::new(&self.storage.data_dir);
        config.store.durability = self.storage.durability;
        config.store.cache_bytes = mib(self.storage.cache_mib);
        // The store keeps at least 1 MiB itself.
        config.store.write_buffer_bytes = mib(self.storage.write_buffer_mib);
        config.store.max_open_files = self.storage.max_open_files;
        if !(0..=19).contains(&self.storage.workers_niceness) {
            anyhow::bail!(
                "storage.workers_niceness must be 0–19, not {}",
                self.storage.workers_niceness
            );
        }
        config.store.workers_niceness = self.storage.workers_niceness;
        config.view_cache_bytes = mib(self.storage.view_cache_mib.max(1));
        config.writer.max_batch = self.storage.max_batch.max(1);
        config.writer.queue = self.storage.queue.max(1);
        config.writer.pacing = girok_engine::Pacing::from_settings(
            self.storage.busy_batch_interval_us,
            self.storage.busy_cpu_percent,
        );
        config.writer.background_sync =
            std::time::Duration::from_millis(self.storage.background_sync_ms.min(3_600_000));
        if self.engine.workers > 0 {
            config.workers = self.engine.workers;
        }
        config.read_wait = std::time::Duration::from_millis(self.engine.read_wait_ms);
        config.topic_capacity = self.engine.topic_capacity.max(1);
        config.max_room_members = self
            .limits
            .max_room_members
            .clamp(1, girok_engine::limits::MAX_ROOM_MEMBERS);
        if self.auth.password_threads > 0 {
            config.password_threads = self.auth.password_threads;
        }
        config.password_queue = self.auth.password_queue.max(1);
        config.hot = girok_engine::hot::HotConfig {
            event_bytes: mib(self.cache.events_mib),
            users: self.cache.users,
            sessions: self.cache.sessions,
            rooms: self.cache.rooms,
            memberships: self.cache.memberships,
            posts: self.cache.posts,
        };
        config.write_rates = self.rate_limits.clone();
        config.matching = self.matching.engine_config();
        config.media = self.media.engine_config(&self.storage.data_dir)?;
        Ok(config)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "girok.toml",
                "[server]\nhttp_addr = \"127.0.0.1:9000\"\n[storage]\ndurability = \"buffered\"\n",
            )?;
            jail.set_env("GIROK__SERVER__HTTP_ADDR", "127.0.0.1:9100");
            let config = Config::load(Some(Path::new("girok.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.server.http_addr.port(), 9100, "env beats file");
            assert_eq!(
                config.storage.durability,
                Durability::Buffered,
                "file beats default"
            );
            assert_eq!(config.limits.max_request_bytes, 64 * 1024, "default kept");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[server]\nhttp_adr = \"127.0.0.1:1\"\n")?;
            assert!(Config::load(Some(Path::new("bad.toml"))).is_err());
            assert!(Config::load(Some(Path::new("missing.toml"))).is_err());
            // A key girok no longer uses still loads.
            jail.create_file("old.toml", "[ws]\noutbound_queue = 256\n")?;
            assert!(Config::load(Some(Path::new("old.toml"))).is_ok());
            // So do the fan-out settings of the feed, named for the warning `serve` logs.
            jail.create_file("feed.toml", "[engine]\nhome_timeline_entries = 5\n")?;
            jail.set_env("GIROK__ENGINE__FANOUT_MAX_FOLLOWERS", "10");
            let config = Config::load(Some(Path::new("feed.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(
                config.ignored_keys(),
                [
                    "engine.fanout_max_followers",
                    "engine.home_timeline_entries"
                ]
            );
            assert!(Config::default().ignored_keys().is_empty());
            Ok(())
        });
    }

    #[test]
    fn the_store_workers_niceness_is_one_of_the_kernels() {
        let mut config = Config::default();
        let engine = config.engine_config().map_err(|e| e.to_string());
        assert_eq!(engine.map(|e| e.store.workers_niceness), Ok(5));
        config.storage.workers_niceness = 19;
        let engine = config.engine_config().map_err(|e| e.to_string());
        assert_eq!(engine.map(|e| e.store.workers_niceness), Ok(19));
        for wrong in [-1, 20] {
            config.storage.workers_niceness = wrong;
            let error = config.engine_config().err().map(|e| e.to_string());
            assert_eq!(
                error,
                Some(format!(
                    "storage.workers_niceness must be 0–19, not {wrong}"
                ))
            );
        }
    }
}
