//! `matching-baseline`: the seed design's matching service as a server of its own, for
//! `girok-bench matching` to compare girok with in the same run. Seed 000 keeps the waiting
//! users in a Valkey sorted set scored by join time (JoinQueue, LeaveQueue, SkipUser) and
//! tells both users of a match over WebSocket; this is the same algorithm in memory, in one
//! process: a sorted set of waiting users (the longest waiting is popped for a newcomer), the
//! current matches, and one WebSocket per user. It speaks the subset of girok's API the load
//! generator uses (register, login, `/ws` with the `matching` topic and the `join`, `skip` and
//! `leave` frames, `POST/DELETE /v1/matching/queue`, `POST /v1/matching/skip`), with the same
//! JSON, so that the generator drives both alike. Nothing is durable: no log, no fsync, as the seed's Valkey keeps the
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
    crate::baseline::serve(args.addr, app())
}

fn app() -> axum::Router {
    crate::baseline::account_routes::<Baseline>()
        .route("/ws", get(socket))
        .route("/v1/matching/queue", post(join).delete(leave))
        .route("/v1/matching/skip", post(skip))
        .with_state(Shared::default())
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
        let Message::Text(text) = message else {
            continue;
        };
        // What girok refuses with `BAD_FRAME` the baseline refuses too (an answer is owed).
        let frame = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
        let reference = &frame["ref"];
        let answer = match frame["type"].as_str() {
            Some("subscribe") => {
                json!({ "type": "subscribed", "topic": frame["topic"], "headSeq": 0 })
            }
            Some("join") => match join_queue(&state, &user) {
                Ok(joined) => ack(reference, joined.seq, joined.matched),
                Err(code) => socket_refusal(reference, code),
            },
            Some("leave") => match leave_queue(&state, &user) {
                Ok(seq) => ack(reference, seq, None),
                Err(code) => socket_refusal(reference, code),
            },
            Some("skip") => match skip_match(&state, &user, frame["requeue"].as_bool()) {
                Ok(seq) => ack(reference, seq, None),
                Err(code) => socket_refusal(reference, code),
            },
            _ => socket_refusal(reference, "BAD_FRAME"),
        };
        let _ = tx.try_send(answer.to_string());
    }
    state.sockets.lock().remove(&user);
    writer.abort();
}

/// girok's `matchingAck`.
fn ack(reference: &Value, seq: u64, matched: Option<(String, String)>) -> Value {
    let matched =
        matched.map(|(room, partner)| json!({ "roomId": room, "partnerId": partner, "seq": seq }));
    json!({ "type": "matchingAck", "ref": reference, "seq": seq, "matched": matched })
}

/// girok's error frame answering the frame `reference` named.
fn socket_refusal(reference: &Value, code: &str) -> Value {
    json!({ "type": "error", "code": code, "message": code, "ref": reference })
}

/// A refusal over REST: girok's status for the code.
fn http_refusal(code: &str) -> Response {
    let status = match code {
        "INVALID_ARGUMENT" => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::CONFLICT,
    };
    refused(status, code)
}

fn push(state: &Baseline, user: &str, frame: String) {
    if let Some(socket) = state.sockets.lock().get(user) {
        let _ = socket.try_send(frame);
    }
}

/// A join's outcome: its seq, the match it made (room, partner) and who waits after it.
struct Joined {
    seq: u64,
    matched: Option<(String, String)>,
    waiting: usize,
}

/// JoinQueue: the longest waiting user meets the newcomer, who otherwise waits.
fn join_queue(state: &Baseline, me: &str) -> Result<Joined, &'static str> {
    let mut queue = state.queue.lock();
    if queue.place.contains_key(me) {
        return Err("ALREADY_QUEUED");
    }
    if queue.matched.contains_key(me) {
        return Err("ALREADY_MATCHED");
    }
    queue.next += 1;
    let seq = queue.next;
    // ZPOPMIN: the longest waiting user meets the newcomer.
    let Some((_, partner)) = queue.waiting.pop_first() else {
        queue.waiting.insert(seq, me.to_owned());
        queue.place.insert(me.to_owned(), seq);
        let waiting = queue.waiting.len();
        return Ok(Joined {
            seq,
            matched: None,
            waiting,
        });
    };
    queue.place.remove(&partner);
    let room = uuid::Uuid::now_v7().to_string();
    queue
        .matched
        .insert(me.to_owned(), (partner.clone(), room.clone()));
    queue
        .matched
        .insert(partner.clone(), (me.to_owned(), room.clone()));
    let waiting = queue.waiting.len();
    drop(queue);
    let frame = json!({ "type": "matched", "topic": "matching", "seq": seq, "roomId": room,
                        "partner": { "id": me } });
    push(state, &partner, frame.to_string());
    Ok(Joined {
        seq,
        matched: Some((room, partner)),
        waiting,
    })
}

