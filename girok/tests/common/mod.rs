//! Test harness: runs the real `girok` binary on an ephemeral port and talks to it with a real
//! HTTP client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod clickhouse;
pub mod sockets;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const GIROK: &str = env!("CARGO_BIN_EXE_girok");

/// The kinds of write budget (`[rate_limits]`).
const UNLIMITED_WRITES: [&str; 8] = [
    "MESSAGES", "POSTS", "COMMENTS", "LIKES", "FOLLOWS", "ROOMS", "MATCHING", "MEDIA",
];

/// A running `girok serve`.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// The operators' listener (`server.ops_addr`), when configured.
    pub ops_base: Option<String>,
    /// The QUIC endpoint and its certificate's SHA-256 (hex), when enabled.
    pub quic: Option<(std::net::SocketAddr, String)>,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
    /// The access token `gql` and `get_json` send, once signed in.
    pub token: std::sync::RwLock<Option<String>>,
}

/// How long a test server's reads wait for the views to reach a write (`engine.read_wait_ms`,
/// 5 s by default): the suite runs dozens of servers at once on two cores, and a server's views
/// have fallen more than 5 s behind its log there (`VIEW_TIMEOUT` in a test that passes alone).
/// Tests of the wait itself set theirs (`GIROK__ENGINE__READ_WAIT_MS`, or `read_wait_ms` in
/// a configuration file).
pub const TEST_READ_WAIT_MS: i64 = 30_000;

/// The harness's read wait, unless the server is given a configuration file (which an
/// environment variable would override: [`Server::start_with_config`] writes it there).
fn read_wait(extra: &[&str]) -> Option<(&'static str, String)> {
    (!extra.contains(&"--config"))
        .then(|| ("GIROK__ENGINE__READ_WAIT_MS", TEST_READ_WAIT_MS.to_string()))
}

/// `toml` with the harness's read wait in `[engine]`, unless it sets its own.
fn with_read_wait(toml: &str) -> String {
    let mut config: toml::Table = toml.parse().expect("a TOML configuration");
    let engine = config
        .entry("engine")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(engine) = engine.as_table_mut() {
        engine
            .entry("read_wait_ms")
            .or_insert(toml::Value::Integer(TEST_READ_WAIT_MS));
    }
    config.to_string()
}

impl Server {
    /// Starts `girok serve` on `data_dir` with a free port and waits until it listens.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// Starts `girok serve` with `toml` as its configuration file, data in `dir/data`; the
    /// file gets the harness's read wait ([`TEST_READ_WAIT_MS`]) unless it sets its own.
    pub fn start_with_config(dir: &Path, toml: &str) -> Server {
        let config = dir.join("girok.toml");
        std::fs::write(&config, with_read_wait(toml)).unwrap();
        let config = config.to_str().unwrap();
        Self::start(&dir.join("data"), &["--config", config])
    }

