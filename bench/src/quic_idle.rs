//! `quic-idle`: how many idle girok/1 connections a running server holds and what they cost.
//! N clients connect over QUIC (pinning the certificate `GET /v1/quic` names), sign in and
//! subscribe to their notifications, then stay silent for the hold time (QUIC keep-alives
//! only); afterwards every connection must still answer a ping. Reports the server's RSS
//! before and after connecting, per connection, and how many survived the hold. Run by
//! `scripts/quic-idle.sh`, which starts the release server.

use crate::client::Account;
use crate::cpu::rss_kib;
use crate::report::mib;
use anyhow::{Context, bail};
use futures::StreamExt;
use girok_frontends::quic::client::{Connector, QuicClient};
use girok_schemas::quic::{self, client_frame, server_frame};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Connections per client UDP socket.
const CLIENTS_PER_ENDPOINT: usize = 200;
/// Handshakes in flight.
const CONCURRENCY: usize = 64;
const PASSWORD: &str = "quic-idle password";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base URL of the running server (its QUIC endpoint is found at <URL>/v1/quic).
    #[arg(long, value_name = "URL")]
    url: String,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// User accounts they sign in as (round robin).
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Seconds every connection stays silent before the final ping.
    #[arg(long, default_value_t = 20)]
    hold: u64,
    /// The server's process id: its RSS from /proc.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    connections: usize,
    connect_secs: f64,
    connects_per_sec: f64,
    hold_secs: u64,
    /// Connections that answered the ping after the hold.
    alive_after_hold: usize,
    server_rss_before_mib: Option<f64>,
    server_rss_connected_mib: Option<f64>,
    server_rss_after_hold_mib: Option<f64>,
    /// (RSS connected − RSS before) / connections.
    server_kib_per_connection: Option<f64>,
}

pub fn run(args: &Args) -> anyhow::Result<Figures> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &Args) -> anyhow::Result<Figures> {
    if args.connections == 0 || args.users == 0 {
        bail!("--connections and --users must be at least 1");
    }
    let base = args.url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::new();
    let (addr, sha256) = crate::client::quic_endpoint(&http, &base).await?;
    // Registered side by side (an argon2 hash each), as chat-load's are.
    let jobs = (0..args.users)
        .map(|u| crate::client::account(&http, &base, format!("idle{u}"), PASSWORD))
        .collect();
    let accounts: Vec<Account> =
        crate::client::collect("users", jobs, crate::client::SETUP_CONCURRENCY).await?;
    println!(
        "quic-idle: {} connections as {} users to {addr}, held {} s",
        args.connections, args.users, args.hold
    );
    let rss_before = args.server_pid.and_then(rss_kib);
    let connectors =
        crate::client::quic_connectors(&sha256, args.connections, CLIENTS_PER_ENDPOINT)?;
    let started = Instant::now();
    let mut clients = futures::stream::iter((0..args.connections).map(|c| {
        let connector = &connectors[c / CLIENTS_PER_ENDPOINT];
        let token = accounts[c % accounts.len()].token.clone();
        async move {
            connect(connector, addr, &token)
                .await
                .with_context(|| format!("connection {c}"))
        }
    }))
    .buffer_unordered(CONCURRENCY);
    let mut held = Vec::with_capacity(args.connections);
    while let Some(client) = clients.next().await {
        held.push(client?);
        if held.len() % 1000 == 0 {
            println!("  connected {}/{}", held.len(), args.connections);
        }
    }
    drop(clients);
    let connect_secs = started.elapsed().as_secs_f64();
    // Let the server settle (handshake buffers freed) before reading its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected = args.server_pid.and_then(rss_kib);
    println!(
        "connected {} in {connect_secs:.1} s; server RSS {} → {} MiB",
        held.len(),
        rss_before.map_or("n/a".into(), |k| format!("{:.0}", mib(k))),
        rss_connected.map_or("n/a".into(), |k| format!("{:.0}", mib(k)))
    );
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let rss_after_hold = args.server_pid.and_then(rss_kib);
    let alive = futures::stream::iter(
        held.iter_mut()
            .enumerate()
            .map(|(i, client)| async move { ping(client, i as u64).await }),
    )
    .buffer_unordered(CONCURRENCY)
    .filter(|ok| std::future::ready(*ok))
    .count()
    .await;
    let per_connection = match (rss_before, rss_connected) {
        (Some(before), Some(after)) => {
            Some(after.saturating_sub(before) as f64 / args.connections as f64)
        }
        _ => None,
    };
    let figures = Figures {
        connections: args.connections,
        connect_secs,
        connects_per_sec: args.connections as f64 / connect_secs.max(1e-9),
        hold_secs: args.hold,
        alive_after_hold: alive,
        server_rss_before_mib: rss_before.map(mib),
        server_rss_connected_mib: rss_connected.map(mib),
        server_rss_after_hold_mib: rss_after_hold.map(mib),
        server_kib_per_connection: per_connection,
    };
    println!(
        "after {} s idle: {alive} of {} connections answered a ping; server RSS {} MiB; {} KiB per connection",
        args.hold,
        args.connections,
        figures
            .server_rss_after_hold_mib
            .map_or("n/a".into(), |m| format!("{m:.0}")),
        per_connection.map_or("n/a".into(), |k| format!("{k:.1}"))
    );
    for client in &held {
        client.connection.close(0u32.into(), b"done");
    }
    Ok(figures)
}

/// Connects, signs in and subscribes to the user's notifications.
async fn connect(
    connector: &Connector,
    addr: SocketAddr,
    token: &str,
) -> anyhow::Result<QuicClient> {
    let mut client = connector.connect(addr).await?;
    client.auth(token).await?;
    client
        .subscribed("notifications", None, Duration::from_secs(30))
        .await?;
    Ok(client)
}

/// Whether the connection answers a ping.
async fn ping(client: &mut QuicClient, nonce: u64) -> bool {
    if client
        .send(client_frame::Frame::Ping(quic::Ping { nonce }))
        .await
        .is_err()
    {
        return false;
    }
    matches!(
        client.answer_within(Duration::from_secs(30)).await,
        Ok(server_frame::Frame::Pong(pong)) if pong.nonce == nonce
    )
}
