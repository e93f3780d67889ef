//! The spine through the real binary: GraphQL chat operations, typed errors for bad input,
//! operators' endpoints, replay equal to live, and the log commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{GIROK, SEND, Server, code, girok, metric_in};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_round_trip_with_read_your_writes_and_pagination() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    server.sign_in("tester").await;
    let head = server
        .gql("{ logHead { seq durability } }", json!({}))
        .await;
    // Registering and logging in were the first two events.
    assert_eq!(head["logHead"], json!({ "seq": 2, "durability": "sync" }));

    let created = server
        .gql(
            "mutation { createRoom(title: \"  lobby  \") { id title seq } }",
            json!({}),
        )
        .await;
    let room = created["createRoom"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["createRoom"]["title"], "lobby", "title is trimmed");
    let mut last = 0;
    for i in 0..25 {
        let ack = server
            .gql(
                SEND,
                json!({ "r": room, "b": format!("hello {i}"), "c": null }),
            )
            .await;
        let seq = ack["sendMessage"]["seq"].as_u64().unwrap();
        assert!(seq > last, "seqs increase");
        last = seq;
    }
    // Read your write: with `after`, the newest message is the one just sent.
    let page = server
        .gql(
            "query($r: ID!, $a: Seq) { messages(roomId: $r, first: 10, after: $a) { nodes { seq body } pageInfo { hasNextPage endCursor } } room(id: $r, after: $a) { messageCount lastMessageSeq title } }",
            json!({ "r": room, "a": last }),
        )
        .await;
    assert_eq!(page["messages"]["nodes"][0]["body"], "hello 24");
    assert_eq!(page["messages"]["nodes"][0]["seq"], last);
    assert_eq!(page["messages"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(page["room"]["messageCount"], 25);
    assert_eq!(page["room"]["lastMessageSeq"], last);
    let all = server.history(&room, last).await;
    let bodies: Vec<_> = all.iter().map(|m| m["body"].as_str().unwrap()).collect();
    let expected: Vec<_> = (0..25).rev().map(|i| format!("hello {i}")).collect();
    assert_eq!(bodies, expected);

    // The seq is accepted as a string too.
    let data = server
        .gql(
            "query($r: ID!) { messages(roomId: $r, first: 1, after: \"3\") { nodes { seq } } }",
            json!({ "r": room }),
        )
        .await;
    assert_eq!(data["messages"]["nodes"][0]["seq"], last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_typed_errors_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    server.sign_in("tester").await;
    let room = server.create_room("r").await;
    let ack = server
        .gql(SEND, json!({ "r": room, "b": "keep me", "c": "k" }))
        .await;
    let kept_seq = ack["sendMessage"]["seq"].as_u64().unwrap();

    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            SEND,
            json!({ "r": "01900000-0000-7000-8000-0000000000ff", "b": "x" }),
            200,
            "ROOM_NOT_FOUND",
        ),
        (
            SEND,
            json!({ "r": "not-a-uuid", "b": "x" }),
            200,
            "INVALID_ARGUMENT",
        ),
        (SEND, json!({ "r": room, "b": "" }), 200, "INVALID_ARGUMENT"),
        (
            SEND,
            json!({ "r": room, "b": "   \n" }),
            200,
            "INVALID_ARGUMENT",
        ),
        (
            SEND,
            json!({ "r": room, "b": "x".repeat(4097) }),
            200,
            "INVALID_ARGUMENT",
        ),
        (
            SEND,
            json!({ "r": room, "b": "ok", "c": "has space" }),
            200,
            "INVALID_ARGUMENT",
        ),
        (
            SEND,
            json!({ "r": room, "b": "different", "c": "k" }),
            200,
            "IDEMPOTENCY_KEY_REUSED",
        ),
        (
            SEND,
            json!({ "r": room, "b": 42 }),
            400,
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (SEND, json!({ "r": room }), 200, "INVALID_ARGUMENT"),
        (
            "mutation($t: String!) { createRoom(title: $t) { id } }",
            json!({ "t": "t".repeat(101) }),
            200,
            "INVALID_ARGUMENT",
        ),
        (
            "mutation($t: String!) { createRoom(title: $t) { id } }",
            json!({ "t": " " }),
            200,
            "INVALID_ARGUMENT",
        ),
        (
            "query($r: ID!) { messages(roomId: $r, first: 101) { nodes { seq } } }",
            json!({ "r": room }),
            200,
            "INVALID_ARGUMENT",
        ),
        (
            "query($r: ID!) { messages(roomId: $r, first: 0) { nodes { seq } } }",
            json!({ "r": room }),
            200,
            "INVALID_ARGUMENT",
        ),
        (
            "query($r: ID!) { messages(roomId: $r, before: -1) { nodes { seq } } }",
            json!({ "r": room }),
            200,
            "INVALID_ARGUMENT",
        ),
        ("{ nope }", json!({}), 400, "GRAPHQL_VALIDATION_FAILED"),
        ("{ messages(", json!({}), 400, "GRAPHQL_PARSE_FAILED"),
    ];
    for (query, variables, status, expected) in cases {
        let (got_status, body) = server.gql_status(query, variables.clone()).await;
        assert_eq!(
            (got_status, code(&body)),
            (status, expected),
            "{query} {variables}: {body}"
        );
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (_, body) = server.gql_status(SEND, json!({ "r": room, "b": "" })).await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "body");

    // Bodies that are not GraphQL at all, and one over the size limit.
    let raw = |body: Vec<u8>| {
        let client = server.client.clone();
        let url = server.url("/graphql");
        async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = raw(b"{not json".to_vec()).await;
    assert_eq!((status, code(&body)), (400, "BAD_REQUEST"));
    let (status, body) = raw(b"[1,2]".to_vec()).await;
    assert_eq!((status, code(&body)), (400, "BAD_REQUEST"));
    let big = json!({ "query": SEND, "variables": { "r": room, "b": "x".repeat(70 * 1024) } });
    let (status, body) = raw(serde_json::to_vec(&big).unwrap()).await;
    assert_eq!((status, code(&body)), (413, "PAYLOAD_TOO_LARGE"));

    // Unknown REST route: typed 404.
    let (status, body) = server.get_json("/v1/nope").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );

    // Nothing was lost or added: the one good message is still the only one.
    let history = server.history(&room, kept_seq).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["body"], "keep me");
    let (status, _) = server.get_json("/readyz").await;
    assert_eq!(status, 200, "the server is still healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_an_unreached_seq_times_out_with_view_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(dir.path(), "[engine]\nread_wait_ms = 200\n");
    server.sign_in("tester").await;
    let room = server.create_room("r").await;
    let (status, body) = server
        .gql_status(
            "query($r: ID!) { messages(roomId: $r, after: 999999) { nodes { seq } } }",
            json!({ "r": room }),
        )
        .await;
    assert_eq!((status, code(&body)), (200, "VIEW_TIMEOUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["watermark"], "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_graphiql() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    server.sign_in("tester").await;
    let room = server.create_room("m").await;
    server.gql(SEND, json!({ "r": room, "b": "x" })).await;

    let health = server.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let (status, ready) = server.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["log"]["writer_running"], true);
    assert_eq!(ready["views"][0]["name"], "room_history");
    assert!(ready["views"][0]["lag"].as_u64().is_some());

    let metrics = server.metrics().await;
    for name in [
        "girok_log_appends_total 5", // registered, logged in, room, join, message
        "girok_log_batch_commands_bucket",
        "girok_log_fsync_seconds_bucket",
        "girok_log_commit_seconds_bucket",
        "girok_view_lag_events{view=\"room_history\"}",
        "girok_view_watermark_seq{view=\"room_history\"}",
        "girok_view_entries{view=\"timelines\"}",
        "girok_http_requests_total{method=\"POST\",route=\"/graphql\",status=\"200\"}",
        "girok_http_request_seconds_bucket{le=",
        "girok_http_connections",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    // Each answered command's time from the queue to its answer is observed once: at least
    // the four commands above (registration, login, room, message), and never more than the
    // batches held (a command still in flight is counted by its batch first).
    let answered = metric_in(&metrics, "girok_log_commit_seconds_count");
    assert!(answered >= 4, "{metrics}");
    assert!(
        answered <= metric_in(&metrics, "girok_log_batch_commands_sum"),
        "{metrics}"
    );
    let graphiql = server.get("/graphql").await;
    assert_eq!(graphiql.status(), 200);
    assert!(graphiql.text().await.unwrap().contains("graphiql"));
}

/// `/metrics` reports memory per component, and the entries each view holds in memory follow
/// the writes. The configuration sets a key older builds used: it still loads (ignored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_memory_per_component_and_the_view_entries_held() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(dir.path(), "[engine]\nhome_timeline_entries = 2\n");
    server.sign_in("tester").await;
    let room = server.create_room("m").await;
    for body in ["one", "two", "three"] {
        server.gql(SEND, json!({ "r": room, "b": body })).await;
    }
    let post = "mutation($c: String!) { createPost(content: $c) { id } }";
    for i in 0..6 {
        server.gql(post, json!({ "c": format!("post {i}") })).await;
    }
    // Wait until the views reflect all of it: six profile entries (home timelines are merged
    // from them when read).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server
        .metric("girok_view_entries{view=\"timelines\"}")
        .await
        != 6
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            server.metrics().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = |view: &str| format!("girok_view_memory_entries{{view=\"{view}\"}}");
    assert_eq!(server.metric(&held("room_history")).await, 3);
    assert_eq!(server.metric(&held("memberships")).await, 1);
    assert_eq!(server.metric(&held("timelines")).await, 6);
    assert_eq!(server.metric(&held("notifications")).await, 0);

    let bytes = |component: &str| format!("girok_memory_bytes{{component=\"{component}\"}}");
    let resident = server.metric(&bytes("process_resident")).await;
    let anonymous = server.metric(&bytes("process_anonymous")).await;
    assert!(
        anonymous > 1 << 20 && resident >= anonymous,
        "{resident} {anonymous}"
    );
    assert!(server.metric(&bytes("log_memtables")).await > 0);
    assert_eq!(server.metric(&bytes("search_writer")).await, 32 << 20);
    for component in [
        "log_block_cache",
        "view_block_cache",
        "view_memtable",
        "event_cache",
    ] {
        let line = bytes(component);
        assert!(server.metrics().await.contains(&line), "{line} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_equals_live_and_log_commands_report_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    server.sign_in("tester").await;
    let rooms = [server.create_room("a").await, server.create_room("b").await];
    let mut last = 0;
    for i in 0..40 {
        let ack = server
            .gql(SEND, json!({ "r": rooms[i % 2], "b": format!("m{i}") }))
            .await;
        last = ack["sendMessage"]["seq"].as_u64().unwrap();
    }
    // Wait until the live view has caught up, then take its digest.
    server.history(&rooms[0], last).await;
    let (_, ready) = server.get_json("/readyz").await;
    let live = ready["views"][0].clone();
    assert_eq!(live["watermark"], last);

    // `log tail --follow` through the running server (on a port the kernel picked), found at
    // the address the server recorded in the data directory, with the operator token there.
    let mut follower = Command::new(GIROK)
        .args([
            "log",
            "tail",
            "--follow",
            "--type",
            "chat.message",
            "--from",
        ])
        .arg((last + 1).to_string())
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ack = server
        .gql(SEND, json!({ "r": rooms[0], "b": "followed" }))
        .await;
    last = ack["sendMessage"]["seq"].as_u64().unwrap();
    let stdout = follower.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout).lines().next().unwrap().unwrap()
    });
    let line: Value = serde_json::from_str(
        &tokio::time::timeout(Duration::from_secs(20), line)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    follower.kill().unwrap();
    follower.wait().unwrap();
    assert_eq!(line["seq"], last);
    assert_eq!(line["payload"]["body"], "followed");

    server.history(&rooms[0], last).await;
    let (_, ready) = server.get_json("/readyz").await;
    let live = ready["views"][0].clone();
    assert!(server.terminate().success());

    // Replay rebuilds the same view.
    let data_arg = data.to_str().unwrap();
    let (status, stdout, stderr) = girok(&["replay", "--json", "--data-dir", data_arg]);
    assert_eq!(status, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["to_seq"], last);
    assert_eq!(report["views"][0]["watermark"], live["watermark"]);
    assert_eq!(report["views"][0]["digest"], live["digest"]);
    assert!(report["events_per_sec"].as_f64().unwrap() > 0.0);
    let (status, stdout, _) = girok(&["replay", "--to-seq", "5", "--data-dir", data_arg]);
    assert_eq!(status, 0);
    assert!(stdout.contains("up to seq 5"), "{stdout}");

    // log stats: 2 rooms, 2 joins, 41 messages.
    let (status, stdout, stderr) = girok(&["log", "stats", "--json", "--data-dir", data_arg]);
    assert_eq!(status, 0, "{stderr}");
    let stats: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(stats["eventCount"], last);
    assert_eq!(stats["perType"]["chat.room.created"], 2);
    assert_eq!(stats["perType"]["chat.member.joined"], 2);
    assert_eq!(stats["perType"]["chat.message.sent"], 41);
    assert_eq!(stats["lastSeq"], last);

    // log tail: one JSON line per event, filtered by type prefix, from a seq.
    let (status, stdout, _) =
        girok(&["log", "tail", "--type", "chat.room", "--data-dir", data_arg]);
    assert_eq!(status, 0);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["type"] == "chat.room.created"));
    let (_, stdout, _) = girok(&[
        "log",
        "tail",
        "--from",
        &(last - 1).to_string(),
        "--data-dir",
        data_arg,
    ]);
    assert_eq!(stdout.lines().count(), 2);

    // Replay refuses to share the directory with a running server, clearly.
    let server = Server::start(&data, &[]);
    server.sign_in("tester").await;
    let (status, _, stderr) = girok(&["replay", "--data-dir", data_arg]);
    assert_ne!(status, 0);
    assert!(stderr.contains("in use"), "{stderr}");
    drop(server);
}

