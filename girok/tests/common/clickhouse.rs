//! The real ClickHouse the analytics tests use: the one `scripts/test.sh` starts
//! (`GIROK_TEST_CLICKHOUSE_URL`), or one of a test's own (for outages), started and stopped
//! with `scripts/clickhouse.sh`. A test that cannot reach ClickHouse fails; it never skips.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/clickhouse.sh")
}

/// The shared server's URL; panics (the test fails) when it is not configured or not up.
pub fn shared_url() -> String {
    let url = std::env::var("GIROK_TEST_CLICKHOUSE_URL").unwrap_or_else(|_| {
        panic!(
            "GIROK_TEST_CLICKHOUSE_URL is not set: the analytics tests need a real ClickHouse. \
             Run ./scripts/test.sh, or start one with `scripts/clickhouse.sh start DIR` and \
             export its URL"
        )
    });
    assert!(ping(&url), "ClickHouse at {url} does not answer /ping");
    url
}

/// A database name no other test uses.
pub fn unique_database() -> String {
    format!("t_{}", uuid::Uuid::now_v7().simple())
}

/// Starts a ClickHouse of the test's own in `dir` (on `port`, or a free one); its URL.
pub fn start_own(dir: &Path, port: Option<u16>) -> String {
    let mut command = Command::new("bash");
    command.arg(script()).arg("start").arg(dir);
    if let Some(port) = port {
        command.arg(port.to_string());
    }
    let output = command.output().expect("scripts/clickhouse.sh runs");
    assert!(
        output.status.success(),
        "clickhouse did not start: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Stops the test's own ClickHouse.
pub fn stop_own(dir: &Path) {
    let status = Command::new("bash")
        .arg(script())
        .arg("stop")
        .arg(dir)
        .status()
        .expect("scripts/clickhouse.sh runs");
    assert!(status.success());
}

/// Runs `sql` and returns the TSV answer; panics with ClickHouse's message on an error.
pub async fn query(url: &str, sql: &str) -> String {
    let response = reqwest::Client::new()
        .post(url)
        .timeout(Duration::from_secs(30))
        .body(sql.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| panic!("ClickHouse at {url} unreachable: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{sql}\n-> {status}: {text}");
    text
}

/// The single number `sql` answers.
pub async fn number(url: &str, sql: &str) -> i64 {
    let text = query(url, sql).await;
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{sql} answered {text:?}"))
}

/// `GET /ping` over a plain TCP connection (usable outside a runtime).
fn ping(url: &str) -> bool {
    use std::io::{Read, Write};
    let Some(host) = url.strip_prefix("http://") else {
        return false;
    };
    let host = host.trim_end_matches('/');
    let Ok(mut stream) = std::net::TcpStream::connect(host) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /ping HTTP/1.0\r\nHost: {host}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}
