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
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The data directory to start on (changed by the runs as a start changes it).
    #[arg(long)]
    data_dir: PathBuf,
    /// The girok binary (default: `girok` beside this binary).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Starts, one after the other.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Longest a start may take before the run fails, seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout_secs: u64,
}

/// One start.
#[derive(Debug, Serialize)]
pub struct Start {
    ready_ms: u64,
    head: u64,
    search_resumed_seq: u64,
    rss_mib: f64,
    rss_anon_mib: f64,
    rss_file_mib: f64,
    stop_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    data_dir: String,
    starts: Vec<Start>,
    median_ready_ms: u64,
}

pub fn run(args: &Args) -> anyhow::Result<Figures> {
    ensure!(
        args.data_dir.is_dir(),
        "{} is not a data directory",
        args.data_dir.display()
    );
    let bin = match &args.bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?
            .with_file_name("girok")
            .canonicalize()
            .context("no girok binary beside girok-bench (pass --bin)")?,
    };
    let http = Http {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?,
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    let mut starts = Vec::new();
    for run in 1..=args.runs {
        let start = start_once(&bin, args, &http)?;
        println!(
            "start {run}: ready after {} ms (head {}, search resumed after {}), RSS {:.0} MiB \
             ({:.0} anonymous, {:.0} file), stopped in {} ms",
            start.ready_ms,
            start.head,
            start.search_resumed_seq,
            start.rss_mib,
            start.rss_anon_mib,
            start.rss_file_mib,
            start.stop_ms
        );
        starts.push(start);
    }
    let mut ready: Vec<u64> = starts.iter().map(|s| s.ready_ms).collect();
    ready.sort_unstable();
    let median_ready_ms = ready[ready.len() / 2];
    println!("median time to ready: {median_ready_ms} ms");
    Ok(Figures {
        data_dir: args.data_dir.display().to_string(),
        starts,
        median_ready_ms,
    })
}

/// A small HTTP client for the polls.
struct Http {
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Http {
    fn ready(&self, url: &str) -> bool {
        self.runtime.block_on(async {
            self.client
                .get(format!("{url}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
    }

    fn text(&self, url: String) -> anyhow::Result<String> {
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

fn start_once(bin: &PathBuf, args: &Args, http: &Http) -> anyhow::Result<Start> {
    let launched = Instant::now();
    let mut server = Server(
        Command::new(bin)
            .arg("--data-dir")
            .arg(&args.data_dir)
            .args(["serve", "--http-addr", "127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .env("GIROK__LOG__FILTER", "warn")
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
    let deadline = launched + Duration::from_secs(args.timeout_secs);
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
            bail!("not ready after {} s", args.timeout_secs);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let url = url.context("no address")?;
    let ready_ms = launched.elapsed().as_millis() as u64;
    let pid = server.0.id();
    let memory = crate::cpu::status_kib(pid, &["VmRSS:", "RssAnon:", "RssFile:"])
        .context("cannot read the server's memory")?;
    let (rss, anon, file) = (memory[0], memory[1], memory[2]);
    let readyz: serde_json::Value = serde_json::from_str(&http.text(format!("{url}/readyz"))?)?;
    let head = readyz["log"]["head"].as_u64().unwrap_or(0);
    let metrics = http.text(format!("{url}/metrics"))?;
    let search_resumed_seq = metrics
        .lines()
        .find_map(|l| l.strip_prefix("girok_search_resumed_seq "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    let stopping = Instant::now();
    // SIGTERM, then the clean stop (drained, flushed) is waited for.
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    ensure!(status.success(), "cannot signal girok");
    let exit = server.0.wait()?;
    ensure!(exit.success(), "girok stopped with {exit}");
    Ok(Start {
        ready_ms,
        head,
        search_resumed_seq,
        rss_mib: mib(rss),
        rss_anon_mib: mib(anon),
        rss_file_mib: mib(file),
        stop_ms: stopping.elapsed().as_millis() as u64,
    })
}
