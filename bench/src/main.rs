//! girok-bench: throughput and latency suites. Each suite prints its figures (and, where a
//! baseline exists, the ratio measured in the same run) and writes them as JSON.
//!
//! Build it in release mode: `cargo run --release -p girok-bench -- ingest`.

mod analytics;
mod auth;
mod baseline;
mod chat;
mod chat_baseline;
mod chat_load;
mod client;
mod cpu;
mod feed;
mod ingest;
mod matching;
mod matching_baseline;
mod media;
mod pacer;
mod quic_idle;
mod read_data;
mod read_load;
mod report;
mod server_log;
mod start;
mod state;

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
    /// External, open-loop chat load over WebSocket or QUIC against a running server (see
    /// scripts/chat-load.sh): acked throughput, ack and delivery latency from the scheduled
    /// send time, missing deliveries, closes, and the server's CPU and RSS.
    ChatLoad(chat_load::Args),
    /// Idle girok/1 (QUIC) connections held by a running server (see scripts/quic-idle.sh):
    /// how many survive a silent hold, and the server's memory per connection.
    QuicIdle(quic_idle::Args),
    /// The ClickHouse sink: backlog throughput (rows/s, against direct inserts) and the
    /// freshness lag from commit to queryable under a paced ingest.
    Analytics(analytics::Args),
    /// Posts through the engine: durable posts/s, time until a post is in its followers'
    /// timelines, and home-page reads for a reader following one author and one following many.
    Feed(feed::Args),
    /// Writes the read benchmark's data set (users, follows, posts, likes, comments, rooms,
    /// messages) into a fresh data directory through the engine.
    ReadData(read_data::Args),
    /// External, closed-loop read load against a running server holding the `read-data` set
    /// (see scripts/read-load.sh): the seed timeline query over GraphQL, the REST timeline, a
    /// room history page and the room list; q/s, latency, the server's CPU and RSS.
    ReadLoad(read_load::Args),
    /// Time from launch to ready of `girok serve` on an existing data directory, several
    /// starts in a row, with the memory it holds at ready and where the search index resumed.
    Start(start::Args),
    /// External, open-loop random matching against a running server and, in the same run,
    /// the seed design's in-memory sorted set (see scripts/matching-load.sh): joins/s,
    /// matches/s, join→matched latency for the newcomer and the waiting partner, CPU and RSS,
    /// and girok's ratios to the baseline.
    Matching(matching::Args),
    /// The seed design's matching service (an in-memory sorted set of waiting users, one
    /// WebSocket per user) as a server, for `matching` to compare girok with.
    MatchingBaseline(matching_baseline::Args),
    /// The seed design's chat path (messages group-committed with fdatasync, then acked and
    /// broadcast from memory, each frame serialized once) as a server, for `chat-load` to
    /// compare girok with (see scripts/chat-load.sh --baseline).
    ChatBaseline(chat_baseline::Args),
    /// Image uploads through a running server (1 and 12 megapixel JPEGs): processed images/s,
    /// complete→ready latency and the server's peak RSS, against the same pipeline called
    /// directly on the library in the same run (see scripts/media-load.sh).
    Media(media::Args),
    /// Bounded state on a prepared data set (see scripts/state.sh): a start with the page
    /// cache dropped, cold and warm reads of room histories and timelines, memory growth per
    /// million events written over REST, and a restart.
    State(state::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (suite, figures) = match cli.suite {
        Suite::Ingest(args) => ("ingest", json(ingest::run(&args)?)?),
        Suite::Chat(args) => ("chat", json(chat::run(&args)?)?),
        Suite::ChatLoad(args) => ("chat-load", json(chat_load::run(&args)?)?),
        Suite::QuicIdle(args) => ("quic-idle", json(quic_idle::run(&args)?)?),
        Suite::Analytics(args) => ("analytics", json(analytics::run(&args)?)?),
        Suite::Feed(args) => ("feed", json(feed::run(&args)?)?),
        Suite::ReadData(args) => ("read-data", json(read_data::run(&args)?)?),
        Suite::ReadLoad(args) => ("read-load", json(read_load::run(&args)?)?),
        Suite::Auth(args) => ("auth", json(auth::run(&args)?)?),
        Suite::Start(args) => ("start", json(start::run(&args)?)?),
        Suite::State(args) => ("state", json(state::run(&args)?)?),
        Suite::Matching(args) => ("matching", json(matching::run(&args)?)?),
        Suite::Media(args) => ("media", json(media::run(&args)?)?),
        Suite::MatchingBaseline(args) => {
            matching_baseline::run(&args)?;
            return Ok(());
        }
        Suite::ChatBaseline(args) => {
            chat_baseline::run(&args)?;
            return Ok(());
        }
    };
    report::write(cli.out, suite, &figures)
}

fn json(figures: impl serde::Serialize) -> serde_json::Result<serde_json::Value> {
    serde_json::to_value(figures)
}
