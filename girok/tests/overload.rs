//! Overload through the real binary: bursts beyond what girok can do are refused at once with
//! a typed answer and a wait (`OVERLOADED` + `Retry-After`), in bounded memory, and nothing
//! acknowledged is lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Server;
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The resident memory of `pid`, KiB, if it still runs.
fn try_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The server's resident memory, KiB.
fn rss_kib(pid: u32) -> u64 {
    try_rss_kib(pid).expect("VmRSS in /proc/<pid>/status")
}

/// Samples the peak RSS of `pid` until dropped.
struct PeakRss {
    peak: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl PeakRss {
    fn watch(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(kib) = try_rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self { peak, stop }
    }

    fn mib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed) / 1024
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What one request of a burst got back.
#[derive(Debug)]
struct Answer {
    status: u16,
    code: String,
    retry_after: Option<u64>,
}

async fn post(server: &Server, path: &str, body: Value) -> Answer {
    let response = server
        .client
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = common::header(&response, "retry-after").map(|v| v.parse().unwrap());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
    Answer {
        status,
        code,
        retry_after,
    }
}

fn registration(name: &str) -> Value {
    json!({ "username": name, "email": format!("{name}@example.org"),
            "password": "password123", "displayName": name })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_logins_and_registrations_is_shed_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // The login limits would refuse most of the burst by themselves: out of the way, so that
    // the hashing pool is what is measured.
    let server = Server::start_with_config(
        dir.path(),
        "[auth]\nlogin_per_minute_per_ip = 1000000\nlogin_per_minute_per_username = 1000000\npassword_threads = 1\n",
    );
    let pid = server.child.id();
    for i in 0..10 {
        let answer = post(
            &server,
            "/v1/auth/register",
            registration(&format!("known{i}")),
        )
        .await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let before = rss_kib(pid) / 1024;
    let peak = PeakRss::watch(pid);

    // 2,000 registrations and 2,000 logins, 200 in flight at a time.
    let requests = (0..4000).map(|i| {
        let server = &server;
        async move {
            if i % 2 == 0 {
                let name = format!("burst{i}");
                (
                    "register",
                    post(server, "/v1/auth/register", registration(&name)).await,
                )
            } else {
                let body =
                    json!({ "username": format!("known{}", i % 10), "password": "password123" });
                ("login", post(server, "/v1/auth/login", body).await)
            }
        }
    });
    let answers: Vec<(&str, Answer)> = futures::stream::iter(requests)
        .buffer_unordered(200)
        .collect()
        .await;

    let mut tally: BTreeMap<(&str, u16, String), usize> = BTreeMap::new();
    for (what, answer) in &answers {
        *tally
            .entry((*what, answer.status, answer.code.clone()))
            .or_default() += 1;
        match answer.status {
            200 | 201 => {}
            429 => {
                assert_eq!(answer.code, "OVERLOADED", "{answer:?}");
                let wait = answer.retry_after.expect("a 429 says how long to wait");
                assert!((1..=60).contains(&wait), "{answer:?}");
            }
            _ => panic!("{what}: unexpected answer {answer:?}"),
        }
    }
    let peak_mib = peak.mib();
    eprintln!("answers: {tally:?}; RSS {before} MiB before, peak {peak_mib} MiB");
    let shed = answers.iter().filter(|(_, a)| a.status == 429).count();
    let served = |what: &str| {
        answers
            .iter()
            .filter(|(w, a)| *w == what && a.status < 300)
            .count()
    };
    assert!(
        shed > 0,
        "one hashing thread cannot take 4,000 hashes at once"
    );
    assert_eq!(
        server.metric("girok_password_queue_full_total").await,
        shed as u64
    );
    assert!(served("register") > 0 && served("login") > 0, "{tally:?}");
    assert!(
        peak_mib < 300,
        "RSS peaked at {peak_mib} MiB during the burst (before: {before} MiB)"
    );

    // Once the burst is over, the pool has room again.
    let answer = post(
        &server,
        "/v1/auth/login",
        json!({ "username": "known0", "password": "password123" }),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

/// A server whose writer takes one command per batch and queues one more: any burst fills
/// it, so the shedding is seen without a machine-sized flood.
fn tiny_writer(dir: &std::path::Path) -> Server {
    Server::start_with_config(
        dir,
        "[storage]\nqueue = 1\nmax_batch = 1\n[ws]\nsends_per_second = 100000\nsend_burst = 100000\nmax_sends_in_flight = 1000\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_write_flood_is_shed_with_error_frames_and_loses_nothing_acked() {
    use common::sockets::{connect, next, send};
    let dir = tempfile::tempdir().unwrap();
    let server = tiny_writer(dir.path());
    let token = server.sign_in("flood").await;
    let room = server.create_room("flood").await;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let mut socket = connect(&server, Some(&token)).await;
        assert_eq!(next(&mut socket).await["type"], "welcome");
        sockets.push(socket);
    }
    const PER_SOCKET: usize = 500;
    for (s, socket) in sockets.iter_mut().enumerate() {
        for i in 0..PER_SOCKET {
            let id = format!("s{s}-{i}");
            send(
                socket,
                json!({ "type": "send", "ref": id, "clientId": id, "roomId": room, "body": "flood" }),
            )
            .await;
        }
    }
    let (mut acked, mut shed, mut last_seq) = (Vec::new(), 0usize, 0);
    for socket in &mut sockets {
        let mut answered = 0;
        while answered < PER_SOCKET {
            let frame = next(socket).await;
            match frame["type"].as_str() {
                Some("ack") => {
                    acked.push(frame["ref"].as_str().unwrap().to_owned());
                    last_seq = frame["seq"].as_u64().unwrap().max(last_seq);
                }
                Some("error") => {
                    assert_eq!(frame["code"], "OVERLOADED", "{frame}");
                    assert!(frame["ref"].is_string(), "{frame}");
                    assert!(frame["retryAfterMs"].as_u64().unwrap() >= 1, "{frame}");
                    shed += 1;
                }
                _ => continue,
            }
            answered += 1;
        }
    }
    eprintln!("{} acked, {shed} shed", acked.len());
    assert!(
        shed > 0,
        "a one-command queue cannot take 2,000 pipelined sends"
    );
    assert!(!acked.is_empty());

    // Exactly the acknowledged messages are in the room: nothing refused was written.
    let mut written: Vec<String> = server
        .history(&room, last_seq)
        .await
        .iter()
        .map(|m| m["clientId"].as_str().unwrap().to_owned())
        .collect();
    written.sort();
    acked.sort();
    assert_eq!(written, acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_write_flood_is_answered_429_with_retry_after_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = tiny_writer(dir.path());
    let token = server.sign_in("flood").await;
    let room = server.create_room("flood").await;
    let rest = (0..600).map(|i| {
        let (server, token, room) = (&server, &token, &room);
        async move {
            let started = std::time::Instant::now();
            let response = server
                .client
                .post(server.url(&format!("/v1/rooms/{room}/messages")))
                .bearer_auth(token)
                .json(&json!({ "body": "flood", "clientId": format!("rest-{i}") }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.unwrap();
            (
                format!("rest-{i}"),
                status,
                retry_after,
                body,
                started.elapsed(),
            )
        }
    });
    let answers: Vec<_> = futures::stream::iter(rest)
        .buffer_unordered(100)
        .collect()
        .await;
    let mut acked = Vec::new();
    let (mut shed, mut last_seq) = (0, 0);
    for (id, status, retry_after, body, took) in &answers {
        match status {
            201 => {
                acked.push(id.clone());
                last_seq = body["seq"].as_u64().unwrap().max(last_seq);
            }
            429 => {
                assert_eq!(body["error"]["code"], "OVERLOADED", "{body}");
                let wait: u64 = retry_after
                    .as_ref()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(wait >= 1);
                // Refused at once, not after a wait in a queue.
                assert!(*took < Duration::from_secs(5), "{took:?}");
                shed += 1;
            }
            _ => panic!("unexpected {status}: {body}"),
        }
    }
    eprintln!("REST: {} acked, {shed} shed", acked.len());
    assert!(
        shed > 0,
        "a one-command queue cannot take 100 writes at once"
    );

    // GraphQL says the same in extensions.
    let graphql = (0..300).map(|i| {
        let (server, room) = (&server, &room);
        async move {
            server
                .gql_status(
                    "mutation($r: ID!, $c: String) { sendMessage(roomId: $r, body: \"flood\", clientId: $c) { seq } }",
                    json!({ "r": room, "c": format!("gql-{i}") }),
                )
                .await
        }
    });
    let answers: Vec<_> = futures::stream::iter(graphql)
        .buffer_unordered(100)
        .collect()
        .await;
    let mut gql_shed = 0;
    for (status, body) in &answers {
        assert_eq!(*status, 200);
        if let Some(errors) = body.get("errors") {
            assert_eq!(errors[0]["extensions"]["code"], "OVERLOADED", "{body}");
            assert!(errors[0]["extensions"]["retryAfter"].as_u64().unwrap() >= 1);
            gql_shed += 1;
        }
    }
    eprintln!(
        "GraphQL: {} acked, {gql_shed} shed",
        answers.len() - gql_shed
    );
    assert!(gql_shed > 0);
    assert_eq!(
        server.metric("girok_log_queue_full_total").await,
        (shed + gql_shed) as u64
    );

    // Every acknowledged REST write is in the room, and no refused one.
    let mut written: Vec<String> = server
        .history(&room, last_seq)
        .await
        .iter()
        .filter_map(|m| m["clientId"].as_str())
        .filter(|c| c.starts_with("rest-"))
        .map(str::to_owned)
        .collect();
    written.sort();
    acked.sort();
    assert_eq!(written, acked);
}

/// Sends `count` messages to `room` over one pipelined WebSocket and waits for every ack.
async fn pipelined_sends(server: &Server, token: &str, room: &str, count: usize, tag: &str) {
    use common::sockets::{connect, next, send};
    let mut socket = connect(server, Some(token)).await;
    assert_eq!(next(&mut socket).await["type"], "welcome");
    for i in 0..count {
        let id = format!("{tag}-{i}");
        send(
            &mut socket,
            json!({ "type": "send", "ref": id, "clientId": id, "roomId": room, "body": "prefill" }),
        )
        .await;
    }
    let mut acked = 0;
    while acked < count {
        let frame = next(&mut socket).await;
        assert_ne!(frame["type"], "error", "{frame}");
        if frame["type"] == "ack" {
            acked += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_start_up_wait_for_the_views_or_answer_not_ready_never_half_built() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[ws]\nsends_per_second = 1000000\nsend_burst = 1000000\nmax_sends_in_flight = 2000\n[engine]\nread_wait_ms = 50\n";
    let server = Server::start_with_config(dir.path(), config);
    let token = server.sign_in("early").await;
    let room = server.create_room("held").await;
    let bulk = server.create_room("bulk").await;
    pipelined_sends(&server, &token, &room, 100, "held").await;
    // Enough other events that rebuilding the views takes a while.
    let prefill = std::time::Instant::now();
    let senders = (0..4).map(|s| {
        let (server, token, bulk) = (&server, &token, &bulk);
        async move { pipelined_sends(server, token, bulk, 10_000, &format!("bulk{s}")).await }
    });
    futures::future::join_all(senders).await;
    eprintln!("prefilled 40,100 messages in {:?}", prefill.elapsed());
    assert!(server.terminate().success());
    // A clean stop leaves a checkpoint at the head, from which the views resume at once;
    // without the view store (a first start on a log, or one an operator removed) they are
    // built from the whole log, and reads meanwhile must wait.
    std::fs::remove_dir_all(dir.path().join("data").join("views")).unwrap();

    let server = Server::start_with_config(dir.path(), config);
    server.set_token(&token);
    let path = format!("/v1/rooms/{room}/messages?first=100");
    let (mut not_ready, mut full) = (0, 0);
    let started = std::time::Instant::now();
    loop {
        let response = server
            .client
            .get(server.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.unwrap();
        match status {
            200 => {
                let messages = body["messages"].as_array().unwrap().len();
                assert_eq!(messages, 100, "a half-built history: {body}");
                full += 1;
            }
            503 => {
                assert_eq!(body["error"]["code"], "NOT_READY", "{body}");
                assert!(retry_after.is_some(), "{body}");
                not_ready += 1;
            }
            _ => panic!("unexpected {status}: {body}"),
        }
        // GraphQL says the same in extensions.
        let (status, body) = server
            .gql_status(
                "query($r: ID!) { messages(roomId: $r, first: 100) { nodes { id } } }",
                json!({ "r": room }),
            )
            .await;
        assert_eq!(status, 200);
        match body.get("errors") {
            Some(errors) => assert_eq!(errors[0]["extensions"]["code"], "NOT_READY", "{body}"),
            None => assert_eq!(
                body["data"]["messages"]["nodes"].as_array().unwrap().len(),
                100
            ),
        }
        if full >= 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "views never caught up"
        );
    }
    eprintln!(
        "{not_ready} reads answered NOT_READY, then {full} whole histories, after {:?}",
        started.elapsed()
    );
    assert!(
        not_ready > 0,
        "the first reads came before 40,000 events were rebuilt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_websocket_costs_little_memory() {
    use common::sockets::{connect, next};
    const SOCKETS: u64 = 4000;
    let dir = tempfile::tempdir().unwrap();
    // One user on one address holds them all.
    let server = Server::start_with_config(
        dir.path(),
        "[server]\nmax_connections_per_ip = 0\n[ws]\nmax_sockets_per_user = 5000\n",
    );
    let token = server.sign_in("idle").await;
    let pid = server.child.id();
    // Warm up the allocator and the runtime with a first batch that stays open too.
    let mut sockets = Vec::new();
    for _ in 0..50 {
        let mut socket = connect(&server, Some(&token)).await;
        assert_eq!(next(&mut socket).await["type"], "welcome");
        sockets.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    for _ in 0..SOCKETS {
        let mut socket = connect(&server, Some(&token)).await;
        assert_eq!(next(&mut socket).await["type"], "welcome");
        sockets.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_socket = rss_kib(pid).saturating_sub(before) / SOCKETS;
    eprintln!("RSS per idle WebSocket: {per_socket} KiB ({SOCKETS} sockets)");
    assert!(per_socket <= 16, "{per_socket} KiB per idle WebSocket");
}

/// Each thread of `pid` by name, with the time slice the kernel gives it (`se.slice`, ns; none
/// for a thread outside the fair class).
fn thread_slices(pid: u32) -> Vec<(String, Option<u64>)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            let sched = std::fs::read_to_string(path.join("sched")).ok()?;
            let slice = sched
                .lines()
                .find(|l| l.starts_with("se.slice"))
                .and_then(|l| l.rsplit(' ').next()?.trim().parse().ok());
            Some((name.trim().to_owned(), slice))
        })
        .collect()
}

/// The threads on the delivery path ask for the kernel's shortest slice, so that a woken ack
/// or delivery is not kept waiting for a background thread's (`storage/src/sched.rs`); the
/// background threads and the HTTP requests' runtime keep the default one, and so does every
/// thread when switched off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_path_threads_ask_for_the_shortest_time_slice() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    // A request, so that the requests' runtime has its threads (which keep the default).
    server.sign_in("slices").await;
    let threads = thread_slices(server.child.id());
    let slice_of = |prefix: &str| -> Vec<Option<u64>> {
        threads
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, slice)| *slice)
            .collect()
    };
    for short in ["girok-rt", "girok-log-write", "girok-log-sync", "girok-hub"] {
        let slices = slice_of(short);
        assert!(!slices.is_empty(), "no {short} thread in {threads:?}");
        assert!(
            slices.iter().all(|s| *s == Some(100_000)),
            "{short}: {slices:?}"
        );
    }
    for background in ["girok-http", "girok-search", "timely:work"] {
        let slices = slice_of(background);
        assert!(!slices.is_empty(), "no {background} thread in {threads:?}");
        assert!(
            slices.iter().all(|s| s.is_some_and(|ns| ns > 100_000)),
            "{background}: {slices:?}"
        );
    }
    drop(server);

    // `server.short_slices = false` leaves every thread the kernel's default.
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::start_with_env(dir.path(), &[], &[("GIROK__SERVER__SHORT_SLICES", "false")]);
    let threads = thread_slices(server.child.id());
    let defaults: Vec<_> = threads
        .iter()
        .filter(|(name, _)| name.starts_with("girok-rt") || name.starts_with("girok-log"))
        .collect();
    assert!(defaults.len() >= 3, "{threads:?}");
    assert!(
        defaults
            .iter()
            .all(|(_, s)| s.is_some_and(|ns| ns > 100_000)),
        "{defaults:?}"
    );
}

/// Sends SIGTERM without waiting for the exit.
fn sigterm(server: &Server) {
    let pid = server.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// The server (already sent SIGTERM at `started`) exits 0 before `limit` has passed: far
/// sooner than the 30 s a long poll or a socket could otherwise hold it (it takes well under a
/// second on an idle machine; the bound leaves room for a busy one).
fn exits_cleanly_within(mut server: Server, started: std::time::Instant, limit: Duration) {
    let status = common::wait_with_timeout(&mut server.child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < limit, "{:?}", started.elapsed());
}

/// The close code a socket ends with, reading (and so answering pings) until it does.
async fn close_code(socket: &mut common::sockets::Socket, within: Duration) -> Option<u16> {
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(within, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return None,
            }
        }
    })
    .await
    .expect("the socket ends in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_sockets_close_when_silent_and_every_socket_says_going_away_on_shutdown() {
    use common::sockets::{connect, graphql_ws, next};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(
        dir.path(),
        "[ws]\nheartbeat_ms = 200\nidle_timeout_ms = 2000\n",
    );
    let token = server.sign_in("sockets").await;
    let room = server.create_room("sockets").await;
    let init = json!({ "authorization": format!("Bearer {token}") });
    let subscription = "subscription($r: ID!) { messageAdded(roomId: $r) { id } }";

    // A silent client: it reads nothing, so it answers no ping.
    let (mut silent, ack) = graphql_ws(&server, init.clone()).await;
    assert_eq!(ack["type"], "connection_ack");
    silent
        .subscribe("1", subscription, json!({ "r": room }))
        .await;
    // A live one: it reads, so its client library answers every ping.
    let (mut live, ack) = graphql_ws(&server, init.clone()).await;
    assert_eq!(ack["type"], "connection_ack");
    live.subscribe("1", subscription, json!({ "r": room }))
        .await;
    let mut plain = connect(&server, Some(&token)).await;
    assert_eq!(next(&mut plain).await["type"], "welcome");

    // The clients that read (and so answer pings) stay connected past the idle timeout (2 s);
    // the silent one starts reading only once it was closed, within the server's closing
    // grace (2 s), so it finds the close frame.
    let (reading, silent_end) = tokio::join!(
        tokio::time::timeout(Duration::from_millis(4500), async {
            tokio::join!(
                async { while let Some(Ok(_)) = live.socket.next().await {} },
                async { while let Some(Ok(_)) = plain.next().await {} },
            )
        }),
        async {
            tokio::time::sleep(Duration::from_millis(3200)).await;
            close_code(&mut silent.socket, Duration::from_secs(5)).await
        },
    );
    assert!(reading.is_err(), "the reading clients stay connected");
    assert_eq!(
        silent_end,
        Some(4002),
        "the silent client is closed for idleness"
    );

    // SIGTERM: the open sockets get a close frame (1001) and girok exits at once.
    let started = std::time::Instant::now();
    sigterm(&server);
    assert_eq!(
        close_code(&mut live.socket, Duration::from_secs(5)).await,
        Some(1001)
    );
    assert_eq!(
        close_code(&mut plain, Duration::from_secs(5)).await,
        Some(1001)
    );
    exits_cleanly_within(server, started, Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_answer_within_the_request_timeout_and_end_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(dir.path(), "[server]\nrequest_timeout_secs = 3\n");
    // The documented maximum wait answers normally (an empty page), not 408 when the request
    // times out.
    let response = server
        .client
        .get(server.url("/v1/log/events?from=1000000&waitMs=30000"))
        .bearer_auth(server.operator_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["events"], json!([]));

    // A long poll in progress ends at once when girok stops.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let poll = {
        let (client, url, token) = (
            server.client.clone(),
            server.url("/v1/log/events?from=1000000&waitMs=30000"),
            server.operator_token(),
        );
        tokio::spawn(async move {
            let polled = client.get(url).bearer_auth(token).send().await;
            polled.map(|r| r.status().as_u16())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    sigterm(&server);
    let answered = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("the long poll ends with the shutdown")
        .unwrap();
    assert_eq!(answered.unwrap(), 200);
    exits_cleanly_within(server, started, Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graphql_subscriber_that_stops_reading_a_busy_room_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    // A long idle timeout: only the write timeout can cut this client.
    let server = Server::start_with_config(
        dir.path(),
        "[ws]\nsends_per_second = 100000\nsend_burst = 100000\nwrite_timeout_ms = 500\nidle_timeout_ms = 600000\n",
    );
    let token = server.sign_in("busy").await;
    let room = server.create_room("busy").await;

    // The subscriber, through a small receive buffer, subscribes and then reads nothing.
    let request = common::sockets::graphql_request(&server);
    let mut reader = common::sockets::connect_small_buffer(&server, request).await;
    common::sockets::send(
        &mut reader,
        json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }),
    )
    .await;
    assert_eq!(
        common::sockets::next(&mut reader).await["type"],
        "connection_ack"
    );
    common::sockets::send(
        &mut reader,
        json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "subscription($r: ID!) { messageAdded(roomId: $r) { id body } }",
            "variables": { "r": room } } }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // 1,000 messages of 4 KB: far more than the socket buffers hold.
    let body = "x".repeat(4000);
    let mut sender = common::sockets::connect(&server, Some(&token)).await;
    for i in 0..1000 {
        common::sockets::send(
            &mut sender,
            json!({ "type": "send", "ref": i.to_string(), "roomId": room, "body": body }),
        )
        .await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.metric("girok_ws_slow_consumer_closes_total").await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the subscriber that reads nothing is cut"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ended = close_code(&mut reader, Duration::from_secs(20)).await;
    assert!(matches!(ended, None | Some(4003)), "{ended:?}");
}

/// Whether a GET of `url` answers within `within`.
async fn answers_within(url: &str, within: Duration) -> Option<u16> {
    let client = reqwest::Client::new();
    match tokio::time::timeout(within, client.get(url).send()).await {
        Ok(Ok(response)) => Some(response.status().as_u16()),
        _ => None,
    }
}

/// Waits (10 s at most) until `/healthz` answers 200 again once idle clients left.
async fn served_again(server: &Server) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while answers_within(&server.url("/healthz"), Duration::from_secs(5)).await != Some(200) {
        assert!(
            std::time::Instant::now() < deadline,
            "served again after the clients left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_girok_past_the_client_connection_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_under(
        &[],
        &dir.path().join("data"),
        &["--ops-addr", "127.0.0.1:0"],
        &[("GIROK__SERVER__MAX_CONNECTIONS", "4")],
    );
    let ops = server.ops_base.clone().expect("the ops listener's address");
    let addr = server.base.trim_start_matches("http://").to_owned();
    // Four idle client connections take every slot of the client listener.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The client listener is full: a new client is refused at once, with a reason.
    let response = server.get("/healthz").await;
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TOO_MANY_CONNECTIONS");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("server.max_connections"), "{message}");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let status = answers_within(&format!("{ops}{path}"), Duration::from_secs(5)).await;
        assert_eq!(status, Some(200), "{path} on the ops listener");
    }
    // Only the operators' endpoints live there.
    let status = answers_within(&format!("{ops}/graphql"), Duration::from_secs(5)).await;
    assert_eq!(status, Some(404));
    // Once girok has seen the idle clients go, new ones are served again.
    drop(idle);
    served_again(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_held_back_before_descriptors_run_out_and_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    // A hard limit of 1,000 descriptors: 256 table files and 320 others (the runtime, the
    // operators' listener, refusals in progress) are kept back, so at most 424 client
    // connections, whatever server.max_connections (4,096) says.
    let server = Server::start_under(
        &["prlimit", "--nofile=1000:1000"],
        &dir.path().join("data"),
        &["--ops-addr", "127.0.0.1:0"],
        &[],
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 1000 ")),
        "{limits}"
    );
    let token = server.sign_in("fds").await;
    let room = server.create_room("fds").await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    // 600 idle connections: more than the descriptors left for clients. Those past the
    // ceiling are refused (and closed), not left to take descriptors.
    let mut idle = Vec::new();
    for _ in 0..600 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let ops = server.ops_base.clone().unwrap();
    let counts = || async {
        let metrics = reqwest::get(format!("{ops}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |name: &str| -> f64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        (
            value("girok_http_connections "),
            value("girok_http_connections_refused_total "),
        )
    };
    // Every connection is either accepted or refused once girok has gone through them.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (open, refused) = loop {
        let (open, refused) = counts().await;
        if open + refused >= 600.0 || std::time::Instant::now() > deadline {
            break (open, refused);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(open <= 424.0, "{open} client connections accepted");
    assert!(refused >= 176.0, "{refused} refused");
    drop(idle);
    served_again(&server).await;
    // Writes and reads go on once the clients are gone.
    let mut socket = common::sockets::connect(&server, Some(&token)).await;
    assert_eq!(common::sockets::next(&mut socket).await["type"], "welcome");
    common::sockets::send(
        &mut socket,
        json!({ "type": "send", "ref": "r", "roomId": room, "body": "still writing" }),
    )
    .await;
    let ack = common::sockets::next_of(&mut socket, "ack").await;
    assert_eq!(ack["ref"], "r");
    let seq = ack["seq"].as_u64().unwrap();
    assert_eq!(server.history(&room, seq).await.len(), 1);
    let status = answers_within(&format!("{ops}/readyz"), Duration::from_secs(5)).await;
    assert_eq!(status, Some(200));
}

/// A new connection to `address` that has sent `GET path` (nothing read yet).
async fn raw_get(address: &str, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream
}

/// A connection is served where its first request line says (`http::serve`: sockets on the
/// main runtime, requests on their own). A client that upgrades a kept-alive connection after
/// a plain request is upgraded where requests run (its loop then moves to the sockets'
/// runtime); its socket must work all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_opened_on_a_connection_that_served_a_request_works() {
    use common::sockets::{next, next_of, send, subscribe, upgrade_request};
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let token = server.sign_in("kept_alive").await;
    let room = server.create_room("kept alive").await;

    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = raw_get(&address, "/healthz").await;
    // The whole answer, and not a byte more: the head, then its content-length of body.
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "answer cut short");
        answer.push(byte[0]);
    }
    let head = String::from_utf8(answer).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .expect("a content-length")
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    assert!(!head.contains("connection: close"), "{head}");

    let request = upgrade_request(&server, Some(&token));
    let (mut socket, _) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .expect("the upgrade on the kept-alive connection");
    assert_eq!(next_of(&mut socket, "welcome").await["type"], "welcome");
    subscribe(&mut socket, &format!("chat:{room}")).await;
    send(
        &mut socket,
        json!({ "type": "send", "ref": "r1", "roomId": room, "body": "on a kept connection" }),
    )
    .await;
    // The ack and the room's event, in either order.
    let (mut acked, mut delivered) = (false, false);
    while !(acked && delivered) {
        let frame = next(&mut socket).await;
        match frame["type"].as_str() {
            Some("ack") => acked = frame["ref"] == "r1",
            Some("event") => {
                delivered = frame["event"]["payload"]["body"] == "on a kept connection";
            }
            _ => panic!("unexpected {frame}"),
        }
    }

    // A socket's request that is not an upgrade is answered and its connection closed: it
    // ran where sockets run, and no further request may.
    let mut refused = raw_get(&address, "/ws").await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), refused.read_to_end(&mut answer))
        .await
        .expect("the connection closed after its answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
}

/// Batches held back, and batches, after 20 messages posted one after another (each its own
/// batch) to a server busy at 0 % (any CPU use counts) spacing by `interval_us`.
async fn spaced_of_twenty_posts(interval_us: u64) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("[storage]\nbusy_cpu_percent = 0\nbusy_batch_interval_us = {interval_us}\n");
    let server = Server::start_with_config(dir.path(), &toml);
    server.sign_in("spaced").await;
    let room = server.create_room("spaced").await;
    for i in 0..20 {
        let body = json!({ "body": format!("in turn {i}") });
        let (status, answer) = server
            .post_json(&format!("/v1/rooms/{room}/messages"), body)
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    (
        server.metric("girok_log_paced_batches_total").await,
        server.metric("girok_log_batches_total").await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_server_spaces_its_batches_and_one_told_never_to_does_not() {
    let (paced, _) = spaced_of_twenty_posts(20_000).await;
    assert!(paced >= 5, "{paced} of 20 batches spaced");
    // Spacing off: none is, however busy.
    let (paced, batches) = spaced_of_twenty_posts(0).await;
    assert_eq!(paced, 0);
    assert!(batches >= 20, "{batches}");
}
