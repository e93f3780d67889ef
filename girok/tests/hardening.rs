//! Hardening through the real binary: requests that are cheap to send but could be costly to
//! serve are refused cheaply, and the server keeps answering everyone else meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sockets::{GraphqlWs, Socket, connect, graphql_ws, next, next_or_close, send};
use common::{SEND, Server, as_user, call};
use serde_json::{Value, json};
use std::time::Duration;

/// A GraphQL document of `levels` fragments, each spreading the one before twice: about 1 KB
/// that validation would walk 2^levels fields deep.
fn fragment_bomb(levels: usize) -> String {
    let mut text = format!("query {{ ...F{levels} }}\nfragment F0 on Query {{ __typename }}\n");
    for level in 1..=levels {
        let before = level - 1;
        text.push_str(&format!(
            "fragment F{level} on Query {{ ...F{before} ...F{before} }}\n"
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fragment_bombs_are_refused_before_validation_while_healthz_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let bomb = fragment_bomb(30);
    // Several at once: on a server that validated them, two were enough to stop every
    // worker (for minutes at this size).
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let bombs: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, bomb) = (client.clone(), server.url("/graphql"), bomb.clone());
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .json(&json!({ "query": bomb }))
                    .send()
                    .await
                    .expect("an answer within 20 s");
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    for _ in 0..5 {
        let healthz = client.get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(healthz.status().as_u16(), 200);
    }
    for bomb in bombs {
        let (status, body) = bomb.await.unwrap();
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "GRAPHQL_DOCUMENT_TOO_LARGE"
        );
    }

    // The same document over /graphql/ws: its subscription's one result is the error
    // (async-graphql answers a refused operation with `next` carrying errors).
    let token = server.sign_in("bomber").await;
    let (mut socket, ack) = graphql_ws(
        &server,
        json!({ "authorization": format!("Bearer {token}") }),
    )
    .await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    let subscription = bomb.replace("query {", "subscription {");
    socket.subscribe("1", &subscription, json!({})).await;
    let answer = socket.next_for("1").await;
    assert_eq!(answer["type"], "next", "{answer}");
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "GRAPHQL_DOCUMENT_TOO_LARGE",
        "{answer}"
    );

    // Too many fragment definitions, each small, are refused too; an ordinary document with
    // a few fragments still runs.
    let many: String = (0..200)
        .map(|i| format!("fragment G{i} on Query {{ __typename }}\n"))
        .collect();
    let (status, body) = server
        .gql_status(&format!("query {{ ...G0 }}\n{many}"), json!({}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_DOCUMENT_TOO_LARGE"
    );
    let data = server
        .gql(
            "query { ...A } fragment A on QueryRoot { me { ...B } } fragment B on User { id username }",
            json!({}),
        )
        .await;
    assert_eq!(data["me"]["username"], "bomber");
}

/// Logs `name` in (a new session); returns (access token, refresh token).
async fn login(server: &Server, name: &str) -> (String, String) {
    let response = server
        .client
        .post(server.url("/v1/auth/login"))
        .json(&json!({ "username": name, "password": "password123" }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let access = body["accessToken"].as_str().expect("logged in").to_owned();
    (access, body["refreshToken"].as_str().unwrap().to_owned())
}

/// Refreshes with `refresh`: the status and the body.
async fn refresh_with(server: &Server, refresh: &str) -> (u16, Value) {
    let response = server
        .client
        .post(server.url("/v1/auth/refresh"))
        .json(&json!({ "refreshToken": refresh }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A `/ws` connection signed in with `token` (its welcome read).
async fn ws_as(server: &Server, token: &str) -> Socket {
    let mut socket = connect(server, Some(token)).await;
    assert_eq!(next(&mut socket).await["type"], "welcome");
    socket
}

/// A `/graphql/ws` connection signed in with `token`.
async fn graphql_ws_as(server: &Server, token: &str) -> GraphqlWs {
    let (socket, ack) = graphql_ws(
        server,
        json!({ "authorization": format!("Bearer {token}") }),
    )
    .await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
}

/// The `/ws` connection says why its session ended, then closes with `close`.
async fn ends_with(socket: &mut Socket, code: &str, close: u16) {
    let said = next_or_close(socket).await;
    assert_eq!(said["type"], "error", "{said}");
    assert_eq!(said["code"], code, "{said}");
    let closed = next_or_close(socket).await;
    assert_eq!(closed["code"], close, "{closed}");
}

/// The connection still answers.
async fn still_open(socket: &mut Socket) {
    send(socket, json!({ "type": "ping" })).await;
    assert_eq!(next(socket).await["type"], "pong");
}

async fn graphql_closes_with(socket: &mut GraphqlWs, close: u16) {
    let closed = next_or_close(&mut socket.socket).await;
    assert_eq!(closed["type"], "close", "{closed}");
    assert_eq!(closed["code"], close, "{closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_of_ending_a_session_closes_its_sockets_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    server.sign_in("ana").await;

    // Logout.
    let (token, _) = login(&server, "ana").await;
    let mut ws = ws_as(&server, &token).await;
    let mut gws = graphql_ws_as(&server, &token).await;
    let (other, _) = login(&server, "ana").await;
    let mut bystander = ws_as(&server, &other).await;
    let (status, _) = call(&server, "POST", "/v1/auth/logout", &token, None).await;
    assert_eq!(status, 204);
    ends_with(&mut ws, "SESSION_ENDED", 4004).await;
    graphql_closes_with(&mut gws, 4403).await;
    // Another session of the same user lives on.
    still_open(&mut bystander).await;

    // revokeSession, from another session.
    let (victim, _) = login(&server, "ana").await;
    let mut ws = ws_as(&server, &victim).await;
    let current = as_user(&server, &victim, "{ sessions { id current } }", json!({})).await;
    let id = current["data"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .clone();
    let revoked = as_user(
        &server,
        &other,
        "mutation($id: ID!) { revokeSession(id: $id) }",
        json!({ "id": id }),
    )
    .await;
    assert!(revoked.get("errors").is_none(), "{revoked}");
    ends_with(&mut ws, "SESSION_ENDED", 4004).await;
    still_open(&mut bystander).await;

    // A reused refresh token revokes its session.
    let (token, refresh) = login(&server, "ana").await;
    let mut ws = ws_as(&server, &token).await;
    for expected in [200, 401] {
        assert_eq!(refresh_with(&server, &refresh).await.0, expected);
    }
    ends_with(&mut ws, "SESSION_ENDED", 4004).await;

    // A password change ends every session: the bystander's sockets too.
    let mut gws = graphql_ws_as(&server, &other).await;
    let changed = as_user(
        &server,
        &other,
        "mutation { changePassword(currentPassword: \"password123\", newPassword: \"password456\") }",
        json!({}),
    )
    .await;
    assert!(changed.get("errors").is_none(), "{changed}");
    ends_with(&mut bystander, "SESSION_ENDED", 4004).await;
    graphql_closes_with(&mut gws, 4403).await;

    // A session already revoked cannot open a socket.
    let mut late = connect(&server, None).await;
    send(&mut late, json!({ "type": "auth", "token": other })).await;
    assert_eq!(next(&mut late).await["code"], "UNAUTHENTICATED");
}

/// The connection loop looks first at answers and the client's frames (most wake-ups are
/// one of them), yet a client that never stops sending does not keep it from hearing that
/// its session ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_even_while_its_socket_floods_frames() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    server.sign_in("ana").await;
    let (token, _) = login(&server, "ana").await;
    let (mut sink, mut stream) = ws_as(&server, &token).await.split();
    let ping = json!({ "type": "ping" }).to_string();
    let flood = tokio::spawn(async move {
        let mut sent = 0u64;
        while sink.send(Message::text(ping.clone())).await.is_ok() {
            sent += 1;
        }
        sent
    });
    // The flood is under way (its pongs come back) before the session ends.
    let mut pongs = 0u64;
    while pongs < 200 {
        let said = next_or_close(&mut stream).await;
        assert_ne!(said["type"], "close", "{said}");
        pongs += u64::from(said["type"] == "pong");
    }
    let (status, _) = call(&server, "POST", "/v1/auth/logout", &token, None).await;
    assert_eq!(status, 204);
    let (ended, closed) = tokio::time::timeout(Duration::from_secs(10), async {
        let mut ended = false;
        loop {
            let said = next_or_close(&mut stream).await;
            match said["type"].as_str() {
                Some("close") => return (ended, said["code"].clone()),
                Some("error") => ended |= said["code"] == "SESSION_ENDED",
                _ => {}
            }
        }
    })
    .await
    .expect("the session's end in time while the client floods");
    assert!(ended, "an error frame said why");
    assert_eq!(closed, 4004);
    let sent = tokio::time::timeout(Duration::from_secs(10), flood)
        .await
        .expect("the flood stops with the connection")
        .unwrap();
    assert!(sent > pongs, "the client was still sending: {sent} frames");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_ends_when_its_token_expires_unless_given_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    // Tokens live 4 s, and are accepted 5 s more (the leeway for clock skew).
    let server = Server::start_with_env(
        dir.path(),
        &[],
        &[("GIROK__AUTH__ACCESS_TOKEN_TTL_SECS", "4")],
    );
    server.sign_in("bob").await;
    let (first, refresh) = login(&server, "bob").await;
    let started = std::time::Instant::now();
    let mut plain = ws_as(&server, &first).await;
    let mut renewed = ws_as(&server, &first).await;
    let mut gws = graphql_ws_as(&server, &first).await;
    // A token of someone else is refused in-band; the connection stays signed in as bob.
    let (stranger, _) = common::user(&server, "stranger").await;
    send(&mut renewed, json!({ "type": "auth", "token": stranger })).await;
    assert_eq!(next(&mut renewed).await["code"], "ALREADY_AUTHENTICATED");
    // Past the first token's expiry (but within its leeway), a fresh token of the same
    // session goes in-band.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(started.elapsed())).await;
    let (_, fresh) = refresh_with(&server, &refresh).await;
    let fresh = fresh["accessToken"].as_str().unwrap();
    send(&mut renewed, json!({ "type": "auth", "token": fresh })).await;
    assert_eq!(next(&mut renewed).await["type"], "welcome");

    ends_with(&mut plain, "TOKEN_EXPIRED", 4005).await;
    // 4403, not 4401: graphql-ws clients take 4401 as final and 4403 as a reason to
    // reconnect with fresh connection parameters.
    graphql_closes_with(&mut gws, 4403).await;
    // The first token is no longer accepted; the renewed connection is still open (its
    // token is accepted about 5 s longer) ...
    assert!(started.elapsed() < Duration::from_secs(13));
    still_open(&mut renewed).await;
    // ... until its own token expires.
    ends_with(&mut renewed, "TOKEN_EXPIRED", 4005).await;
}

/// A raw HTTP/1.1 exchange on a fresh connection from `from`: the status line's code and the
/// body, or `None` when the server closed without answering.
async fn raw_get(server: &Server, from: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = connect_from(server, from).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: girok\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .ok()?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Some((status, body))
}

/// A TCP connection to the server from the loopback address `from` (127.0.0.0/8 is all
/// local, so each address there is another client IP).
async fn connect_from(server: &Server, from: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_cannot_hold_the_connection_slots() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(
        dir.path(),
        "[server]\nmax_connections = 8\nmax_connections_per_ip = 0\nheader_read_timeout_ms = 1000\n",
    );
    // Eight slowloris clients take every slot, each trickling its request's head.
    let mut slow = Vec::new();
    for i in 0..8 {
        let mut stream = connect_from(&server, "127.0.0.1").await;
        stream
            .write_all(format!("GET /healthz HTTP/1.1\r\nHost: girok\r\nX-Slow-{i}: ").as_bytes())
            .await
            .unwrap();
        slow.push(stream);
    }
    let trickle = tokio::spawn(async move {
        // A byte every 200 ms, for as long as the server lets them: each ends closed.
        let mut closed = 0;
        for mut stream in slow {
            let mut buf = [0u8; 256];
            loop {
                if stream.write_all(b"a").await.is_err() {
                    break;
                }
                match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    _ => {}
                }
            }
            closed += 1;
        }
        closed
    });
    let closed = tokio::time::timeout(Duration::from_secs(30), trickle)
        .await
        .expect("the server closes half-sent requests")
        .unwrap();
    assert_eq!(closed, 8);
    // The slots are free again.
    let (status, _) = raw_get(&server, "127.0.0.1", "/healthz").await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(dir.path(), "[server]\nmax_connections_per_ip = 3\n");
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(&server, "127.0.0.7").await);
    }
    let (status, body) = raw_get(&server, "127.0.0.7", "/healthz").await.unwrap();
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "TOO_MANY_CONNECTIONS");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.max_connections_per_ip"),
        "{body}"
    );
    // Another address is served; a slot given back is taken again.
    assert_eq!(
        raw_get(&server, "127.0.0.8", "/healthz").await.unwrap().0,
        200
    );
    drop(held.pop());
    let mut status = 0;
    for _ in 0..50 {
        status = raw_get(&server, "127.0.0.7", "/healthz").await.unwrap().0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_has_a_bounded_number_of_live_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(dir.path(), "[ws]\nmax_sockets_per_user = 2\n");
    let token = server.sign_in("many").await;
    let mut first = ws_as(&server, &token).await;
    let second = graphql_ws_as(&server, &token).await;
    // A third /ws connection is told why, then closed.
    let mut third = connect(&server, Some(&token)).await;
    let said = next_or_close(&mut third).await;
    assert_eq!(said["code"], "TOO_MANY_SOCKETS", "{said}");
    assert_eq!(next_or_close(&mut third).await["code"], 4006);
    // A third /graphql/ws connection is refused at connection_init.
    let (mut refused, answer) = graphql_ws(
        &server,
        json!({ "authorization": format!("Bearer {token}") }),
    )
    .await;
    assert_eq!(answer["type"], "close", "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("max_sockets_per_user"),
        "{answer}"
    );
    drop(refused.socket.close(None).await);
    // Someone else is not affected; a closed socket gives its place back.
    let other = server.sign_in("other").await;
    let mut others = ws_as(&server, &other).await;
    still_open(&mut others).await;
    drop(second);
    let mut again = None;
    for _ in 0..50 {
        let mut socket = connect(&server, Some(&token)).await;
        if next_or_close(&mut socket).await["type"] == "welcome" {
            again = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    still_open(again.as_mut().expect("a place once one closed")).await;
    still_open(&mut first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_api_needs_the_operator_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    server.sign_in("private").await;
    let get = |token: Option<String>| {
        let request = server
            .client
            .get(server.url("/v1/log/events?from=1&limit=10"));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    // Loopback is not enough (behind a reverse proxy every client is loopback).
    for token in [None, Some("nope".to_owned()), Some(String::new())] {
        let (status, body) = get(token).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
    }
    let stats = server.get("/v1/log/stats").await;
    assert_eq!(stats.status().as_u16(), 401);
    let (status, body) = get(Some(server.operator_token())).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body["events"].as_array().unwrap().is_empty());
    // The CLI beside the running server finds it and its token in the data directory.
    let data = dir.path().join("data");
    let (status, stdout, stderr) = common::girok(&[
        "log",
        "stats",
        "--json",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(status, 0, "{stderr}");
    let stats: Value = serde_json::from_str(&stdout).unwrap();
    assert!(stats["eventCount"].as_u64().unwrap() > 0);
}

/// A failed login of `name` as a client that says it is `forwarded_for`; the status.
async fn login_from(server: &Server, name: &str, forwarded_for: &str) -> u16 {
    let response = server
        .client
        .post(server.url("/v1/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({ "username": name, "password": "wrong password" }))
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_login_limits_follow_trusted_proxies_only() {
    let dir = tempfile::tempdir().unwrap();
    let behind_proxy = Server::start_with_config(
        dir.path(),
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n[auth]\nlogin_per_minute_per_ip = 3\n",
    );
    // Behind the proxy (here: loopback), each forwarded client has its own budget.
    for i in 0..3 {
        assert_eq!(
            login_from(&behind_proxy, &format!("u{i}x"), "203.0.113.5").await,
            401
        );
    }
    assert_eq!(login_from(&behind_proxy, "u3x", "203.0.113.5").await, 429);
    assert_eq!(login_from(&behind_proxy, "u4x", "203.0.113.6").await, 401);
    // The client's own entries left of the proxy's do not count.
    assert_eq!(
        login_from(&behind_proxy, "u5x", "198.51.100.1, 203.0.113.5").await,
        429
    );
    drop(behind_proxy);

    // Without trusted proxies, the header is the client's word: ignored.
    let dir = tempfile::tempdir().unwrap();
    let direct = Server::start_with_config(dir.path(), "[auth]\nlogin_per_minute_per_ip = 3\n");
    for i in 0..3 {
        let forged = format!("203.0.113.{i}");
        assert_eq!(login_from(&direct, &format!("v{i}x"), &forged).await, 401);
    }
    assert_eq!(login_from(&direct, "v3x", "203.0.113.99").await, 429);
}

/// Sends `count` messages to `room` over GraphQL; the seq of the last.
async fn send_many(server: &Server, room: &str, count: usize) -> u64 {
    let mut last = 0;
    for i in 0..count {
        let ack = server
            .gql(SEND, json!({ "r": room, "b": format!("m{i}") }))
            .await;
        last = ack["sendMessage"]["seq"].as_u64().unwrap();
    }
    last
}

/// Subscribes to `room` from `from`: the `subscribed` frame, or the error.
async fn resume(socket: &mut Socket, room: &str, from: Value) -> Value {
    let topic = format!("chat:{room}");
    send(
        socket,
        json!({ "type": "subscribe", "topic": topic, "fromSeq": from }),
    )
    .await;
    loop {
        let frame = next(socket).await;
        if frame["type"] == "subscribed" || frame["type"] == "error" {
            return frame;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_is_bounded_by_the_topics_own_events_not_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(
        dir.path(),
        "[ws]\nmax_resume_events = 10\nmax_resume_scan_events = 300\n",
    );
    let token = server.sign_in("resumer").await;
    let quiet = server.create_room("quiet").await;
    let busy = server.create_room("busy").await;
    let from = send_many(&server, &quiet, 1).await;
    // Three messages in the quiet room among sixty elsewhere: a busy log.
    let mut sent = Vec::new();
    for _ in 0..3 {
        send_many(&server, &busy, 20).await;
        sent.push(send_many(&server, &quiet, 1).await);
    }
    let mut socket = ws_as(&server, &token).await;
    let answer = resume(&mut socket, &quiet, json!(from)).await;
    assert_eq!(answer["type"], "subscribed", "{answer}");
    let mut got = Vec::new();
    for _ in 0..3 {
        let frame = next(&mut socket).await;
        assert_eq!(frame["type"], "event", "{frame}");
        got.push(frame["seq"].as_u64().unwrap());
    }
    assert_eq!(got, sent);

    // More of the room's own events than max_resume_events: reload instead.
    send_many(&server, &quiet, 11).await;
    let mut socket = ws_as(&server, &token).await;
    let answer = resume(&mut socket, &quiet, json!(from)).await;
    assert_eq!(answer["code"], "RESUME_TOO_OLD", "{answer}");

    // More of the log to read through than max_resume_scan_events, however quiet the room.
    let last_quiet = send_many(&server, &quiet, 1).await;
    send_many(&server, &busy, 301).await;
    let answer = resume(&mut socket, &quiet, json!(last_quiet)).await;
    assert_eq!(answer["code"], "RESUME_TOO_OLD", "{answer}");

    // A fromSeq past the head (u64::MAX included) replays nothing and never wraps: live
    // events follow.
    let answer = resume(&mut socket, &quiet, json!(u64::MAX)).await;
    assert_eq!(answer["type"], "subscribed", "{answer}");
    let live = send_many(&server, &quiet, 1).await;
    let frame = next(&mut socket).await;
    assert_eq!(frame["seq"], live, "{frame}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_cursors_are_only_those_pages_returned() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let token = server.sign_in("pager").await;
    for i in 0..3 {
        server
            .gql(
                "mutation($c: String!) { createPost(content: $c) { id } }",
                json!({ "c": format!("post {i}") }),
            )
            .await;
    }
    const TIMELINE: &str = "query($c: String) { timeline(limit: 2, cursor: $c) { posts { content } pageInfo { hasNextPage endCursor } } }";
    let first = server.gql(TIMELINE, json!({})).await;
    let cursor = first["timeline"]["pageInfo"]["endCursor"].clone();
    let second = server.gql(TIMELINE, json!({ "c": cursor })).await;
    assert_eq!(second["timeline"]["posts"][0]["content"], "post 0");
    // A made-up cursor, a number (what cursors used to be) included, is refused.
    for forged in ["12", "x", "AAAAAAAAAAwAAAAAAAAAAA"] {
        let body = as_user(&server, &token, TIMELINE, json!({ "c": forged })).await;
        assert_eq!(common::code(&body), "INVALID_ARGUMENT", "{body}");
        let (status, body) = call(
            &server,
            "GET",
            &format!("/v1/timeline?limit=2&cursor={forged}"),
            &token,
            None,
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "INVALID_ARGUMENT");
    }
    // REST pages with the same cursors.
    let (status, page) = call(&server, "GET", "/v1/timeline?limit=2", &token, None).await;
    assert_eq!(status, 200);
    let cursor = page["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let (status, page) = call(
        &server,
        "GET",
        &format!("/v1/timeline?limit=2&cursor={cursor}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["posts"][0]["content"], "post 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answer_is_the_json_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let token = server.sign_in("envelope").await;
    let cases = [
        ("DELETE", "/healthz", 405, "METHOD_NOT_ALLOWED"),
        ("PATCH", "/v1/timeline", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/v1/users/%FF%FE/posts", 400, "BAD_REQUEST"),
        ("GET", "/ws", 400, "BAD_REQUEST"),
        ("GET", "/v1/no/such/route", 404, "NOT_FOUND"),
        ("GET", "/assets/no-such-file.js", 404, "NOT_FOUND"),
        ("POST", "/no/such/route", 404, "NOT_FOUND"),
    ];
    for (method, path, status, code) in cases {
        let response = server
            .client
            .request(method.parse().unwrap(), server.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let allow = common::header(&response, "allow");
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        if status == 405 {
            assert!(allow.is_some(), "405 keeps its Allow header");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_bodies_follow_one_text_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    // A display name that reorders what follows it, or hides a character, is refused.
    for name in [
        "evil\u{202E}gnp.exe",
        "ad\u{200B}min",
        "\u{FEFF}root",
        "nul\u{0}",
    ] {
        let response = server
            .client
            .post(server.url("/v1/auth/register"))
            .json(
                &json!({ "username": "spoofer", "email": "spoofer@example.org",
                           "password": "password123", "displayName": name }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 422, "{name:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{name:?}");
    }
    let token = server.sign_in("texter").await;
    const ROOM: &str = "mutation($t: String!) { createRoom(title: $t) { id } }";
    for title in ["a\u{2066}b", "tab\u{200F}", "bell\u{7}"] {
        let body = as_user(&server, &token, ROOM, json!({ "t": title })).await;
        assert_eq!(common::code(&body), "INVALID_ARGUMENT", "{title:?}: {body}");
    }
    // Emoji sequences (zero-width joiners) and other scripts are names like any other.
    let room = as_user(&server, &token, ROOM, json!({ "t": "Family 👩‍👩‍👧 چت" })).await;
    let room = room["data"]["createRoom"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Bodies keep lines and tabs, not NUL or other controls.
    let ok = as_user(
        &server,
        &token,
        SEND,
        json!({ "r": room, "b": "one\n\ttwo" }),
    )
    .await;
    assert!(ok.get("errors").is_none(), "{ok}");
    for body in ["nul\u{0}", "escape\u{1B}[2J"] {
        let answer = as_user(&server, &token, SEND, json!({ "r": room, "b": body })).await;
        assert_eq!(common::code(&answer), "INVALID_ARGUMENT", "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_ws_refuses_a_subscribe_before_connection_init_with_4401() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (mut socket, _) =
        tokio_tungstenite::connect_async(common::sockets::graphql_request(&server))
            .await
            .unwrap();
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { roomUpdated { seq } }" } }),
    )
    .await;
    let closed = next_or_close(&mut socket).await;
    assert_eq!(closed["type"], "close", "{closed}");
    assert_eq!(closed["code"], 4401, "{closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_mistakes_are_not_logged_as_errors_and_log_files_have_no_colours() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with_env(
        &data,
        &[],
        &[("RUST_LOG", "info"), ("GIROK__ENGINE__READ_WAIT_MS", "200")],
    );
    let token = server.sign_in("mistaken").await;
    // A read after a seq the log will not reach in time: VIEW_TIMEOUT.
    let body = as_user(
        &server,
        &token,
        "query($a: Seq) { rooms(after: $a) { pageInfo { hasNextPage } } }",
        json!({ "a": 1_000_000 }),
    )
    .await;
    assert_eq!(common::code(&body), "VIEW_TIMEOUT", "{body}");
    // Other mistakes: a bad document, a forged token, a route that does not exist.
    as_user(&server, &token, "{ nope }", json!({})).await;
    as_user(&server, "forged", "{ me { id } }", json!({})).await;
    server.client.get(server.url("/nope")).send().await.unwrap();
    drop(server);
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(!log.contains('\u{1b}'), "ANSI colour codes in a log file");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "logged as errors: {errors:#?}");
    assert!(log.contains("INFO"), "the log was written at info: {log}");
}

/// Logs `name` in the browser way; the `girok_session=...` cookie pair.
async fn cookie_login(server: &Server, name: &str) -> String {
    let response = server
        .client
        .post(server.url("/graphql"))
        .json(&json!({ "query": format!("mutation {{ login(username: \"{name}\", password: \"password123\", useCookie: true) {{ csrfToken }} }}") }))
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("girok_session="))
        .expect("a session cookie");
    cookie.split(';').next().unwrap().to_owned()
}

/// A WebSocket upgrade of `path` with `cookie` and `origin`; the HTTP status it got.
async fn upgrade_status(server: &Server, path: &str, cookie: &str, origin: Option<&str>) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = server.base.replace("http://", "ws://") + path;
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    if path == "/graphql/ws" {
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
    }
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_security_headers_an_offline_graphiql_and_no_cross_site_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(
        dir.path(),
        "[server]\nallowed_origins = [\"https://app.example.org\"]\n",
    );
    // Every answer, errors included, carries the headers.
    for path in ["/healthz", "/no/such/route", "/v1/timeline"] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
        ] {
            assert_eq!(
                common::header(&response, name).as_deref(),
                Some(value),
                "{path}"
            );
        }
        let policy = common::header(&response, "content-security-policy").unwrap();
        assert!(policy.contains("default-src 'none'"), "{path}: {policy}");
    }

    // GraphiQL: a page whose every script and style comes from girok, under a strict policy.
    let page = server.get("/graphql").await;
    assert_eq!(page.status().as_u16(), 200);
    let policy = common::header(&page, "content-security-policy").unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|part| part.starts_with("/graphiql/"))
        .collect();
    assert_eq!(assets.len(), 5, "{html}");
    for asset in assets {
        let response = server.client.get(server.url(asset)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{asset}");
        let kind = common::header(&response, "content-type").unwrap();
        assert!(
            kind.starts_with("text/javascript") || kind.starts_with("text/css"),
            "{kind}"
        );
        let gzip = common::header(&response, "content-encoding").as_deref() == Some("gzip");
        let bytes = response.bytes().await.unwrap();
        assert!(bytes.len() > 500, "{asset}");
        if gzip {
            assert_eq!(&bytes[..2], &[0x1f, 0x8b], "{asset} is gzip");
        }
    }

    // Cross-site WebSocket hijacking: a cookie-signed upgrade from a foreign page is refused,
    // from girok's own origin or an allowed one it is not; without the cookie, Origin does
    // not matter (a Bearer token cannot be borrowed by another site).
    server.sign_in("browser").await;
    let cookie = cookie_login(&server, "browser").await;
    let host = server.base.trim_start_matches("http://").to_owned();
    let own = format!("http://{host}");
    for path in ["/ws", "/graphql/ws"] {
        assert_eq!(
            upgrade_status(&server, path, &cookie, Some("https://evil.example")).await,
            403
        );
        assert_eq!(
            upgrade_status(&server, path, &cookie, Some(&own)).await,
            101
        );
        assert_eq!(
            upgrade_status(&server, path, &cookie, Some("https://app.example.org")).await,
            101
        );
        assert_eq!(upgrade_status(&server, path, &cookie, None).await, 101);
        assert_eq!(
            upgrade_status(&server, path, "other=1", Some("https://evil.example")).await,
            101
        );
    }

    // A GraphQL POST that is not JSON (a CORS simple request) is refused, with the cookie or
    // without (a cross-site form could log the browser into another account).
    for cookie in [cookie.as_str(), "other=1"] {
        let response = server
            .client
            .post(server.url("/graphql"))
            .header("cookie", cookie)
            .header("content-type", "text/plain")
            .body(r#"{"query":"{ me { id } }"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 415);
        let body: Value = response.json().await.unwrap();
        let code = &body["errors"][0]["extensions"]["code"];
        assert_eq!(code, "UNSUPPORTED_MEDIA_TYPE");
    }
    let response = server
        .client
        .post(server.url("/graphql"))
        .header("cookie", &cookie)
        .json(&json!({ "query": "{ me { username } }" }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["me"]["username"], "browser", "{body}");

    // And GraphiQL can be turned off.
    let dir = tempfile::tempdir().unwrap();
    let off = Server::start_with_config(dir.path(), "[server]\ngraphiql = false\n");
    let response = off.client.get(off.url("/graphql")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let asset = format!("/graphiql/{}/init.js", "3.8.3");
    let response = off.client.get(off.url(&asset)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_rate_limited_per_user_on_every_frontend() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &[],
        &[
            // One a minute after the burst: no refill during the test, however slow.
            ("GIROK__RATE_LIMITS__MESSAGES__PER_MINUTE", "1"),
            ("GIROK__RATE_LIMITS__MESSAGES__BURST", "3"),
            ("GIROK__RATE_LIMITS__POSTS__PER_MINUTE", "1"),
            ("GIROK__RATE_LIMITS__POSTS__BURST", "2"),
            ("GIROK__RATE_LIMITS__ROOMS__PER_MINUTE", "1"),
            ("GIROK__RATE_LIMITS__ROOMS__BURST", "2"),
            ("GIROK__AUTH__REGISTRATIONS_PER_MINUTE_PER_IP", "4"),
        ],
    );
    let token = server.sign_in("writer").await;
    let room = server.create_room("limited").await;
    // One budget of messages across GraphQL, REST and the WebSocket: 3 at once.
    let by_graphql = as_user(&server, &token, SEND, json!({ "r": room, "b": "one" })).await;
    assert!(by_graphql.get("errors").is_none(), "{by_graphql}");
    let (status, _) = call(
        &server,
        "POST",
        &format!("/v1/rooms/{room}/messages"),
        &token,
        Some(json!({ "body": "two" })),
    )
    .await;
    assert_eq!(status, 201);
    let mut socket = ws_as(&server, &token).await;
    send(
        &mut socket,
        json!({ "type": "send", "ref": "r3", "roomId": room, "body": "three" }),
    )
    .await;
    let third = next(&mut socket).await;
    assert_eq!(third["type"], "ack", "{third}");
    send(
        &mut socket,
        json!({ "type": "send", "ref": "r4", "roomId": room, "body": "four" }),
    )
    .await;
    let refused = next(&mut socket).await;
    assert_eq!(refused["code"], "RATE_LIMITED", "{refused}");
    assert!(refused["retryAfterMs"].as_u64().unwrap() > 0);
    let by_graphql = as_user(&server, &token, SEND, json!({ "r": room, "b": "five" })).await;
    assert_eq!(common::code(&by_graphql), "RATE_LIMITED", "{by_graphql}");
    assert!(
        by_graphql["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            >= 1
    );
    let response = server
        .client
        .post(server.url(&format!("/v1/rooms/{room}/messages")))
        .bearer_auth(&token)
        .json(&json!({ "body": "six" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(common::header(&response, "retry-after").is_some());
    // Nothing refused was written: the history holds the three (read once it reflects the
    // last of them).
    let history = server.history(&room, third["seq"].as_u64().unwrap()).await;
    let bodies: Vec<&str> = history.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies.len(), 3, "{bodies:?}");

    // Posts and rooms have budgets of their own; another user has their own.
    const POST: &str = "mutation($c: String!) { createPost(content: $c) { id } }";
    for i in 0..2 {
        let ok = as_user(&server, &token, POST, json!({ "c": format!("p{i}") })).await;
        assert!(ok.get("errors").is_none(), "{ok}");
    }
    let refused = as_user(&server, &token, POST, json!({ "c": "p2" })).await;
    assert_eq!(common::code(&refused), "RATE_LIMITED");
    // Rooms: 2 at once, one spent above.
    let room_statuses = {
        let mut statuses = Vec::new();
        for _ in 0..2 {
            let body = Some(json!({ "title": "r" }));
            statuses.push(call(&server, "POST", "/v1/rooms", &token, body).await.0);
        }
        statuses
    };
    assert_eq!(room_statuses, [201, 429]);
    let other = server.sign_in("another").await;
    let ok = as_user(&server, &other, SEND, json!({ "r": room, "b": "x" })).await;
    assert_eq!(
        common::code(&ok),
        "NOT_A_MEMBER",
        "a budget of their own: {ok}"
    );

    // Registrations per address: 2 were made above, 2 more pass, then 429.
    let statuses = {
        let mut statuses = Vec::new();
        for i in 0..3 {
            let response = server
                .client
                .post(server.url("/v1/auth/register"))
                .json(&json!({ "username": format!("newbie{i}"), "email": format!("newbie{i}@example.org"),
                               "password": "password123", "displayName": "New" }))
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
        }
        statuses
    };
    assert_eq!(statuses, [201, 201, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_limits_count_an_account_however_it_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(
        dir.path(),
        "[auth]\nlogin_per_minute_per_username = 4\nlogin_per_minute_per_ip = 1000\n",
    );
    server.sign_in("named").await; // one login spent
    let attempt = |login: &'static str| {
        let request = server
            .client
            .post(server.url("/v1/auth/login"))
            .json(&json!({ "username": login, "password": "wrong password" }));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Alternating the username and the email draws on one budget of 4.
    assert_eq!(attempt("named").await, 401);
    assert_eq!(attempt("named@example.org").await, 401);
    assert_eq!(attempt("NAMED").await, 401);
    assert_eq!(attempt("named@example.org").await, 429);
    assert_eq!(attempt("named").await, 429);
}
