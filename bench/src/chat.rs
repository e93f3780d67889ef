//! `chat`: M WebSocket clients in R rooms send at a target total rate through a real girok
//! server (started in-process on a loopback port, real HTTP and WebSocket); measures acked
//! throughput, ack latency, and send-to-delivery latency at the other members of each room.

use crate::client::Socket;
use crate::report::Latency;
use futures::{SinkExt, StreamExt};
use girok::compose::Girok;
use girok::config::Config;
use girok_engine::{ChatCommand, Command};
use girok_frontends::http;
use girok_schemas::RoomId;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// WebSocket clients.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Rooms (client i is in room i % rooms).
    #[arg(long, default_value_t = 20)]
    rooms: usize,
    /// Target messages per second, all clients together.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Distinct user accounts the clients sign in as (registration costs an argon2 hash).
    #[arg(long, default_value_t = 20)]
    users: usize,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    clients: usize,
    rooms: usize,
    target_per_sec: u64,
    acked_per_sec: f64,
    acked: u64,
    deliveries: u64,
    ack_latency: Latency,
    delivery_latency: Latency,
}

pub fn run(args: &Args) -> anyhow::Result<Figures> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &Args) -> anyhow::Result<Figures> {
    let temp = tempfile::tempdir()?;
    let mut config = Config::default();
    config.storage.data_dir = temp.path().to_owned();
    config.ws.sends_per_second = u32::MAX / 2;
    config.ws.send_burst = u32::MAX / 2;
    config.auth.login_per_minute_per_username = 100_000;
    config.auth.login_per_minute_per_ip = 100_000;
    config.auth.registrations_per_minute_per_ip = 100_000;
    // Every client is on loopback, several per user.
    config.server.max_connections_per_ip = 0;
    config.ws.max_sockets_per_user = 100_000;
    config.rate_limits = girok_engine::write_rates::WriteRates::unlimited();
    let girok = Girok::start(&config, || {}).await?;
    let engine = girok.engine().clone();
    let state = girok.state();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::run(listener, None, state, async {
        let _ = stopped.await;
    }));

    // Accounts and rooms (directly through the engine: setup is not what is measured).
    let http_client = reqwest::Client::new();
    let users = args.users.clamp(1, args.clients.max(1));
    let mut tokens = Vec::new();
    let mut user_ids = Vec::new();
    for u in 0..users {
        let account =
            crate::client::account(&http_client, &base, format!("bench{u}"), "bench password")
                .await?;
        user_ids.push(account.id.parse()?);
        tokens.push(account.token);
    }
    let mut rooms = Vec::new();
    for r in 0..args.rooms.max(1) {
        let ack = engine
            .execute(
                user_ids[0],
                Command::Chat(ChatCommand::CreateRoom {
                    title: format!("room {r}"),
                    members: user_ids[1..].to_vec(),
                }),
            )
            .await?;
        rooms.push(RoomId(ack.id.0));
    }
    println!(
        "chat: {} clients ({} users) in {} rooms, target {} msg/s for {} s",
        args.clients,
        users,
        rooms.len(),
        args.rate,
        args.seconds
    );

    let duration = Duration::from_secs(args.seconds.max(1));
    let per_client = args.rate as f64 / args.clients.max(1) as f64;
    let ws_url = crate::client::ws_url(&base);
    let mut sockets = Vec::new();
    for c in 0..args.clients.max(1) {
        let mut request = ws_url.clone().into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", tokens[c % users]).parse()?,
        );
        sockets.push(tokio_tungstenite::connect_async(request).await?.0);
    }
    // The clock starts once every client is connected.
    let epoch = Instant::now();
    let mut tasks = Vec::new();
    for (c, socket) in sockets.into_iter().enumerate() {
        let room = rooms[c % rooms.len()];
        tasks.push(tokio::spawn(client(
            socket, c, room, per_client, epoch, duration,
        )));
    }
    let mut acks = Histogram::<u64>::new(3)?;
    let mut deliveries = Histogram::<u64>::new(3)?;
    for task in tasks {
        let (a, d) = task.await??;
        acks.add(a)?;
        deliveries.add(d)?;
    }
    let _ = stop.send(());
    server.await??;
    girok.stop().await;

    let figures = Figures {
        clients: args.clients,
        rooms: rooms.len(),
        target_per_sec: args.rate,
        // Sends happen during `duration` from the epoch; the last acks come just after.
        acked_per_sec: acks.len() as f64 / duration.as_secs_f64(),
        acked: acks.len(),
        deliveries: deliveries.len(),
        ack_latency: Latency::of(&acks),
        delivery_latency: Latency::of(&deliveries),
    };
    println!(
        "acked:                     {:>10.0} msg/s ({} messages)",
        figures.acked_per_sec, figures.acked
    );
    println!("ack latency:               {}", figures.ack_latency);
    println!(
        "delivery latency:          {} ({} deliveries)",
        figures.delivery_latency, figures.deliveries
    );
    Ok(figures)
}

/// One client: subscribes to its room, sends at `rate` per second for `duration`, and times
/// acks of its own sends and deliveries of everyone else's.
async fn client(
    socket: Socket,
    index: usize,
    room: RoomId,
    rate: f64,
    epoch: Instant,
    duration: Duration,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
    let (mut sink, mut stream) = socket.split();
    let subscribe = json!({ "type": "subscribe", "topic": format!("chat:{room}") });
    sink.send(Message::text(subscribe.to_string())).await?;
    let mut acks = Histogram::<u64>::new(3)?;
    let mut deliveries = Histogram::<u64>::new(3)?;
    let me = format!("c{index}:");
    let period = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut subscribed = false;
    let mut sent = 0u64;
    let drain_until = duration + Duration::from_secs(2);
    loop {
        tokio::select! {
            _ = ticker.tick(), if subscribed && epoch.elapsed() < duration => {
                let now = epoch.elapsed().as_micros() as u64;
                let frame = json!({ "type": "send", "ref": now.to_string(), "roomId": room.to_string(), "body": format!("{me}{now}") });
                sink.send(Message::text(frame.to_string())).await?;
                sent += 1;
            }
            message = stream.next() => {
                let Some(message) = message else { break };
                let Message::Text(text) = message? else { continue };
                let frame: Value = serde_json::from_str(&text)?;
                let now = epoch.elapsed().as_micros() as u64;
                match frame["type"].as_str() {
                    Some("subscribed") => subscribed = true,
                    Some("ack") => {
                        let at: u64 = frame["ref"].as_str().unwrap_or("0").parse().unwrap_or(0);
                        acks.record(now.saturating_sub(at).max(1))?;
                    }
                    Some("event") => {
                        let body = frame["event"]["payload"]["body"].as_str().unwrap_or_default();
                        if !body.starts_with(&me)
                            && let Some(at) = body.split(':').nth(1).and_then(|t| t.parse::<u64>().ok())
                        {
                            deliveries.record(now.saturating_sub(at).max(1))?;
                        }
                    }
                    Some("error") => anyhow::bail!("client {index}: {frame}"),
                    _ => {}
                }
                if epoch.elapsed() >= duration && acks.len() >= sent {
                    break;
                }
            }
            _ = tokio::time::sleep_until((epoch + drain_until).into()) => break,
        }
    }
    Ok((acks, deliveries))
}
