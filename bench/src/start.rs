//! `start`: how long `girok serve` takes from launch to ready on an existing data directory,
//! and how much memory it holds then. Runs the given binary on the directory several times in
//! a row (it is used as it is: the first run of a build may rebuild what it keeps on disk, the
//! runs after it show a start that resumes), polls `/readyz` every 10 ms, and reports per run
//! the time to ready, the log head, the seq the search index resumed after, and the server's
//! resident memory at ready (anonymous and file-backed apart: mapped index files count in RSS
//! but the kernel can drop them).

use crate::report::mib;
use anyhow::{Context, bail, ensure};
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Starts, one after the other.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
}

/// Which girok to run on which data, and how long it may take to start.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The data directory to start on (the runs write to it, as a server does).
    #[arg(long)]
    data_dir: PathBuf,
    /// The girok binary (default: `girok` beside this binary).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Longest a start may take before the run fails, seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout_secs: u64,
}

impl ServerArgs {
    /// The data directory, once checked to be one.
    pub(crate) fn data_dir(&self) -> anyhow::Result<&Path> {
        ensure!(
            self.data_dir.is_dir(),
            "{} is not a data directory",
            self.data_dir.display()
        );
        Ok(&self.data_dir)
    }

    /// The girok binary to run: `--bin`, or `girok` beside this binary.
    pub(crate) fn binary(&self) -> anyhow::Result<PathBuf> {
        match &self.bin {
            Some(bin) => Ok(bin.clone()),
            None => std::env::current_exe()?
                .with_file_name("girok")
                .canonicalize()
                .context("no girok binary beside girok-bench (pass --bin)"),
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// One start.
#[derive(Debug, Serialize)]
pub struct Start {
    ready_ms: u64,
    head: u64,
    search_resumed_seq: u64,
    #[serde(flatten)]
    memory: Memory,
    stop_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    data_dir: String,
    starts: Vec<Start>,
    median_ready_ms: u64,
}

pub fn run(args: &Args) -> anyhow::Result<Figures> {
    let data_dir = args.server.data_dir()?;
    let bin = args.server.binary()?;
    let http = Http::new()?;
    let mut starts = Vec::new();
    for run in 1..=args.runs {
        let start = start_once(&bin, args, &http)?;
        println!(
            "start {run}: ready after {} ms (head {}, search resumed after {}), {}, stopped in \
             {} ms",
            start.ready_ms, start.head, start.search_resumed_seq, start.memory, start.stop_ms
        );
        starts.push(start);
    }
    let mut ready: Vec<u64> = starts.iter().map(|s| s.ready_ms).collect();
    ready.sort_unstable();
    let median_ready_ms = ready[ready.len() / 2];
    println!("median time to ready: {median_ready_ms} ms");
    Ok(Figures {
        data_dir: data_dir.display().to_string(),
        starts,
        median_ready_ms,
    })
}

/// A small HTTP client for the polls.
pub(crate) struct Http {
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Http {
    pub(crate) fn new() -> anyhow::Result<Http> {
        Ok(Http {
            // No pooled connections: polls may be minutes apart, and the server closes an
            // idle one in the meantime.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .pool_max_idle_per_host(0)
                .build()?,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    fn ready(&self, url: &str) -> bool {
        self.runtime.block_on(async {
            self.client
                .get(format!("{url}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
    }

    pub(crate) fn text(&self, url: String) -> anyhow::Result<String> {
        self.runtime
            .block_on(async { Ok(self.client.get(url).send().await?.text().await?) })
    }
}

/// Stops the server if the run fails midway.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `girok serve` launched and ready.
pub(crate) struct Running {
    server: Server,
    pub url: String,
    pub pid: u32,
    /// From launch to the first ready `/readyz`.
    pub ready_ms: u64,
}

/// Resident memory of a process, MiB: in all, anonymous (heap) and file-backed (mapped files,
/// which the kernel can drop).
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Memory {
    pub rss_mib: f64,
    pub rss_anon_mib: f64,
    pub rss_file_mib: f64,
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RSS {:.0} MiB ({:.0} anonymous, {:.0} file)",
            self.rss_mib, self.rss_anon_mib, self.rss_file_mib
        )
    }
}

/// Runs `bin serve` on `data_dir` and a free loopback port (the login, message and post rate
/// limits and the per-address connection limit lifted, warn-level logs) and waits until `/readyz`
/// answers 200, polling every 10 ms.
pub(crate) fn launch(
    bin: &Path,
    data_dir: &Path,
    timeout: Duration,
    http: &Http,
) -> anyhow::Result<Running> {
    let launched = Instant::now();
    let mut command = Command::new(bin);
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--http-addr", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .env("GIROK__LOG__FILTER", "warn");
    for setting in [
        "GIROK__AUTH__LOGIN_PER_MINUTE_PER_IP",
        "GIROK__AUTH__LOGIN_PER_MINUTE_PER_USERNAME",
    ] {
        command.env(setting, "1000000");
    }
    for setting in [
        "GIROK__SERVER__MAX_CONNECTIONS_PER_IP",
        "GIROK__RATE_LIMITS__MESSAGES__PER_MINUTE",
        "GIROK__RATE_LIMITS__POSTS__PER_MINUTE",
    ] {
        command.env(setting, "0");
    }
    let mut server = Server(
        command
            .stdout(Stdio::piped())
            // Its warnings and errors show beside the figures.
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run {}", bin.display()))?,
    );
    let stdout = server.0.stdout.take().context("no stdout")?;
    // Read on a thread of its own until girok exits (so that it never writes to a closed
    // pipe); the address it listens on comes back first.
    let (listening, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|line| line.ok()) {
            if let Some(rest) = line.strip_prefix("girok listening on ") {
                let _ = listening.send(rest.split_whitespace().next().map(str::to_owned));
            }
        }
    });
    let deadline = launched + timeout;
    let mut url = None;
    loop {
        if let Some(status) = server.0.try_wait()? {
            bail!("girok exited with {status} before it was ready");
        }
        if url.is_none() {
            url = address.try_recv().ok().flatten();
        }
        if let Some(url) = &url
            && http.ready(url)
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("not ready after {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let ready_ms = launched.elapsed().as_millis() as u64;
    let pid = server.0.id();
    Ok(Running {
        server,
        url: url.context("no address")?,
        pid,
        ready_ms,
    })
}

impl Running {
    /// The server's resident memory now.
    pub(crate) fn memory(&self) -> anyhow::Result<Memory> {
        let memory = crate::cpu::status_kib(self.pid, &["VmRSS:", "RssAnon:", "RssFile:"])
            .context("cannot read the server's memory")?;
        Ok(Memory {
            rss_mib: mib(memory[0]),
            rss_anon_mib: mib(memory[1]),
            rss_file_mib: mib(memory[2]),
        })
    }

    /// The server's `/metrics` text.
    pub(crate) fn metrics(&self, http: &Http) -> anyhow::Result<String> {
        http.text(format!("{}/metrics", self.url))
    }

    /// SIGKILL, as a crash: nothing is drained or flushed.
    pub(crate) fn kill9(mut self) -> anyhow::Result<()> {
        self.server.0.kill()?;
        self.server.0.wait()?;
        Ok(())
    }

    /// SIGTERM, then waits for the clean stop (drained, flushed); how long it took, ms.
    pub(crate) fn stop(mut self) -> anyhow::Result<u64> {
        let stopping = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        ensure!(status.success(), "cannot signal girok");
        let exit = self.server.0.wait()?;
        ensure!(exit.success(), "girok stopped with {exit}");
        Ok(stopping.elapsed().as_millis() as u64)
    }
}

/// The samples of a `/metrics` text: each line's name (with its labels) and value; comments
/// and lines that are no sample are skipped.
pub(crate) fn samples(metrics: &str) -> impl Iterator<Item = (&str, f64)> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name, value.trim().parse().ok()?))
        })
}

/// A gauge's value in a `/metrics` text (0 when it is not there).
pub(crate) fn gauge(metrics: &str, name: &str) -> f64 {
    samples(metrics)
        .find_map(|(sample, value)| (sample == name).then_some(value))
        .unwrap_or(0.0)
}

fn start_once(bin: &Path, args: &Args, http: &Http) -> anyhow::Result<Start> {
    let running = launch(bin, args.server.data_dir()?, args.server.timeout(), http)?;
    let memory = running.memory()?;
    let readyz: serde_json::Value =
        serde_json::from_str(&http.text(format!("{}/readyz", running.url))?)?;
    let head = readyz["log"]["head"].as_u64().unwrap_or(0);
    let search_resumed_seq = gauge(&running.metrics(http)?, "girok_search_resumed_seq") as u64;
    Ok(Start {
        ready_ms: running.ready_ms,
        head,
        search_resumed_seq,
        memory,
        stop_ms: running.stop()?,
    })
}
