//! `girok serve`: starts every part (the composition root), serves HTTP, and on SIGTERM or
//! Ctrl-C stops accepting, finishes in-flight requests, stops the parts (the log drained and
//! flushed), and exits 0.

use super::ServeArgs;
use crate::compose::Girok;
use crate::config::Config;
use anyhow::Context;
use girok_engine::Engine;
use girok_frontends::auth::operator;
use girok_frontends::{http, quic};

pub fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.http_addr {
        config.server.http_addr = addr;
    }
    if let Some(addr) = args.ops_addr {
        config.server.ops_addr = Some(addr);
    }
    if let Some(addr) = args.quic_addr {
        config.quic.addr = addr;
    }
    if args.no_quic {
        config.quic.enabled = false;
    }
    if let Some(durability) = args.durability {
        config.storage.durability = durability;
    }
    if let Some(workers) = args.workers {
        config.engine.workers = workers;
    }
    // Before any thread of the server starts: each asks for its slice as it starts.
    girok_engine::background::set_short_slices(config.server.short_slices);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("girok-rt")
        .on_thread_start(|| girok_engine::background::latency_critical("async runtime"))
        .build()
        .context("cannot start the async runtime")?;
    // HTTP requests run apart from the WebSockets and the engine's tasks: a flood of socket
    // frames cannot queue ahead of a read (`http::serve`). Its threads keep the kernel's time
    // slice: with the short one, random matching (all HTTP) sustained less at saturation.
    let requests = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("girok-http")
        .build()
        .context("cannot start the requests' async runtime")?;
    let served = runtime.block_on(serve(config, requests.handle().clone()));
    requests.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

async fn serve(mut config: Config, requests: tokio::runtime::Handle) -> anyhow::Result<()> {
    super::descriptors::fit(&mut config)?;
    if config.quic.enabled {
        // Before the engine opens the data directory: a wrong setting costs no start.
        config.quic.check()?;
    }
    for key in config.ignored_keys() {
        tracing::warn!(key, "configuration key no longer used; ignored");
    }
    let data_dir = config.storage.data_dir.clone();
    // Ours once the engine holds the directory's lock: until we listen, `girok log` waits.
    let girok = Girok::start(&config, || operator::forget_address(&data_dir)).await?;
    let (listener, ops_listener, addr) = match bind(&config).await {
        Ok(listeners) => listeners,
        Err(error) => {
            girok.stop().await;
            return Err(error);
        }
    };
    let quic = match bind_quic(&config) {
        Ok(quic) => quic,
        Err(error) => {
            girok.stop().await;
            return Err(error);
        }
    };
    tracing::info!(%addr, data_dir = %data_dir.display(), "girok listening");
    // Tests and scripts read the bound address from this line (port 0 picks a free port);
    // `girok log` beside the running server reads it from the data directory.
    println!("girok listening on http://{addr}");
    if let Err(error) = operator::record_address(&data_dir, addr) {
        tracing::warn!(%error, "cannot record the listening address for `girok log`");
    }
    let stop = {
        let engine = girok.engine().clone();
        async move {
            tokio::select! {
                () = shutdown_signal() => {}
                reason = storage_failure(&engine) => {
                    tracing::error!(%reason, "fatal storage error: girok stops (it recovers at its next start)");
                }
            }
        }
    };
    // The listeners move to the requests' runtime; sockets come back to this one, where the
    // state was made.
    let state = girok.state();
    let state_stopping = state.stopping.clone();
    // Reads over QUIC are answered by the HTTP routes, on the requests' runtime.
    let quic = quic.map(|quic| girok_frontends::app::serve_quic(quic, &state, requests.clone()));
    let served = requests
        .spawn(async move {
            let moved = |listener: tokio::net::TcpListener| {
                tokio::net::TcpListener::from_std(listener.into_std()?)
            };
            let listener = moved(listener)?;
            let ops_listener = ops_listener.map(moved).transpose()?;
            http::run(listener, ops_listener, state, stop).await
        })
        .await
        .unwrap_or_else(|panicked| Err(std::io::Error::other(panicked)));
    // QUIC connections drain and close on the same stop (bounded by the endpoint's own
    // timeouts), before the engine stops; said again here in case HTTP ended without it.
    if let Some(mut quic) = quic {
        state_stopping.stop();
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut quic)
            .await
            .is_err()
        {
            quic.abort();
        }
    }
    let engine = girok.engine().clone();
    girok.stop().await;
    served.context("HTTP server failed")?;
    // A failed store stays failed: it says whether this was the reason to stop.
    if let Some(reason) = engine.storage_failure() {
        return Err(StorageFailed(reason).into());
    }
    tracing::info!("girok stopped cleanly");
    Ok(())
}

/// The QUIC endpoint when `quic.enabled` (bound on this runtime, where its connections run),
/// announced on stdout with the certificate's hash.
fn bind_quic(config: &Config) -> anyhow::Result<Option<quic::QuicServer>> {
    if !config.quic.enabled {
        return Ok(None);
    }
    let server = quic::QuicServer::bind(&config.quic, &config.storage.data_dir)?;
    let info = server.info();
    let sha256 = info.certificates.current().sha256_hex();
    tracing::info!(addr = %info.addr, %sha256, "QUIC (girok/1) listening");
    // Tests and clients read the address and the certificate's hash from this line.
    println!("girok quic listening on {} sha256 {sha256}", info.addr);
    Ok(Some(server))
}

/// The clients' listener with its address and, when `server.ops_addr` is set, the
/// operators' own.
async fn bind(
    config: &Config,
) -> anyhow::Result<(
    tokio::net::TcpListener,
    Option<tokio::net::TcpListener>,
    std::net::SocketAddr,
)> {
    let ops_listener = match config.server.ops_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (server.ops_addr)"))?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, "operators' endpoints listening");
            println!("girok ops listening on http://{addr}");
            Some(listener)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.server.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.http_addr))?;
    let addr = listener.local_addr()?;
    Ok((listener, ops_listener, addr))
}

/// `serve` ended because of a fatal storage error (exit code 74, EX_IOERR).
#[derive(Debug, thiserror::Error)]
#[error("fatal storage error: {0}")]
pub struct StorageFailed(pub String);

/// Resolves with the reason once the log writer stopped for a fatal storage error.
async fn storage_failure(engine: &Engine) -> String {
    let mut check = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        check.tick().await;
        if let Some(reason) = engine.storage_failure() {
            return reason;
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested: draining");
}
