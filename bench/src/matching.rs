//! `matching`: an external, open-loop load of random matching against a running girok server
//! and, in the same run, against the seed design's in-memory sorted set (`matching-baseline`,
//! see scripts/matching-load.sh, which starts both pinned to one core and runs this on the
//! other). Setup (accounts, logins, one WebSocket per user subscribed to `matching`) is not
//! measured. Then joins are scheduled at a fixed rate whatever the server answers; each
//! scheduled join takes an idle user (one not waiting and not matched) and sends a join: a
//! `join` frame on the user's socket (`--via ws`, the default: a client that keeps its socket
//! open) or `POST /v1/matching/queue` (`--via http`). A join that finds a partner waiting is
//! answered with the match: its latency from the scheduled instant is **join→matched for the
//! newcomer**; the waiting partner learns it from a `matched` frame on its socket, whose
//! latency from the newcomer's scheduled instant is **join→matched for the partner**. The
//! newcomer then ends the match (a `skip` frame with `requeue: false`, or `POST
//! /v1/matching/skip?requeue=false`) and both are idle again. A schedule that finds no idle
//! user is counted (`starved`): more users are needed for that rate.

use crate::client::{Account, SETUP_CONCURRENCY, Socket, account, ws_request, ws_url};
use crate::cpu::{CpuReading, ThreadsReading, rss_kib};
use crate::pacer;
use crate::report::{Latency, histogram, mib};
use anyhow::{Context, bail};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "matching-load password";
/// Longest warm-up or window accepted (a day).
const MAX_SECONDS: u64 = 86_400;
/// Most joins `--latency-timeline` keeps in memory for its file (16 bytes each): the window's
/// scheduled joins, `--rate` × `--seconds`, may not exceed it.
const MAX_TIMELINE_JOINS: u64 = 10_000_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base URL of the running girok server.
    #[arg(long, value_name = "URL")]
    url: String,
    /// girok's pid, for its CPU and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Base URL of a running `girok-bench matching-baseline`, driven the same way after girok.
    #[arg(long, value_name = "URL")]
    baseline_url: Option<String>,
    /// The baseline's pid, for its CPU and RSS.
    #[arg(long)]
    baseline_pid: Option<u32>,
    /// Users, each with its own WebSocket; a user is busy from its join until its match ends.
    /// Each match ends with a skip that keeps its pair apart for a day, so a run may schedule
    /// at most half of the users' pairs (users × (users − 1) / 2) as matches.
    #[arg(long, default_value_t = 500)]
    users: usize,
    /// Joins per second offered, all users together.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Seconds of joins before the measured window.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    warmup: u64,
    /// Seconds of the measured window (joins scheduled in it are measured).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS))]
    seconds: u64,
    /// How users join and skip: frames on their WebSocket, or REST requests.
    #[arg(long, value_enum, default_value_t = Via::Ws)]
    via: Via,
    /// Writes every measured join→matched (newcomer) to this CSV, in scheduled order: the
    /// join's scheduled instant (Unix ms) and its latency (µs), to line the tail up with other
    /// records; the baseline's go to `<stem>-baseline.<extension>` beside it. Kept in memory
    /// until the end: `--rate` × `--seconds` at most 10,000,000.
    #[arg(long, value_name = "FILE")]
    latency_timeline: Option<PathBuf>,
}

/// The transport of joins and skips.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// `join` and `skip` frames on the user's `/ws`, answered by `matchingAck`.
    Ws,
    /// `POST /v1/matching/queue` and `POST /v1/matching/skip`.
    Http,
}