async fn join(State(state): State<Shared>, Caller(me): Caller) -> Response {
    let joined = match join_queue(&state, &me) {
        Ok(joined) => joined,
        Err(code) => return http_refusal(code),
    };
    let waiting = joined.waiting;
    let body = match joined.matched {
        None => {
            let status =
                json!({ "queued": { "seq": joined.seq }, "waiting": waiting, "match": null });
            json!({ "seq": joined.seq, "matched": null, "status": status })
        }
        Some((room, partner)) => {
            let matched =
                json!({ "roomId": room, "partner": { "id": partner }, "seq": joined.seq });
            let status = json!({ "queued": null, "waiting": waiting, "match": matched });
            json!({ "seq": joined.seq, "matched": matched, "status": status })
        }
    };
    (StatusCode::CREATED, Json(body)).into_response()
}

/// LeaveQueue: the seq the user waited under.
fn leave_queue(state: &Baseline, me: &str) -> Result<u64, &'static str> {
    let mut queue = state.queue.lock();
    let place = queue.place.remove(me).ok_or("NOT_QUEUED")?;
    queue.waiting.remove(&place);
    Ok(place)
}

async fn leave(State(state): State<Shared>, Caller(me): Caller) -> Response {
    match leave_queue(&state, &me) {
        Ok(seq) => Json(json!({ "seq": seq })).into_response(),
        Err(code) => http_refusal(code),
    }
}

#[derive(Deserialize)]
struct SkipParams {
    requeue: Option<bool>,
}

/// SkipUser without queueing again (the only kind the generator sends): the partner hears it.
fn skip_match(state: &Baseline, me: &str, requeue: Option<bool>) -> Result<u64, &'static str> {
    if requeue.unwrap_or(true) {
        return Err("INVALID_ARGUMENT");
    }
    let mut queue = state.queue.lock();
    let (partner, room) = queue.matched.remove(me).ok_or("NOT_MATCHED")?;
    queue.matched.remove(&partner);
    queue.next += 1;
    let seq = queue.next;
    drop(queue);
    let frame = json!({ "type": "skipped", "topic": "matching", "seq": seq, "roomId": room,
                        "byMe": false });
    push(state, &partner, frame.to_string());
    Ok(seq)
}

async fn skip(
    State(state): State<Shared>,
    Caller(me): Caller,
    Query(params): Query<SkipParams>,
) -> Response {
    match skip_match(&state, &me, params.requeue) {
        Ok(seq) => Json(json!({ "seq": seq })).into_response(),
        Err(code) => http_refusal(code),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser)]
    struct LoadCli {
        #[command(flatten)]
        args: crate::matching::Args,
    }

    /// The generator drives the baseline as it drives girok, over both transports: every
    /// scheduled join acknowledged, half of them matches, every partner told, nothing refused.
    #[test]
    fn the_generator_gets_every_join_match_and_skip_from_the_baseline() {
        for via in ["ws", "http"] {
            let url = crate::baseline::serve_for_test(super::app());
            let load = LoadCli::parse_from([
                "matching",
                "--url",
                &url,
                "--users",
                "40",
                "--rate",
                "200",
                "--warmup",
                "1",
                "--seconds",
                "1",
                "--via",
                via,
                // The baseline serves from this process: its threads are the server's.
                "--server-pid",
                &std::process::id().to_string(),
            ]);
            let figures = serde_json::to_value(crate::matching::run(&load.args).unwrap()).unwrap();
            let girok = &figures["girok"];
            let figure = |key: &str| girok[key].as_f64().unwrap();
            assert_eq!(figures["via"], via, "{figures}");
            assert_eq!(girok["starved"], 0, "{via}: {figures}");
            assert_eq!(girok["refused"], serde_json::json!({}), "{via}: {figures}");
            assert_eq!(figure("joins_per_sec"), 200.0, "{via}: {figures}");
            assert!(
                (figure("matches_per_sec") - 100.0).abs() <= 1.0,
                "{via}: {figures}"
            );
            assert_eq!(girok["partner_missing"], 0, "{via}: {figures}");
            let threads = girok["server_threads"].as_object().unwrap();
            assert!(
                threads.values().any(|cores| cores.as_f64().unwrap() > 0.0),
                "{via}: {figures}"
            );
            assert!(
                girok["partner_notified"]["p99_us"].as_u64().unwrap() > 0,
                "{via}: {figures}"
            );
        }
    }
}
