//! `chat-load`: an external, open-loop WebSocket chat load generator against a running girok
//! server (`scripts/chat-load.sh` starts a release server pinned to one core and runs this on
//! another). Setup (accounts, logins, rooms) goes through the real REST API and is not
//! measured. Then every client sends on its own fixed schedule whatever the server answers
//! (open loop), and latencies are taken from the *scheduled* send instant, so a server that
//! falls behind shows its queueing instead of quietly slowing the offered load down (no
//! coordinated omission); delivery latency is also given from the instant the frame was
//! actually sent, which leaves out the generator's own lateness (its timer wakes on a 1 ms
//! tick). The generator runs on one thread so that it fits one core; it reports its own CPU and
//! send lag so that a saturated generator is never mistaken for a slow server.

mod quic;

use crate::client::{Account, SETUP_CONCURRENCY, Socket, collect, ws_request, ws_url};
use crate::cpu::{
    Cores, CpuReading, ThreadsReading, busiest, busiest_forks, forks_between, rss_kib,
};
use crate::pacer;
use crate::report::{Latency, histogram, mib};
use crate::server_log::{LogWindow, Scrape};
use anyhow::{Context, bail};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use girok_engine::limits::{MAX_MESSAGE_BYTES, MAX_ROOM_MEMBERS};
use hdrhistogram::Histogram;
use rand::Rng;
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::json;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

const PASSWORD: &str = "chat-load password";
/// WebSocket handshakes (and subscriptions) in flight while connecting.
const CONNECT_CONCURRENCY: usize = 64;
/// Bytes read from a socket at once (see [`connect`]).
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// How long one client's handshake and subscription may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest warm-up, window or drain accepted (a day).
const MAX_SECONDS: u64 = 86_400;
/// Most memory the delivery bookkeeping may take (one bit per message and member).
const MAX_TRACKING_BYTES: u64 = 1 << 30;
/// Above this the generator may be what limits the figures.
const GENERATOR_CPU_LIMIT: f64 = 0.9;
const SEND_LAG_LIMIT_US: u64 = 10_000;
/// Above this, other processes shared the cores during the run.
const OTHER_CPU_LIMIT: f64 = 0.1;
/// Above this in any one second of the window, a burst of other work disturbed the run (a
/// burst that the window's average dilutes twentyfold).
const OTHER_CPU_SECOND_LIMIT: f64 = 0.25;
/// Above this many processes and threads started in one second of the window, other work was
/// starting programs (a clean window starts 10 to 80 in all, girok's own index merges and
/// blocking reads among them; a sampler that ran a few programs per server thread started
/// over 90 within one second).
const FORKS_SECOND_LIMIT: u64 = 40;
/// Above this in any one second of the window, the host took the cores from the run (a
/// shared VM's noise; the stall is nobody's in the run).
const STOLEN_SECOND_LIMIT: f64 = 0.05;
/// How often the machine's CPU counters are read during the window, for that burst.
const CPU_SAMPLE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base URL of the running server, e.g. http://127.0.0.1:8080 (WebSocket at <URL>/ws).
    #[arg(long, value_name = "URL")]
    url: String,
    /// WebSocket clients (one connection each).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Rooms; client c is in room c % rooms.
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// User accounts. A room's members are distinct users, so this must be at least the
    /// clients per room; users are reused across rooms (client c, member k = c / rooms of room
    /// r = c % rooms, signs in as user (r + k) % users).
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Offered messages per second, all clients together: each client sends every
    /// clients / rate seconds, whatever the server answers.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Seconds of sending before the measured window (sent, not measured); at most a day.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    warmup: u64,
    /// Seconds of the measured window: messages scheduled in it are the ones measured; at
    /// most a day.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS))]
    seconds: u64,
    /// Seconds to wait after the window for late acks and deliveries; at most a day.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    drain: u64,
    /// Message body size in ASCII bytes, at most the server's 4,096 (never less than the
    /// ~20-byte header that carries the sender, the message number and its send time).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=MAX_MESSAGE_BYTES as u64))]
    body_bytes: u64,
    /// The server's process id: sample its CPU and RSS from /proc.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// How the clients connect: `ws` (`/ws`, JSON frames) or `quic` (girok/1 at the endpoint
    /// `GET /v1/quic` names, protobuf frames, a stream per subscription).
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    transport: Transport,
}

/// The clients' protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Ws,
    Quic,
}