/// How long a join or skip sent as a frame may wait for its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// One system's figures.
#[derive(Debug, Serialize)]
pub struct Run {
    system: &'static str,
    url: String,
    /// Joins scheduled in the window.
    scheduled: u64,
    /// Of those, no idle user was there to send them.
    starved: u64,
    /// Joins acknowledged (201) per second of the window.
    joins_per_sec: f64,
    /// Joins answered with a match, per second of the window.
    matches_per_sec: f64,
    /// Refused joins and skips, by code.
    refused: HashMap<String, u64>,
    /// From a join's scheduled instant to its answer carrying the match.
    join_to_matched: Latency,
    /// From the newcomer's scheduled instant to the waiting partner's `matched` frame.
    partner_notified: Latency,
    /// `matched` frames the partners had not received 2 s after the window.
    partner_missing: u64,
    server_cores: Option<f64>,
    /// The server's CPU seconds per wall second in the window by thread name (numbered
    /// threads folded), from `/proc/<pid>/task`.
    server_threads: BTreeMap<String, f64>,
    generator_cores: Option<f64>,
    other_cores: Option<f64>,
    /// Cores the host took from the machine in the window (`steal`): its own noise.
    stolen_cores: Option<f64>,
    /// The longest join→matched (newcomer) of the joins scheduled in each second of the
    /// window: a few stalls and a steady queue look alike in a p99, not here.
    worst_join_to_matched_by_second_us: Vec<u64>,
    server_rss_mib: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    users: usize,
    rate: u64,
    via: Via,
    warmup_secs: u64,
    measured_secs: u64,
    girok: Run,
    baseline: Option<Run>,
    /// girok's figure over the baseline's (joins/s; p99 latencies: below 1 is faster).
    ratios: Option<Ratios>,
}

#[derive(Debug, Serialize)]
pub struct Ratios {
    matches_per_sec: f64,
    join_to_matched_p99: f64,
    partner_notified_p99: f64,
}

/// Most of the pool's distinct pairs a run may use up (see [`pairs_check`]).
const MAX_PAIRS_USED_PERCENT: u64 = 50;

/// Every match ends with a skip, which keeps its pair apart for girok's
/// `matching.skip_exclusion_secs` (a day by default), so a run can use each of the users' pairs
/// once. Past about half of them a newcomer finds fewer and fewer waiting users it may meet,
/// and once all are used every join waits and every schedule starves (600 users at 10,000
/// joins/s: after about 36 s). Refuses a run that would schedule more matches than
/// [`MAX_PAIRS_USED_PERCENT`] of the pairs, naming the users it needs.
fn pairs_check(users: usize, rate: u64, seconds: u64) -> Result<(), String> {
    let pairs_of = |n: u128| n * n.saturating_sub(1) / 2;
    let matches = u128::from(rate) * u128::from(seconds) / 2;
    // The pairs a run of `matches` needs, of which it may use MAX_PAIRS_USED_PERCENT.
    let pairs_needed = (matches * 100).div_ceil(u128::from(MAX_PAIRS_USED_PERCENT));
    let pairs = pairs_of(users as u128);
    if pairs >= pairs_needed {
        return Ok(());
    }
    // The least n with n(n-1)/2 ≥ pairs_needed: √(2 × pairs_needed) is below it.
    let mut needed = ((pairs_needed as f64 * 2.0).sqrt() as u128).max(2);
    while pairs_of(needed) < pairs_needed {
        needed += 1;
    }
    Err(format!(
        "--users {users} have {pairs} distinct pairs, but --rate {rate} for {seconds} s (warm-up and window) schedules about {matches} matches; each ends with a skip that keeps its pair apart (girok's matching.skip_exclusion_secs, a day by default), and past {MAX_PAIRS_USED_PERCENT} % of the pairs used the joins starve: use --users {needed} or more"
    ))
}

