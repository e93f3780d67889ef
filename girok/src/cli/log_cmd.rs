//! `girok log stats` and `girok log tail`. Both open the data directory when it is free; when
//! `girok serve` holds it (fjall locks it), they read through the server's loopback-only
//! `/v1/log/*` endpoints instead, at the address the server recorded in the data directory,
//! with the operator token kept there (or `GIROK_OPERATOR_TOKEN`), so `log tail --follow`
//! beside a running server just works.

use super::{StatsArgs, TailArgs};
use crate::config::Config;
use anyhow::{Context, bail};
use girok_engine::{LogReport, Offline};
use serde_json::Value;
use std::io::Write;
use std::time::Duration;

/// Entries read per step in local mode.
const CHUNK: usize = 1000;

enum Source {
    Local(Offline),
    Server(Remote),
}

/// A running server's log endpoints and the operator token they need.
struct Remote {
    url: String,
    token: String,
}

/// How long `girok log` waits for a server that just took the data directory to record its
/// address and token.
const SERVER_START_WAIT: Duration = Duration::from_secs(10);

/// The server at `explicit`, or the one that holds the data directory (at the address it
/// recorded there; waiting a little for a server that is starting, else
/// `server.http_addr`).
fn remote(config: &Config, explicit: Option<String>) -> anyhow::Result<Remote> {
    let data_dir = &config.storage.data_dir;
    if explicit.is_none() {
        let since = std::time::Instant::now();
        while since.elapsed() < SERVER_START_WAIT
            && (girok_frontends::auth::operator::recorded_address(data_dir).is_none()
                || !girok_frontends::auth::operator::token_path(data_dir).exists())
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let url = explicit
        .or_else(|| girok_frontends::auth::operator::recorded_address(data_dir))
        .unwrap_or_else(|| format!("http://{}", config.server.http_addr));
    let token = match std::env::var("GIROK_OPERATOR_TOKEN") {
        Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
        _ => girok_frontends::auth::operator::read(data_dir)
            .context("set GIROK_OPERATOR_TOKEN or point --data-dir at the server's directory")?,
    };
    Ok(Remote {
        url: url.trim_end_matches('/').to_owned(),
        token,
    })
}

fn open(config: &Config, server: Option<String>) -> anyhow::Result<Source> {
    if server.is_some() {
        return Ok(Source::Server(remote(config, server)?));
    }
    match Offline::open(&config.storage.data_dir) {
        Ok(log) => Ok(Source::Local(log)),
        Err(error) if error.is_data_dir_in_use() => {
            let remote = remote(config, None)?;
            eprintln!(
                "girok: the data directory is in use by a running server; reading through {}",
                remote.url
            );
            Ok(Source::Server(remote))
        }
        Err(error) => {
            Err(error).with_context(|| format!("cannot open {}", config.storage.data_dir.display()))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<Value> {
    let response = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .context("the server's answer is not JSON")?;
    if !status.is_success() {
        bail!("{url} answered {status}: {}", body["error"]["message"]);
    }
    Ok(body)
}

pub fn stats(config: Config, args: StatsArgs) -> anyhow::Result<()> {
    let report: LogReport = match open(&config, args.server)? {
        Source::Local(log) => log.log_report()?,
        Source::Server(remote) => {
            let client = reqwest::Client::new();
            let url = format!("{}/v1/log/stats", remote.url);
            let body = runtime()?.block_on(get_json(&client, &url, &remote.token))?;
            serde_json::from_value(body).context("unexpected stats answer")?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let range = match (report.first_seq, report.last_seq) {
        (Some(first), Some(last)) => format!("{first}..={last}"),
        _ => "empty".into(),
    };
    println!("events:       {}", report.event_count);
    println!("seq range:    {range}");
    println!("size on disk: {} bytes", report.disk_bytes);
    for (type_name, count) in &report.per_type {
        println!("  {type_name:<28} {count}");
    }
    Ok(())
}

/// Writes a line; `false` once stdout is closed (e.g. piped into `head`).
fn emit(out: &mut impl Write, event: &Value, prefix: Option<&str>) -> bool {
    let type_name = event["type"].as_str().unwrap_or_default();
    if prefix.is_some_and(|p| !type_name.starts_with(p)) {
        return true;
    }
    writeln!(out, "{event}").and_then(|_| out.flush()).is_ok()
}

pub fn tail(config: Config, args: TailArgs) -> anyhow::Result<()> {
    let prefix = args.type_prefix.as_deref();
    let mut next = args.from.max(1);
    let mut out = std::io::stdout().lock();
    match open(&config, args.server.clone())? {
        Source::Local(log) => {
            loop {
                // A chunk with an entry that does not decode is read again one by one, so
                // every event before that entry is printed.
                let events = match log.events(next, CHUNK) {
                    Ok(events) => events,
                    Err(_) => log
                        .events(next, 1)
                        .with_context(|| format!("log entry {next} does not decode"))?,
                };
                let Some(last) = events.last() else {
                    break;
                };
                next = last.seq + 1;
                for event in &events {
                    if !emit(&mut out, &event.to_json(), prefix) {
                        return Ok(());
                    }
                }
            }
            if !args.follow {
                return Ok(());
            }
            // Nothing can append while we hold the directory: let go of it, and follow through
            // the server as soon as one has taken it.
            drop(log);
            loop {
                std::thread::sleep(Duration::from_millis(500));
                match Offline::open(&config.storage.data_dir) {
                    Ok(_) => continue,
                    Err(error) if error.is_data_dir_in_use() => break,
                    Err(error) => return Err(error.into()),
                }
            }
            let remote = remote(&config, None)?;
            eprintln!(
                "girok: a server took the data directory; following through {}",
                remote.url
            );
            follow_server(&remote, next, true, prefix, &mut out)
        }
        Source::Server(remote) => follow_server(&remote, next, args.follow, prefix, &mut out),
    }
}

fn follow_server(
    remote: &Remote,
    mut next: u64,
    follow: bool,
    prefix: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let runtime = runtime()?;
    let wait_ms = if follow { 25_000 } else { 0 };
    loop {
        let page = format!(
            "{}/v1/log/events?from={next}&limit=1000&waitMs={wait_ms}",
            remote.url
        );
        let body = runtime.block_on(get_json(&client, &page, &remote.token))?;
        let events = body["events"].as_array().cloned().unwrap_or_default();
        for event in &events {
            if !emit(out, event, prefix) {
                return Ok(());
            }
        }
        next = body["next"].as_u64().unwrap_or(next);
        let head = body["head"].as_u64().unwrap_or(0);
        if !follow && (events.is_empty() || next > head) {
            return Ok(());
        }
    }
}