/// The suite's figures (latencies in microseconds).
#[derive(Debug, Serialize)]
pub struct Figures {
    transport: Transport,
    clients: usize,
    rooms: usize,
    users: usize,
    members_per_room: usize,
    target_per_sec: u64,
    body_bytes: u64,
    warmup_secs: u64,
    measured_secs: u64,
    drain_secs: u64,
    setup_secs: f64,
    connect_secs: f64,
    /// Messages scheduled in the measured window.
    scheduled: u64,
    /// Of those, handed to the socket (the rest: their client's connection failed, or its
    /// socket was still full at the end of the drain).
    sent: u64,
    sent_per_sec: f64,
    /// Measured messages acked by the end of the drain.
    acked: u64,
    /// `acked` per second of the window: equal to the offered rate even for a server that
    /// only caught up during the drain; see `acks_in_window_per_sec`.
    acked_per_sec: f64,
    /// Acks (of any message) that arrived inside the measured window, per second: what the
    /// server answered while the load was on.
    acks_in_window_per_sec: f64,
    unacked: u64,
    /// Acked measured messages × their room's other members still connected at the end.
    expected_deliveries: u64,
    /// Of those, delivered by the end of the drain.
    delivered: u64,
    delivered_per_sec: f64,
    /// Deliveries (of any message) that arrived inside the measured window, per second.
    deliveries_in_window_per_sec: f64,
    missing_deliveries: u64,
    ack_latency: Latency,
    /// From the scheduled send instant, for every first delivery of a measured message (also
    /// of unacked ones, and to members that left later: a superset of `delivered`).
    delivery_latency: Latency,
    /// The same deliveries from the instant the frame was actually sent: without the
    /// generator's own lateness (see `send_lag`).
    delivery_latency_from_send: Latency,
    /// The slowest delivery of the messages due in each second of the measured window, in
    /// µs: when a stall happened, and how long it was.
    worst_delivery_by_second_us: Vec<u64>,
    send_lag: Latency,
    #[serde(flatten)]
    counts: Counts,
    connected_at_end: usize,
    /// Every frame the generator received during the measured window, per second.
    frames_received_per_sec: f64,
    generator_cpu_cores: Option<f64>,
    /// The machine's busy cores beyond the server and the generator (other work disturbing
    /// the run; only meaningful with --server-pid).
    other_cpu_cores: Option<f64>,
    /// The most cores other processes used in any one second of the window.
    other_cpu_busiest_second: Option<f64>,
    /// Cores the host took from the machine during the window (`steal`), on average and in
    /// the window's worst second.
    stolen_cores: Option<f64>,
    stolen_busiest_second: Option<f64>,
    /// Processes and threads the machine started during the window (the server's new
    /// threads included): a sampler that starts programs disturbs a run even where its CPU
    /// time is too short to show above.
    forks_in_window: Option<u64>,
    /// The most of them in any one second of the window.
    forks_busiest_second: Option<u64>,
    server: Option<ServerFigures>,
    /// The server's log over the window, from its `/metrics` (none where it does not serve
    /// them on the URL given).
    server_log: Option<LogWindow>,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ServerFigures {
    pid: u32,
    /// CPU seconds per wall second during the measured window.
    cpu_cores: Option<f64>,
    /// CPU seconds per wall second during the measured window by thread name (numbered
    /// threads folded: `timely:work-0` and `-1` are `timely:work`), from `/proc/<pid>/task`.
    threads: BTreeMap<String, f64>,
    rss_before_setup_mib: Option<f64>,
    /// Users registered and logged in, rooms created; no WebSocket yet.
    rss_after_setup_mib: Option<f64>,
    /// Once every client is connected and subscribed, as the load starts.
    rss_start_mib: Option<f64>,
    rss_peak_mib: Option<f64>,
    rss_end_mib: Option<f64>,
}

pub fn run(args: &Args) -> anyhow::Result<Figures> {
    let layout = Layout::new(args)?;
    // One thread: the generator is meant to use one core, and needs no locks that way.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, run_async(args, layout))
}

/// Who is where: client c is member k = c / rooms of room r = c % rooms, signed in as user
/// (r + k) % users, so a room's members are distinct users while users are shared by rooms.
#[derive(Clone, Copy, Debug)]
struct Layout {
    clients: usize,
    rooms: usize,
    users: usize,
}

impl Layout {
    fn new(args: &Args) -> anyhow::Result<Self> {
        if args.clients == 0 || args.rooms == 0 || args.rate == 0 || args.seconds == 0 {
            bail!("--clients, --rooms, --rate and --seconds must be at least 1");
        }
        if args.rooms > args.clients {
            bail!(
                "--rooms {} is more than --clients {}: some rooms would be empty",
                args.rooms,
                args.clients
            );
        }
        let layout = Self {
            clients: args.clients,
            rooms: args.rooms,
            users: args.users,
        };
        let members = layout.max_members();
        if args.users < members {
            bail!(
                "--users {} is fewer than the {members} clients per room (--clients {} / --rooms {}): \
                 a room's members must be distinct users; pass --users {members} or more",
                args.users,
                args.clients,
                args.rooms
            );
        }
        if members > MAX_ROOM_MEMBERS {
            bail!("{members} clients per room: a room has at most {MAX_ROOM_MEMBERS} members");
        }
        // A bit per scheduled message for its ack and for each other member of its room.
        let scheduled = args.rate.saturating_mul(args.warmup + args.seconds);
        let tracking = scheduled.saturating_mul(members as u64 + 1) / 8;
        if tracking > MAX_TRACKING_BYTES {
            bail!(
                "--rate {} for {} s with {members} members per room needs {} MiB of delivery \
                 bookkeeping (at most {} MiB): lower the rate, the time or the room size",
                args.rate,
                args.warmup + args.seconds,
                tracking >> 20,
                MAX_TRACKING_BYTES >> 20
            );
        }
        Ok(layout)
    }

    fn room(&self, client: usize) -> usize {
        client % self.rooms
    }

    fn member(&self, client: usize) -> usize {
        client / self.rooms
    }

    fn user(&self, client: usize) -> usize {
        (self.room(client) + self.member(client)) % self.users
    }

    fn client(&self, room: usize, member: usize) -> usize {
        room + member * self.rooms
    }

    fn members(&self, room: usize) -> usize {
        (self.clients - room).div_ceil(self.rooms)
    }

    fn max_members(&self) -> usize {
        self.clients.div_ceil(self.rooms)
    }
}

/// One client's sending schedule: message n is due at `phase + n * period` after the epoch.
#[derive(Clone, Copy, Debug)]
struct Plan {
    phase_ns: u64,
    period_ns: u64,
    /// Messages due before the end of the measured window (when sending stops).
    messages: u64,
    /// The first message due inside the measured window.
    first_measured: u64,
}

impl Plan {
    fn new(phase_ns: u64, period_ns: u64, window: &Window) -> Self {
        let count_before = |t: u64| {
            if t <= phase_ns {
                0
            } else {
                (t - phase_ns).div_ceil(period_ns)
            }
        };
        Self {
            phase_ns,
            period_ns,
            messages: count_before(window.end_ns),
            first_measured: count_before(window.start_ns),
        }
    }

    /// The schedule the pacer wakes this client on (which says when each send is due).
    fn schedule(&self) -> pacer::Schedule {
        pacer::Schedule {
            first_ns: self.phase_ns,
            period_ns: self.period_ns,
            count: self.messages,
        }
    }

    fn due_ns(&self, n: u64) -> u64 {
        self.schedule().due_ns(n)
    }

    fn measured(&self, n: u64) -> bool {
        (self.first_measured..self.messages).contains(&n)
    }
}

/// The measured window, in nanoseconds after the epoch.
#[derive(Clone, Copy, Debug)]
struct Window {
    start_ns: u64,
    end_ns: u64,
}

/// A fixed-size set of message numbers.
#[derive(Clone, Debug, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn with_len(len: u64) -> Self {
        Self(vec![0; len.div_ceil(64) as usize])
    }

    /// Adds `n`: `Some(true)` if it is new, `Some(false)` if it was there, `None` if out of range.
    fn insert(&mut self, n: u64) -> Option<bool> {
        let word = self.0.get_mut((n / 64) as usize)?;
        let bit = 1u64 << (n % 64);
        let new = *word & bit == 0;
        *word |= bit;
        Some(new)
    }

    fn contains(&self, n: u64) -> bool {
        self.0
            .get((n / 64) as usize)
            .is_some_and(|word| word & (1u64 << (n % 64)) != 0)
    }
}