pub fn run(args: &Args) -> anyhow::Result<Figures> {
    if args.users < 2 || args.rate == 0 {
        bail!("--users must be at least 2 and --rate at least 1");
    }
    if let Err(refusal) = pairs_check(args.users, args.rate, args.warmup + args.seconds) {
        bail!(refusal);
    }
    if let Some(path) = &args.latency_timeline {
        if args.rate.saturating_mul(args.seconds) > MAX_TIMELINE_JOINS {
            bail!(
                "--latency-timeline keeps every join of the window in memory: --rate × --seconds may be at most {MAX_TIMELINE_JOINS}"
            );
        }
        create_timelines(path, args.baseline_url.is_some())?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let via = match args.via {
            Via::Ws => "join and skip frames on each user's /ws",
            Via::Http => "POST /v1/matching/queue and /v1/matching/skip",
        };
        println!("joins and skips: {via}");
        let girok = drive(args, "girok", &args.url, args.server_pid).await?;
        println!("{}", summary(&girok));
        let baseline = match &args.baseline_url {
            Some(url) => {
                let run = drive(args, "baseline", url, args.baseline_pid).await?;
                println!("{}", summary(&run));
                Some(run)
            }
            None => None,
        };
        let ratios = baseline.as_ref().map(|b| Ratios {
            matches_per_sec: girok.matches_per_sec / b.matches_per_sec.max(f64::MIN_POSITIVE),
            join_to_matched_p99: girok.join_to_matched.p99_us as f64
                / b.join_to_matched.p99_us.max(1) as f64,
            partner_notified_p99: girok.partner_notified.p99_us as f64
                / b.partner_notified.p99_us.max(1) as f64,
        });
        if let Some(r) = &ratios {
            println!(
                "girok / baseline: matches/s {:.2}, join→matched p99 {:.2}, partner notified p99 {:.2}",
                r.matches_per_sec, r.join_to_matched_p99, r.partner_notified_p99
            );
        }
        Ok(Figures {
            users: args.users,
            rate: args.rate,
            via: args.via,
            warmup_secs: args.warmup,
            measured_secs: args.seconds,
            girok,
            baseline,
            ratios,
        })
    })
}

fn summary(run: &Run) -> String {
    let mut threads: Vec<_> = run.server_threads.iter().collect();
    threads.sort_by(|a, b| b.1.total_cmp(a.1));
    let threads = threads
        .iter()
        .take(8)
        .map(|(name, cores)| format!("{name} {cores:.3}"))
        .collect::<Vec<_>>()
        .join(", ");
    let worst = run
        .worst_join_to_matched_by_second_us
        .iter()
        // A second with no match in it (nothing answered) shows as `-`.
        .map(|us| match us {
            0 => "-".to_owned(),
            us => format!("{:.1}", *us as f64 / 1000.0),
        })
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{}: {:.0} joins/s, {:.0} matches/s, starved {}, refused {:?}\n  join→matched {}\n    worst by second (ms): {worst}\n  partner notified {}\n  partner frames missing {}, server {:.2} cores, generator {:.2} cores, other {:.2} cores, stolen by the host {:.2} cores, server RSS {:.0} MiB\n  server threads (cores): {threads}",
        run.system,
        run.joins_per_sec,
        run.matches_per_sec,
        run.starved,
        run.refused,
        run.join_to_matched,
        run.partner_notified,
        run.partner_missing,
        run.server_cores.unwrap_or(f64::NAN),
        run.generator_cores.unwrap_or(f64::NAN),
        run.other_cores.unwrap_or(f64::NAN),
        run.stolen_cores.unwrap_or(f64::NAN),
        run.server_rss_mib.unwrap_or(f64::NAN),
    )
}

/// What the users and their joins share (one thread: no locks).
struct Shared {
    http: reqwest::Client,
    base: String,
    via: Via,
    /// Each user's socket writer (frames go out in the order queued).
    frames: Vec<mpsc::UnboundedSender<Message>>,
    /// Frames sent with a `ref` that wait for their answer (`matchingAck` or `error`).
    answers: RefCell<HashMap<u64, oneshot::Sender<Value>>>,
    next_ref: Cell<u64>,
    accounts: Vec<Account>,
    index: HashMap<String, usize>,
    idle: RefCell<VecDeque<usize>>,
    /// A match's room → the scheduled instant of the join that made it, until the waiting
    /// partner's `matched` frame arrives.
    notify_due: RefCell<HashMap<String, Instant>>,
    /// A match's room → when the partner's `matched` frame arrived, for frames that came
    /// before the newcomer's answer (girok pushes the frame once the match is durable, which
    /// can be before the answer is written).
    notified_at: RefCell<HashMap<String, Instant>>,
    window: (Instant, Instant),
    stats: RefCell<Stats>,
}

