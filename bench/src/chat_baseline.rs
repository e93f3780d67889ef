//! `chat-baseline`: the seed design's chat path as a server of its own, for `chat-load` to
//! compare girok with in the same run (`scripts/chat-load.sh --baseline`). The seed stack is
//! a WebSocket gateway that writes each message to PostgreSQL (fsync, group commit), publishes
//! it to NATS and broadcasts it from a subscription, serialized once for the room's sockets;
//! that stack cannot run on this machine, so this is its competent core in one process: each
//! message is group-committed to a preallocated file with one fdatasync per group (the
//! database's durability without its CPU), then acknowledged and broadcast from memory (the
//! broker's fan-out without its hop), its frame serialized once and shared by every socket of
//! the room, each socket written by a task of its own, every queued frame to one flush. It is
//! therefore a lower bound of the seed stack's cost, not the stack itself.
//! `--durability none` skips the file: the floor of any server on this path.
//!
//! It speaks the subset of girok's API the generator uses, with the same JSON: register and
//! login, `POST /v1/rooms`, `/ws` with a Bearer token, `subscribe` to `chat:<room>` (members
//! only) and `send` with its `ack`. No history, no resume, no idempotency by `clientId`.

use crate::baseline::{Accounts, Caller, HasAccounts, refused};
use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{SinkExt, StreamExt};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::{Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free one (printed as `baseline listening on URL`).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: std::net::SocketAddr,
    /// `sync`: messages group-committed to a file with one fdatasync per group before their
    /// acks and broadcast (as girok's default); `none`: acked and broadcast at once.
    #[arg(long, value_enum, default_value = "sync")]
    durability: Durability,
    /// Directory of the commit file (default: a fresh temp dir, removed when the server stops on
    /// SIGTERM or SIGINT).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Durability {
    Sync,
    None,
}

/// Frames a socket may have queued; frames for a socket further behind are dropped (the
/// generator counts them as missing).
const SOCKET_QUEUE: usize = 4096;
/// Frames written to a socket with one flush.
const WRITE_BATCH: usize = 64;
/// The commit file's size: preallocated (an fdatasync then writes no file size), reused
/// from its start when full, as a database recycles its WAL segments.
const COMMIT_FILE_BYTES: u64 = 64 << 20;
/// Most members a room is created with.
const MAX_MEMBERS: usize = 1000;
/// Messages that may wait for the group-commit thread (girok's log writer queue); past them a
/// socket waits to hand over its next message, so memory stays bounded under overload.
const COMMIT_QUEUE: usize = 16_384;

type Outbox = mpsc::Sender<Utf8Bytes>;

#[derive(Default)]
struct Room {
    members: HashSet<String>,
    /// The socket queue of each subscribed connection.
    subscribers: Vec<Outbox>,
}

#[derive(Default)]
struct Chat {
    accounts: Accounts,
    rooms: RwLock<HashMap<String, Room>>,
    seq: AtomicU64,
    /// To the group-commit thread (`sync` durability only).
    commits: Option<mpsc::Sender<Accepted>>,
}

impl HasAccounts for Chat {
    fn accounts(&self) -> &Accounts {
        &self.accounts
    }
}

type Shared = Arc<Chat>;

/// A message accepted from a socket, on its way to its ack and broadcast.
struct Accepted {
    reference: String,
    room: String,
    actor: String,
    body: String,
    reply: Outbox,
}

/// Serves until SIGTERM or SIGINT.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (app, _temp) = app(args)?;
    crate::baseline::serve(args.addr, app)
}

/// The baseline's routes, with its group-commit thread started (`sync`), and the temp dir
/// of its commit file if it made one (removed when dropped).
fn app(args: &Args) -> anyhow::Result<(axum::Router, Option<tempfile::TempDir>)> {
    let (temp, commits) = match args.durability {
        Durability::None => (None, None),
        Durability::Sync => {
            let temp = match &args.data_dir {
                Some(_) => None,
                None => Some(tempfile::tempdir().context("creating a temp dir")?),
            };
            let dir = args
                .data_dir
                .clone()
                .or_else(|| temp.as_ref().map(|t| t.path().to_owned()))
                .context("no directory for the commit file")?;
            std::fs::create_dir_all(&dir)?;
            let path = dir.join("commits.log");
            let file = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            file.set_len(COMMIT_FILE_BYTES)?;
            file.sync_all()?;
            (temp, Some(file))
        }
    };
    let (to_commit, mut from_sockets) = mpsc::channel(COMMIT_QUEUE);
    let state = Arc::new(Chat {
        commits: commits.is_some().then_some(to_commit),
        ..Chat::default()
    });
    if let Some(file) = commits {
        let state = state.clone();
        std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || commit_loop(&state, file, &mut from_sockets))?;
    }
    let app = crate::baseline::account_routes::<Chat>()
        .route("/v1/rooms", post(create_room))
        .route("/ws", get(socket))
        .with_state(state);
    Ok((app, temp))
}

