//! Acknowledged writes survive `kill -9` and SIGTERM: the real binary, real HTTP clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{SEND, Server};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An acknowledged send: room, client id, seq, id.
type Acked = (String, String, u64, String);

/// Runs `writers` concurrent clients sending into `rooms` until the server goes away (or each
/// has sent `cap` messages); returns what was acknowledged.
fn start_writers(
    server: &Server,
    rooms: &[String],
    writers: usize,
    cap: usize,
) -> (Arc<Mutex<Vec<Acked>>>, Vec<tokio::task::JoinHandle<()>>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (client, url) = (server.client.clone(), server.url("/graphql"));
        let token = server.token.read().unwrap().clone().expect("signed in");
        let room = rooms[w % rooms.len()].clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..cap {
                let client_id = format!("w{w}-{i}");
                let body = json!({ "query": SEND, "variables": { "r": room, "b": format!("msg {client_id}"), "c": client_id } });
                let Ok(response) = client.post(&url).bearer_auth(&token).json(&body).send().await
                else {
                    return; // the server is gone
                };
                let Ok(answer) = response.json::<serde_json::Value>().await else {
                    return;
                };
                let ack = &answer["data"]["sendMessage"];
                if ack.is_null() {
                    return; // e.g. UNAVAILABLE while shutting down
                }
                acked.lock().unwrap().push((
                    room.clone(),
                    client_id,
                    ack["seq"].as_u64().unwrap(),
                    ack["id"].as_str().unwrap().to_owned(),
                ));
            }
        }));
    }
    (acked, tasks)
}

/// After a restart: every acked message is in its room's history exactly once, with its seq
/// and id; no message appears twice anywhere.
async fn assert_all_acked_present(server: &Server, rooms: &[String], acked: &[Acked]) {
    let max_seq = acked.iter().map(|a| a.2).max().unwrap();
    let mut seen_ids = HashSet::new();
    let mut seen_seqs = HashSet::new();
    let mut by_client_id: HashMap<(String, String), Vec<(u64, String)>> = HashMap::new();
    for room in rooms {
        for message in server.history(room, max_seq).await {
            let id = message["id"].as_str().unwrap().to_owned();
            let seq = message["seq"].as_u64().unwrap();
            assert!(seen_ids.insert(id.clone()), "message {id} listed twice");
            assert!(seen_seqs.insert(seq), "seq {seq} listed twice");
            let client_id = message["clientId"].as_str().unwrap().to_owned();
            by_client_id
                .entry((room.clone(), client_id))
                .or_default()
                .push((seq, id));
        }
    }
    for (room, client_id, seq, id) in acked {
        let found = by_client_id
            .get(&(room.clone(), client_id.clone()))
            .unwrap_or_else(|| panic!("acked message {client_id} (seq {seq}) was lost"));
        assert_eq!(found, &vec![(*seq, id.clone())], "{client_id} exactly once");
    }
}

/// Waits until the writers have `count` acknowledgements (a precondition, not a speed: the
/// deadline is only there to fail instead of hanging).
async fn until_acked<T>(acked: &std::sync::Mutex<Vec<T>>, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {count} acks in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acked_messages_survive_kill_9_mid_load_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    server.sign_in("tester").await;
    let mut rooms = Vec::new();
    for i in 0..4 {
        rooms.push(server.create_room(&format!("room {i}")).await);
    }
    let (acked, tasks) = start_writers(&server, &rooms, 16, usize::MAX);
    // Let load build up (however slow the machine), then kill without warning while requests
    // are in flight.
    until_acked(&acked, 100).await;
    server.kill9();
    for task in tasks {
        task.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "the load was real: {} acks", acked.len());
    eprintln!("{} sends acknowledged before kill -9", acked.len());

    let server = Server::start(&data, &[]);
    server.sign_in("tester").await;
    assert_all_acked_present(&server, &rooms, &acked).await;

    // The history view agrees with the log: its watermark reaches the head and /readyz is 200
    // (once the search index, rebuilt at the lowest priority, has caught up too).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (status, ready) = loop {
        let (status, ready) = server.get_json("/readyz").await;
        if status == 200 || tokio::time::Instant::now() > deadline {
            break (status, ready);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 200, "{ready}");
    let head = ready["log"]["head"].as_u64().unwrap();
    assert!(head >= acked.iter().map(|a| a.2).max().unwrap());

    // A client retrying an acked send after the crash gets the original ack, not a duplicate.
    let (room, client_id, seq, id) = acked[acked.len() / 2].clone();
    let retry = server
        .gql(
            SEND,
            json!({ "r": room, "b": format!("msg {client_id}"), "c": client_id }),
        )
        .await;
    assert_eq!(retry["sendMessage"]["duplicate"], true);
    assert_eq!(retry["sendMessage"]["seq"], seq);
    assert_eq!(retry["sendMessage"]["id"], id.as_str());
    server.kill9();

    // And once more, with a kill right after start-up: nothing changes.
    let server = Server::start(&data, &[]);
    server.sign_in("tester").await;
    assert_all_acked_present(&server, &rooms, &acked).await;
}

