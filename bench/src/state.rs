//! `state`: the bounded-state figures of a server on a prepared data set (scripts/state.sh
//! makes one with `read-data` at a chosen scale and runs this on a copy). In order:
//! 1. *cold start*: the data directory's files are written back and dropped from the page
//!    cache (`posix_fadvise(DONTNEED)`, no root needed), then `girok serve` starts on it: time
//!    to ready, resident memory, the checkpoint the views resumed from.
//! 2. *cold reads*: `--readers` generated users sign in (spread over the data set; signing in
//!    lists their rooms), the page cache is dropped again, and each reads, one request at a
//!    time on one connection, the newest page of one of its rooms (50 messages) and of its
//!    home timeline (20 posts): each first read meets a cold page cache (girok's own block
//!    caches keep what the start and the sign-ins read).
//! 3. *warm reads*: the same reads `--warm-rounds` more times.
//! 4. *growth*: `--warm-events` events written through REST by the readers over
//!    `--connections` connections (chat messages in their rooms, every `--post-every`th a
//!    post) fill the caches and memtables; then `--grow-events` more, the views caught up
//!    after each: growth of resident memory per million events with the caches warm. Two
//!    figures: from the memory before to the memory after (one sample each, which lands
//!    wherever the memtables' fill-and-flush cycle stands, a swing of tens of MiB), and the
//!    slope of a least-squares line through samples taken every quarter second while the
//!    phase writes (anonymous memory against events written), which that cycle only blurs.
//! 5. *restart*: a clean stop and a start on the grown log: time to ready and memory.
//! 6. *crash*: `--crash-events` more events written, `kill -9` as soon as the last is
//!    acknowledged (the views and the search index still catching up, the memtables and the
//!    journal as the writes left them), and a start: time to ready, memory, and the head, which
//!    must hold every acknowledged write.
//!
//! Every answer is checked: a status other than 2xx fails the run.

use crate::read_load::{Reader, check_readers, http_client, sign_in};
use crate::report::{Latency, histogram};
use crate::start::{Http, Memory, Running, ServerArgs, gauge, launch, samples};
use anyhow::{Context, bail, ensure};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server and its data directory (a `read-data` set).
    #[command(flatten)]
    server: ServerArgs,
    /// Users in the data set (`read-data --users`): readers are spread over them.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Users who sign in, read and write.
    #[arg(long, default_value_t = 200)]
    readers: usize,
    /// Warm passes over the readers' pages after the cold one.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    warm_rounds: u32,
    /// Events written through REST after the reads (0: no growth phase).
    #[arg(long, default_value_t = 1_000_000)]
    grow_events: usize,
    /// Events written before the growth phase, to fill the caches (not measured).
    #[arg(long, default_value_t = 1_000_000)]
    warm_events: usize,
    /// Every this many written events one is a post (the rest are chat messages).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    post_every: u64,
    /// Events written after the restart, before a `kill -9` and a start (0: no crash phase).
    #[arg(long, default_value_t = 200_000)]
    crash_events: usize,
    /// Connections the growth phase writes over.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    connections: u64,
}

/// A start: time to ready and memory at ready.
#[derive(Debug, Serialize)]
pub struct Start {
    ready_ms: u64,
    head: u64,
    views_resumed_seq: u64,
    search_resumed_seq: u64,
    memory: Memory,
    /// The server's own account (`girok_memory_bytes`, `girok_view_memory_entries`).
    components: Components,
}

/// The server's memory gauges by name and label, e.g. `girok_memory_bytes{component="log_memtables"}`.
type Components = std::collections::BTreeMap<String, f64>;

/// Latency of the reads of one pass or passes.
#[derive(Debug, Serialize)]
pub struct Reads {
    history: Latency,
    timeline: Latency,
}