/// What one client saw.
struct Track {
    connected: bool,
    acked: Bits,
    /// Per member index of the room: the sender's message numbers delivered to this client.
    received: Vec<Bits>,
}

/// What went wrong or twice, counted as it happens and reported as it is.
#[derive(Debug, Default, Serialize)]
struct Counts {
    duplicate_acks: u64,
    duplicate_deliveries: u64,
    /// Acks and message events the generator cannot place (not its refs or bodies).
    strays: u64,
    /// Sends the socket refused (after a close or a connection error).
    send_failures: u64,
    errors_by_code: BTreeMap<String, u64>,
    closes_by_code: BTreeMap<String, u64>,
    connection_errors: BTreeMap<String, u64>,
}

/// Everything the clients record, shared by the tasks of the one thread.
struct Tally {
    clients: Vec<Track>,
    ack: Histogram<u64>,
    delivery: Histogram<u64>,
    delivery_from_send: Histogram<u64>,
    /// The slowest delivery of the messages due in each second of the measured window, in µs.
    worst_delivery_by_second: Vec<u64>,
    /// One entry per measured message handed to the socket.
    lag: Histogram<u64>,
    frames_in_window: u64,
    acks_in_window: u64,
    deliveries_in_window: u64,
    counts: Counts,
}

fn count(map: &mut BTreeMap<String, u64>, key: &str) {
    // Looked up first so that the common case allocates nothing.
    if let Some(n) = map.get_mut(key) {
        *n += 1;
    } else {
        map.insert(key.to_owned(), 1);
    }
}

/// The run's fixed facts and its tally.
struct Run {
    layout: Layout,
    plans: Vec<Plan>,
    window: Window,
    epoch: Instant,
    rooms: Vec<String>,
    body_bytes: usize,
    tally: RefCell<Tally>,
    /// Each client's wake-up from the pacer at its scheduled sends.
    wakes: Vec<Arc<Notify>>,
}

impl Run {
    fn now_us(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.epoch)
            .as_micros() as u64
    }

    fn in_window_us(&self, us: u64) -> bool {
        (self.window.start_ns / 1000..self.window.end_ns / 1000).contains(&us)
    }
}

async fn run_async(args: &Args, layout: Layout) -> anyhow::Result<Figures> {
    let base = args.url.trim_end_matches('/').to_owned();
    println!(
        "chat-load: {} {:?} clients as {} users in {} rooms (up to {} members each), {} msg/s \
         offered, {}-byte bodies; warmup {} s, measured {} s, drain {} s; server {base}",
        args.clients,
        args.transport,
        args.users,
        args.rooms,
        layout.max_members(),
        args.rate,
        args.body_bytes,
        args.warmup,
        args.seconds,
        args.drain
    );

    let server_pid = args.server_pid;
    let rss_idle = server_pid.and_then(rss_kib);
    // Setup over real HTTP (not measured).
    let setup_started = Instant::now();
    let http = reqwest::Client::new();
    let accounts = accounts(&http, &base, &layout).await?;
    let rooms = rooms(&http, &base, &layout, &accounts).await?;
    let setup_secs = setup_started.elapsed().as_secs_f64();
    println!("setup:                      {setup_secs:.1} s");
    let rss_setup = server_pid.and_then(rss_kib);

    let connect_started = Instant::now();
    let sockets = match args.transport {
        Transport::Ws => connect_all(&base, &layout, &accounts, &rooms)
            .await?
            .into_iter()
            .map(Connection::Ws)
            .collect::<Vec<_>>(),
        Transport::Quic => quic::connect_all(&http, &base, &layout, &accounts, &rooms)
            .await?
            .into_iter()
            .map(Connection::Quic)
            .collect(),
    };
    let connect_secs = connect_started.elapsed().as_secs_f64();
    println!(
        "connect:                    {connect_secs:.1} s ({} clients subscribed)",
        sockets.len()
    );

    let window = Window {
        start_ns: args.warmup * 1_000_000_000,
        end_ns: (args.warmup + args.seconds) * 1_000_000_000,
    };
    let period_ns = (args.clients as u64 * 1_000_000_000 / args.rate).max(1);
    let mut rng = rand::rng();
    let plans: Vec<Plan> = (0..args.clients)
        .map(|_| Plan::new(rng.random_range(0..period_ns), period_ns, &window))
        .collect();
    let most = plans.iter().map(|p| p.messages).max().unwrap_or(0);
    let tracks = (0..args.clients)
        .map(|c| Track {
            connected: true,
            acked: Bits::with_len(most),
            received: (0..layout.members(layout.room(c)))
                .map(|_| Bits::with_len(most))
                .collect(),
        })
        .collect();
    let tally = Tally {
        clients: tracks,
        ack: histogram()?,
        delivery: histogram()?,
        delivery_from_send: histogram()?,
        worst_delivery_by_second: vec![0; args.seconds as usize],
        lag: histogram()?,
        frames_in_window: 0,
        acks_in_window: 0,
        deliveries_in_window: 0,
        counts: Counts::default(),
    };
    // A common start a little ahead, so that every task is spawned before the first send.
    let epoch = Instant::now() + Duration::from_millis(200);
    let wakes: Vec<Arc<Notify>> = (0..args.clients).map(|_| Arc::new(Notify::new())).collect();
    let schedules = plans.iter().map(Plan::schedule).collect();
    let pacer_wakes = wakes.clone();
    let pacer = pacer::start(epoch.into_std(), schedules, move |i| {
        pacer_wakes[i].notify_one()
    })
    .context("cannot start the pacer thread")?;
    let run = Rc::new(Run {
        layout,
        plans,
        window,
        epoch,
        rooms,
        body_bytes: args.body_bytes as usize,
        tally: RefCell::new(tally),
        wakes,
    });
    let drain_end = epoch + Duration::from_nanos(window.end_ns) + Duration::from_secs(args.drain);

    let rss = Rc::new(RefCell::new(RssSamples::default()));
    if let Some(pid) = server_pid {
        tokio::task::spawn_local(sample_rss(pid, rss.clone(), drain_end));
    }

    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for (c, connection) in sockets.into_iter().enumerate() {
        match connection {
            Connection::Ws(socket) => {
                let (sink, stream) = socket.split();
                writers.push(tokio::task::spawn_local(write(
                    Outgoing::Ws(sink),
                    run.clone(),
                    c,
                )));
                readers.push(tokio::task::spawn_local(read(
                    stream,
                    run.clone(),
                    c,
                    drain_end,
                )));
            }
            Connection::Quic(parts) => {
                writers.push(tokio::task::spawn_local(write(
                    Outgoing::Quic(parts.control),
                    run.clone(),
                    c,
                )));
                readers.push(tokio::task::spawn_local(quic::read(
                    (parts.connection, parts.endpoint),
                    parts.answers,
                    parts.deliveries,
                    run.clone(),
                    c,
                    drain_end,
                )));
            }
        }
    }

    // CPU over the measured window only, for the server and the generator itself.
    tokio::time::sleep_until(epoch + Duration::from_nanos(window.start_ns)).await;
    let threads_before = server_pid.map(ThreadsReading::take);
    let mut readings = vec![CpuReading::take(server_pid)];
    let log_before = Scrape::take(&http, &base).await;
    let window_end = epoch + Duration::from_nanos(window.end_ns);
    // Read every second, so a burst of other work shows even when the average hides it.
    let mut next_reading = Instant::now() + CPU_SAMPLE_EVERY;
    while next_reading < window_end {
        tokio::time::sleep_until(next_reading).await;
        readings.push(CpuReading::take(server_pid));
        next_reading += CPU_SAMPLE_EVERY;
    }
    tokio::time::sleep_until(window_end).await;
    readings.push(CpuReading::take(server_pid));
    let threads = threads_before
        .zip(server_pid)
        .map(|(before, pid)| before.cores_since(pid))
        .unwrap_or_default();
    let other_cpu_busiest_second = busiest(&readings, |cores| cores.other);
    let stolen_busiest_second = busiest(&readings, |cores| cores.stolen);
    let forks_in_window = forks_between(&readings);
    let forks_busiest_second = busiest_forks(&readings);
    let (first, last) = (&readings[0], &readings[readings.len() - 1]);
    let Cores {
        server: server_cpu_cores,
        generator: generator_cpu_cores,
        other: other_cpu_cores,
        stolen: stolen_cores,
    } = last.cores_since(first);
    let log_after = Scrape::take(&http, &base).await;
    let server_log = log_before
        .zip(log_after)
        .and_then(|(before, after)| LogWindow::between(&before, &after, args.seconds as f64));

    for reader in readers {
        reader.await?;
    }
    if pacer.join().is_err() {
        bail!("the pacer thread panicked");
    }
    let rss_end = server_pid.and_then(rss_kib);
    let mut sinks = Vec::new();
    for writer in writers {
        // A writer still blocked on a full socket at the end of the drain is given up.
        if writer.is_finished() {
            if let Some(sink) = writer.await? {
                sinks.push(sink);
            }
        } else {
            writer.abort();
        }
    }
    // Say goodbye properly, so the server's close path is exercised rather than resets.
    let closing = futures::future::join_all(sinks.iter_mut().map(Outgoing::close));
    let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;

    let server = args.server_pid.map(|pid| {
        let rss = rss.borrow();
        ServerFigures {
            pid,
            cpu_cores: server_cpu_cores,
            threads,
            rss_before_setup_mib: rss_idle.map(mib),
            rss_after_setup_mib: rss_setup.map(mib),
            rss_start_mib: rss.start_kib.map(mib),
            rss_peak_mib: rss.peak_kib.map(mib),
            rss_end_mib: rss_end.map(mib),
        }
    });
    let figures = figures(
        args,
        &run,
        setup_secs,
        connect_secs,
        Cpu {
            generator: generator_cpu_cores,
            other: other_cpu_cores,
            other_busiest_second: other_cpu_busiest_second,
            forks: forks_in_window,
            forks_busiest_second,
            stolen: stolen_cores,
            stolen_busiest_second,
        },
        server,
        server_log,
    );
    print(&figures);
    Ok(figures)
}