struct Stats {
    acked: u64,
    matches: u64,
    refused: HashMap<String, u64>,
    join_to_matched: Histogram<u64>,
    partner_notified: Histogram<u64>,
    /// The longest join→matched of each second of the window.
    worst_by_second: Vec<u64>,
    /// Each measured join→matched as (scheduled instant, latency in µs), kept only for
    /// `--latency-timeline`.
    timeline: Option<Vec<(Instant, u64)>>,
}

/// Where `--latency-timeline` puts `system`'s rows: girok's at `path`, another's beside it as
/// `<stem>-<system>[.<extension>]`, so the second run does not overwrite the first.
fn timeline_path(path: &Path, system: &str) -> PathBuf {
    if system == "girok" {
        return path.to_path_buf();
    }
    let mut name = path.file_stem().unwrap_or_default().to_os_string();
    name.push(format!("-{system}"));
    if let Some(extension) = path.extension() {
        name.push(".");
        name.push(extension);
    }
    path.with_file_name(name)
}

/// Creates each system's timeline file before the run, so that a path that cannot be written
/// fails at once, not after girok's run.
fn create_timelines(path: &Path, baseline: bool) -> anyhow::Result<()> {
    let systems: &[&str] = if baseline {
        &["girok", "baseline"]
    } else {
        &["girok"]
    };
    for system in systems {
        let path = timeline_path(path, system);
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    }
    Ok(())
}

/// Writes one system's timeline, in scheduled order, each instant as Unix ms from one reading
/// of both clocks.
fn write_timeline(
    path: &Path,
    system: &str,
    timeline: &mut [(Instant, u64)],
) -> anyhow::Result<()> {
    timeline.sort_unstable();
    let (now, wall) = (Instant::now(), std::time::SystemTime::now());
    let unix_ms = |at: Instant| {
        wall.checked_sub(now.saturating_duration_since(at))
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis())
    };
    let mut csv = String::from("scheduled_unix_ms,join_to_matched_us\n");
    for (at, latency) in timeline.iter() {
        csv.push_str(&format!("{},{latency}\n", unix_ms(*at)));
    }
    let path = timeline_path(path, system);
    std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))
}

fn micros(from: Instant) -> u64 {
    Instant::now()
        .saturating_duration_since(from)
        .as_micros()
        .max(1) as u64
}

