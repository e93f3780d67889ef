//! `chat`: M clients in R rooms send at a target total rate through a real girok server
//! (started in-process on loopback ports: real HTTP, WebSocket and QUIC); measures acked
//! throughput, ack latency, and send-to-delivery latency at the other members of each room,
//! over each transport asked for (`--transport ws,quic`: the same clients, rooms and rate over
//! `/ws`, then over girok/1, in one run, with the ratio of their delivery p99s).
//! `chat-load` is the external, open-loop measure; this one shares the cores with its clients.

use crate::chat_load::Transport;
use crate::client::Socket;
use crate::report::Latency;
use anyhow::Context;
use futures::{SinkExt, StreamExt};
use girok::compose::Girok;
use girok::config::Config;
use girok_engine::{ChatCommand, Command};
use girok_frontends::http;
use girok_frontends::quic::client::{self as quic_client, Delivery, Parts};
use girok_frontends::quic::frames::encode;
use girok_schemas::RoomId;
use girok_schemas::proto::envelope::Payload;
use girok_schemas::quic::{ClientFrame, ServerFrame, server_frame};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

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
    /// The transports to run, one after the other: `ws`, `quic`, or both.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Transport::Ws, Transport::Quic])]
    transport: Vec<Transport>,
}

/// The figures of each transport, and QUIC's delivery p99 over the WebSocket's when both ran.
#[derive(Debug, Serialize)]
pub struct Report {
    runs: Vec<Figures>,
    quic_over_ws_delivery_p99: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    transport: Transport,
    clients: usize,
    rooms: usize,
    target_per_sec: u64,
    acked_per_sec: f64,
    acked: u64,
    deliveries: u64,
    ack_latency: Latency,
    delivery_latency: Latency,
}

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &Args) -> anyhow::Result<Report> {
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
    config.quic.max_connections_per_ip = 0;
    config.ws.max_sockets_per_user = 100_000;
    config.rate_limits = girok_engine::write_rates::WriteRates::unlimited();
    let girok = Girok::start(&config, || {}).await?;
    let engine = girok.engine().clone();
    let state = girok.state();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    // The QUIC endpoint on a free port, its reads answered by the same routes (only when a
    // phase uses it).
    let mut quic = None;
    if args.transport.contains(&Transport::Quic) {
        let mut quic_config = config.quic.clone();
        quic_config.addr = "127.0.0.1:0".parse()?;
        let server = girok_frontends::quic::QuicServer::bind(&quic_config, temp.path())?;
        let info = server.info();
        let endpoint = (info.addr, info.certificates.current().sha256_hex());
        let task =
            girok_frontends::app::serve_quic(server, &state, tokio::runtime::Handle::current());
        quic = Some((endpoint, task));
    }
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

    let setup = Setup {
        args,
        base: &base,
        tokens: &tokens,
        rooms: &rooms,
        quic: quic.as_ref().map(|(endpoint, _)| endpoint.clone()),
    };
    let mut runs = Vec::new();
    for transport in &args.transport {
        runs.push(phase(*transport, &setup).await?);
    }
    let _ = stop.send(());
    server.await??;
    if let Some((_, task)) = quic {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    girok.stop().await;
    let p99 = |t: Transport| {
        runs.iter()
            .find(|f| f.transport == t)
            .map(|f| f.delivery_latency.p99_us as f64)
    };
    let quic_over_ws_delivery_p99 = match (p99(Transport::Quic), p99(Transport::Ws)) {
        (Some(quic), Some(ws)) => Some(quic / ws.max(1.0)),
        _ => None,
    };
    if let Some(ratio) = quic_over_ws_delivery_p99 {
        println!("delivery p99, quic / ws:   {ratio:>10.2}");
    }
    Ok(Report {
        runs,
        quic_over_ws_delivery_p99,
    })
}

/// What every transport's run shares.
struct Setup<'a> {
    args: &'a Args,
    base: &'a str,
    tokens: &'a [String],
    rooms: &'a [RoomId],
    /// The QUIC endpoint and the certificate hash to pin.
    /// The QUIC endpoint and its certificate's SHA-256, when a phase runs over QUIC.
    quic: Option<(std::net::SocketAddr, String)>,
}