#[derive(Debug, Serialize)]
pub struct Growth {
    events: usize,
    posts: usize,
    seconds: f64,
    events_per_sec: f64,
    before: Memory,
    after: Memory,
    components_before: Components,
    components_after: Components,
    /// Growth of anonymous (heap) memory per million events, after against before.
    anon_mib_per_million_events: f64,
    /// Growth of all resident memory per million events, after against before.
    rss_mib_per_million_events: f64,
    /// The slope of anonymous memory against events written, over the samples taken while
    /// the phase wrote, MiB per million events.
    anon_mib_per_million_events_fit: f64,
    /// Samples behind the fit.
    samples: Samples,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    data_dir: String,
    page_cache_dropped_mib: f64,
    cold_start: Start,
    cold_reads: Reads,
    warm_reads: Reads,
    growth: Option<Growth>,
    restart: Start,
    crash: Option<Crash>,
}

/// A start after `kill -9`.
#[derive(Debug, Serialize)]
pub struct Crash {
    /// Events written (and acknowledged) before the kill.
    events: usize,
    /// The log's head when the last write was acknowledged.
    acked_head: u64,
    start: Start,
}

pub fn run(args: &Args) -> anyhow::Result<Figures> {
    let data_dir = args.server.data_dir()?;
    check_readers(args.users, args.readers)?;
    for (name, events) in [
        ("--grow-events", args.grow_events),
        ("--warm-events", args.warm_events),
    ] {
        ensure!(events <= 100_000_000, "{name}: at most 100,000,000");
    }
    let bin = args.server.binary()?;
    let http = Http::new()?;
    let timeout = args.server.timeout();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let dropped = drop_page_cache(data_dir)?;
    println!(
        "state: {:.0} MiB of {} written back and dropped from the page cache",
        crate::report::mib(dropped / 1024),
        data_dir.display()
    );
    let server = launch(&bin, data_dir, timeout, &http)?;
    let cold_start = start_figures(&server, &http)?;
    println!("cold start: {}", describe(&cold_start));
    print_components(&cold_start.components);

    let readers = runtime.block_on(sign_in(&server.url, args.users, args.readers))?;
    // Signing in read the readers' room lists (their rooms' last messages): drop the pages
    // again, so that the first reads meet the disk (girok's own block caches keep what the
    // start and the sign-ins put there).
    drop_page_cache(data_dir)?;
    let cold_reads = runtime.block_on(read_pages(&server.url, &readers, 1))?;
    println!(
        "cold reads ({} readers, one request at a time):\n  history  {}\n  timeline {}",
        readers.len(),
        cold_reads.history,
        cold_reads.timeline
    );
    let warm_reads = runtime.block_on(read_pages(&server.url, &readers, args.warm_rounds))?;
    println!(
        "warm reads ({} passes):\n  history  {}\n  timeline {}",
        args.warm_rounds, warm_reads.history, warm_reads.timeline
    );

    let growth = if args.grow_events == 0 {
        None
    } else {
        let readers = Arc::new(readers);
        let phase = |name, events| -> anyhow::Result<(usize, f64, Samples)> {
            let started = Instant::now();
            let written = Arc::new(AtomicUsize::new(0));
            let writing = AtomicBool::new(true);
            let (posts, samples) = std::thread::scope(|scope| {
                let sampler = scope.spawn(|| sample_memory(server.pid, &written, &writing));
                let posts =
                    runtime.block_on(grow(&server.url, &readers, args, name, events, &written));
                writing.store(false, Ordering::Relaxed);
                let samples = sampler.join().unwrap_or_default();
                posts.map(|posts| (posts, samples))
            })?;
            wait_caught_up(&server, &http, timeout)?;
            let seconds = started.elapsed().as_secs_f64();
            // Let the view store's batches and the search commit that follow a load settle.
            std::thread::sleep(Duration::from_secs(6));
            Ok((posts, seconds, samples))
        };
        if args.warm_events > 0 {
            let (_, seconds, _) = phase("warm-up", args.warm_events)?;
            println!(
                "warm-up: {} events in {seconds:.0} s; {}",
                args.warm_events,
                server.memory()?
            );
        }
        let before = server.memory()?;
        let components_before = components(&server.metrics(&http)?);
        let (posts, seconds, samples) = phase("growth", args.grow_events)?;
        let after = server.memory()?;
        let components_after = components(&server.metrics(&http)?);
        let per_million = |from: f64, to: f64| (to - from) * 1e6 / args.grow_events as f64;
        let growth = Growth {
            events: args.grow_events,
            posts,
            seconds,
            events_per_sec: args.grow_events as f64 / seconds,
            before,
            after,
            components_before,
            components_after,
            anon_mib_per_million_events: per_million(before.rss_anon_mib, after.rss_anon_mib),
            rss_mib_per_million_events: per_million(before.rss_mib, after.rss_mib),
            anon_mib_per_million_events_fit: slope_per_million(&samples),
            samples,
        };
        println!(
            "growth: {} events ({} posts) in {:.0} s ({:.0}/s); before: {}; after: {}; \
             {:.1} MiB anonymous ({:.1} MiB resident) per million events; fitted over {} \
             samples while writing: {:.1} MiB anonymous per million events",
            growth.events,
            growth.posts,
            growth.seconds,
            growth.events_per_sec,
            growth.before,
            growth.after,
            growth.anon_mib_per_million_events,
            growth.rss_mib_per_million_events,
            growth.samples.len(),
            growth.anon_mib_per_million_events_fit
        );
        // Beside the slope: what the bounded parts (caches, memtables) did meanwhile, so a
        // cache still filling shows as such.
        for line in component_changes(&growth.components_before, &growth.components_after) {
            println!("{line}");
        }
        Some(growth)
    };
    let stop_ms = server.stop()?;
    println!("stopped in {stop_ms} ms");

    let server = launch(&bin, data_dir, timeout, &http)?;
    let restart = start_figures(&server, &http)?;
    println!("restart (page cache warm): {}", describe(&restart));
    print_components(&restart.components);
    let crash = if args.crash_events == 0 {
        server.stop()?;
        None
    } else {
        let readers = runtime.block_on(sign_in(&server.url, args.users, args.readers))?;
        let readers = Arc::new(readers);
        runtime.block_on(grow(
            &server.url,
            &readers,
            args,
            "crash",
            args.crash_events,
            &Arc::default(),
        ))?;
        let acked_head = head(&server, &http)?;
        server.kill9()?;
        let server = launch(&bin, data_dir, timeout, &http)?;
        let start = start_figures(&server, &http)?;
        println!(
            "start after kill -9 ({} events written just before, head {acked_head} acknowledged): {}",
            args.crash_events,
            describe(&start)
        );
        ensure!(
            start.head >= acked_head,
            "acknowledged writes lost: head {} after the crash, {acked_head} acknowledged",
            start.head
        );
        server.stop()?;
        Some(Crash {
            events: args.crash_events,
            acked_head,
            start,
        })
    };
    Ok(Figures {
        data_dir: data_dir.display().to_string(),
        page_cache_dropped_mib: crate::report::mib(dropped / 1024),
        cold_start,
        cold_reads,
        warm_reads,
        growth,
        restart,
        crash,
    })
}