/// One fdatasync for every message that arrived while the previous one ran, then their acks
/// and broadcasts in commit order.
fn commit_loop(state: &Chat, mut file: std::fs::File, messages: &mut mpsc::Receiver<Accepted>) {
    let mut group = Vec::new();
    let mut record = Vec::new();
    let mut written = 0u64;
    while let Some(first) = messages.blocking_recv() {
        group.push(first);
        while let Ok(next) = messages.try_recv() {
            group.push(next);
        }
        record.clear();
        for m in &group {
            let _ = writeln!(record, "{}\t{}\t{}", m.room, m.actor, m.body);
        }
        if written + record.len() as u64 > COMMIT_FILE_BYTES {
            written = 0;
        }
        let durable = file
            .seek(std::io::SeekFrom::Start(written))
            .and_then(|_| file.write_all(&record))
            .and_then(|()| file.sync_data());
        written += record.len() as u64;
        for message in group.drain(..) {
            match &durable {
                Ok(()) => deliver(state, message),
                Err(error) => {
                    let frame = error_frame("UNAVAILABLE", &error.to_string(), &message.reference);
                    let _ = message.reply.try_send(frame);
                }
            }
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AckFrame<'a> {
    r#type: &'static str,
    r#ref: &'a str,
    seq: u64,
    message_id: &'a str,
    duplicate: bool,
}

#[derive(Serialize)]
struct EventFrame<'a> {
    r#type: &'static str,
    topic: String,
    seq: u64,
    event: Event<'a>,
}

#[derive(Serialize)]
struct Event<'a> {
    r#type: &'static str,
    seq: u64,
    id: &'a str,
    actor: &'a str,
    /// Unix milliseconds.
    time: u128,
    payload: Payload<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    room_id: &'a str,
    body: &'a str,
    client_id: Option<&'a str>,
    reply_to: Option<&'a str>,
}

/// The message's seq, its ack to the sender, and its event frame, serialized once, to every
/// subscriber of the room (the sender's own sockets included, as girok does).
fn deliver(state: &Chat, message: Accepted) {
    let seq = state.seq.fetch_add(1, Ordering::Relaxed) + 1;
    let id = uuid::Uuid::now_v7().to_string();
    let ack = AckFrame {
        r#type: "ack",
        r#ref: &message.reference,
        seq,
        message_id: &id,
        duplicate: false,
    };
    let _ = message.reply.try_send(to_frame(&ack));
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let event = EventFrame {
        r#type: "event",
        topic: format!("chat:{}", message.room),
        seq,
        event: Event {
            r#type: "chat.message.sent",
            seq,
            id: &id,
            actor: &message.actor,
            time,
            payload: Payload {
                room_id: &message.room,
                body: &message.body,
                client_id: None,
                reply_to: None,
            },
        },
    };
    let frame = to_frame(&event);
    let rooms = state.rooms.read();
    if let Some(room) = rooms.get(&message.room) {
        for subscriber in &room.subscribers {
            // A full queue drops the frame (see `write_frames`).
            let _ = subscriber.try_send(frame.clone());
        }
    }
}

fn to_frame(frame: &impl Serialize) -> Utf8Bytes {
    serde_json::to_string(frame).unwrap_or_default().into()
}