/// Writes posts until the server is gone: each is liked and commented on, and every fourth
/// one deleted; `(post id, seq of its comment)` for each whose like and comment were acked and
/// that was not deleted.
async fn write_posts(
    client: reqwest::Client,
    url: String,
    token: String,
    posts: Arc<Mutex<Vec<(String, u64)>>>,
) {
    let call = |query: &'static str, variables: serde_json::Value| {
        let request = client
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({ "query": query, "variables": variables }));
        async move {
            let answer: serde_json::Value = request.send().await.ok()?.json().await.ok()?;
            answer.get("data").filter(|d| !d.is_null()).cloned()
        }
    };
    for i in 0.. {
        let Some(post) = call(
            "mutation($c: String!) { createPost(content: $c) { id } }",
            json!({ "c": format!("post {i}") }),
        )
        .await
        else {
            return;
        };
        let id = post["createPost"]["id"].as_str().unwrap().to_owned();
        if call(
            "mutation($p: ID!) { likePost(id: $p) { likes } }",
            json!({ "p": id }),
        )
        .await
        .is_none()
        {
            return;
        }
        let Some(comment) = call(
            "mutation($p: ID!) { addComment(postId: $p, content: \"nice\") { seq } }",
            json!({ "p": id }),
        )
        .await
        else {
            return;
        };
        if i % 4 == 3 {
            if call(
                "mutation($p: ID!) { deletePost(id: $p) { seq } }",
                json!({ "p": id }),
            )
            .await
            .is_none()
            {
                return;
            }
            continue;
        }
        let seq = comment["addComment"]["seq"].as_u64().unwrap();
        posts.lock().unwrap().push((id, seq));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn views_resume_from_their_checkpoint_after_kill_9_mid_load_and_equal_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    server.sign_in("tester").await;
    let mut rooms = Vec::new();
    for i in 0..3 {
        rooms.push(server.create_room(&format!("room {i}")).await);
    }
    // Edits and receipts among the sends, so that every chat view has rows to resume.
    let first = server
        .gql(SEND, json!({ "r": rooms[0], "b": "to edit", "c": "first" }))
        .await;
    let first_id = first["sendMessage"]["id"].as_str().unwrap().to_owned();
    server
        .gql(
            "mutation($m: ID!) { editMessage(messageId: $m, body: \"edited\") }",
            json!({ "m": first_id }),
        )
        .await;
    let loading = tokio::time::Instant::now();
    let (acked, mut tasks) = start_writers(&server, &rooms, 8, usize::MAX);
    // Posts, likes, comments and deletions among the sends, so that the feed views' stored
    // inputs are written (and cut by the kill) too.
    let posts = Arc::new(Mutex::new(Vec::new()));
    tasks.push(tokio::spawn(write_posts(
        server.client.clone(),
        server.url("/graphql"),
        server.token.read().unwrap().clone().unwrap(),
        posts.clone(),
    )));
    until_acked(&acked, 300).await;
    // Ten posts at least, however slow the machine: the message writers saturate the server,
    // and on a slow one a post, its like and its comment took 0.6 s.
    until_acked(&posts, 10).await;
    // The view store's memtable is sealed and flushed at least every 5 s while rows come: by
    // 8 s a checkpoint is on disk. The kill lands while rows and checkpoints are being written
    // (one batch per round), with a memtable of them not flushed yet.
    tokio::time::sleep_until(loading + Duration::from_secs(8)).await;
    server.kill9();
    for task in tasks {
        task.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let posts = posts.lock().unwrap().clone();
    assert!(posts.len() >= 10, "{} posts written", posts.len());

    let server = Server::start(&data, &[]);
    server.sign_in("tester").await;
    let resumed = server.metric("girok_views_resumed_seq").await;
    assert!(resumed > 0, "the views resumed from their checkpoint");
    assert_all_acked_present(&server, &rooms, &acked).await;
    // Every acknowledged post is there with its acknowledged like and comment.
    for (post, seq) in &posts {
        let found = server
            .gql(
                "query($p: ID!, $a: Seq) { post(id: $p, after: $a) { likes commentCount } }",
                json!({ "p": post, "a": seq }),
            )
            .await;
        assert_eq!(found["post"]["likes"], 1, "{post}");
        assert_eq!(found["post"]["commentCount"], 1, "{post}");
    }
    let history = server.history(&rooms[0], 0).await;
    let edited = history
        .iter()
        .find(|m| m["id"] == first_id.as_str())
        .unwrap();
    assert_eq!(edited["body"], "edited");
    // The log moves past the checkpoint: a receipt and a message more.
    server
        .gql(
            "mutation($r: ID!) { markRead(roomId: $r) { seq } }",
            json!({ "r": rooms[1] }),
        )
        .await;
    server
        .gql(SEND, json!({ "r": rooms[2], "b": "after" }))
        .await;

    let ready = common::views_caught_up(&server).await;
    assert!(server.terminate().success());
    let data_arg = data.to_str().unwrap();
    let (status, stdout, stderr) = common::girok(&["replay", "--json", "--data-dir", data_arg]);
    assert_eq!(status, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let replayed = common::assert_replay_equals(&ready, &report);
    for name in ["room_history", "read_receipts", "timelines", "post_stats"] {
        assert!(replayed.iter().any(|n| n == name), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_in_flight_writes_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    server.sign_in("tester").await;
    let rooms = vec![server.create_room("drain").await];
    let (acked, tasks) = start_writers(&server, &rooms, 8, usize::MAX);
    until_acked(&acked, 20).await;
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    for task in tasks {
        task.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());
    let server = Server::start(&data, &[]);
    server.sign_in("tester").await;
    assert_all_acked_present(&server, &rooms, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buffered_durability_survives_a_process_crash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--durability", "buffered"]);
    server.sign_in("tester").await;
    let (_, ready) = server.get_json("/readyz").await;
    assert_eq!(ready["log"]["durability"], "buffered");
    let rooms = vec![server.create_room("fast").await];
    let (acked, tasks) = start_writers(&server, &rooms, 8, 100);
    for task in tasks {
        task.await.unwrap();
    }
    server.kill9();
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 800);
    let server = Server::start(&data, &[]);
    server.sign_in("tester").await;
    assert_all_acked_present(&server, &rooms, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_journal_tail_is_cut_off_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    server.sign_in("tester").await;
    let rooms = vec![server.create_room("torn").await];
    let (acked, tasks) = start_writers(&server, &rooms, 4, 50);
    for task in tasks {
        task.await.unwrap();
    }
    server.kill9();

    // Simulate a write torn by the crash: half a batch of garbage at the end of the newest
    // journal file.
    let journal = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jnl"))
        .max()
        .expect("a journal file");
    let mut torn = std::fs::read(&journal).unwrap();
    let garbage: Vec<u8> = (0..700u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    torn.extend_from_slice(&garbage);
    std::fs::write(&journal, torn).unwrap();

    let server = Server::start(&data, &[]);
    server.sign_in("tester").await;
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 200);
    assert_all_acked_present(&server, &rooms, &acked).await;
    // And the log goes on where it stopped.
    let head = server.gql("{ logHead { seq } }", json!({})).await["logHead"]["seq"]
        .as_u64()
        .unwrap();
    let next = server
        .gql(SEND, json!({ "r": rooms[0], "b": "after the tear" }))
        .await;
    assert_eq!(next["sendMessage"]["seq"], head + 1);
}