fn describe(start: &Start) -> String {
    format!(
        "ready after {} ms (head {}, views resumed from {}, search from {}), {}",
        start.ready_ms, start.head, start.views_resumed_seq, start.search_resumed_seq, start.memory
    )
}

fn start_figures(server: &Running, http: &Http) -> anyhow::Result<Start> {
    let memory = server.memory()?;
    let readyz: serde_json::Value =
        serde_json::from_str(&http.text(format!("{}/readyz", server.url))?)?;
    let metrics = server.metrics(http)?;
    Ok(Start {
        ready_ms: server.ready_ms,
        head: readyz["log"]["head"].as_u64().unwrap_or(0),
        views_resumed_seq: gauge(&metrics, "girok_views_resumed_seq") as u64,
        search_resumed_seq: gauge(&metrics, "girok_search_resumed_seq") as u64,
        memory,
        components: components(&metrics),
    })
}

/// The memory gauges in a `/metrics` text (none from a build without them).
fn components(metrics: &str) -> Components {
    samples(metrics)
        .filter(|(name, _)| {
            name.starts_with("girok_memory_bytes{")
                || name.starts_with("girok_view_memory_entries{")
        })
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

fn print_components(components: &Components) {
    for (name, &value) in components {
        println!("{}", component_line(name, None, value));
    }
}

/// One line per gauge of `after`: its value before and after a phase, and the change (MiB
/// for memory, a count for view entries).
fn component_changes(before: &Components, after: &Components) -> Vec<String> {
    after
        .iter()
        .map(|(name, &to)| component_line(name, Some(before.get(name).copied().unwrap_or(0.0)), to))
        .collect()
}

/// A gauge's line: memory in MiB under its label, other gauges as counts under their name;
/// with `before`, the value before, after and the change.
fn component_line(name: &str, before: Option<f64>, value: f64) -> String {
    let (label, scale, unit, width, decimals) = match name.strip_prefix("girok_memory_bytes") {
        Some(label) => (label, 1048576.0, " MiB", 8, 1),
        None => (name, 1.0, "", 10, 0),
    };
    let to = value / scale;
    match before {
        None => format!("  {label:<48} {to:>width$.decimals$}{unit}"),
        Some(before) => {
            let from = before / scale;
            format!(
                "  {label:<48} {from:>width$.decimals$} -> {to:>width$.decimals$}{unit} ({:+.decimals$})",
                to - from
            )
        }
    }
}

/// Writes back and drops from the page cache every file under `dir`; the bytes they hold.
fn drop_page_cache(dir: &Path) -> anyhow::Result<u64> {
    let mut bytes = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                let file = std::fs::File::open(entry.path())?;
                // Dirty pages are not dropped: write them back first.
                file.sync_all()?;
                rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)?;
                bytes += file.metadata()?.len();
            }
        }
    }
    Ok(bytes)
}