/// Registers (or finds, on a rerun against the same data) and logs in every user a client
/// signs in as: users 0 up to the highest one a client uses, indexed by user number.
async fn accounts(
    http: &reqwest::Client,
    base: &str,
    layout: &Layout,
) -> anyhow::Result<Vec<Account>> {
    // Client c signs in as (room + member) % users: every number up to the highest is used.
    let total = (0..layout.clients)
        .map(|c| layout.user(c))
        .max()
        .unwrap_or(0)
        + 1;
    println!(
        "setup: registering and logging in {total} users ({SETUP_CONCURRENCY} at a time; an argon2 hash each)"
    );
    let jobs = (0..total)
        .map(|u| crate::client::account(http, base, format!("load{u}"), PASSWORD))
        .collect();
    collect("users", jobs, SETUP_CONCURRENCY).await
}

/// Creates the rooms, each by its member 0 with the others as members; returns their ids.
async fn rooms(
    http: &reqwest::Client,
    base: &str,
    layout: &Layout,
    accounts: &[Account],
) -> anyhow::Result<Vec<String>> {
    println!("setup: creating {} rooms", layout.rooms);
    let account = |c: usize| &accounts[layout.user(c)];
    let mut requests = Vec::new();
    for r in 0..layout.rooms {
        let creator = account(layout.client(r, 0)).token.clone();
        let members: Vec<String> = (1..layout.members(r))
            .map(|k| account(layout.client(r, k)).id.clone())
            .collect();
        requests.push(async move {
            let response = http
                .post(format!("{base}/v1/rooms"))
                .bearer_auth(&creator)
                .json(&json!({ "title": format!("load room {r}"), "memberIds": members }))
                .send()
                .await
                .with_context(|| format!("POST {base}/v1/rooms"))?;
            if response.status() != StatusCode::CREATED {
                return Err(
                    crate::client::unexpected(format!("creating room {r}"), response).await,
                );
            }
            Ok(response.json::<crate::client::IdBody>().await?.id)
        });
    }
    collect("rooms", requests, SETUP_CONCURRENCY).await
}