async fn drive(
    args: &Args,
    system: &'static str,
    base: &str,
    pid: Option<u32>,
) -> anyhow::Result<Run> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.users)
        .build()?;
    // Accounts, a few at a time.
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let mut accounts = Vec::with_capacity(args.users);
    for chunk in (0..args.users)
        .collect::<Vec<_>>()
        .chunks(SETUP_CONCURRENCY)
    {
        let made = futures::future::join_all(chunk.iter().map(|i| {
            let name = format!("m{}u{i}", &run_id[run_id.len() - 8..]);
            account(&http, base, name, PASSWORD)
        }))
        .await;
        for account in made {
            accounts.push(account?);
        }
    }
    let index = accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.clone(), i))
        .collect();
    // Every user's socket, subscribed to `matching`.
    let mut sockets = Vec::with_capacity(args.users);
    for (i, user) in accounts.iter().enumerate() {
        let socket = connect(base, &user.token)
            .await
            .with_context(|| format!("{system}: user {i}'s socket"))?;
        sockets.push(socket);
    }
    let start = Instant::now() + Duration::from_millis(500);
    let window = (
        start + Duration::from_secs(args.warmup),
        start + Duration::from_secs(args.warmup + args.seconds),
    );
    let (sinks, streams): (Vec<_>, Vec<_>) = sockets.into_iter().map(StreamExt::split).unzip();
    let (frames, outgoing): (Vec<_>, Vec<_>) =
        (0..sinks.len()).map(|_| mpsc::unbounded_channel()).unzip();
    let shared = Rc::new(Shared {
        http,
        base: base.to_owned(),
        via: args.via,
        frames,
        answers: RefCell::new(HashMap::new()),
        next_ref: Cell::new(0),
        accounts,
        index,
        idle: RefCell::new((0..args.users).collect()),
        notify_due: RefCell::new(HashMap::new()),
        notified_at: RefCell::new(HashMap::new()),
        window,
        stats: RefCell::new(Stats {
            acked: 0,
            matches: 0,
            refused: HashMap::new(),
            join_to_matched: histogram()?,
            partner_notified: histogram()?,
            worst_by_second: vec![0; args.seconds as usize],
            timeline: args.latency_timeline.as_ref().map(|_| Vec::new()),
        }),
    });
    let mut readers = Vec::with_capacity(2 * sinks.len());
    for (sink, frames) in sinks.into_iter().zip(outgoing) {
        readers.push(tokio::task::spawn_local(write_socket(sink, frames)));
    }
    for stream in streams {
        readers.push(tokio::task::spawn_local(read_socket(
            shared.clone(),
            stream,
        )));
    }
    // The schedule: one join every 1/rate s from `start` to the window's end.
    let period_ns = 1_000_000_000 / args.rate;
    let count = (args.warmup + args.seconds) * 1_000_000_000 / period_ns;
    let wake = Arc::new(Notify::new());
    let pacer = {
        let wake = wake.clone();
        pacer::start(
            start.into_std(),
            vec![pacer::Schedule {
                first_ns: 0,
                period_ns,
                count,
            }],
            move |_| wake.notify_one(),
        )?
    };
    let mut before = None;
    let mut threads_before = None;
    let mut starved = 0;
    let mut scheduled = 0;
    for n in 0..count {
        let due = start + Duration::from_nanos(n * period_ns);
        pacer::wait_until(&wake, due).await;
        if before.is_none() && due >= window.0 {
            before = Some(CpuReading::take(pid));
            threads_before = pid.map(ThreadsReading::take);
        }
        let measured = due >= window.0 && due < window.1;
        scheduled += u64::from(measured);
        let Some(user) = shared.idle.borrow_mut().pop_front() else {
            starved += u64::from(measured);
            continue;
        };
        tokio::task::spawn_local(join_once(shared.clone(), user, due));
    }
    let _ = pacer.join();
    let cores = before.map(|before| CpuReading::take(pid).cores_since(&before));
    let server_threads = threads_before
        .zip(pid)
        .map(|(before, pid)| before.cores_since(pid))
        .unwrap_or_default();
    let rss = pid.and_then(rss_kib).map(mib);
    // Stragglers: partner frames and answers still on their way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let partner_missing = shared
        .notify_due
        .borrow()
        .values()
        .filter(|at| **at >= window.0 && **at < window.1)
        .count() as u64;
    for reader in readers {
        reader.abort();
    }
    let mut stats = shared.stats.borrow_mut();
    if let (Some(path), Some(timeline)) = (&args.latency_timeline, &mut stats.timeline) {
        write_timeline(path, system, timeline)?;
    }
    let secs = args.seconds as f64;
    Ok(Run {
        system,
        url: base.to_owned(),
        scheduled,
        starved,
        joins_per_sec: stats.acked as f64 / secs,
        matches_per_sec: stats.matches as f64 / secs,
        refused: stats.refused.clone(),
        join_to_matched: Latency::of(&stats.join_to_matched),
        partner_notified: Latency::of(&stats.partner_notified),
        partner_missing,
        server_cores: cores.as_ref().and_then(|c| c.server),
        server_threads,
        generator_cores: cores.as_ref().and_then(|c| c.generator),
        other_cores: cores.as_ref().and_then(|c| c.other),
        stolen_cores: cores.as_ref().and_then(|c| c.stolen),
        worst_join_to_matched_by_second_us: stats.worst_by_second.clone(),
        server_rss_mib: rss,
    })
}

async fn connect(base: &str, token: &str) -> anyhow::Result<Socket> {
    let request = ws_request(&ws_url(base), token)?;
    // No Nagle: a small frame must leave at once, or the client would add the latency.
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true).await?;
    let subscribe = json!({ "type": "subscribe", "topic": "matching" }).to_string();
    socket.send(Message::text(subscribe)).await?;
    loop {
        let frame = socket.next().await.context("closed before subscribing")??;
        if let Message::Text(text) = frame {
            let frame: Value = serde_json::from_str(&text)?;
            if frame["type"] == "subscribed" {
                return Ok(socket);
            }
        }
    }
}

