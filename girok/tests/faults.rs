//! Storage faults through the real binary: a full disk (a small tmpfs this test mounts, so it
//! must run as root) degrades girok, which refuses writes with a typed answer and heals by
//! itself once space is freed, losing and duplicating nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Server;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount(8) runs");
        assert!(
            status.success(),
            "this test mounts a small tmpfs to fill it: run it as root ({status})"
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes 1 MiB chunks to `path` until the disk is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![7u8; 1 << 20];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

/// POSTs a message with `client_id`: (status, code, Retry-After, body).
async fn send(
    server: &Server,
    token: &str,
    room: &str,
    client_id: &str,
) -> (u16, Value, Option<String>) {
    let response = server
        .client
        .post(server.url(&format!("/v1/rooms/{room}/messages")))
        .bearer_auth(token)
        .json(&json!({ "body": format!("message {client_id}"), "clientId": client_id }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = common::header(&response, "retry-after");
    (status, response.json().await.unwrap(), retry_after)
}

async fn readyz(server: &Server) -> (u16, Value) {
    match reqwest::get(server.url("/readyz")).await {
        Ok(response) => (response.status().as_u16(), response.json().await.unwrap()),
        Err(error) => (0, json!({ "error": error.to_string() })),
    }
}

/// Every clientId in the room once the views reflect `after`, in history order.
async fn client_ids(server: &Server, room: &str, after: u64) -> Vec<String> {
    server
        .history(room, after)
        .await
        .iter()
        .map(|m| m["clientId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_heal_by_themselves_after_a_full_disk_and_nothing_is_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "96m");
    let data = disk.0.join("data");
    let mut server = Server::start(&data, &[]);
    let token = server.sign_in("disk").await;
    let room = server.create_room("disk").await;
    let mut attempted = Vec::new();
    let mut acked = Vec::new();
    for i in 0..20 {
        let id = format!("before-{i}");
        let (status, body, _) = send(&server, &token, &room, &id).await;
        assert_eq!(status, 201, "{body}");
        attempted.push(id.clone());
        acked.push(id);
    }

    // Four writers write all along; the disk fills under them, then space is freed.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, url, token, stop) = (
                server.client.clone(),
                server.url(&format!("/v1/rooms/{room}/messages")),
                token.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let (mut attempted, mut acked, mut refused) = (Vec::new(), Vec::new(), 0);
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let id = format!("w{w}-{i}");
                    i += 1;
                    attempted.push(id.clone());
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({ "body": format!("message {id}"), "clientId": id }))
                        .send()
                        .await
                        .unwrap();
                    match response.status().as_u16() {
                        201 => acked.push(id),
                        503 => {
                            let body: Value = response.json().await.unwrap();
                            assert_eq!(body["error"]["code"], "STORAGE_UNAVAILABLE", "{body}");
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        status => panic!("unexpected {status}"),
                    }
                }
                (attempted, acked, refused)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Fill the disk: girok degrades.
    let filler = disk.0.join("filler");
    fill(&filler);
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz(&server).await.1["log"]["state"] != "degraded" {
        assert!(server.child.try_wait().unwrap().is_none(), "girok exited");
        assert!(
            Instant::now() < deadline,
            "girok never noticed the full disk"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Degraded: writes refused at once, girok alive, readiness and metrics say why, reads go on.
    let started = Instant::now();
    let (status, body, retry_after) = send(&server, &token, &room, "while-full").await;
    attempted.push("while-full".into());
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("STORAGE_UNAVAILABLE"))
    );
    assert!(retry_after.is_some());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let (status, ready) = readyz(&server).await;
    assert_eq!(status, 503);
    assert!(ready["log"]["error"].is_string(), "{ready}");
    let healthz = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(healthz.status().as_u16(), 200);
    assert_eq!(server.metric("girok_log_state ").await, 1);
    let (status, _) = server
        .get_json(&format!("/v1/rooms/{room}/messages?first=5"))
        .await;
    assert_eq!(status, 200, "reads go on while writes are refused");
    // A WebSocket send is refused with an error frame that says when to retry.
    let mut socket = common::sockets::connect(&server, Some(&token)).await;
    assert_eq!(common::sockets::next(&mut socket).await["type"], "welcome");
    common::sockets::send(
        &mut socket,
        json!({ "type": "send", "ref": "ws", "clientId": "ws-full", "roomId": room, "body": "message ws-full" }),
    )
    .await;
    attempted.push("ws-full".into());
    let refusal = common::sockets::next_of(&mut socket, "error").await;
    assert_eq!(refusal["code"], "STORAGE_UNAVAILABLE", "{refusal}");
    assert_eq!(refusal["ref"], "ws");
    assert!(
        refusal["retryAfterMs"].as_u64().unwrap() >= 1000,
        "{refusal}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Free the space: writes come back without a restart.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    while readyz(&server).await.1["log"]["state"] != "ok" {
        assert!(server.child.try_wait().unwrap().is_none(), "girok exited");
        assert!(
            freed.elapsed() < Duration::from_secs(30),
            "writes are accepted again within 30 s of freeing space"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "writes accepted again {:?} after the space was freed",
        freed.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut refused = 0;
    for writer in writers {
        let (tried, landed, shed) = writer.await.unwrap();
        attempted.extend(tried);
        acked.extend(landed);
        refused += shed;
    }
    eprintln!("{} writes acknowledged, {refused} refused", acked.len());
    assert!(refused > 0);
    let (status, ready) = readyz(&server).await;
    assert_eq!(
        (status, ready["log"]["state"].as_str()),
        (200, Some("ok")),
        "{ready}"
    );
    assert!(server.metric("girok_log_heals_total").await >= 1);

    // A refused write may or may not have landed: retried with its clientId, it lands once.
    let mut last_seq = 0;
    for id in &attempted {
        let (status, body, _) = send(&server, &token, &room, id).await;
        assert!(status == 200 || status == 201, "{status}: {body}");
        last_seq = last_seq.max(body["seq"].as_u64().unwrap());
        if !acked.contains(id) {
            acked.push(id.clone());
        }
    }
    let check = |ids: Vec<String>| {
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "a message is in the room twice");
        let mut expected = acked.clone();
        expected.sort();
        assert_eq!(
            sorted, expected,
            "exactly the acknowledged messages are in the room"
        );
    };
    check(client_ids(&server, &room, last_seq).await);

    // And after a restart, the same.
    assert!(server.terminate().success());
    let server = Server::start(&data, &[]);
    server.set_token(&token);
    check(client_ids(&server, &room, last_seq).await);
    drop(server);
    drop(disk);
}