/// Connects and subscribes every client, in client order.
async fn connect_all(
    base: &str,
    layout: &Layout,
    accounts: &[Account],
    rooms: &[String],
) -> anyhow::Result<Vec<Socket>> {
    let ws_url = ws_url(base);
    println!(
        "connect: {} WebSocket clients ({CONNECT_CONCURRENCY} at a time)",
        layout.clients
    );
    let connections = (0..layout.clients)
        .map(|c| {
            let token = &accounts[layout.user(c)].token;
            let room = &rooms[layout.room(c)];
            let ws_url = &ws_url;
            async move {
                tokio::time::timeout(CONNECT_TIMEOUT, connect(ws_url, token, room))
                    .await
                    .context("not connected and subscribed within 30 s")?
                    .with_context(|| format!("client {c}"))
            }
        })
        .collect();
    collect("clients", connections, CONNECT_CONCURRENCY).await
}

async fn connect(ws_url: &str, token: &str, room: &str) -> anyhow::Result<Socket> {
    let request = ws_request(ws_url, token)?;
    // tungstenite zero-fills `read_buffer_size` bytes before every read (128 KiB by default):
    // at thousands of reads per second that memset was a quarter of the generator's CPU.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    // No Nagle: a small frame must leave at once, or the client would add the latency.
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .with_context(|| format!("connecting to {ws_url}"))?;
    let subscribe = format!(r#"{{"type":"subscribe","topic":"chat:{room}"}}"#);
    socket.send(Message::text(subscribe)).await?;
    let subscribed = async {
        while let Some(message) = socket.next().await {
            if let Message::Text(text) = message? {
                match classify(&text) {
                    Frame::Subscribed => return Ok(()),
                    Frame::Error(_) => bail!("subscribing to room {room}: {}", text.as_str()),
                    _ => {}
                }
            }
        }
        bail!("the server closed the connection before `subscribed`")
    };
    subscribed.await?;
    Ok(socket)
}

/// One client's sends: each message at its scheduled instant, never waiting for acks. A client
/// that is late (its previous send blocked, or the thread was busy) sends what it owes at once,
/// so the offered load stays the target. Gives the sink back for a clean close.
async fn write(mut sink: Outgoing, run: Rc<Run>, c: usize) -> Option<Outgoing> {
    let plan = run.plans[c];
    let room = &run.rooms[run.layout.room(c)];
    let wake = run.wakes[c].clone();
    for n in 0..plan.messages {
        let due = run.epoch + Duration::from_nanos(plan.due_ns(n));
        crate::pacer::wait_until(&wake, due).await;
        let sent_us = run.now_us();
        let lag_us = sent_us.saturating_sub(plan.due_ns(n) / 1000);
        let body = body(c, n, sent_us, run.body_bytes);
        if !sink.send(room, n, body).await {
            // The reader records why the connection ended.
            run.tally.borrow_mut().counts.send_failures += 1;
            return None;
        }
        if plan.measured(n) {
            run.tally.borrow_mut().lag.saturating_record(lag_us);
        }
    }
    Some(sink)
}

/// A client connection of either protocol.
enum Connection {
    Ws(Socket),
    Quic(girok_frontends::quic::client::Parts),
}

/// A client's sending side.
enum Outgoing {
    Ws(SplitSink<Socket, Message>),
    Quic(quinn::SendStream),
}

impl Outgoing {
    /// Sends message `n` to `room`; `false` once the connection failed.
    async fn send(&mut self, room: &str, n: u64, body: String) -> bool {
        match self {
            Outgoing::Ws(sink) => {
                let frame =
                    format!(r#"{{"type":"send","ref":"{n}","roomId":"{room}","body":"{body}"}}"#);
                sink.send(Message::text(frame)).await.is_ok()
            }
            Outgoing::Quic(stream) => {
                let frame = quic::send_frame(room, n, body);
                stream.write_all(&frame).await.is_ok()
            }
        }
    }

    async fn close(&mut self) {
        match self {
            Outgoing::Ws(sink) => {
                let _ = sink.close().await;
            }
            Outgoing::Quic(stream) => {
                let _ = stream.finish();
            }
        }
    }
}

/// The body: `L<client>:<n>:<µs after the epoch it was sent>:` padded with `x` to `bytes`
/// (the scheduled instant follows from the client's plan).
fn body(client: usize, n: u64, sent_us: u64, bytes: usize) -> String {
    let mut body = format!("L{client}:{n}:{sent_us}:");
    if body.len() < bytes {
        body.extend(std::iter::repeat_n('x', bytes - body.len()));
    }
    body
}

/// (client, message number, sent µs) from a body written by [`body`].
fn parse_body(body: &str) -> Option<(usize, u64, u64)> {
    let mut parts = body.strip_prefix('L')?.splitn(4, ':');
    let client = parts.next()?.parse().ok()?;
    let n = parts.next()?.parse().ok()?;
    let sent_us = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((client, n, sent_us))
}

/// One client's receiving side until the end of the drain: acks, deliveries, errors, closes.
async fn read(mut stream: SplitStream<Socket>, run: Rc<Run>, c: usize, until: Instant) {
    let end = tokio::time::sleep_until(until);
    tokio::pin!(end);
    loop {
        let message = tokio::select! {
            biased;
            () = &mut end => return,
            message = stream.next() => message,
        };
        // Why the connection ended, if it did with no close code.
        let error = match message {
            Some(Ok(Message::Text(text))) => {
                on_frame(&run, c, classify(&text));
                continue;
            }
            Some(Ok(Message::Close(Some(frame)))) => {
                let key = format!("{} {}", u16::from(frame.code), frame.reason.as_str());
                count(
                    &mut run.tally.borrow_mut().counts.closes_by_code,
                    key.trim(),
                );
                None
            }
            Some(Ok(Message::Close(None))) => Some("close without a code".to_owned()),
            Some(Ok(_)) => continue,
            Some(Err(error)) => Some(error_kind(&error)),
            None => Some("end of stream without a close frame".to_owned()),
        };
        let mut tally = run.tally.borrow_mut();
        if let Some(error) = error {
            count(&mut tally.counts.connection_errors, &error);
        }
        tally.clients[c].connected = false;
        return;
    }
}

fn error_kind(error: &tungstenite::Error) -> String {
    match error {
        tungstenite::Error::Io(io) => format!("io: {:?}", io.kind()),
        tungstenite::Error::Protocol(protocol) => format!("protocol: {protocol}"),
        other => other.to_string(),
    }
}

/// Counts a frame one client received (either protocol's, classified).
fn on_frame(run: &Run, c: usize, frame: Frame<'_>) {
    let now_us = run.now_us();
    let in_window = run.in_window_us(now_us);
    let mut tally = run.tally.borrow_mut();
    if in_window {
        tally.frames_in_window += 1;
    }
    match frame {
        Frame::Ack(reference) => {
            let plan = run.plans[c];
            let Ok(n) = reference.parse::<u64>() else {
                tally.counts.strays += 1;
                return;
            };
            match tally.clients[c].acked.insert(n) {
                Some(true) => {
                    if in_window {
                        tally.acks_in_window += 1;
                    }
                    if plan.measured(n) {
                        let due_us = plan.due_ns(n) / 1000;
                        tally.ack.saturating_record(now_us.saturating_sub(due_us));
                    }
                }
                Some(false) => tally.counts.duplicate_acks += 1,
                None => tally.counts.strays += 1,
            }
        }
        Frame::Message(body) => {
            let Some((sender, n, sent_us)) = parse_body(body) else {
                tally.counts.strays += 1;
                return;
            };
            let layout = run.layout;
            if sender == c {
                return; // our own message, echoed to our subscription
            }
            if sender >= layout.clients || layout.room(sender) != layout.room(c) {
                tally.counts.strays += 1;
                return;
            }
            let Some(received) = tally.clients[c].received.get_mut(layout.member(sender)) else {
                tally.counts.strays += 1;
                return;
            };
            match received.insert(n) {
                Some(true) => {
                    if in_window {
                        tally.deliveries_in_window += 1;
                    }
                    let plan = run.plans[sender];
                    if plan.measured(n) {
                        let due_us = plan.due_ns(n) / 1000;
                        let latency = now_us.saturating_sub(due_us);
                        tally.delivery.saturating_record(latency);
                        let second = due_us.saturating_sub(run.window.start_ns / 1000) / 1_000_000;
                        if let Some(worst) = tally.worst_delivery_by_second.get_mut(second as usize)
                        {
                            *worst = (*worst).max(latency);
                        }
                        let from_send = now_us.saturating_sub(sent_us);
                        tally.delivery_from_send.saturating_record(from_send);
                    }
                }
                Some(false) => tally.counts.duplicate_deliveries += 1,
                None => tally.counts.strays += 1,
            }
        }
        Frame::Error(code) => count(&mut tally.counts.errors_by_code, code),
        Frame::Subscribed | Frame::Other => {}
    }
}

/// The frames the generator looks at, read by a byte scan rather than a JSON parse: it has to
/// keep up with ~200,000 frames/s on one core. The values it reads (types, refs, codes, its own
/// bodies) never contain a quote or an escape.
#[derive(Debug, PartialEq, Eq)]
enum Frame<'a> {
    Subscribed,
    Ack(&'a str),
    /// A `chat.message.sent` event: its body.
    Message(&'a str),
    Error(&'a str),
    Other,
}

const TYPE_KEY: &str = r#""type":""#;
const MESSAGE_SENT: &str = r#""type":"chat.message.sent""#;

fn classify(text: &str) -> Frame<'_> {
    match string_after(text, TYPE_KEY) {
        Some("ack") => string_after(text, r#""ref":""#).map_or(Frame::Other, Frame::Ack),
        // Either order of the frame's and the event's `type` keys.
        Some("event" | "chat.message.sent") if text.contains(MESSAGE_SENT) => {
            string_after(text, r#""body":""#).map_or(Frame::Other, Frame::Message)
        }
        Some("error") => Frame::Error(string_after(text, r#""code":""#).unwrap_or("?")),
        Some("subscribed") => Frame::Subscribed,
        _ => Frame::Other,
    }
}

/// The string value that follows the first `key` (which ends with the opening quote).
fn string_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let rest = &text[text.find(key)? + key.len()..];
    Some(&rest[..rest.find('"')?])
}

#[derive(Default)]
struct RssSamples {
    start_kib: Option<u64>,
    peak_kib: Option<u64>,
}

/// Samples the server's RSS every 250 ms from the start of the load to the end of the drain.
async fn sample_rss(pid: u32, samples: Rc<RefCell<RssSamples>>, until: Instant) {
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    while Instant::now() < until {
        ticker.tick().await;
        if let Some(kib) = rss_kib(pid) {
            let mut samples = samples.borrow_mut();
            samples.start_kib.get_or_insert(kib);
            samples.peak_kib = Some(samples.peak_kib.map_or(kib, |peak| peak.max(kib)));
        }
    }
}

/// What the machine's counters said about the measured window: cores used, programs started.
struct Cpu {
    generator: Option<f64>,
    other: Option<f64>,
    other_busiest_second: Option<f64>,
    forks: Option<u64>,
    forks_busiest_second: Option<u64>,
    stolen: Option<f64>,
    stolen_busiest_second: Option<f64>,
}

/// What the run's CPU says about whom the figures measure: a warning for each reading past
/// its limit.
fn cpu_warnings(cpu: &Cpu) -> Vec<String> {
    type Check = (Option<f64>, f64, fn(f64) -> String);
    let checks: [Check; 5] = [
        (cpu.generator, GENERATOR_CPU_LIMIT, |cores| {
            format!("the generator used {cores:.2} cores: it may be the bottleneck, not the server")
        }),
        (cpu.other, OTHER_CPU_LIMIT, |cores| {
            format!(
                "other processes used {cores:.2} cores during the window: the figures are disturbed"
            )
        }),
        (cpu.other_busiest_second, OTHER_CPU_SECOND_LIMIT, |cores| {
            format!(
                "other processes used {cores:.2} cores in the busiest second of the window: the figures are disturbed"
            )
        }),
        (
            cpu.forks_busiest_second.map(|forks| forks as f64),
            FORKS_SECOND_LIMIT as f64,
            |forks| {
                format!(
                    "{forks:.0} processes or threads started in one second of the window: other work was starting programs, the figures are likely disturbed"
                )
            },
        ),
        (cpu.stolen_busiest_second, STOLEN_SECOND_LIMIT, |cores| {
            format!(
                "the host took {cores:.2} cores from this machine in one second of the window (steal): the figures are disturbed"
            )
        }),
    ];
    checks
        .iter()
        .filter_map(|&(value, limit, say)| value.filter(|v| *v > limit).map(say))
        .collect()
}

fn figures(
    args: &Args,
    run: &Run,
    setup_secs: f64,
    connect_secs: f64,
    cpu: Cpu,
    server: Option<ServerFigures>,
    server_log: Option<LogWindow>,
) -> Figures {
    let layout = run.layout;
    let mut tally = run.tally.borrow_mut();
    // Expected: every acked measured message at each other member still connected at the end.
    let (mut expected, mut delivered) = (0u64, 0u64);
    for sender in 0..layout.clients {
        let plan = run.plans[sender];
        let room = layout.room(sender);
        let k = layout.member(sender);
        for n in plan.first_measured..plan.messages {
            if !tally.clients[sender].acked.contains(n) {
                continue;
            }
            for m in (0..layout.members(room)).map(|m| layout.client(room, m)) {
                let recipient = &tally.clients[m];
                if m == sender || !recipient.connected {
                    continue;
                }
                expected += 1;
                if recipient.received[k].contains(n) {
                    delivered += 1;
                }
            }
        }
    }
    let seconds = args.seconds as f64;
    // The histograms hold one entry per measured message sent and per first measured ack.
    let (sent, acked) = (tally.lag.len(), tally.ack.len());
    let scheduled: u64 = run
        .plans
        .iter()
        .map(|p| p.messages - p.first_measured)
        .sum();
    let mut warnings = cpu_warnings(&cpu);
    let send_lag = Latency::of(&tally.lag);
    if send_lag.p99_us > SEND_LAG_LIMIT_US {
        warnings.push(format!(
            "send lag p99 is {:.1} ms: the generator (or a blocked socket) did not send on schedule",
            send_lag.p99_us as f64 / 1000.0
        ));
    }
    if tally.counts.strays > 0 {
        warnings.push(format!(
            "{} acks or messages the generator could not place",
            tally.counts.strays
        ));
    }
    if sent < scheduled {
        warnings.push(format!(
            "{} of {scheduled} measured messages were never sent",
            scheduled - sent
        ));
    }
    Figures {
        transport: args.transport,
        clients: args.clients,
        rooms: args.rooms,
        users: args.users,
        members_per_room: layout.max_members(),
        target_per_sec: args.rate,
        body_bytes: args.body_bytes,
        warmup_secs: args.warmup,
        measured_secs: args.seconds,
        drain_secs: args.drain,
        setup_secs,
        connect_secs,
        scheduled,
        sent,
        sent_per_sec: sent as f64 / seconds,
        acked,
        acked_per_sec: acked as f64 / seconds,
        acks_in_window_per_sec: tally.acks_in_window as f64 / seconds,
        unacked: sent.saturating_sub(acked),
        expected_deliveries: expected,
        delivered,
        delivered_per_sec: delivered as f64 / seconds,
        deliveries_in_window_per_sec: tally.deliveries_in_window as f64 / seconds,
        missing_deliveries: expected - delivered,
        ack_latency: Latency::of(&tally.ack),
        delivery_latency: Latency::of(&tally.delivery),
        delivery_latency_from_send: Latency::of(&tally.delivery_from_send),
        worst_delivery_by_second_us: std::mem::take(&mut tally.worst_delivery_by_second),
        send_lag,
        counts: std::mem::take(&mut tally.counts),
        connected_at_end: tally.clients.iter().filter(|t| t.connected).count(),
        frames_received_per_sec: tally.frames_in_window as f64 / seconds,
        generator_cpu_cores: cpu.generator,
        other_cpu_cores: cpu.other,
        other_cpu_busiest_second: cpu.other_busiest_second,
        forks_in_window: cpu.forks,
        forks_busiest_second: cpu.forks_busiest_second,
        stolen_cores: cpu.stolen,
        stolen_busiest_second: cpu.stolen_busiest_second,
        server,
        server_log,
        warnings,
    }
}

fn print(f: &Figures) {
    let counts = |map: &BTreeMap<String, u64>| {
        if map.is_empty() {
            "none".to_owned()
        } else {
            map.iter()
                .map(|(key, n)| format!("{key}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let cores = |c: Option<f64>| c.map_or("n/a".to_owned(), |c| format!("{c:.2} cores"));
    let count = |n: Option<u64>| n.map_or("n/a".to_owned(), |n| n.to_string());
    let mib = |m: Option<f64>| m.map_or("n/a".to_owned(), |m| format!("{m:.0} MiB"));
    println!(
        "sent (measured):            {:>10.0} msg/s ({} of {} scheduled messages; offered {} msg/s)",
        f.sent_per_sec, f.sent, f.scheduled, f.target_per_sec
    );
    println!(
        "acked:                      {:>10.0} msg/s by the end of the drain ({} messages, {} unacked, {} duplicate acks); {:.0} acks/s arrived in the window",
        f.acked_per_sec, f.acked, f.unacked, f.counts.duplicate_acks, f.acks_in_window_per_sec
    );
    println!("ack latency:                {}", f.ack_latency);
    println!(
        "delivered:                  {:>10.0} msg/s by the end of the drain ({} of {} expected, {} missing, {} duplicates); {:.0}/s arrived in the window",
        f.delivered_per_sec,
        f.delivered,
        f.expected_deliveries,
        f.missing_deliveries,
        f.counts.duplicate_deliveries,
        f.deliveries_in_window_per_sec
    );
    println!("delivery latency:           {}", f.delivery_latency);
    println!(
        "  from the actual send:     {}",
        f.delivery_latency_from_send
    );
    println!(
        "  worst by second (ms):     {}",
        f.worst_delivery_by_second_us
            .iter()
            .map(|us| format!("{:.1}", *us as f64 / 1000.0))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("send lag:                   {}", f.send_lag);
    println!(
        "errors by code:             {}",
        counts(&f.counts.errors_by_code)
    );
    println!(
        "closes by code:             {}",
        counts(&f.counts.closes_by_code)
    );
    println!(
        "connection errors:          {} ({} failed sends)",
        counts(&f.counts.connection_errors),
        f.counts.send_failures
    );
    println!(
        "connected at the end:       {} of {}",
        f.connected_at_end, f.clients
    );
    if let Some(server) = &f.server {
        println!(
            "{:<28}{} in the window; RSS {} before setup, {} after, {} connected, {} peak, {} at the end",
            format!("server (pid {}):", server.pid),
            cores(server.cpu_cores),
            mib(server.rss_before_setup_mib),
            mib(server.rss_after_setup_mib),
            mib(server.rss_start_mib),
            mib(server.rss_peak_mib),
            mib(server.rss_end_mib)
        );
        if !server.threads.is_empty() {
            println!(
                "  by thread:                {}",
                by_thread_line(&server.threads)
            );
        }
    }
    match &f.server_log {
        Some(log) => println!("server log (/metrics):      {log}"),
        None => println!(
            "server log (/metrics):      n/a (no girok_log_* metrics at the URL, or no answer within 2 s)"
        ),
    }
    println!(
        "generator:                  {} in the window, {:.0} frames received/s",
        cores(f.generator_cpu_cores),
        f.frames_received_per_sec
    );
    println!(
        "other processes:            {} in the window, {} in its busiest second; {} processes or threads started ({} in the busiest second)",
        cores(f.other_cpu_cores),
        cores(f.other_cpu_busiest_second),
        count(f.forks_in_window),
        count(f.forks_busiest_second)
    );
    println!(
        "stolen by the host:         {} in the window, {} in its busiest second",
        cores(f.stolen_cores),
        cores(f.stolen_busiest_second)
    );
    for warning in &f.warnings {
        println!("WARNING: {warning}");
    }
}

/// Thread groups by the cores they used, most first: `girok-rt 0.731, girok-hub 0.050`.
fn by_thread_line(threads: &BTreeMap<String, f64>) -> String {
    let mut busiest: Vec<_> = threads.iter().collect();
    busiest.sort_by(|a, b| b.1.total_cmp(a.1).then_with(|| a.0.cmp(b.0)));
    busiest
        .iter()
        .map(|(name, cores)| format!("{name} {cores:.3}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_burst_of_program_starts_or_steal_is_warned_of() {
        let quiet = Cpu {
            generator: Some(0.6),
            other: Some(0.0),
            other_busiest_second: Some(0.02),
            forks: Some(12),
            forks_busiest_second: Some(3),
            stolen: Some(0.0),
            stolen_busiest_second: Some(0.0),
        };
        assert!(cpu_warnings(&quiet).is_empty());
        let sampled = Cpu {
            forks: Some(190),
            forks_busiest_second: Some(88),
            ..quiet
        };
        let warnings = cpu_warnings(&sampled);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("88 processes or threads started in one second"));
        let stolen = Cpu {
            stolen_busiest_second: Some(0.3),
            ..quiet
        };
        assert!(cpu_warnings(&stolen)[0].starts_with("the host took 0.30 cores"));
    }

    #[test]
    fn threads_are_listed_busiest_first() {
        let threads = BTreeMap::from([
            ("girok-hub".to_owned(), 0.05),
            ("girok-rt".to_owned(), 0.731),
            ("timely:work".to_owned(), 0.066),
        ]);
        assert_eq!(
            by_thread_line(&threads),
            "girok-rt 0.731, timely:work 0.066, girok-hub 0.050"
        );
    }

    #[test]
    fn frames_are_classified_by_a_byte_scan() {
        let ack = r#"{"type":"ack","ref":"17","seq":42,"messageId":"0190","duplicate":false}"#;
        assert_eq!(classify(ack), Frame::Ack("17"));
        let event = r#"{"type":"event","topic":"chat:r","seq":9,"event":{"actor":"u","id":"e","payload":{"body":"L3:4:5000:xx","clientId":null,"replyTo":null,"roomId":"r"},"seq":9,"time":"t","type":"chat.message.sent"}}"#;
        assert_eq!(classify(event), Frame::Message("L3:4:5000:xx"));
        let joined = r#"{"type":"event","topic":"chat:r","seq":9,"event":{"payload":{"roomId":"r","userId":"u"},"type":"chat.member.joined"}}"#;
        assert_eq!(classify(joined), Frame::Other);
        let error = r#"{"type":"error","code":"RATE_LIMITED","message":"too \"fast\"","ref":"3"}"#;
        assert_eq!(classify(error), Frame::Error("RATE_LIMITED"));
        let subscribed = r#"{"type":"subscribed","topic":"chat:r","headSeq":3}"#;
        assert_eq!(classify(subscribed), Frame::Subscribed);
        assert_eq!(classify("not json"), Frame::Other);
    }

    #[test]
    fn bodies_round_trip_and_are_padded() {
        let b = body(12, 34, 5_678_901, 100);
        assert_eq!(b.len(), 100);
        assert_eq!(parse_body(&b), Some((12, 34, 5_678_901)));
        // Never shorter than the header.
        assert_eq!(parse_body(&body(1, 2, 3, 0)), Some((1, 2, 3)));
        assert_eq!(parse_body("hello"), None);
    }

    #[test]
    fn schedules_count_the_messages_of_the_window() {
        let window = Window {
            start_ns: 1_000,
            end_ns: 3_000,
        };
        let plan = Plan::new(250, 500, &window);
        // Due at 250, 750 (warmup), 1250, 1750, 2250, 2750 (measured).
        assert_eq!(plan.messages, 6);
        assert_eq!(plan.first_measured, 2);
        assert!(!plan.measured(1) && plan.measured(2) && plan.measured(5));
        assert!(!plan.measured(6));
        let exact = Plan::new(0, 500, &window);
        assert_eq!((exact.first_measured, exact.messages), (2, 6));
    }

    #[test]
    fn room_members_are_distinct_users() {
        let layout = Layout {
            clients: 1000,
            rooms: 100,
            users: 10,
        };
        for r in 0..layout.rooms {
            let users: BTreeSet<usize> = (0..layout.members(r))
                .map(|k| layout.user(layout.client(r, k)))
                .collect();
            assert_eq!(users.len(), layout.members(r));
        }
        let uneven = Layout {
            clients: 10,
            rooms: 4,
            users: 3,
        };
        assert_eq!(
            (0..4).map(|r| uneven.members(r)).collect::<Vec<_>>(),
            [3, 3, 2, 2]
        );
    }

    #[test]
    fn histograms_keep_large_latencies() {
        let mut h = histogram().unwrap();
        h.saturating_record(0);
        h.saturating_record(5_000);
        h.saturating_record(30_000_000);
        assert!(h.equivalent(h.value_at_quantile(0.5), 5_000));
        assert!(h.max() >= 30_000_000);
    }

    #[test]
    fn bits_report_new_and_repeated_numbers() {
        let mut bits = Bits::with_len(70);
        assert_eq!(bits.insert(69), Some(true));
        assert_eq!(bits.insert(69), Some(false));
        assert!(bits.contains(69) && !bits.contains(3));
        assert_eq!(bits.insert(128), None);
    }
}
