//! `analytics`: the ClickHouse sink against a real ClickHouse (`--clickhouse-url`, or one this
//! suite starts with `scripts/clickhouse.sh`). Two measurements:
//!
//! - throughput: a backlog of posts, likes, comments and chat messages already in the log is shipped by a fresh sink
//!   (audit rows and rollup diffs); rows/s, against inserting the same audit rows straight
//!   into ClickHouse in the same run (the baseline: no pipeline, no dataflow);
//! - restart: the sink stopped and started again on that backlog, once resuming from its
//!   checkpoint and once with the checkpoint removed, which feeds the rollup dataflow the whole
//!   log again (as every start did before checkpoints; the baseline): seconds until the sink
//!   is caught up;
//! - freshness: with the sink running, chat messages are written at `--rate` events/s; a
//!   sampler polls ClickHouse's `max(seq)` every 50 ms, and every event that became queryable
//!   since the last poll records how long after its commit that was (p50, p99).

use crate::report::Latency;
use anyhow::Context;
use girok_analytics::{AnalyticsConfig, AuditRow, EventSource, Sink, Warehouse};
use girok_engine::feed::FeedCommand;
use girok_engine::{ChatCommand, Command, Engine, EngineConfig};
use girok_schemas::{RoomId, UserId};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// ClickHouse's HTTP URL (default: start one in a temp dir with scripts/clickhouse.sh).
    #[arg(long, env = "GIROK_BENCH_CLICKHOUSE_URL")]
    clickhouse_url: Option<String>,
    /// Events in the backlog the throughput and restart runs ship: a post, a like of it, a
    /// comment on it and two chat messages in every five.
    #[arg(long, default_value_t = 200_000)]
    backlog: usize,
    /// Events per second written during the freshness run.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds of the freshness run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    backlog_events: u64,
    sink_rows: u64,
    sink_rows_per_sec: f64,
    sink_events_per_sec: f64,
    baseline_direct_audit_inserts_rows_per_sec: f64,
    ratio_sink_to_direct: f64,
    restart_resumed_seconds: f64,
    restart_resumed_from: u64,
    baseline_restart_from_seq_1_seconds: f64,
    freshness_target_events_per_sec: u64,
    freshness_written_events_per_sec: f64,
    freshness_lag: Latency,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A ClickHouse of the suite's own, stopped on drop.
struct OwnClickHouse {
    dir: tempfile::TempDir,
}

impl OwnClickHouse {
    fn script() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/clickhouse.sh")
    }

    fn start() -> anyhow::Result<(Self, String)> {
        let dir = tempfile::tempdir()?;
        let output = std::process::Command::new("bash")
            .arg(Self::script())
            .arg("start")
            .arg(dir.path())
            .output()
            .context("run scripts/clickhouse.sh (is clickhouse-server installed? `scripts/clickhouse.sh install`)")?;
        anyhow::ensure!(
            output.status.success(),
            "clickhouse did not start: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let url = String::from_utf8(output.stdout)?.trim().to_owned();
        Ok((Self { dir }, url))
    }
}

