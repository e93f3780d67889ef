//! HTTP and WebSocket client pieces the suites that drive a server over the network share:
//! the socket type, the `/ws` URL, signing a user up and in through the REST API.

use anyhow::{Context, bail};
use futures::StreamExt;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A signed-in user.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: String,
    pub token: String,
}

#[derive(Deserialize)]
pub struct IdBody {
    pub id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenBody {
    access_token: String,
}

/// The WebSocket URL of a server's `/ws`, from its base URL.
pub fn ws_url(base: &str) -> String {
    match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}/ws"),
        None => format!("ws://{}/ws", base.trim_start_matches("http://")),
    }
}

/// The WebSocket handshake request for `url` signed in as the holder of `token` (a Bearer
/// header, as native clients send it).
pub fn ws_request(
    url: &str,
    token: &str,
) -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

/// The error for an answer with an unexpected status, with its body.
pub async fn unexpected(what: String, response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    anyhow::anyhow!(
        "{what}: {status}: {}",
        response.text().await.unwrap_or_default()
    )
}

/// Logs `name` in; its access token.
pub async fn login(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<String> {
    let response = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({ "username": name, "password": password }))
        .send()
        .await
        .with_context(|| format!("POST {base}/v1/auth/login"))?;
    match response.status() {
        StatusCode::OK => Ok(response.json::<TokenBody>().await?.access_token),
        StatusCode::TOO_MANY_REQUESTS => bail!(
            "logging in {name}: 429 rate limited; raise the server's login limits \
             (GIROK__AUTH__LOGIN_PER_MINUTE_PER_IP, GIROK__AUTH__LOGIN_PER_MINUTE_PER_USERNAME), \
             as scripts/bench-server.sh does"
        ),
        _ => Err(unexpected(format!("logging in {name}"), response).await),
    }
}

/// Registers `name` (or finds it, on a rerun against the same data) and logs it in.
pub async fn account(
    http: &reqwest::Client,
    base: &str,
    name: String,
    password: &str,
) -> anyhow::Result<Account> {
    let response = http
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({
            "username": name,
            "email": format!("{name}@example.org"),
            "password": password,
            "displayName": name,
        }))
        .send()
        .await
        .with_context(|| format!("POST {base}/v1/auth/register"))?;
    let registered = match response.status() {
        StatusCode::CREATED | StatusCode::OK => Some(response.json::<IdBody>().await?.id),
        // Registered by an earlier run against the same data: fine.
        StatusCode::CONFLICT => None,
        _ => return Err(unexpected(format!("registering {name}"), response).await),
    };
    let token = login(http, base, &name, password).await?;
    let id = match registered {
        Some(id) => id,
        None => {
            http.get(format!("{base}/v1/users/me"))
                .bearer_auth(&token)
                .send()
                .await?
                .error_for_status()
                .with_context(|| format!("GET /v1/users/me as {name}"))?
                .json::<IdBody>()
                .await?
                .id
        }
    };
    Ok(Account { id, token })
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuicInfo {
    enabled: bool,
    #[serde(default)]
    port: u16,
    #[serde(default)]
    certificate_sha256: String,
}

/// Where a server's QUIC endpoint is (the host of `base`, the port `GET /v1/quic` publishes)
/// and the certificate hash to pin.
pub async fn quic_endpoint(
    http: &reqwest::Client,
    base: &str,
) -> anyhow::Result<(std::net::SocketAddr, String)> {
    let info: QuicInfo = http
        .get(format!("{base}/v1/quic"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    if !info.enabled {
        bail!("the server has no QUIC endpoint (quic.enabled is off)");
    }
    let host = reqwest::Url::parse(base)?
        .host_str()
        .context("the URL has no host")?
        .to_owned();
    let addr = tokio::net::lookup_host((host.as_str(), info.port))
        .await?
        .next()
        .context("the server's host does not resolve")?;
    Ok((addr, info.certificate_sha256))
}

/// Setup requests in flight (registrations and logins: each costs girok an argon2 hash).
pub(crate) const SETUP_CONCURRENCY: usize = 8;

/// The client endpoints `clients` QUIC clients connect through, `per_socket` to a UDP socket
/// (one quinn endpoint each): client `c` uses `[c / per_socket]`.
pub(crate) fn quic_connectors(
    sha256: &str,
    clients: usize,
    per_socket: usize,
) -> anyhow::Result<Vec<girok_frontends::quic::client::Connector>> {
    (0..clients.div_ceil(per_socket))
        .map(|_| girok_frontends::quic::client::Connector::new(sha256))
        .collect()
}

/// Runs `jobs` with at most `concurrency` in flight, in order, printing progress.
pub(crate) async fn collect<T>(
    what: &'static str,
    jobs: Vec<impl std::future::Future<Output = anyhow::Result<T>>>,
    concurrency: usize,
) -> anyhow::Result<Vec<T>> {
    let mut progress = Progress::new(what, jobs.len());
    let mut results = futures::stream::iter(jobs).buffered(concurrency);
    let mut done = Vec::new();
    while let Some(result) = results.next().await {
        done.push(result?);
        progress.tick();
    }
    Ok(done)
}

/// Prints setup progress at each quarter.
struct Progress {
    what: &'static str,
    total: usize,
    done: usize,
}

impl Progress {
    fn new(what: &'static str, total: usize) -> Self {
        Self {
            what,
            total,
            done: 0,
        }
    }

    fn tick(&mut self) {
        self.done += 1;
        let quarter = |n: usize| n * 4 / self.total.max(1);
        if quarter(self.done) != quarter(self.done - 1) {
            println!("  {} {}/{}", self.what, self.done, self.total);
        }
    }
}