/// One transport's run: every client connected and subscribed, then the clock starts.
async fn phase(transport: Transport, setup: &Setup<'_>) -> anyhow::Result<Figures> {
    let Setup {
        args,
        base,
        tokens,
        rooms,
        ..
    } = setup;
    let users = tokens.len();
    let duration = Duration::from_secs(args.seconds.max(1));
    let per_client = args.rate as f64 / args.clients.max(1) as f64;
    let ws_url = crate::client::ws_url(base);
    let (quic_addr, connectors) = match (transport, &setup.quic) {
        (Transport::Quic, Some((addr, sha256))) => (
            Some(*addr),
            crate::client::quic_connectors(sha256, args.clients.max(1), CLIENTS_PER_CONNECTOR)?,
        ),
        (Transport::Quic, None) => anyhow::bail!("no QUIC endpoint was started"),
        (Transport::Ws, _) => (None, Vec::new()),
    };
    let mut connections = Vec::new();
    for c in 0..args.clients.max(1) {
        let token = &tokens[c % users];
        connections.push(match transport {
            Transport::Ws => {
                let request = crate::client::ws_request(&ws_url, token)?;
                Connection::Ws(Box::new(tokio_tungstenite::connect_async(request).await?.0))
            }
            Transport::Quic => {
                let addr = quic_addr.context("no QUIC endpoint was started")?;
                let mut client = connectors[c / CLIENTS_PER_CONNECTOR].connect(addr).await?;
                client.auth(token).await?;
                Connection::Quic(Box::new(client.into_parts()))
            }
        });
    }
    // The clock starts once every client is connected.
    let epoch = Instant::now();
    let mut tasks = Vec::new();
    for (c, connection) in connections.into_iter().enumerate() {
        let room = rooms[c % rooms.len()];
        let timing = (per_client, epoch, duration);
        tasks.push(tokio::spawn(client(connection, c, room, timing)));
    }
    let mut acks = Histogram::<u64>::new(3)?;
    let mut deliveries = Histogram::<u64>::new(3)?;
    for task in tasks {
        let (a, d) = task.await??;
        acks.add(a)?;
        deliveries.add(d)?;
    }
    let figures = Figures {
        transport,
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
    println!("{transport:?}:");
    println!(
        "  acked:                   {:>10.0} msg/s ({} messages)",
        figures.acked_per_sec, figures.acked
    );
    println!("  ack latency:             {}", figures.ack_latency);
    println!(
        "  delivery latency:        {} ({} deliveries)",
        figures.delivery_latency, figures.deliveries
    );
    Ok(figures)
}

/// QUIC clients sharing one UDP socket (one connector).
const CLIENTS_PER_CONNECTOR: usize = 100;

/// A client's connection, either protocol.
enum Connection {
    Ws(Box<Socket>),
    Quic(Box<Parts>),
}

/// A client's rate, the common start and how long to send.
type Timing = (f64, Instant, Duration);

/// What a client hears, whichever the protocol.
enum Heard {
    Subscribed,
    /// The ack of the send with this `ref`.
    Ack(String),
    /// A message of the room, with its body.
    Message(String),
    Refused(String),
    Other,
}

impl Connection {
    async fn subscribe(&mut self, room: RoomId) -> anyhow::Result<()> {
        let topic = format!("chat:{room}");
        match self {
            Connection::Ws(socket) => {
                let frame = json!({ "type": "subscribe", "topic": topic });
                socket.send(Message::text(frame.to_string())).await?;
            }
            Connection::Quic(parts) => {
                let frame = ClientFrame {
                    frame: Some(quic_client::subscribe_frame(&topic, None)),
                };
                parts.control.write_all(&encode(&frame)).await?;
            }
        }
        Ok(())
    }

    async fn send(&mut self, reference: String, room: RoomId, body: String) -> anyhow::Result<()> {
        match self {
            Connection::Ws(socket) => {
                let frame = json!({ "type": "send", "ref": reference, "roomId": room.to_string(), "body": body });
                socket.send(Message::text(frame.to_string())).await?;
            }
            Connection::Quic(parts) => {
                let frame = ClientFrame {
                    frame: Some(quic_client::send_frame(
                        &reference,
                        &room.to_string(),
                        &body,
                        None,
                    )),
                };
                parts.control.write_all(&encode(&frame)).await?;
            }
        }
        Ok(())
    }

    /// The next thing heard; `None` once the connection (its control stream) ended. A frame
    /// that cannot be read is `Other`, not the end. Cancel-safe, like the reads it waits on.
    async fn next(&mut self) -> anyhow::Result<Option<Heard>> {
        match self {
            Connection::Ws(socket) => {
                let Some(message) = socket.next().await else {
                    return Ok(None);
                };
                let Message::Text(text) = message? else {
                    return Ok(Some(Heard::Other));
                };
                // A frame that cannot be read is skipped, as on QUIC.
                let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                    return Ok(Some(Heard::Other));
                };
                Ok(Some(match frame["type"].as_str() {
                    Some("subscribed") => Heard::Subscribed,
                    Some("ack") => Heard::Ack(frame["ref"].as_str().unwrap_or("0").to_owned()),
                    Some("event") => Heard::Message(
                        frame["event"]["payload"]["body"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                    Some("error") => Heard::Refused(frame.to_string()),
                    _ => Heard::Other,
                }))
            }
            Connection::Quic(parts) => tokio::select! {
                answer = parts.answers.next::<ServerFrame>() => {
                    let Some(answer) = answer? else { return Ok(None) };
                    Ok(Some(match answer.ok().and_then(|f| f.frame) {
                        Some(server_frame::Frame::Ack(ack)) => Heard::Ack(ack.r#ref),
                        Some(server_frame::Frame::Error(error)) => {
                            Heard::Refused(format!("{} {}", error.code, error.message))
                        }
                        _ => Heard::Other,
                    }))
                }
                Some(delivery) = parts.deliveries.recv() => {
                    let Delivery::Frame { frame, .. } = delivery else { return Ok(Some(Heard::Other)) };
                    Ok(Some(match frame.frame {
                        Some(server_frame::Frame::Subscribed(_)) => Heard::Subscribed,
                        Some(server_frame::Frame::Event(event)) => match event.envelope.and_then(|e| e.payload) {
                            Some(Payload::MessageSent(message)) => Heard::Message(message.body),
                            _ => Heard::Other,
                        },
                        _ => Heard::Other,
                    }))
                }
            },
        }
    }

    fn close(self) {
        if let Connection::Quic(parts) = self {
            parts.connection.close(0u32.into(), b"done");
        }
    }
}

/// One client, over either protocol: subscribes to its room, sends at `rate` per second for
/// `duration`, and times acks of its own sends and deliveries of everyone else's.
async fn client(
    mut connection: Connection,
    index: usize,
    room: RoomId,
    (rate, epoch, duration): Timing,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
    connection.subscribe(room).await?;
    let mut acks = Histogram::<u64>::new(3)?;
    let mut deliveries = Histogram::<u64>::new(3)?;
    let me = format!("c{index}:");
    let period = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut subscribed, mut sent) = (false, 0u64);
    let drain_until = duration + Duration::from_secs(2);
    loop {
        tokio::select! {
            _ = ticker.tick(), if subscribed && epoch.elapsed() < duration => {
                let now = epoch.elapsed().as_micros() as u64;
                connection.send(now.to_string(), room, format!("{me}{now}")).await?;
                sent += 1;
            }
            heard = connection.next() => {
                let now = epoch.elapsed().as_micros() as u64;
                let Some(heard) = heard? else { break };
                match heard {
                    Heard::Subscribed => subscribed = true,
                    Heard::Ack(reference) => {
                        let at: u64 = reference.parse().unwrap_or(0);
                        acks.record(now.saturating_sub(at).max(1))?;
                    }
                    Heard::Message(body) => {
                        if !body.starts_with(&me)
                            && let Some(at) = body.split(':').nth(1).and_then(|t| t.parse::<u64>().ok())
                        {
                            deliveries.record(now.saturating_sub(at).max(1))?;
                        }
                    }
                    Heard::Refused(why) => anyhow::bail!("client {index}: {why}"),
                    Heard::Other => {}
                }
            }
            _ = tokio::time::sleep_until((epoch + drain_until).into()) => break,
        }
        if epoch.elapsed() >= duration && acks.len() >= sent {
            break;
        }
    }
    connection.close();
    Ok((acks, deliveries))
}
