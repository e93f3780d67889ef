//! The `girok` command line: `serve`, `replay`, `log stats`, `log tail`. Flags override the
//! layered configuration (see [`crate::config`]).

mod analytics_cmd;
mod descriptors;
mod log_cmd;
mod replay_cmd;
mod serve_cmd;

use crate::config::{Config, LogFormat};
use clap::{Args, Parser, Subcommand};
use girok_engine::Durability;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// girok: a social app backend built as one streaming system over a durable event log.
#[derive(Debug, Parser)]
#[command(name = "girok", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file (sections: server, storage, engine, limits, auth, ws, cache,
    /// log, analytics; see README.md). Every key can also be set as GIROK__SECTION__KEY.
    #[arg(long, global = true, env = "GIROK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Data directory (overrides storage.data_dir; default ./data).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: GraphQL at /graphql (subscriptions at /graphql/ws), REST at /v1, the
    /// WebSocket protocol at /ws, and /healthz, /readyz, /metrics.
    Serve(ServeArgs),
    /// Rebuild the write model and every view from the log and report each view's digest and
    /// the replay speed. With --to-seq only the views are rebuilt (up to that seq). Needs the
    /// data directory to itself (stop `girok serve` first).
    Replay(ReplayArgs),
    /// Inspect the log.
    #[command(subcommand)]
    Log(LogCommand),
    /// Manage the access-token signing keys (in <data-dir>/keys).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The ClickHouse analytics sink.
    #[command(subcommand)]
    Analytics(AnalyticsCommand),
}

#[derive(Debug, Subcommand)]
pub enum AnalyticsCommand {
    /// Drop girok's ClickHouse tables and refill them from the log, with a progress bar, and
    /// write a new checkpoint of the rollups (the next `serve` resumes after it). Needs the
    /// data directory to itself (stop `girok serve` first).
    Rebuild(AnalyticsArgs),
}

#[derive(Debug, Args)]
pub struct AnalyticsArgs {
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key; new tokens are signed with it once the server restarts. Older
    /// keys keep verifying (and stay in JWKS) until retired.
    Rotate {
        /// Also drop every key but the new one and the previous one.
        #[arg(long)]
        retire: bool,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides server.http_addr; default 127.0.0.1:8080; port 0 picks
    /// a free port, printed on stdout).
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// A second address serving only /healthz, /readyz and /metrics, outside the client
    /// connection limit (overrides server.ops_addr; port 0 picks a free port, printed).
    #[arg(long, value_name = "ADDR")]
    pub ops_addr: Option<SocketAddr>,
    /// UDP address of the QUIC endpoint (overrides quic.addr; default 127.0.0.1:8443; port 0
    /// picks a free port, printed on stdout).
    #[arg(long, value_name = "ADDR")]
    pub quic_addr: Option<SocketAddr>,
    /// Serve no QUIC endpoint (overrides quic.enabled).
    #[arg(long)]
    pub no_quic: bool,
    /// `sync`: fsync each group-commit batch before acknowledging (default). `buffered`: hand
    /// each batch to the OS only; survives a crash of girok, not of the machine.
    #[arg(long, value_parser = parse_durability)]
    pub durability: Option<Durability>,
    /// Dataflow workers (overrides engine.workers; default one per core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Rebuild up to and including this seq (default: the whole log).
    #[arg(long, value_name = "N")]
    pub to_seq: Option<u64>,
    /// Dataflow workers (default one per core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Event count, seq range, size on disk, and counts per event type.
    Stats(StatsArgs),
    /// Print events as JSON lines, one per event.
    Tail(TailArgs),
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
    /// Ask a running server instead of opening the data directory (used automatically when
    /// the directory is in use), e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// First seq to print (default 1).
    #[arg(long, value_name = "SEQ", default_value_t = 1)]
    pub from: u64,
    /// Only events whose type starts with this, e.g. `chat.` or `chat.message.sent`.
    #[arg(long = "type", value_name = "PREFIX")]
    pub type_prefix: Option<String>,
    /// Keep printing new events as they are committed.
    #[arg(long)]
    pub follow: bool,
    /// Read through a running server instead of the data directory (used automatically when
    /// the directory is in use by `girok serve`), e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    match s {
        "sync" => Ok(Durability::Sync),
        "buffered" => Ok(Durability::Buffered),
        other => Err(format!("{other:?} is not `sync` or `buffered`")),
    }
}

/// `RUST_LOG` wins; otherwise `log.filter` for the server and warnings only for the one-shot
/// commands, whose output is their answer. fjall's own recovery chatter is kept at warn.
fn init_tracing(config: &Config, serving: bool) {
    let base = if serving {
        config.log.filter.as_str()
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| {
            tracing_subscriber::EnvFilter::try_new(format!("fjall=warn,lsm_tree=warn,{base}"))
        })
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A log that cannot be written (say, on a full disk) is skipped: tracing would otherwise
    // report it with `eprintln!`, which panics when stderr itself fails, in whatever thread
    // was logging (a request, the log writer).
    // Colours only for a person at a terminal: a log file or a pipe gets plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours)
        .log_internal_errors(false);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The exit code of `serve` stopped by a fatal storage error (EX_IOERR).
pub const EXIT_STORAGE_FAILED: u8 = 74;

/// Runs the command line; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("girok: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = cli.data_dir {
        config.storage.data_dir = dir;
    }
    init_tracing(&config, matches!(cli.command, Command::Serve(_)));
    let result = match cli.command {
        Command::Serve(args) => serve_cmd::run(config, args),
        Command::Replay(args) => replay_cmd::run(config, args),
        Command::Log(LogCommand::Stats(args)) => log_cmd::stats(config, args),
        Command::Log(LogCommand::Tail(args)) => log_cmd::tail(config, args),
        Command::Analytics(AnalyticsCommand::Rebuild(args)) => analytics_cmd::rebuild(config, args),
        Command::Keys(KeysCommand::Rotate { retire }) => {
            girok_frontends::auth::keys::rotate(&config.storage.data_dir, retire).map(|key| {
                println!(
                    "new signing key {} (restart girok to sign with it)",
                    key.kid
                );
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("girok: {e:#}");
            if e.downcast_ref::<serve_cmd::StorageFailed>().is_some() {
                ExitCode::from(EXIT_STORAGE_FAILED)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
