//! girok-bench: throughput and latency suites. Each suite prints its figures (and, where a
//! baseline exists, the ratio measured in the same run) and writes them as JSON.
//!
//! Build it in release mode: `cargo run --release -p girok-bench -- ingest`.

mod analytics;
mod auth;
mod chat;
mod chat_load;
mod client;
mod cpu;
mod feed;
mod ingest;
mod read_data;
mod read_load;
mod report;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// girok's benchmark suites.
#[derive(Debug, Parser)]
#[command(name = "girok-bench", version, about)]
struct Cli {
    /// Where to write the JSON figures (default: target/girok-bench/<suite>.json).
    #[arg(long, global = true, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(subcommand)]
    suite: Suite,
}

#[derive(Debug, Subcommand)]
enum Suite {
    /// Durable ingest through the engine (in-process), against the raw unsynced fjall insert
    /// rate measured in the same run.
    Ingest(ingest::Args),
    /// Token verifications/s, logins/s, and chat-send latency during a login burst.
    Auth(auth::Args),
    /// WebSocket clients in rooms sending at a target rate: acked throughput and delivery
    /// latency at the other members.
    Chat(chat::Args),
    /// External, open-loop WebSocket chat load against a running server (see
    /// scripts/chat-load.sh): acked throughput, ack and delivery latency from the scheduled
    /// send time, missing deliveries, closes, and the server's CPU and RSS.
    ChatLoad(chat_load::Args),
    /// The ClickHouse sink: backlog throughput (rows/s, against direct inserts) and the
    /// freshness lag from commit to queryable under a paced ingest.
    Analytics(analytics::Args),
    /// Posts fanned out to followers' timelines: posts/s, fan-out records/s, time until a
    /// post is in the timelines, and home-page reads with and without a heavy author's merge.
    Feed(feed::Args),
    /// Writes the read benchmark's data set (users, follows, posts, likes, comments, rooms,
    /// messages) into a fresh data directory through the engine.
    ReadData(read_data::Args),
    /// External, closed-loop read load against a running server holding the `read-data` set
    /// (see scripts/read-load.sh): the seed timeline query over GraphQL, the REST timeline, a
    /// room history page and the room list; q/s, latency, the server's CPU and RSS.
    ReadLoad(read_load::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.suite {
        Suite::Ingest(args) => {
            let figures = ingest::run(&args)?;
            report::write(cli.out, "ingest", &figures)
        }
        Suite::Chat(args) => {
            let figures = chat::run(&args)?;
            report::write(cli.out, "chat", &figures)
        }
        Suite::ChatLoad(args) => {
            let figures = chat_load::run(&args)?;
            report::write(cli.out, "chat-load", &figures)
        }
        Suite::Analytics(args) => {
            let figures = analytics::run(&args)?;
            report::write(cli.out, "analytics", &figures)
        }
        Suite::Feed(args) => {
            let figures = feed::run(&args)?;
            report::write(cli.out, "feed", &figures)
        }
        Suite::ReadData(args) => {
            let figures = read_data::run(&args)?;
            report::write(cli.out, "read-data", &figures)
        }
        Suite::ReadLoad(args) => {
            let figures = read_load::run(&args)?;
            report::write(cli.out, "read-load", &figures)
        }
        Suite::Auth(args) => {
            let figures = auth::run(&args)?;
            report::write(cli.out, "auth", &figures)
        }
    }
}