    /// The same with extra environment variables (configuration: `GIROK__SECTION__KEY`;
    /// they override the harness's own, [`TEST_READ_WAIT_MS`] among them).
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_under(&[], data_dir, extra, env)
    }

    /// The same, run by `wrapper` (say, `prlimit --nofile=…`) when it is not empty.
    pub fn start_under(
        wrapper: &[&str],
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(GIROK);
                command
            }
            None => Command::new(GIROK),
        };
        let mut child = command
            .args(["serve", "--http-addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            // Tests write as fast as they can as few users; the write budgets have tests of
            // their own, which set them through `env` (applied last).
            .envs(
                UNLIMITED_WRITES
                    .iter()
                    .map(|kind| (format!("GIROK__RATE_LIMITS__{kind}__PER_MINUTE"), "0")),
            )
            .env("GIROK__AUTH__REGISTRATIONS_PER_MINUTE_PER_IP", "1000000")
            // Tests run in parallel: each server's QUIC endpoint on a port of its own.
            .env("GIROK__QUIC__ADDR", "127.0.0.1:0")
            .envs(read_wait(extra))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("girok starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("girok listening on ") {
                    let _ = tx.send((Some(false), addr.to_owned()));
                } else if let Some(addr) = line.strip_prefix("girok ops listening on ") {
                    let _ = tx.send((Some(true), addr.to_owned()));
                } else if let Some(quic) = line.strip_prefix("girok quic listening on ") {
                    let _ = tx.send((None, quic.to_owned()));
                }
            }
        });
        // The operators' and the QUIC addresses, if any, are printed before the main one.
        let (mut ops_base, mut quic) = (None, None);
        let base = loop {
            let (ops, addr) = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("girok printed its address");
            match ops {
                Some(true) => ops_base = Some(addr),
                Some(false) => break addr,
                None => {
                    let (addr, sha256) = addr.split_once(" sha256 ").expect("address and hash");
                    quic = Some((addr.parse().expect("a socket address"), sha256.to_owned()));
                }
            }
        };
        Server {
            child,
            base,
            ops_base,
            quic,
            data_dir: data_dir.to_owned(),
            client: reqwest::Client::new(),
            token: std::sync::RwLock::new(None),
        }
    }

    /// Registers `username` (if new) and logs in; later requests carry the access token.
    pub async fn sign_in(&self, username: &str) -> String {
        let _ = self
            .client
            .post(self.url("/v1/auth/register"))
            .json(
                &json!({ "username": username, "email": format!("{username}@example.org"),
                           "password": "password123", "displayName": username }),
            )
            .send()
            .await
            .unwrap();
        let login: Value = self
            .client
            .post(self.url("/v1/auth/login"))
            .json(&json!({ "username": username, "password": "password123" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["accessToken"].as_str().expect("logged in").to_owned();
        self.set_token(&token);
        token
    }

    pub fn set_token(&self, token: &str) {
        *self.token.write().unwrap() = Some(token.to_owned());
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.token.read().unwrap().as_deref() {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `GET path`, without credentials: the whole response.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// The value of a `/metrics` line starting with `line_prefix` (a name with its labels);
    /// 0 when there is no such line.
    pub async fn metric(&self, line_prefix: &str) -> u64 {
        metric_in(&self.metrics().await, line_prefix)
    }

    /// The operator token the server keeps in its data directory (for `/v1/log/*`).
    pub fn operator_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("keys").join("operator-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn gql_response(&self, query: &str, variables: Value) -> reqwest::Response {
        self.authorized(self.client.post(self.url("/graphql")))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
    }

    /// POSTs a GraphQL request; returns (status, body).
    pub async fn gql_status(&self, query: &str, variables: Value) -> (u16, Value) {
        let response = self.gql_response(query, variables).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// POSTs a GraphQL request; returns the body as sent (to check the order of its keys).
    pub async fn gql_text(&self, query: &str, variables: Value) -> String {
        let response = self.gql_response(query, variables).await;
        assert_eq!(response.status().as_u16(), 200);
        response.text().await.unwrap()
    }

    /// POSTs a GraphQL request that must succeed; returns `data`.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.gql_status(query, variables).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// `POST path` with a JSON body, as the signed-in user; (status, body).
    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .authorized(self.client.post(self.url(path)))
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self
            .authorized(self.client.get(self.url(path)))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub async fn create_room(&self, title: &str) -> String {
        let data = self
            .gql(
                "mutation($t: String!) { createRoom(title: $t) { id } }",
                json!({ "t": title }),
            )
            .await;
        data["createRoom"]["id"].as_str().unwrap().to_owned()
    }

    /// Every message of a room, newest first, read page by page with `after`.
    /// The signed-in user's id.
    pub async fn my_id(&self) -> String {
        let data = self.gql("{ me { id } }", json!({})).await;
        data["me"]["id"].as_str().unwrap().to_owned()
    }

    /// The signed-in owner adds `user` to `room`; returns the seq.
    pub async fn add_member(&self, room: &str, user: &str) -> u64 {
        let data = self
            .gql(
                "mutation($r: ID!, $u: ID!) { addMember(roomId: $r, userId: $u) }",
                json!({ "r": room, "u": user }),
            )
            .await;
        data["addMember"].as_u64().unwrap()
    }

    pub async fn history(&self, room: &str, after: u64) -> Vec<Value> {
        let mut all = Vec::new();
        let mut before = Value::Null;
        loop {
            let data = self
                .gql(
                    "query($r: ID!, $b: Seq, $a: Seq) { messages(roomId: $r, first: 100, before: $b, after: $a) { nodes { id seq body clientId } pageInfo { hasNextPage endCursor } } }",
                    json!({ "r": room, "b": before, "a": after }),
                )
                .await;
            let page = &data["messages"];
            all.extend(page["nodes"].as_array().unwrap().iter().cloned());
            if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                return all;
            }
            before = page["pageInfo"]["endCursor"].clone();
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        wait_with_timeout(&mut self.child, Duration::from_secs(30))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a one-shot `girok` command; returns (exit code, stdout, stderr).
pub fn girok(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(GIROK)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

pub const SEND: &str = "mutation($r: ID!, $b: String!, $c: String) { sendMessage(roomId: $r, body: $b, clientId: $c) { seq id duplicate } }";

/// The value of the line of a `/metrics` text starting with `line_prefix` (a name with its
/// labels); 0 when there is no such line.
pub fn metric_in(text: &str, line_prefix: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse::<f64>().unwrap() as u64)
}

/// A response header as text.
pub fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// The first error's `extensions.code`.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

/// One REST call with `token` as Bearer; returns (status, JSON body or null).
pub async fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = server.url(path);
    let mut request = match method {
        "GET" => server.client.get(url),
        "POST" => server.client.post(url),
        "PATCH" => server.client.patch(url),
        "DELETE" => server.client.delete(url),
        other => panic!("{other}"),
    }
    .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Signs `name` in and returns (token, user id).
pub async fn user(server: &Server, name: &str) -> (String, String) {
    let token = server.sign_in(name).await;
    (token, server.my_id().await)
}

/// Runs a GraphQL request as `token`; returns the whole body (data and errors).
pub async fn as_user(server: &Server, token: &str, query: &str, variables: Value) -> Value {
    server.set_token(token);
    server.gql_status(query, variables).await.1
}

/// `/readyz` once every view has caught up with the log (at most 60 s).
pub async fn views_caught_up(server: &Server) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, ready) = server.get_json("/readyz").await;
        let caught_up = ready["views"]
            .as_array()
            .is_some_and(|views| views.iter().all(|v| v["lag"] == 0));
        if status == 200 && caught_up {
            return ready;
        }
        assert!(Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every view `ready` (a server's `/readyz`) lists has the digest `report` (`girok replay
/// --json` on the same log) gives it; returns the names the replay reported.
pub fn assert_replay_equals(ready: &Value, report: &Value) -> Vec<String> {
    let replayed: std::collections::HashMap<&str, &Value> = report["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), &v["digest"]))
        .collect();
    for view in ready["views"].as_array().unwrap() {
        let name = view["name"].as_str().unwrap();
        assert_eq!(Some(&&view["digest"]), replayed.get(name), "view {name}");
    }
    replayed.keys().map(|name| name.to_string()).collect()
}

/// `n` ready images of `token`'s user (small PNGs of the one-step upload), by id.
pub async fn ready_media(server: &Server, token: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let pixels = image::RgbImage::from_pixel(8 + i as u32, 8, image::Rgb([i as u8, 9, 90]));
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(pixels)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let response = server
            .client
            .post(server.url("/v1/media/upload"))
            .bearer_auth(token)
            .header("content-type", "image/png")
            .body(png)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
        let id = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, media) = call(server, "GET", &format!("/v1/media/{id}"), token, None).await;
            if media["state"] == "ready" {
                break;
            }
            assert!(Instant::now() < deadline, "{media}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ids.push(id);
    }
    ids
}

/// The repository's root (for scripts and files the tests use).
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The browser tests' tools: playwright-core's `node_modules` and Debian's Chromium (what
/// `scripts/browser.sh install` prints and installs). Missing, the test fails loudly.
pub fn browser() -> (String, String) {
    let node_modules = std::env::var("GIROK_TEST_BROWSER_NODE_MODULES").expect(
        "GIROK_TEST_BROWSER_NODE_MODULES is not set: run scripts/test.sh, or point it at what \
         `scripts/browser.sh install` prints",
    );
    let chromium =
        std::env::var("GIROK_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&chromium).exists(), "no Chromium at {chromium}");
    (node_modules, chromium)
}
