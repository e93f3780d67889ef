//! Analytics against a real ClickHouse (see `common/clickhouse.rs`): every event type lands in
//! `audit_events` with its columns and without secrets; the rollups count exactly through
//! deletes and unlikes, and the queries of docs/analytics.md answer them; a ClickHouse outage
//! under load and a kill -9 of girok mid-stream lose nothing and duplicate nothing; a rebuild
//! gives the same totals; without ClickHouse, analytics is off and girok runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::clickhouse::{self, number, query};
use common::{Server, call};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Environment for a server shipping to `url`, database `db`, with quick retries and a 1 s
/// breaker reset (the defaults are seed 002's 30 s).
fn env(url: &str, db: &str) -> Vec<(String, String)> {
    [
        ("GIROK__ANALYTICS__CLICKHOUSE_URL", url),
        ("GIROK__ANALYTICS__DATABASE", db),
        ("GIROK__ANALYTICS__FLUSH_MS", "50"),
        ("GIROK__ANALYTICS__RETRY_BASE_MS", "20"),
        ("GIROK__ANALYTICS__RETRY_MAX_MS", "200"),
        ("GIROK__ANALYTICS__BREAKER_RESET_MS", "1000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn start(data: &std::path::Path, env: &[(String, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_with_env(data, &[], &env)
}

async fn readyz(server: &Server) -> Value {
    reqwest::get(server.url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The shared ClickHouse's URL, a database of the test's own, a temporary directory and the
/// data directory in it, and the environment of a server shipping there.
fn on_shared_clickhouse() -> (
    String,
    String,
    tempfile::TempDir,
    std::path::PathBuf,
    Vec<(String, String)>,
) {
    let url = clickhouse::shared_url();
    let db = clickhouse::unique_database();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let vars = env(&url, &db);
    (url, db, dir, data, vars)
}

/// Signs in ann, bob and cat: their tokens, and ann's id.
async fn ann_bob_and_cat(server: &Server) -> (String, String, String, String) {
    let ann = server.sign_in("ann").await;
    let ann_id = server.my_id().await;
    let bob = server.sign_in("bob").await;
    let cat = server.sign_in("cat").await;
    (ann, ann_id, bob, cat)
}

/// Waits until the sink has shipped everything up to the log head; returns the head.
async fn shipped(server: &Server) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = readyz(server).await;
        let head = status["log"]["head"].as_u64().unwrap();
        let analytics = &status["analytics"];
        if analytics["shipped_seq"].as_u64() == Some(head) {
            assert_eq!(analytics["lag_events"], 0);
            return head;
        }
        assert!(
            Instant::now() < deadline,
            "not shipped in time: {analytics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The live messages `messages_per_room_daily` counts, all rooms and days.
async fn live_messages(url: &str, db: &str) -> i64 {
    let sql = format!("SELECT sum(messages) FROM {db}.messages_per_room_daily");
    number(url, &sql).await
}

/// Every seq of the log is in `audit_events` exactly once.
async fn assert_exactly_once(url: &str, db: &str, head: u64) {
    let counts = query(
        url,
        &format!("SELECT count(), uniqExact(seq), min(seq), max(seq) FROM {db}.audit_events"),
    )
    .await;
    assert_eq!(counts.trim(), format!("{head}\t{head}\t1\t{head}"));
}

async fn gql(server: &Server, token: &str, query: &str, variables: Value) -> Value {
    server.set_token(token);
    server.gql(query, variables).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_lands_in_audit_events_with_its_columns_and_no_secrets() {
    let url = clickhouse::shared_url();
    let db = clickhouse::unique_database();
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &env(&url, &db));
    let client = reqwest::Client::new();

    // Accounts: register, logins (one with a user agent), a failure, refresh, profile,
    // password change (revokes sessions), logout.
    let bob = server.sign_in("bob").await;
    let bob_id = server.my_id().await;
    let login: Value = client
        .post(server.url("/v1/auth/login"))
        .header("user-agent", "girok-test/1")
        .json(&json!({ "username": "ann", "password": "password123" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(login.get("error").is_some(), "ann does not exist yet");
    server
        .client
        .post(server.url("/v1/auth/register"))
        .json(&json!({ "username": "ann", "email": "ann@example.org",
                        "password": "password123", "displayName": "Ann" }))
        .send()
        .await
        .unwrap();
    let login: Value = client
        .post(server.url("/v1/auth/login"))
        .header("user-agent", "girok-test/1")
        .json(&json!({ "username": "ann", "password": "password123" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ann = login["accessToken"].as_str().unwrap().to_owned();
    let refresh = login["refreshToken"].as_str().unwrap().to_owned();
    let refreshed: Value = client
        .post(server.url("/v1/auth/refresh"))
        .json(&json!({ "refreshToken": refresh }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ann = refreshed["accessToken"].as_str().unwrap_or(&ann).to_owned();
    call(
        &server,
        "PATCH",
        "/v1/users/me",
        &ann,
        Some(json!({ "bio": "hello" })),
    )
    .await;

    // Chat: a room, a member joins and leaves, messages sent, edited, deleted, read.
    let (_, room) = call(
        &server,
        "POST",
        "/v1/rooms",
        &ann,
        Some(json!({ "title": "audit" })),
    )
    .await;
    let room = room["id"].as_str().unwrap().to_owned();
    call(
        &server,
        "POST",
        &format!("/v1/rooms/{room}/members"),
        &ann,
        Some(json!({ "userId": bob_id })),
    )
    .await;
    let (_, sent) = call(
        &server,
        "POST",
        &format!("/v1/rooms/{room}/messages"),
        &bob,
        Some(json!({ "body": "a secret plan" })),
    )
    .await;
    let message = sent["id"].as_str().unwrap().to_owned();
    call(
        &server,
        "PATCH",
        &format!("/v1/rooms/{room}/messages/{message}"),
        &bob,
        Some(json!({ "body": "edited" })),
    )
    .await;
    call(
        &server,
        "POST",
        &format!("/v1/rooms/{room}/read"),
        &ann,
        Some(json!({})),
    )
    .await;
    call(
        &server,
        "DELETE",
        &format!("/v1/rooms/{room}/messages/{message}"),
        &bob,
        None,
    )
    .await;
    call(
        &server,
        "POST",
        &format!("/v1/rooms/{room}/leave"),
        &bob,
        None,
    )
    .await;

    // Feed: post, edit, like, unlike, comment, delete comment, follow, unfollow, read
    // notifications, delete post.
    let (_, post) = call(
        &server,
        "POST",
        "/v1/posts",
        &ann,
        Some(json!({ "content": "hi @bob" })),
    )
    .await;
    let post = post["id"].as_str().unwrap().to_owned();
    call(
        &server,
        "PATCH",
        &format!("/v1/posts/{post}"),
        &ann,
        Some(json!({ "content": "edited" })),
    )
    .await;
    call(
        &server,
        "POST",
        &format!("/v1/posts/{post}/like"),
        &bob,
        None,
    )
    .await;
    call(
        &server,
        "DELETE",
        &format!("/v1/posts/{post}/like"),
        &bob,
        None,
    )
    .await;
    let (_, comment) = call(
        &server,
        "POST",
        &format!("/v1/posts/{post}/comments"),
        &bob,
        Some(json!({ "content": "nice" })),
    )
    .await;
    call(
        &server,
        "DELETE",
        &format!("/v1/comments/{}", comment["id"].as_str().unwrap()),
        &bob,
        None,
    )
    .await;
    let ann_id = {
        server.set_token(&ann);
        server.my_id().await
    };
    call(
        &server,
        "POST",
        &format!("/v1/users/{ann_id}/follow"),
        &bob,
        None,
    )
    .await;
    call(
        &server,
        "DELETE",
        &format!("/v1/users/{ann_id}/follow"),
        &bob,
        None,
    )
    .await;
    call(
        &server,
        "POST",
        "/v1/notifications/read",
        &bob,
        Some(json!({})),
    )
    .await;
    // Matching: a ticket each, a match, a skip (Ann waits again), a leave, a block and its end.
    let matching = [
        (
            "POST",
            "/v1/matching/queue".to_owned(),
            &bob,
            Some(json!({ "tags": ["go"] })),
        ),
        (
            "POST",
            "/v1/matching/queue".to_owned(),
            &ann,
            Some(json!({})),
        ),
        ("POST", "/v1/matching/skip".to_owned(), &ann, None),
        ("DELETE", "/v1/matching/queue".to_owned(), &ann, None),
        ("POST", format!("/v1/users/{ann_id}/block"), &bob, None),
        ("DELETE", format!("/v1/users/{ann_id}/block"), &bob, None),
    ];
    for (method, path, token, body) in matching {
        let (status, answer) = call(&server, method, &path, token, body).await;
        assert!((200..300).contains(&status), "{method} {path}: {answer}");
    }
    call(&server, "DELETE", &format!("/v1/posts/{post}"), &ann, None).await;
    let (status, _) = call(
        &server,
        "POST",
        "/v1/users/me/change-password",
        &ann,
        Some(json!({ "currentPassword": "password123", "newPassword": "password456" })),
    )
    .await;
    assert_eq!(status, 204);
    call(&server, "POST", "/v1/auth/logout", &bob, None).await;

    let head = shipped(&server).await;
    assert_exactly_once(&url, &db, head).await;
    let types = query(
        &url,
        &format!("SELECT DISTINCT type FROM {db}.audit_events ORDER BY type"),
    )
    .await;
    let types: Vec<&str> = types.lines().collect();
    let expected = [
        "auth.login.failed",
        "auth.password.changed",
        "auth.session.revoked",
        "auth.token.refreshed",
        "auth.user.logged_in",
        "auth.user.registered",
        "chat.member.joined",
        "chat.member.left",
        "chat.message.deleted",
        "chat.message.edited",
        "chat.message.sent",
        "chat.room.created",
        "chat.room.read",
        "feed.comment.added",
        "feed.comment.deleted",
        "feed.post.created",
        "feed.post.deleted",
        "feed.post.edited",
        "feed.post.liked",
        "feed.post.unliked",
        "matching.matched",
        "matching.skipped",
        "matching.ticket.closed",
        "matching.ticket.opened",
        "notification.read",
        "social.user.followed",
        "social.user.unfollowed",
        "user.blocked",
        "user.profile.updated",
        "user.unblocked",
    ];
    assert_eq!(
        types, expected,
        "every event type of the workload, once each kind"
    );

    // Typed columns.
    let logged_in = query(
        &url,
        &format!(
            "SELECT actor, target, ip, user_agent FROM {db}.audit_events \
             WHERE type = 'auth.user.logged_in' AND user_agent != '' FORMAT TSV"
        ),
    )
    .await;
    assert_eq!(
        logged_in.trim(),
        format!("{ann_id}\t{ann_id}\t127.0.0.1\tgirok-test/1")
    );
    let failed = query(
        &url,
        &format!(
            "SELECT actor, target, ip FROM {db}.audit_events WHERE type = 'auth.login.failed'"
        ),
    )
    .await;
    assert_eq!(failed.trim_end(), "\tann\t127.0.0.1");
    let sent_row = query(
        &url,
        &format!(
            "SELECT actor, target, payload FROM {db}.audit_events WHERE type = 'chat.message.sent'"
        ),
    )
    .await;
    assert!(
        sent_row.starts_with(&format!("{bob_id}\t{room}\t")),
        "{sent_row}"
    );
    assert!(sent_row.contains("bodyChars"), "{sent_row}");
    let times = number(
        &url,
        &format!("SELECT count() FROM {db}.audit_events WHERE toUnixTimestamp(time) != intDiv(time_ms, 1000)"),
    )
    .await;
    assert_eq!(times, 0);

    // No secrets, no bodies: not the hashes, not the passwords, not the text.
    let leaks = number(
        &url,
        &format!(
            "SELECT count() FROM {db}.audit_events WHERE positionCaseInsensitive(payload, 'argon2') > 0 \
             OR positionCaseInsensitive(payload, 'password123') > 0 OR position(payload, 'secret plan') > 0 \
             OR position(payload, 'Hash') > 0 OR position(payload, 'redacted') > 0"
        ),
    )
    .await;
    assert_eq!(leaks, 0);
}

/// The SQL block of docs/analytics.md whose first line is `-- {name}`.
fn documented(name: &str) -> String {
    let docs = include_str!("../../docs/analytics.md");
    let block = docs
        .split("```sql\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .find(|block| block.starts_with(&format!("-- {name}\n")))
        .unwrap_or_else(|| panic!("docs/analytics.md has no query `-- {name}`"));
    block.to_owned()
}

/// Runs a documented query in `db` (its tables are unqualified); TSV rows without dates.
async fn run_documented(url: &str, db: &str, name: &str, user: &str) -> Vec<String> {
    let sql = documented(name).replace("{user_id}", &format!("'{user}'"));
    let mut with_db = format!("{url}/?database={db}");
    if url.ends_with('/') {
        with_db = format!("{url}?database={db}");
    }
    query(&with_db, &sql)
        .await
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Drops the first column (a day or hour) of each row.
fn without_bucket(rows: &[String]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            r.split_once('\t')
                .map_or(r.as_str(), |(_, rest)| rest)
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_count_exactly_through_deletes_and_unlikes_and_a_rebuild_gives_the_same() {
    let (url, db, _dir, data, vars) = on_shared_clickhouse();
    let server = start(&data, &vars);
    let (ann, ann_id, bob, cat) = ann_bob_and_cat(&server).await;
    for _ in 0..2 {
        let response = server
            .client
            .post(server.url("/v1/auth/login"))
            .json(&json!({ "username": "ann", "password": "nope-nope" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
    }

    // Messages: 5 in room A (one deleted), 3 in room B.
    let (_, a) = call(
        &server,
        "POST",
        "/v1/rooms",
        &ann,
        Some(json!({ "title": "a" })),
    )
    .await;
    let (_, b) = call(
        &server,
        "POST",
        "/v1/rooms",
        &bob,
        Some(json!({ "title": "b" })),
    )
    .await;
    let (a, b) = (
        a["id"].as_str().unwrap().to_owned(),
        b["id"].as_str().unwrap().to_owned(),
    );
    let mut first = String::new();
    for i in 0..5 {
        let (_, m) = call(
            &server,
            "POST",
            &format!("/v1/rooms/{a}/messages"),
            &ann,
            Some(json!({ "body": format!("a{i}") })),
        )
        .await;
        if i == 0 {
            first = m["id"].as_str().unwrap().to_owned();
        }
    }
    for i in 0..3 {
        call(
            &server,
            "POST",
            &format!("/v1/rooms/{b}/messages"),
            &bob,
            Some(json!({ "body": format!("b{i}") })),
        )
        .await;
    }
    call(
        &server,
        "DELETE",
        &format!("/v1/rooms/{a}/messages/{first}"),
        &ann,
        None,
    )
    .await;

    // Feed: posts p1, p2, p3; p3 is deleted with its like and comment. Likes on p1 by bob and
    // cat (cat unlikes), on p2 by bob. Comments on p1 (one deleted) and p2.
    let mut posts = Vec::new();
    for (token, content) in [(&ann, "p1"), (&bob, "p2"), (&cat, "p3")] {
        let (_, p) = call(
            &server,
            "POST",
            "/v1/posts",
            token,
            Some(json!({ "content": content })),
        )
        .await;
        posts.push(p["id"].as_str().unwrap().to_owned());
    }
    let like = |token: &str, post: &str, method: &str| {
        let (token, post, method) = (token.to_owned(), post.to_owned(), method.to_owned());
        let server = &server;
        async move {
            call(
                server,
                &method,
                &format!("/v1/posts/{post}/like"),
                &token,
                None,
            )
            .await
        }
    };
    like(&bob, &posts[0], "POST").await;
    like(&cat, &posts[0], "POST").await;
    like(&cat, &posts[0], "DELETE").await;
    like(&bob, &posts[1], "POST").await;
    like(&ann, &posts[2], "POST").await;
    let comment = |token: &str, post: &str, text: &str| {
        let (token, post, text) = (token.to_owned(), post.to_owned(), text.to_owned());
        let server = &server;
        async move {
            let (_, c) = call(
                server,
                "POST",
                &format!("/v1/posts/{post}/comments"),
                &token,
                Some(json!({ "content": text })),
            )
            .await;
            c["id"].as_str().unwrap().to_owned()
        }
    };
    let gone = comment(&bob, &posts[0], "c1").await;
    comment(&cat, &posts[0], "c2").await;
    comment(&ann, &posts[1], "c3").await;
    comment(&ann, &posts[2], "c4").await;
    call(
        &server,
        "DELETE",
        &format!("/v1/comments/{gone}"),
        &bob,
        None,
    )
    .await;
    call(
        &server,
        "DELETE",
        &format!("/v1/posts/{}", posts[2]),
        &cat,
        None,
    )
    .await;

    let head = shipped(&server).await;
    assert_exactly_once(&url, &db, head).await;

    let rooms = run_documented(&url, &db, "messages per room", &ann_id).await;
    assert_eq!(rooms, [format!("{a}\t4"), format!("{b}\t3")]);
    let feed = run_documented(&url, &db, "posts likes comments per day", &ann_id).await;
    assert_eq!(
        without_bucket(&feed),
        ["2\t2\t2"],
        "posts, likes, comments: {feed:?}"
    );
    let logins = run_documented(&url, &db, "logins per hour", &ann_id).await;
    assert_eq!(without_bucket(&logins), ["3\t2"], "successes, failures");
    let active = run_documented(&url, &db, "daily active users", &ann_id).await;
    assert_eq!(without_bucket(&active), ["3"]);
    let failures = run_documented(&url, &db, "failed logins by address", &ann_id).await;
    assert!(failures[0].starts_with("127.0.0.1\t2\t"), "{failures:?}");
    let trail = run_documented(&url, &db, "one user's audit trail", &ann_id).await;
    assert!(trail.len() >= 10, "{trail:?}");
    // Events per type: equal to the audit rows per type.
    let per_type = run_documented(&url, &db, "events per type", &ann_id).await;
    let audit = query(
        &url,
        &format!("SELECT type, count() FROM {db}.audit_events GROUP BY type ORDER BY type"),
    )
    .await;
    assert_eq!(per_type, audit.lines().collect::<Vec<_>>());
    // The merges add the signed diffs: forcing them changes no total.
    query(&url, &format!("OPTIMIZE TABLE {db}.feed_daily_state FINAL")).await;
    let merged = run_documented(&url, &db, "posts likes comments per day", &ann_id).await;
    assert_eq!(merged, feed);

    // `girok analytics rebuild`: drops and refills; the same totals.
    assert!(server.terminate().success());
    assert_eq!(rebuild(&data, &vars)["to_seq"], head);
    assert_exactly_once(&url, &db, head).await;
    for (name, before) in [
        ("messages per room", rooms),
        ("posts likes comments per day", feed),
        ("logins per hour", logins),
        ("daily active users", active),
        ("events per type", per_type),
    ] {
        assert_eq!(
            run_documented(&url, &db, name, &ann_id).await,
            before,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_and_their_waits_are_rolled_up_per_hour() {
    let (url, db, _dir, data, vars) = on_shared_clickhouse();
    let server = start(&data, &vars);
    let mut pairs = Vec::new();
    for i in 0..4 {
        let a = server.sign_in(&format!("first{i}")).await;
        let b = server.sign_in(&format!("second{i}")).await;
        pairs.push((a, b));
    }
    for (i, (a, b)) in pairs.iter().enumerate() {
        call(&server, "POST", "/v1/matching/queue", a, Some(json!({}))).await;
        if i == 3 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let (status, joined) =
            call(&server, "POST", "/v1/matching/queue", b, Some(json!({}))).await;
        assert_eq!(status, 201);
        assert!(joined["status"]["match"].is_object(), "{joined}");
    }
    let head = shipped(&server).await;
    assert_exactly_once(&url, &db, head).await;
    // The waits the log holds, as ClickHouse's weighted exact quantiles pick them: the
    // smallest wait whose cumulative count reaches level * n (index ceil(level * n) - 1).
    let sql = format!(
        "SELECT payload FROM {db}.audit_events WHERE type = 'matching.matched' ORDER BY seq"
    );
    let mut waits: Vec<i64> = query(&url, &sql)
        .await
        .lines()
        .flat_map(|line| {
            let payload: Value = serde_json::from_str(line).unwrap();
            [
                payload["waitAMs"].as_i64().unwrap(),
                payload["waitBMs"].as_i64().unwrap(),
            ]
        })
        .collect();
    waits.sort();
    assert_eq!(waits.len(), 8);
    assert!(waits[7] >= 300, "{waits:?}");
    let matches = run_documented(&url, &db, "matches per hour", "").await;
    assert_eq!(without_bucket(&matches), ["4"]);
    let rows = run_documented(&url, &db, "match waits per hour", "").await;
    assert_eq!(
        without_bucket(&rows),
        [format!("8\t{}\t{}", waits[3], waits[7])]
    );
}

/// Runs `girok analytics rebuild` on a stopped server's data; returns its report.
fn rebuild(data: &std::path::Path, vars: &[(String, String)]) -> Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_girok"))
        .args(["analytics", "rebuild", "--json", "--data-dir"])
        .arg(data)
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The rollups' totals as the documented queries give them.
async fn totals(url: &str, db: &str, user: &str) -> Vec<(&'static str, Vec<String>)> {
    let mut totals = Vec::new();
    for name in [
        "messages per room",
        "posts likes comments per day",
        "logins per hour",
        "daily active users",
        "events per type",
    ] {
        totals.push((name, run_documented(url, db, name, user).await));
    }
    totals
}

/// Waits until the pipeline's state is checkpointed up to `seq`.
async fn checkpointed(server: &Server, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let analytics = readyz(server).await["analytics"].clone();
        if analytics["checkpoint_seq"].as_u64() >= Some(seq) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint at {seq}: {analytics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `method` on `path` as `token`; returns the created or changed object's id, if any.
async fn act(server: &Server, token: &str, method: &str, path: &str, body: Value) -> String {
    let body = (!body.is_null()).then_some(body);
    let (status, value) = call(server, method, path, token, body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {value}"
    );
    value["id"].as_str().unwrap_or_default().to_owned()
}

/// Comments on `post` as `token`; returns the comment's id.
async fn comment_as(server: &Server, token: &str, post: &str, content: &str) -> String {
    let path = format!("/v1/posts/{post}/comments");
    act(server, token, "POST", &path, json!({ "content": content })).await
}

/// Creates a post as `token`; returns its id.
async fn post_as(server: &Server, token: &str, content: &str) -> String {
    act(
        server,
        token,
        "POST",
        "/v1/posts",
        json!({ "content": content }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_resumes_the_rollups_from_their_checkpoint_and_counts_as_a_rebuild_does() {
    let (url, db, _dir, data, vars) = on_shared_clickhouse();
    let server = start(&data, &vars);
    let (ann, ann_id, bob, cat) = ann_bob_and_cat(&server).await;
    // Before the restart: p1 (liked by bob and cat, commented by bob), p2 (commented by cat),
    // messages in a room.
    let p1 = post_as(&server, &ann, "p1").await;
    let p2 = post_as(&server, &ann, "p2").await;
    for token in [&bob, &cat] {
        act(
            &server,
            token,
            "POST",
            &format!("/v1/posts/{p1}/like"),
            Value::Null,
        )
        .await;
    }
    comment_as(&server, &bob, &p1, "c1").await;
    let c2 = comment_as(&server, &cat, &p2, "c2").await;
    let room = act(&server, &ann, "POST", "/v1/rooms", json!({ "title": "r" })).await;
    let messages = format!("/v1/rooms/{room}/messages");
    for i in 0..3 {
        act(
            &server,
            &ann,
            "POST",
            &messages,
            json!({ "body": format!("m{i}") }),
        )
        .await;
    }
    let first = shipped(&server).await;
    checkpointed(&server, first).await;
    assert!(server.terminate().success());

    // A clean stop wrote the checkpoint: the restart feeds the log after it only.
    let server = start(&data, &vars);
    let head = shipped(&server).await;
    assert_eq!(head, first, "nothing was written at the restart");
    assert_eq!(readyz(&server).await["analytics"]["resumed_from"], first);
    // After it, changes to what came before: bob's like taken back, p1 deleted (with cat's
    // like and bob's comment), cat's comment on p2 deleted; and new facts on the same day by
    // the same users.
    act(
        &server,
        &bob,
        "DELETE",
        &format!("/v1/posts/{p1}/like"),
        Value::Null,
    )
    .await;
    act(
        &server,
        &ann,
        "DELETE",
        &format!("/v1/posts/{p1}"),
        Value::Null,
    )
    .await;
    act(
        &server,
        &cat,
        "DELETE",
        &format!("/v1/comments/{c2}"),
        Value::Null,
    )
    .await;
    post_as(&server, &bob, "p3").await;
    act(
        &server,
        &ann,
        "POST",
        &format!("/v1/posts/{p2}/like"),
        Value::Null,
    )
    .await;
    act(&server, &ann, "POST", &messages, json!({ "body": "late" })).await;
    server.sign_in("cat").await;
    let head = shipped(&server).await;
    assert_exactly_once(&url, &db, head).await;
    let resumed = totals(&url, &db, &ann_id).await;
    let feed = &resumed[1].1;
    assert_eq!(
        without_bucket(feed),
        ["2\t1\t0"],
        "posts, likes, comments: {feed:?}"
    );
    let active = &resumed[3].1;
    assert_eq!(
        without_bucket(active),
        ["3"],
        "each user once a day: {active:?}"
    );
    let actions = number(
        &url,
        &format!("SELECT sum(active) FROM {db}.active_users_daily"),
    )
    .await;
    assert_eq!(
        actions, 3,
        "each counted once, before the restart and after"
    );

    // A rebuild from seq 1 gives the same totals, and leaves a checkpoint the next start
    // resumes from.
    assert!(server.terminate().success());
    assert_eq!(rebuild(&data, &vars)["to_seq"], head);
    assert_exactly_once(&url, &db, head).await;
    assert_eq!(totals(&url, &db, &ann_id).await, resumed);
    let server = start(&data, &vars);
    shipped(&server).await;
    assert_eq!(readyz(&server).await["analytics"]["resumed_from"], head);

    // A database emptied behind girok's back: the checkpoint is past what ClickHouse holds,
    // so the pipeline starts over from seq 1 and ships everything again.
    assert!(server.terminate().success());
    query(&url, &format!("DROP DATABASE {db}")).await;
    let server = start(&data, &vars);
    let again = shipped(&server).await;
    assert_eq!(again, head);
    assert_eq!(readyz(&server).await["analytics"]["resumed_from"], 0);
    assert_exactly_once(&url, &db, head).await;
    assert_eq!(totals(&url, &db, &ann_id).await, resumed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_girok_while_it_checkpoints_resumes_from_a_whole_checkpoint() {
    let (url, db, _dir, data, vars) = on_shared_clickhouse();
    let server = start(&data, &vars);
    let token = server.sign_in("ann").await;
    let ann_id = server.my_id().await;
    let post = post_as(&server, &token, "p").await;
    let room = act(
        &server,
        &token,
        "POST",
        "/v1/rooms",
        json!({ "title": "crash" }),
    )
    .await;
    // Load for longer than a checkpoint's sealing interval (5 s), so that checkpoints reach
    // the disk while it runs; the kill lands in the middle of later ones.
    let sent = load_for(&server, &token, &room, Duration::from_secs(7)).await;
    let at_kill = readyz(&server).await;
    let head_at_kill = at_kill["log"]["head"].as_u64().unwrap();
    server.kill9();

    let server = start(&data, &vars);
    // Likes and a comment after the restart, on a post from before it.
    act(
        &server,
        &token,
        "POST",
        &format!("/v1/posts/{post}/like"),
        Value::Null,
    )
    .await;
    comment_as(&server, &token, &post, "c").await;
    let head = shipped(&server).await;
    let resumed = readyz(&server).await["analytics"]["resumed_from"]
        .as_u64()
        .unwrap();
    assert!(
        resumed > 0 && resumed <= head_at_kill,
        "resumed from {resumed}, the log was at {head_at_kill} at the kill: {}",
        at_kill["analytics"]
    );
    assert_exactly_once(&url, &db, head).await;
    let messages = live_messages(&url, &db).await;
    assert_eq!(messages as u64, sent);
    let live = totals(&url, &db, &ann_id).await;
    assert_eq!(without_bucket(&live[1].1), ["1\t1\t1"]);
    assert!(server.terminate().success());
    rebuild(&data, &vars);
    assert_eq!(totals(&url, &db, &ann_id).await, live);
}

/// Sends messages from `tasks` senders until `stop`; returns how many were acknowledged.
async fn load(
    server: &Server,
    token: &str,
    room: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> u64 {
    let mut sent = 0;
    let client = reqwest::Client::new();
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let response = client
            .post(server.url(&format!("/v1/rooms/{room}/messages")))
            .bearer_auth(token)
            .json(&json!({ "body": format!("m{sent}") }))
            .send()
            .await;
        match response {
            Ok(r) if r.status().as_u16() == 201 => sent += 1,
            // girok itself was killed: stop counting.
            _ => break,
        }
    }
    sent
}

/// Sends messages from 4 senders for `time`; returns how many were acknowledged.
async fn load_for(server: &Server, token: &str, room: &str, time: Duration) -> u64 {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            async move { load(server, token, room, stop).await }
        })
        .collect();
    let stopper = async {
        tokio::time::sleep(time).await;
        stop.store(true, std::sync::atomic::Ordering::Release);
    };
    let (sent, ()) = tokio::join!(futures::future::join_all(senders), stopper);
    sent.into_iter().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clickhouse_outage_under_load_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ch_dir = dir.path().join("clickhouse");
    let url = clickhouse::start_own(&ch_dir, None);
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let db = clickhouse::unique_database();
    let server = start(&dir.path().join("data"), &env(&url, &db));
    let token = server.sign_in("ann").await;
    let (_, room) = call(
        &server,
        "POST",
        "/v1/rooms",
        &token,
        Some(json!({ "title": "load" })),
    )
    .await;
    let room = room["id"].as_str().unwrap().to_owned();
    shipped(&server).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (server, token, room, stop) = (&server, token.clone(), room.clone(), stop.clone());
            async move { load(server, &token, &room, stop).await }
        })
        .collect();
    let outage = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        clickhouse::stop_own(&ch_dir);
        // Writes go on; the breaker opens and the lag grows.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut opened = false;
        while Instant::now() < deadline {
            let status = readyz(&server).await;
            assert_eq!(status["ready"], true, "an outage never makes girok unready");
            if status["analytics"]["state"] == "open"
                && status["analytics"]["lag_events"].as_u64().unwrap() > 0
            {
                opened = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            opened,
            "the breaker opened with a growing lag: {}",
            readyz(&server).await["analytics"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        clickhouse::start_own(&ch_dir, Some(port));
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, std::sync::atomic::Ordering::Release);
    };
    let (sent, ()) = tokio::join!(futures::future::join_all(senders), outage);
    let sent: u64 = sent.into_iter().sum();
    assert!(sent > 20, "the load ran: {sent}");

    let head = shipped(&server).await;
    assert_exactly_once(&url, &db, head).await;
    let messages = live_messages(&url, &db).await;
    assert_eq!(messages as u64, sent);
    let status = readyz(&server).await;
    assert_eq!(status["analytics"]["state"], "closed");
    assert_eq!(status["analytics"]["lag_seconds"], 0.0);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("girok_analytics_lag_events 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("girok_analytics_insert_failures_total"),
        "{metrics}"
    );
    drop(server);
    clickhouse::stop_own(&ch_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_girok_mid_stream_duplicates_nothing() {
    let (url, db, _dir, data, vars) = on_shared_clickhouse();
    let server = start(&data, &vars);
    let token = server.sign_in("ann").await;
    let (_, room) = call(
        &server,
        "POST",
        "/v1/rooms",
        &token,
        Some(json!({ "title": "crash" })),
    )
    .await;
    let room = room["id"].as_str().unwrap().to_owned();
    let sent = load_for(&server, &token, &room, Duration::from_millis(1500)).await;
    // Kill while the sink is mid-stream (some of the load is not shipped yet, most likely).
    let lag = readyz(&server).await["analytics"]["lag_events"].clone();
    server.kill9();

    let server = start(&data, &vars);
    let head = shipped(&server).await;
    assert_exactly_once(&url, &db, head).await;
    let messages = live_messages(&url, &db).await;
    assert_eq!(messages as u64, sent, "lag at the kill: {lag}");
    let per_type = number(
        &url,
        &format!("SELECT sum(events) FROM {db}.events_per_type_hourly"),
    )
    .await;
    assert_eq!(per_type as u64, head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_clickhouse_analytics_is_off_and_girok_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let token = server.sign_in("ann").await;
    let room = gql(
        &server,
        &token,
        "mutation { createRoom(title: \"x\") { id } }",
        json!({}),
    )
    .await;
    assert!(room["createRoom"]["id"].is_string());
    let status = readyz(&server).await;
    assert_eq!(status["ready"], true);
    assert_eq!(status["analytics"]["state"], "off");
    // It says so at start (in the server's log, which the harness keeps beside the data).
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(
        log.contains("analytics off: no analytics.clickhouse_url configured"),
        "{log}"
    );

    // A configured but unreachable ClickHouse: girok still acknowledges writes.
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        &dir.path().join("data"),
        &env("http://127.0.0.1:9", "nowhere"),
    );
    let token = server.sign_in("bob").await;
    let room = gql(
        &server,
        &token,
        "mutation { createRoom(title: \"y\") { id } }",
        json!({}),
    )
    .await;
    assert!(room["createRoom"]["id"].is_string());
    let status = readyz(&server).await;
    assert_eq!(status["ready"], true);
    assert_ne!(status["analytics"]["state"], "closed");
    assert!(status["analytics"]["lag_events"].as_u64().unwrap() > 0);
}
