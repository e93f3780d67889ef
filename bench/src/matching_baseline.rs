//! `matching-baseline`: the seed design's matching service as a server of its own, for
//! `girok-bench matching` to compare girok with in the same run. Seed 000 keeps the waiting
//! users in a Valkey sorted set scored by join time (JoinQueue, LeaveQueue, SkipUser) and
//! tells both users of a match over WebSocket; this is the same algorithm in memory, in one
//! process: a sorted set of waiting users (the longest waiting is popped for a newcomer), the
//! current matches, and one WebSocket per user. It speaks the subset of girok's API the load
//! generator uses (register, login, `/ws` with the `matching` topic, `POST/DELETE
//! /v1/matching/queue`, `POST /v1/matching/skip`), with the same JSON, so that the generator
//! drives both alike. Nothing is durable: no log, no fsync, as the seed's Valkey keeps the
//! queue in memory. Accounts are names mapped to ids; a token is the user's id.

use crate::baseline::{Accounts, Caller, HasAccounts, refused};
use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free one (printed as `baseline listening on URL`).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: std::net::SocketAddr,
}

/// Frames a user's socket may have queued before newer ones are dropped.
const SOCKET_QUEUE: usize = 1024;

#[derive(Default)]
struct Queue {
    /// The sorted set: `(join order) -> user`, the smallest waited longest.
    waiting: BTreeMap<u64, String>,
    /// Each waiting user's place in `waiting`.
    place: HashMap<String, u64>,
    /// Each matched user's partner and room.
    matched: HashMap<String, (String, String)>,
    next: u64,
}

#[derive(Default)]
struct Baseline {
    queue: Mutex<Queue>,
    accounts: Accounts,
    sockets: Mutex<HashMap<String, mpsc::Sender<String>>>,
}

type Shared = Arc<Baseline>;

impl HasAccounts for Baseline {
    fn accounts(&self) -> &Accounts {
        &self.accounts
    }
}

/// Serves until SIGTERM or SIGINT.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let app = crate::baseline::account_routes::<Baseline>()
        .route("/ws", get(socket))
        .route("/v1/matching/queue", post(join).delete(leave))
        .route("/v1/matching/skip", post(skip))
        .with_state(Shared::default());
    crate::baseline::serve(args.addr, app)
}

async fn socket(
    State(state): State<Shared>,
    Caller(user): Caller,
    upgrade: WebSocketUpgrade,
) -> Response {
    crate::baseline::accept_socket(upgrade, state, user, serve_socket)
}

async fn serve_socket(state: Shared, user: String, socket: WebSocket) {
    let (tx, mut rx) = mpsc::channel::<String>(SOCKET_QUEUE);
    state.sockets.lock().insert(user.clone(), tx.clone());
    let (mut sink, mut stream) = socket.split();
    let welcome = json!({ "type": "welcome", "userId": user, "headSeq": 0 }).to_string();
    let _ = tx.try_send(welcome);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.send(Message::Text(frame.into())).await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        if let Message::Text(text) = message
            && let Ok(frame) = serde_json::from_str::<Value>(&text)
            && frame["type"] == "subscribe"
        {
            let answer = json!({ "type": "subscribed", "topic": frame["topic"], "headSeq": 0 });
            let _ = tx.try_send(answer.to_string());
        }
    }
    state.sockets.lock().remove(&user);
    writer.abort();
}

fn push(state: &Baseline, user: &str, frame: String) {
    if let Some(socket) = state.sockets.lock().get(user) {
        let _ = socket.try_send(frame);
    }
}

async fn join(State(state): State<Shared>, Caller(me): Caller) -> Response {
    let mut queue = state.queue.lock();
    if queue.place.contains_key(&me) {
        return refused(StatusCode::CONFLICT, "ALREADY_QUEUED");
    }
    if queue.matched.contains_key(&me) {
        return refused(StatusCode::CONFLICT, "ALREADY_MATCHED");
    }
    queue.next += 1;
    let seq = queue.next;
    // ZPOPMIN: the longest waiting user meets the newcomer.
    let Some((_, partner)) = queue.waiting.pop_first() else {
        queue.waiting.insert(seq, me.clone());
        queue.place.insert(me, seq);
        let waiting = queue.waiting.len();
        let status = json!({ "queued": { "seq": seq }, "waiting": waiting, "match": null });
        let body = json!({ "seq": seq, "matched": null, "status": status });
        return (StatusCode::CREATED, Json(body)).into_response();
    };
    queue.place.remove(&partner);
    let room = uuid::Uuid::now_v7().to_string();
    queue
        .matched
        .insert(me.clone(), (partner.clone(), room.clone()));
    queue
        .matched
        .insert(partner.clone(), (me.clone(), room.clone()));
    let waiting = queue.waiting.len();
    drop(queue);
    let frame = json!({ "type": "matched", "topic": "matching", "seq": seq, "roomId": room,
                        "partner": { "id": me } });
    push(&state, &partner, frame.to_string());
    let matched = json!({ "roomId": room, "partner": { "id": partner }, "seq": seq });
    let status = json!({ "queued": null, "waiting": waiting, "match": matched });
    let body = json!({ "seq": seq, "matched": matched, "status": status });
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn leave(State(state): State<Shared>, Caller(me): Caller) -> Response {
    let mut queue = state.queue.lock();
    match queue.place.remove(&me) {
        Some(place) => {
            queue.waiting.remove(&place);
            Json(json!({ "seq": place })).into_response()
        }
        None => refused(StatusCode::CONFLICT, "NOT_QUEUED"),
    }
}

#[derive(Deserialize)]
struct SkipParams {
    requeue: Option<bool>,
}

async fn skip(
    State(state): State<Shared>,
    Caller(me): Caller,
    Query(params): Query<SkipParams>,
) -> Response {
    if params.requeue.unwrap_or(true) {
        return refused(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ARGUMENT");
    }
    let mut queue = state.queue.lock();
    let Some((partner, room)) = queue.matched.remove(&me) else {
        return refused(StatusCode::CONFLICT, "NOT_MATCHED");
    };
    queue.matched.remove(&partner);
    queue.next += 1;
    let seq = queue.next;
    drop(queue);
    let frame = json!({ "type": "skipped", "topic": "matching", "seq": seq, "roomId": room,
                        "byMe": false });
    push(&state, &partner, frame.to_string());
    Json(json!({ "seq": seq })).into_response()
}