/// `rounds` passes over the readers, one request at a time: each reader's room page, then
/// its timeline page.
async fn read_pages(url: &str, readers: &[Reader], rounds: u32) -> anyhow::Result<Reads> {
    let http = http_client()?;
    let (mut history, mut timeline) = (histogram()?, histogram()?);
    for _ in 0..rounds {
        for reader in readers {
            let page = format!("{url}/v1/rooms/{}/messages?first=50", reader.room);
            timed_get(&http, &page, reader, &mut history).await?;
            let page = format!("{url}/v1/timeline?limit=20");
            timed_get(&http, &page, reader, &mut timeline).await?;
        }
    }
    Ok(Reads {
        history: Latency::of(&history),
        timeline: Latency::of(&timeline),
    })
}

async fn timed_get(
    http: &reqwest::Client,
    url: &str,
    reader: &Reader,
    into: &mut Histogram<u64>,
) -> anyhow::Result<()> {
    let sent = Instant::now();
    let response = http.get(url).bearer_auth(&reader.token).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    into.saturating_record(sent.elapsed().as_micros() as u64);
    if !status.is_success() {
        bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

/// Writes `total` events over `args.connections` connections (their text says which `phase`),
/// counting each acknowledged one in `written`; how many were posts.
async fn grow(
    url: &str,
    readers: &Arc<Vec<Reader>>,
    args: &Args,
    phase: &'static str,
    total: usize,
    written: &Arc<AtomicUsize>,
) -> anyhow::Result<usize> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let (url, readers, next) = (url.to_owned(), readers.clone(), next.clone());
        let written = written.clone();
        let post_every = args.post_every as usize;
        let http = http_client()?;
        tasks.spawn(async move {
            let mut posts = 0;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return anyhow::Ok(posts);
                }
                let reader = &readers[n % readers.len()];
                let request = if n % post_every == post_every - 1 {
                    posts += 1;
                    http.post(format!("{url}/v1/posts"))
                        .json(&json!({ "content": format!("state bench post {n} of the {phase} phase") }))
                } else {
                    http.post(format!("{url}/v1/rooms/{}/messages", reader.room))
                        .json(&json!({ "body": format!("state bench message {n} of the {phase} phase") }))
                };
                let response = request.bearer_auth(&reader.token).send().await?;
                if !response.status().is_success() {
                    let status = response.status();
                    bail!("write {n}: {status}: {}", response.text().await.unwrap_or_default());
                }
                written.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut posts = 0;
    while let Some(finished) = tasks.join_next().await {
        posts += finished??;
    }
    Ok(posts)
}

/// `(events written, anonymous MiB)` per sample.
type Samples = Vec<(usize, f64)>;

/// How often the growth phase samples the server's memory.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// `(events written, anonymous MiB)` every [`SAMPLE_EVERY`] while `writing`.
fn sample_memory(pid: u32, written: &AtomicUsize, writing: &AtomicBool) -> Samples {
    let mut samples = Vec::new();
    while writing.load(Ordering::Relaxed) {
        std::thread::sleep(SAMPLE_EVERY);
        if let Some(&[anon_kib]) = crate::cpu::status_kib(pid, &["RssAnon:"]).as_deref() {
            samples.push((written.load(Ordering::Relaxed), anon_kib as f64 / 1024.0));
        }
    }
    samples
}

/// The least-squares slope of `(events, MiB)` samples, MiB per million events (0 with fewer
/// than two distinct event counts). A fill-and-flush sawtooth of height A repeating every P
/// million events biases it by about A / (N² P) over N cycles: a few MiB for the memtables'
/// cycle in a million-event phase.
fn slope_per_million(samples: &[(usize, f64)]) -> f64 {
    let n = samples.len() as f64;
    let x = |events: usize| events as f64 / 1e6;
    let mean_x = samples.iter().map(|&(e, _)| x(e)).sum::<f64>() / n;
    let mean_y = samples.iter().map(|&(_, m)| m).sum::<f64>() / n;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for &(events, mib) in samples {
        covariance += (x(events) - mean_x) * (mib - mean_y);
        variance += (x(events) - mean_x).powi(2);
    }
    if variance > 0.0 {
        covariance / variance
    } else {
        0.0
    }
}

/// The log's head (`/readyz`).
fn head(server: &Running, http: &Http) -> anyhow::Result<u64> {
    let readyz: serde_json::Value =
        serde_json::from_str(&http.text(format!("{}/readyz", server.url))?)?;
    readyz["log"]["head"].as_u64().context("no head in /readyz")
}

/// Waits until every view reflects the log's head.
fn wait_caught_up(server: &Running, http: &Http, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let readyz: serde_json::Value =
            serde_json::from_str(&http.text(format!("{}/readyz", server.url))?)?;
        let views = readyz["views"].as_array().context("no views in /readyz")?;
        if views.iter().all(|view| view["lag"].as_u64() == Some(0)) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "views not caught up after {} s",
            timeout.as_secs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::{Components, component_changes, slope_per_million};

    #[test]
    fn component_changes_show_each_gauge_before_and_after() {
        let cache = r#"girok_memory_bytes{component="log_block_cache"}"#.to_owned();
        let entries = r#"girok_view_memory_entries{view="timelines"}"#.to_owned();
        let before = Components::from([(cache.clone(), 40.0 * 1048576.0)]);
        let after = Components::from([(cache, 52.5 * 1048576.0), (entries, 1_500.0)]);
        assert_eq!(
            component_changes(&before, &after),
            [
                format!(
                    "  {:<48} {:>8.1} -> {:>8.1} MiB (+12.5)",
                    r#"{component="log_block_cache"}"#, 40.0, 52.5
                ),
                format!(
                    "  {:<48} {:>10} -> {:>10} (+1500)",
                    r#"girok_view_memory_entries{view="timelines"}"#, 0, 1500
                ),
            ]
        );
    }

    #[test]
    fn the_fit_sees_the_trend_through_a_sawtooth() {
        // 10 MiB per million events under a 60 MiB fill-and-flush swing every 25,000 events:
        // the endpoints alone could say anything from -50 to +70. Over N whole cycles of
        // height A and length P a ramp adds A / (N^2 P) to the slope: 1.5 MiB here.
        let samples: Vec<(usize, f64)> = (0..=2_000)
            .map(|i| {
                let events = i * 500;
                let swing = (events % 25_000) as f64 / 25_000.0 * 60.0;
                (events, 500.0 + 10.0 * events as f64 / 1e6 + swing)
            })
            .collect();
        let slope = slope_per_million(&samples);
        assert!((slope - 10.0).abs() < 2.5, "{slope}");
    }

    #[test]
    fn no_spread_no_slope() {
        assert_eq!(slope_per_million(&[]), 0.0);
        assert_eq!(slope_per_million(&[(5, 1.0), (5, 9.0)]), 0.0);
    }
}