/// A user's socket writer: the frames queued for it, in order.
async fn write_socket(
    mut sink: SplitSink<Socket, Message>,
    mut frames: mpsc::UnboundedReceiver<Message>,
) {
    while let Some(frame) = frames.recv().await {
        if sink.send(frame).await.is_err() {
            return;
        }
    }
}

/// A user's socket: answers to its frames, and `matched` frames that end a partner's wait.
async fn read_socket(shared: Rc<Shared>, mut socket: SplitStream<Socket>) {
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        // Parse only answers and the `matched` frames.
        let answer = text.contains("\"matchingAck\"") || text.contains("\"error\"");
        if !answer && !text.contains("\"matched\"") {
            continue;
        }
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if answer {
            let waiting = frame["ref"]
                .as_str()
                .and_then(|r| r.parse::<u64>().ok())
                .and_then(|r| shared.answers.borrow_mut().remove(&r));
            if let Some(waiting) = waiting {
                let _ = waiting.send(frame);
            }
            continue;
        }
        let Some(room) = frame["roomId"].as_str() else {
            continue;
        };
        let due = shared.notify_due.borrow_mut().remove(room);
        match due {
            Some(due) => record_notified(&shared, due, Instant::now()),
            None => {
                shared
                    .notified_at
                    .borrow_mut()
                    .insert(room.to_owned(), Instant::now());
            }
        }
    }
}

/// The partner of a join scheduled at `due` heard of the match at `at`.
fn record_notified(shared: &Shared, due: Instant, at: Instant) {
    if due >= shared.window.0 && due < shared.window.1 {
        let latency = at.saturating_duration_since(due).as_micros().max(1) as u64;
        shared
            .stats
            .borrow_mut()
            .partner_notified
            .saturating_record(latency);
    }
}

/// Sends `frame` (with a fresh `ref`) on `user`'s socket and waits for its answer: the
/// `matchingAck`, or the refusal's code.
async fn ask(shared: &Shared, user: usize, mut frame: Value) -> Result<Value, String> {
    let reference = shared.next_ref.get() + 1;
    shared.next_ref.set(reference);
    frame["ref"] = Value::String(reference.to_string());
    let (answered, answer) = oneshot::channel();
    shared.answers.borrow_mut().insert(reference, answered);
    if shared.frames[user]
        .send(Message::text(frame.to_string()))
        .is_err()
    {
        shared.answers.borrow_mut().remove(&reference);
        return Err("CONNECTION".into());
    }
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, answer).await;
    shared.answers.borrow_mut().remove(&reference);
    match answer {
        Ok(Ok(answer)) if answer["type"] == "matchingAck" => Ok(answer),
        Ok(Ok(answer)) => Err(answer["code"].as_str().unwrap_or("BAD_ANSWER").to_owned()),
        Ok(Err(_)) => Err("CONNECTION".into()),
        Err(_) => Err("TIMEOUT".into()),
    }
}

/// A REST call's answer on success (`expected` status), or the refusal's code.
async fn request(
    request: reqwest::RequestBuilder,
    expected: impl Fn(u16) -> bool,
) -> Result<Value, String> {
    match request.send().await {
        Ok(response) if expected(response.status().as_u16()) => {
            response.json().await.map_err(|_| "BAD_ANSWER".to_owned())
        }
        Ok(response) => {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            Err(body["error"]["code"]
                .as_str()
                .unwrap_or("HTTP_ERROR")
                .to_owned())
        }
        Err(_) => Err("CONNECTION".into()),
    }
}

/// `user` joins the queue: the answer's match, if it made one, as `(room, partner's id)`.
async fn join(shared: &Shared, user: usize) -> Result<Option<(String, String)>, String> {
    let token = &shared.accounts[user].token;
    let (answer, partner) = match shared.via {
        Via::Ws => {
            let answer = ask(shared, user, json!({ "type": "join" })).await?;
            (answer, "/matched/partnerId")
        }
        Via::Http => {
            let call = shared
                .http
                .post(format!("{}/v1/matching/queue", shared.base))
                .bearer_auth(token)
                .json(&json!({}));
            (
                request(call, |status| status == 201).await?,
                "/matched/partner/id",
            )
        }
    };
    let room = answer["matched"]["roomId"].as_str();
    let partner = answer.pointer(partner).and_then(Value::as_str);
    Ok(room
        .zip(partner)
        .map(|(room, partner)| (room.to_owned(), partner.to_owned())))
}