#[test]
fn help_and_configuration_errors() {
    let (status, stdout, _) = girok(&["--help"]);
    assert_eq!(status, 0);
    for word in ["serve", "replay", "log", "--config", "--data-dir"] {
        assert!(stdout.contains(word), "--help lacks {word}");
    }
    let (_, stdout, _) = girok(&["serve", "--help"]);
    for word in ["--http-addr", "--durability", "--workers"] {
        assert!(stdout.contains(word), "serve --help lacks {word}");
    }
    let (_, stdout, _) = girok(&["log", "tail", "--help"]);
    for word in ["--from", "--type", "--follow", "--server"] {
        assert!(stdout.contains(word), "log tail --help lacks {word}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nhttp_adr = \"x\"\n").unwrap();
    let (status, _, stderr) = girok(&["--config", bad.to_str().unwrap(), "log", "stats"]);
    assert_eq!(status, 2);
    assert!(stderr.contains("http_adr"), "{stderr}");
    let (status, _, stderr) = girok(&["serve", "--durability", "sometimes"]);
    assert_ne!(status, 0);
    assert!(stderr.contains("sometimes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_until_one_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(dir.path(), "[server]\nmax_connections = 2\n");
    let addr = server.base.trim_start_matches("http://").to_owned();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let ask = |mut stream: tokio::net::TcpStream| {
        let request = request.clone();
        async move {
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = vec![0u8; 512];
            let n = stream.read(&mut answer).await.unwrap();
            (stream, String::from_utf8_lossy(&answer[..n]).into_owned())
        }
    };
    // Two keep-alive connections take both places.
    let (first, answer) = ask(tokio::net::TcpStream::connect(&addr).await.unwrap()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (second, answer) = ask(tokio::net::TcpStream::connect(&addr).await.unwrap()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A third is refused at once, with a reason and a wait, while they stay open...
    let (_, answer) = tokio::time::timeout(
        Duration::from_secs(5),
        ask(tokio::net::TcpStream::connect(&addr).await.unwrap()),
    )
    .await
    .expect("refused at once");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("TOO_MANY_CONNECTIONS"), "{answer}");
    // ...and the next one is served as soon as one closes.
    drop(first);
    // As soon as girok has seen it close (a precondition, not a speed: 10 s at most).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, answer) = ask(tokio::net::TcpStream::connect(&addr).await.unwrap()).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);
}