fn error_frame(code: &str, message: &str, reference: &str) -> Utf8Bytes {
    let frame =
        serde_json::json!({ "type": "error", "code": code, "message": message, "ref": reference });
    frame.to_string().into()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewRoom {
    #[serde(default)]
    member_ids: Vec<String>,
}

async fn create_room(
    State(state): State<Shared>,
    Caller(me): Caller,
    Json(body): Json<NewRoom>,
) -> Response {
    if body.member_ids.len() > MAX_MEMBERS {
        return refused(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ARGUMENT");
    }
    if !body.member_ids.iter().all(|id| state.accounts.exists(id)) {
        return refused(StatusCode::NOT_FOUND, "NOT_FOUND");
    }
    let id = uuid::Uuid::now_v7().to_string();
    let mut members: HashSet<String> = body.member_ids.into_iter().collect();
    members.insert(me);
    let room = Room {
        members,
        subscribers: Vec::new(),
    };
    state.rooms.write().insert(id.clone(), room);
    (StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response()
}

async fn socket(
    State(state): State<Shared>,
    Caller(user): Caller,
    upgrade: WebSocketUpgrade,
) -> Response {
    crate::baseline::accept_socket(upgrade, state, user, serve_socket)
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum ClientFrame {
    Subscribe {
        topic: String,
    },
    #[serde(rename_all = "camelCase")]
    Send {
        #[serde(rename = "ref", default)]
        reference: String,
        room_id: String,
        body: String,
    },
}

async fn serve_socket(state: Shared, user: String, socket: WebSocket) {
    let (tx, rx) = mpsc::channel::<Utf8Bytes>(SOCKET_QUEUE);
    let (sink, mut stream) = socket.split();
    let writer = tokio::spawn(write_frames(sink, rx));
    let mut subscribed = Vec::new();
    while let Some(Ok(message)) = stream.next().await {
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        let frame = match serde_json::from_str::<ClientFrame>(text.as_str()) {
            Ok(frame) => frame,
            Err(error) => {
                let _ = tx.try_send(error_frame("BAD_FRAME", &error.to_string(), ""));
                continue;
            }
        };
        match frame {
            ClientFrame::Subscribe { topic } => {
                let room_id = topic.strip_prefix("chat:").unwrap_or_default().to_owned();
                let mut rooms = state.rooms.write();
                let answer = match rooms.get_mut(&room_id) {
                    Some(_) if subscribed.contains(&room_id) => {
                        error_frame("ALREADY_SUBSCRIBED", "already subscribed", "")
                    }
                    Some(room) if room.members.contains(&user) => {
                        room.subscribers.push(tx.clone());
                        subscribed.push(room_id);
                        let head = state.seq.load(Ordering::Relaxed);
                        serde_json::json!({ "type": "subscribed", "topic": topic, "headSeq": head })
                            .to_string()
                            .into()
                    }
                    _ => error_frame("FORBIDDEN", "not a member of that room", ""),
                };
                let _ = tx.try_send(answer);
            }
            ClientFrame::Send {
                reference,
                room_id,
                body,
            } => {
                let member = state
                    .rooms
                    .read()
                    .get(&room_id)
                    .is_some_and(|room| room.members.contains(&user));
                if !member {
                    let _ = tx.try_send(error_frame("FORBIDDEN", "not a member", &reference));
                    continue;
                }
                let accepted = Accepted {
                    reference,
                    room: room_id,
                    actor: user.clone(),
                    body,
                    reply: tx.clone(),
                };
                match &state.commits {
                    Some(commits) => {
                        if let Err(refused) = commits.send(accepted).await {
                            let reference = &refused.0.reference;
                            let frame =
                                error_frame("UNAVAILABLE", "the commit thread stopped", reference);
                            let _ = tx.try_send(frame);
                        }
                    }
                    None => deliver(&state, accepted),
                }
            }
        }
    }
    let mut rooms = state.rooms.write();
    for room_id in subscribed {
        if let Some(room) = rooms.get_mut(&room_id) {
            room.subscribers
                .retain(|subscriber| !subscriber.same_channel(&tx));
        }
    }
    drop(rooms);
    writer.abort();
}

/// Writes a socket's queued frames, every one that is waiting to one flush. (Frames for a
/// socket whose queue is full are dropped; the generator counts them as missing.)
async fn write_frames(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut frames: mpsc::Receiver<Utf8Bytes>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while frames.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        for frame in batch.drain(..) {
            if sink.feed(Message::Text(frame)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct BaselineCli {
        #[command(flatten)]
        args: Args,
    }

    #[derive(Parser)]
    struct LoadCli {
        #[command(flatten)]
        args: crate::chat_load::Args,
    }

    /// The generator drives the baseline as it drives girok: every message acked and
    /// delivered to every other member, in both durabilities.
    #[test]
    fn the_generator_gets_every_ack_and_delivery_from_the_baseline() {
        for durability in ["sync", "none"] {
            let baseline = BaselineCli::parse_from(["chat-baseline", "--durability", durability]);
            let (app, _temp) = app(&baseline.args).unwrap();
            let url = crate::baseline::serve_for_test(app);
            let load = LoadCli::parse_from([
                "chat-load",
                "--url",
                &url,
                "--clients",
                "20",
                "--rooms",
                "4",
                "--users",
                "10",
                "--rate",
                "200",
                "--warmup",
                "1",
                "--seconds",
                "1",
                "--drain",
                "1",
            ]);
            let figures = serde_json::to_value(crate::chat_load::run(&load.args).unwrap()).unwrap();
            let count = |key: &str| figures[key].as_u64().unwrap();
            assert!(count("sent") >= 150, "{durability}: {figures}");
            assert_eq!(count("acked"), count("sent"), "{durability}: {figures}");
            assert!(
                count("expected_deliveries") >= 4 * count("sent"),
                "{durability}: {figures}"
            );
            assert_eq!(
                count("delivered"),
                count("expected_deliveries"),
                "{durability}"
            );
            assert_eq!(count("missing_deliveries"), 0, "{durability}");
            assert_eq!(
                figures["errors_by_code"],
                serde_json::json!({}),
                "{durability}"
            );
        }
    }

    /// Its inputs are bounded as girok's are: a long name or member list is refused, a second
    /// subscription to a room is refused, a frame past the limit closes the connection.
    #[test]
    fn the_baseline_refuses_what_girok_refuses() {
        let baseline = BaselineCli::parse_from(["chat-baseline", "--durability", "none"]);
        let (app, _temp) = app(&baseline.args).unwrap();
        let base = crate::baseline::serve_for_test(app);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let http = reqwest::Client::new();
            let register = |name: String| {
                http.post(format!("{base}/v1/auth/register"))
                    .json(&serde_json::json!({ "username": name }))
                    .send()
            };
            let long = register("x".repeat(crate::baseline::MAX_NAME_CHARS + 1))
                .await
                .unwrap();
            assert_eq!(long.status(), StatusCode::UNPROCESSABLE_ENTITY);
            let account = crate::client::account(&http, &base, "ann".into(), "pw")
                .await
                .unwrap();
            let too_many = vec![account.id.clone(); MAX_MEMBERS + 1];
            let crowded = http
                .post(format!("{base}/v1/rooms"))
                .bearer_auth(&account.token)
                .json(&serde_json::json!({ "memberIds": too_many }))
                .send()
                .await
                .unwrap();
            assert_eq!(crowded.status(), StatusCode::UNPROCESSABLE_ENTITY);
            let room: crate::client::IdBody = http
                .post(format!("{base}/v1/rooms"))
                .bearer_auth(&account.token)
                .json(&serde_json::json!({ "memberIds": [] }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let request =
                crate::client::ws_request(&crate::client::ws_url(&base), &account.token).unwrap();
            let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
            let subscribe = format!(r#"{{"type":"subscribe","topic":"chat:{}"}}"#, room.id);
            let mut answers = Vec::new();
            for _ in 0..2 {
                socket.send(subscribe.as_str().into()).await.unwrap();
                answers.push(socket.next().await.unwrap().unwrap().into_text().unwrap());
            }
            assert!(answers[0].contains(r#""type":"subscribed""#), "{answers:?}");
            assert!(answers[1].contains("ALREADY_SUBSCRIBED"), "{answers:?}");
            let huge = "x".repeat(crate::baseline::MAX_FRAME_BYTES + 1);
            let _ = socket.send(huge.as_str().into()).await;
            let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                loop {
                    match socket.next().await {
                        None | Some(Err(_)) => return,
                        Some(Ok(message)) if message.is_close() => return,
                        Some(Ok(_)) => {}
                    }
                }
            })
            .await;
            assert!(
                closed.is_ok(),
                "a frame past the limit left the connection open"
            );
        });
    }
}