/// `user` ends their match without queueing again.
async fn skip(shared: &Shared, user: usize) -> Result<(), String> {
    match shared.via {
        Via::Ws => {
            let frame = json!({ "type": "skip", "requeue": false });
            ask(shared, user, frame).await.map(drop)
        }
        Via::Http => {
            let call = shared
                .http
                .post(format!("{}/v1/matching/skip?requeue=false", shared.base))
                .bearer_auth(&shared.accounts[user].token);
            request(call, |status| (200..300).contains(&status))
                .await
                .map(drop)
        }
    }
}

/// One scheduled join of `user`, and the skip that ends its match.
async fn join_once(shared: Rc<Shared>, user: usize, due: Instant) {
    let measured = due >= shared.window.0 && due < shared.window.1;
    let matched = match join(&shared, user).await {
        Ok(matched) => matched,
        Err(code) => return refuse(&shared, user, &code, measured),
    };
    let latency = micros(due);
    let partner = matched
        .as_ref()
        .and_then(|(_, partner)| shared.index.get(partner).copied());
    {
        let mut stats = shared.stats.borrow_mut();
        if measured {
            stats.acked += 1;
        }
        if partner.is_some() && measured {
            stats.matches += 1;
            stats.join_to_matched.saturating_record(latency);
            let second = due.saturating_duration_since(shared.window.0).as_secs() as usize;
            if let Some(worst) = stats.worst_by_second.get_mut(second) {
                *worst = (*worst).max(latency);
            }
            if let Some(timeline) = &mut stats.timeline {
                timeline.push((due, latency));
            }
        }
    }
    let (Some(partner), Some((room, _))) = (partner, matched) else {
        return; // waiting: a later newcomer's skip makes this user idle again
    };
    let arrived = shared.notified_at.borrow_mut().remove(&room);
    match arrived {
        Some(at) => record_notified(&shared, due, at),
        None => {
            shared.notify_due.borrow_mut().insert(room, due);
        }
    }
    if let Err(code) = skip(&shared, user).await {
        *shared
            .stats
            .borrow_mut()
            .refused
            .entry(format!("skip {code}"))
            .or_default() += 1;
    }
    let mut idle = shared.idle.borrow_mut();
    idle.push_back(user);
    idle.push_back(partner);
}

fn refuse(shared: &Shared, user: usize, code: &str, measured: bool) {
    if measured {
        *shared
            .stats
            .borrow_mut()
            .refused
            .entry(code.to_owned())
            .or_default() += 1;
    }
    shared.idle.borrow_mut().push_back(user);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_may_use_up_half_of_the_pools_pairs() {
        // 600 users: 179,700 pairs; 10,000 joins/s for 13 s schedule 65,000 matches.
        assert!(pairs_check(600, 10_000, 13).is_ok());
        // 63 s schedule 315,000: over half, and all of them after about 36 s.
        let refusal = pairs_check(600, 10_000, 63).unwrap_err();
        assert!(refusal.contains("use --users 1123 or more"), "{refusal}");
        assert!(pairs_check(1123, 10_000, 63).is_ok());
        assert!(pairs_check(1122, 10_000, 63).is_err());
        assert!(pairs_check(1_500, 10_000, 63).is_ok());
    }

    #[test]
    fn the_baselines_timeline_goes_beside_giroks_with_its_extension() {
        let csv = Path::new("/tmp/run.csv");
        assert_eq!(timeline_path(csv, "girok"), PathBuf::from("/tmp/run.csv"));
        assert_eq!(
            timeline_path(csv, "baseline"),
            PathBuf::from("/tmp/run-baseline.csv")
        );
        assert_eq!(
            timeline_path(Path::new("out/run"), "baseline"),
            PathBuf::from("out/run-baseline")
        );
    }
}