impl Drop for OwnClickHouse {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(Self::script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

fn config(url: &str, database: &str) -> AnalyticsConfig {
    AnalyticsConfig {
        clickhouse_url: Some(url.to_owned()),
        database: database.to_owned(),
        ..AnalyticsConfig::default()
    }
}

/// Starts a sink on `database`, which holds the whole log already (with its checkpoint removed
/// first when `from_seq_1`); returns how long it took to catch up, and the seq it resumed from.
async fn restart(
    engine: &Arc<Engine>,
    url: &str,
    database: &str,
    from_seq_1: bool,
) -> anyhow::Result<(Duration, u64)> {
    let config = config(url, database);
    let state = engine.sink_state(&config.state_name()?)?;
    if from_seq_1 {
        state.clear()?;
    }
    let head = engine.head();
    let started = Instant::now();
    let sink = Sink::start(engine.clone(), state, config)?;
    let status = loop {
        let status = sink.status();
        if status.shipped_seq >= head {
            break status;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the restarted sink did not catch up: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let elapsed = started.elapsed();
    sink.shutdown().await;
    Ok((elapsed, status.resumed_from))
}

/// An engine with one room, and a way to send to it.
async fn open_engine(dir: &std::path::Path) -> anyhow::Result<(Arc<Engine>, UserId, RoomId)> {
    let engine = Engine::open(EngineConfig::new(dir)).context("open engine")?;
    let actor = UserId::new_v7();
    let ack = engine
        .execute(
            actor,
            Command::Chat(ChatCommand::CreateRoom {
                title: "bench".into(),
                members: Vec::new(),
            }),
        )
        .await?;
    Ok((engine, actor, RoomId(ack.id.0)))
}

fn send(room: RoomId, i: usize) -> Command {
    Command::Chat(ChatCommand::SendMessage {
        room,
        body: format!("analytics bench message {i}"),
        client_id: None,
        reply_to: None,
        attachments: Vec::new(),
    })
}

pub fn run(args: &Args) -> anyhow::Result<Figures> {
    let (_own, url) = match &args.clickhouse_url {
        Some(url) => (None, url.clone()),
        None => {
            let (own, url) = OwnClickHouse::start()?;
            (Some(own), url)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args, &url))
}

async fn run_async(args: &Args, url: &str) -> anyhow::Result<Figures> {
    let stamp = uuid::Uuid::now_v7().simple().to_string();
    println!(
        "analytics: ClickHouse at {url}; backlog {} events; freshness at {} events/s for {} s",
        args.backlog, args.rate, args.seconds
    );

    // Throughput: a backlog shipped by a fresh sink.
    let temp = tempfile::tempdir()?;
    let (engine, actor, room) = open_engine(&temp.path().join("backlog")).await?;
    let mut tasks = Vec::new();
    let per_task = args.backlog / 64;
    for t in 0..64 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut post = None;
            for i in 0..per_task {
                let command = match (i % 5, post) {
                    (0, _) => Command::Feed(FeedCommand::CreatePost {
                        content: format!("analytics bench post {t}/{i}"),
                        media_ids: Vec::new(),
                    }),
                    (1, Some(post)) => Command::Feed(FeedCommand::LikePost { post }),
                    (2, Some(post)) => Command::Feed(FeedCommand::AddComment {
                        post,
                        content: "analytics bench comment".into(),
                    }),
                    _ => send(room, t * per_task + i),
                };
                // Likes from many users, so that each counts.
                let by = if i % 5 == 1 { UserId::new_v7() } else { actor };
                let ack = engine.execute(by, command).await?;
                if i % 5 == 0 {
                    post = Some(ack.id);
                }
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let head = engine.head();
    let database = format!("bench_{stamp}");
    let started = Instant::now();
    let source: Arc<dyn EventSource> = engine.clone();
    let config_backlog = config(url, &database);
    let state = engine.sink_state(&config_backlog.state_name()?)?;
    let sink = Sink::start(source.clone(), state, config_backlog)?;
    loop {
        let status = sink.status();
        if status.shipped_seq >= head {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the sink did not ship the backlog: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let rows = sink.status().rows_written;
    sink.shutdown().await;
    drop(sink);

    // Restart on the shipped backlog: from the checkpoint, then from seq 1.
    let (resumed, resumed_from) = restart(&engine, url, &database, false).await?;
    let (from_start, _) = restart(&engine, url, &database, true).await?;

    // The baseline: the same audit rows straight into ClickHouse.
    let rows_direct: Vec<AuditRow> = {
        let source = source.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<AuditRow>> {
            let mut rows = Vec::new();
            let mut next = 1;
            while next <= head {
                let events = source.read(next, head, 65_536)?;
                next = events.last().map_or(head + 1, |e| e.seq + 1);
                rows.extend(events.iter().map(AuditRow::of));
            }
            Ok(rows)
        })
        .await??
    };
    let direct = Warehouse::connect(&config(url, &format!("bench_direct_{stamp}"))).await?;
    let started_direct = Instant::now();
    for chunk in rows_direct.chunks(100_000) {
        direct.insert_audit(chunk).await?;
    }
    let direct_rate = rows_direct.len() as f64 / started_direct.elapsed().as_secs_f64();
    engine.shutdown().await;

    // Freshness under a paced load.
    let (engine, actor, room) = open_engine(&temp.path().join("fresh")).await?;
    let fresh_db = format!("bench_fresh_{stamp}");
    let config_fresh = config(url, &fresh_db);
    let state = engine.sink_state(&config_fresh.state_name()?)?;
    let sink = Sink::start(engine.clone(), state, config_fresh)?;
    let warehouse = Warehouse::connect(&config(url, &fresh_db)).await?;
    let committed: Arc<Mutex<BTreeMap<u64, i64>>> = Arc::default();
    let senders = 32usize;
    let interval = Duration::from_secs_f64(senders as f64 / args.rate.max(1) as f64);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for t in 0..senders {
        let (engine, committed) = (engine.clone(), committed.clone());
        tasks.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut i = 0;
            while Instant::now() < deadline {
                ticker.tick().await;
                let ack = engine.execute(actor, send(room, t * 1_000_000 + i)).await?;
                committed.lock().insert(ack.seq, ack.commit_time_ms);
                i += 1;
            }
            anyhow::Ok(i)
        }));
    }
    let mut lag = Histogram::<u64>::new(3)?;
    let mut seen = 0u64;
    let sampler_started = Instant::now();
    let mut written = 0usize;
    let mut senders_done = false;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let visible: u64 = warehouse
            .client()
            .query("SELECT toUInt64(max(seq)) FROM audit_events")
            .fetch_one()
            .await?;
        let now = now_ms();
        let newly: Vec<i64> = {
            let mut committed = committed.lock();
            let rest = committed.split_off(&(visible + 1));
            let done = std::mem::replace(&mut *committed, rest);
            done.into_values().collect()
        };
        for time in newly {
            lag.record((now - time).max(0) as u64 * 1000)?;
        }
        seen = seen.max(visible);
        if !senders_done && tasks.iter().all(|t| t.is_finished()) {
            senders_done = true;
            for task in tasks.drain(..) {
                written += task.await??;
            }
        }
        if senders_done && committed.lock().is_empty() {
            break;
        }
        anyhow::ensure!(
            sampler_started.elapsed() < Duration::from_secs(args.seconds + 120),
            "the sink fell behind for good (ClickHouse holds up to seq {seen})"
        );
    }
    sink.shutdown().await;
    engine.shutdown().await;

    let figures = Figures {
        backlog_events: head,
        sink_rows: rows,
        sink_rows_per_sec: rows as f64 / elapsed.as_secs_f64(),
        sink_events_per_sec: head as f64 / elapsed.as_secs_f64(),
        baseline_direct_audit_inserts_rows_per_sec: direct_rate,
        ratio_sink_to_direct: (rows as f64 / elapsed.as_secs_f64()) / direct_rate,
        restart_resumed_seconds: resumed.as_secs_f64(),
        restart_resumed_from: resumed_from,
        baseline_restart_from_seq_1_seconds: from_start.as_secs_f64(),
        freshness_target_events_per_sec: args.rate,
        freshness_written_events_per_sec: written as f64 / args.seconds as f64,
        freshness_lag: Latency::of(&lag),
    };
    println!(
        "sink throughput:           {:>10.0} rows/s ({:.0} events/s, {} rows for {} events)",
        figures.sink_rows_per_sec, figures.sink_events_per_sec, figures.sink_rows, head
    );
    println!(
        "direct audit inserts:      {:>10.0} rows/s (ratio sink / direct {:.2})",
        figures.baseline_direct_audit_inserts_rows_per_sec, figures.ratio_sink_to_direct
    );
    println!(
        "restart, caught up:        {:>10.3} s from the checkpoint at seq {} ({:.3} s from seq 1, \
         the baseline; ratio {:.3})",
        figures.restart_resumed_seconds,
        figures.restart_resumed_from,
        figures.baseline_restart_from_seq_1_seconds,
        figures.restart_resumed_seconds / figures.baseline_restart_from_seq_1_seconds.max(1e-9)
    );
    println!(
        "freshness at {:>6.0} ev/s: {} (commit until queryable)",
        figures.freshness_written_events_per_sec, figures.freshness_lag
    );
    Ok(figures)
}
