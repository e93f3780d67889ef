//! `read-load`: an external, closed-loop read load against a running server that holds the
//! `read-data` set (scripts/read-load.sh starts one). Signs in `--readers` generated users,
//! then for each target and connection count: N connections (one HTTP/1.1 keep-alive
//! connection each), every connection sending its next request as soon as the previous answer
//! arrived, the readers taken in turn. After the warm-up, counts answers per second and their
//! latency (p50/p99/p99.9), and samples the server's CPU and RSS. Every answer is checked:
//! a non-200 status or a GraphQL `errors` member fails the run.
//!
//! Targets: `graphql` (seed 001's timeline query, with `likedByMe`), `rest` (`GET
//! /v1/timeline`), `history` (a page of one of the reader's rooms), `rooms` (the room list).

use crate::client::{login, unexpected};
use crate::cpu::{Cores, CpuReading, rss_kib};
use crate::read_data::{PASSWORD, username};
use crate::report::{Latency, histogram, mib};
use anyhow::{Context, bail, ensure};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Seed 001's timeline query, as a client sends it (plus `likedByMe`).
pub const TIMELINE_QUERY: &str = "query Timeline { timeline(limit: 20) { posts { id content \
    author { id name avatar } likes likedByMe comments(limit: 3) { content author { name } } } \
    pageInfo { hasNextPage endCursor } } }";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server's base URL.
    #[arg(long)]
    url: String,
    /// The server's pid, to sample its CPU time and RSS (same machine only).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Targets to run, in order: graphql, rest, history, rooms.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "graphql,rest,history,rooms"
    )]
    targets: Vec<Target>,
    /// Connection counts to run each target with.
    #[arg(long, value_delimiter = ',', default_value = "8")]
    connections: Vec<usize>,
    /// Generated users to sign in and read as (taken in turn).
    #[arg(long, default_value_t = 200)]
    readers: usize,
    /// Users in the data set (`read-data --users`): readers are spread over them.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Seconds of warm-up before each measured window.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Graphql,
    Rest,
    History,
    Rooms,
}

#[derive(Debug, Serialize)]
pub struct Run {
    target: Target,
    connections: usize,
    answers: u64,
    queries_per_sec: f64,
    latency: Latency,
    /// Server CPU over the window, in cores, and per answer in microseconds.
    server_cores: Option<f64>,
    server_cpu_us_per_query: Option<f64>,
    /// This generator's own CPU, in cores (it shares the machine).
    generator_cores: Option<f64>,
    /// Everything else running on the machine meanwhile, in cores (a quiet machine shows
    /// about 0).
    other_cores: Option<f64>,
    server_rss_mib: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    readers: usize,
    warmup_s: u64,
    seconds: u64,
    runs: Vec<Run>,
}

/// A signed-in reader and one of their rooms.
pub(crate) struct Reader {
    pub token: String,
    /// A room the reader is a member of.
    pub room: String,
}

/// Checks `--users` and `--readers` against what `read-data` makes and [`sign_in`] takes.
pub(crate) fn check_readers(users: usize, readers: usize) -> anyhow::Result<()> {
    ensure!(
        (2..=1_000_000).contains(&users),
        "--users: 2 to 1,000,000 (as read-data makes)"
    );
    ensure!(
        readers >= 1 && readers < users.min(100_001),
        "--readers: 1 to 100,000 and below --users (user 0 is the author everyone follows)"
    );
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<Figures> {
    check_readers(args.users, args.readers)?;
    ensure!(args.seconds >= 1, "--seconds: at least 1");
    ensure!(
        args.warmup <= 3600 && args.seconds <= 3600,
        "--warmup and --seconds: at most an hour each"
    );
    ensure!(
        args.connections.iter().all(|c| (1..=1024).contains(c)),
        "--connections: 1 to 1024 each"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let readers = Arc::new(sign_in(&args.url, args.users, args.readers).await?);
        let mut runs = Vec::new();
        for &target in &args.targets {
            check_answer(args, target, &readers[0]).await?;
            for &connections in &args.connections {
                let run = measure(args, target, connections, &readers).await?;
                print_run(&run);
                runs.push(run);
            }
        }
        Ok(Figures {
            readers: readers.len(),
            warmup_s: args.warmup,
            seconds: args.seconds,
            runs,
        })
    })
}

pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Signs in `count` readers spread over the `users` of a `read-data` set and finds a room of
/// each.
pub(crate) async fn sign_in(url: &str, users: usize, count: usize) -> anyhow::Result<Vec<Reader>> {
    let http = http_client()?;
    let step = users / count.max(1);
    let started = Instant::now();
    let mut readers = Vec::with_capacity(count);
    // User 0 is the author everyone follows; readers are ordinary users.
    for i in 0..count {
        let name = username(1 + (i * step) % (users - 1));
        let token = login(&http, url, &name, PASSWORD)
            .await
            .with_context(|| format!("signing in {name} (is read-data loaded?)"))?;
        let rooms: Value = http
            .get(format!("{url}/v1/rooms"))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let Some(room) = rooms["rooms"][0]["id"].as_str() else {
            bail!("{name} is in no room: {rooms}");
        };
        readers.push(Reader {
            token,
            room: room.to_owned(),
        });
    }
    println!(
        "{} readers signed in in {:.1} s",
        readers.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(readers)
}

fn request(
    http: &reqwest::Client,
    url: &str,
    target: Target,
    reader: &Reader,
) -> reqwest::RequestBuilder {
    let builder = match target {
        Target::Graphql => http
            .post(format!("{url}/graphql"))
            .json(&json!({ "query": TIMELINE_QUERY })),
        Target::Rest => http.get(format!("{url}/v1/timeline?limit=20")),
        Target::History => http.get(format!("{url}/v1/rooms/{}/messages?first=50", reader.room)),
        Target::Rooms => http.get(format!("{url}/v1/rooms")),
    };
    builder.bearer_auth(&reader.token)
}

/// One request, checked: a failure is an error, not a figure.
async fn send(
    http: &reqwest::Client,
    url: &str,
    target: Target,
    reader: &Reader,
) -> anyhow::Result<bytes::Bytes> {
    let response = request(http, url, target, reader).send().await?;
    if !response.status().is_success() {
        return Err(unexpected(format!("{target:?}"), response).await);
    }
    let body = response.bytes().await?;
    if target == Target::Graphql && has_errors_member(&body) {
        bail!("GraphQL errors: {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}

/// Whether a GraphQL answer carries an `errors` member (without parsing it all).
fn has_errors_member(body: &[u8]) -> bool {
    body.windows(8).any(|w| w == b"\"errors\"")
}

/// Checks once that the target answers what it should (a full timeline page, and so on).
async fn check_answer(args: &Args, target: Target, reader: &Reader) -> anyhow::Result<()> {
    let body = send(&http_client()?, &args.url, target, reader).await?;
    let value: Value = serde_json::from_slice(&body)?;
    let items = match target {
        Target::Graphql => &value["data"]["timeline"]["posts"],
        Target::Rest => &value["posts"],
        Target::History => &value["messages"],
        Target::Rooms => &value["rooms"],
    };
    let count = items.as_array().map_or(0, Vec::len);
    ensure!(
        count > 0,
        "{target:?} answered no items, which measures nothing: {value}"
    );
    if target == Target::Graphql {
        ensure!(
            value["data"]["timeline"]["posts"][0]["author"]["name"].is_string(),
            "the timeline query answered no author: {value}"
        );
    }
    Ok(())
}

async fn measure(
    args: &Args,
    target: Target,
    connections: usize,
    readers: &Arc<Vec<Reader>>,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let measure_from = started + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.seconds);
    let url: Arc<str> = args.url.as_str().into();
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let (readers, url) = (readers.clone(), url.clone());
        let http = http_client()?;
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram()?;
            let mut next = c * readers.len() / connections;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                send(&http, &url, target, &readers[next % readers.len()]).await?;
                next += 1;
                if sent >= measure_from {
                    latency.saturating_record(sent.elapsed().as_micros() as u64);
                }
            }
            anyhow::Ok(latency)
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let before = CpuReading::take(args.server_pid);
    tokio::time::sleep_until(end.into()).await;
    let Cores {
        server: server_cores,
        generator: generator_cores,
        other: other_cores,
        ..
    } = CpuReading::take(args.server_pid).cores_since(&before);
    let server_rss_mib = args.server_pid.and_then(rss_kib).map(mib);
    let mut latency = histogram()?;
    for task in tasks {
        latency.add(task.await??)?;
    }
    let answers = latency.len();
    let queries_per_sec = answers as f64 / args.seconds as f64;
    Ok(Run {
        target,
        connections,
        answers,
        queries_per_sec,
        latency: Latency::of(&latency),
        server_cpu_us_per_query: server_cores.map(|c| c * 1e6 / queries_per_sec.max(1.0)),
        server_cores,
        generator_cores,
        other_cores,
        server_rss_mib,
    })
}

fn print_run(run: &Run) {
    let fmt = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "?".to_owned(), |v| format!("{v:.digits$}"))
    };
    println!(
        "{:<8} {:>3} conn: {:>8.0} q/s  {}",
        format!("{:?}", run.target).to_lowercase(),
        run.connections,
        run.queries_per_sec,
        run.latency
    );
    println!(
        "               server {} cores ({} µs CPU/query), RSS {} MiB; generator {} cores; other processes {} cores",
        fmt(run.server_cores, 2),
        fmt(run.server_cpu_us_per_query, 0),
        fmt(run.server_rss_mib, 0),
        fmt(run.generator_cores, 2),
        fmt(run.other_cores, 2)
    );
}
