//! The configuration sections the transports read (`[server]`, `[limits]`, `[auth]`, `[ws]`,
//! `[quic]`, `[cache]`, `[web]`), and [`FrontendConfig`], the share of the whole configuration
//! the composition root (the `girok` crate, which loads and layers it) hands to the frontends.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// What the frontends are configured with.
#[derive(Clone, Debug, Default)]
pub struct FrontendConfig {
    pub server: ServerConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub ws: WsConfig,
    pub quic: QuicConfig,
    pub cache: CacheConfig,
    pub web: WebConfig,
    /// The data directory, where the signing keys, the operator token and the cursor key
    /// are kept.
    pub data_dir: PathBuf,
}

/// `[server]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the HTTP server (GraphQL, health, metrics).
    pub http_addr: SocketAddr,
    /// Longest a request may take before it is answered 408.
    pub request_timeout_secs: u64,
    /// Serve `/v1/log/events` (operators' log reads; loopback clients only).
    pub log_api: bool,
    /// Most HTTP connections open at once; more are answered `503 TOO_MANY_CONNECTIONS`.
    pub max_connections: usize,
    /// Most HTTP connections open at once from one IP address (0: no limit of its own);
    /// more are answered `503 TOO_MANY_CONNECTIONS`. Behind a reverse proxy every client
    /// has the proxy's address: raise it (or set 0) and let the proxy limit clients.
    pub max_connections_per_ip: usize,
    /// Longest a request's head (request line and headers) may take to arrive, from the
    /// moment girok waits for it; a kept-alive connection idle this long is closed too.
    pub header_read_timeout_ms: u64,
    /// Serve the GraphiQL IDE at `GET /graphql` (its assets come from girok itself).
    pub graphiql: bool,
    /// Origins (`https://app.example.org`) whose pages may open a WebSocket signed in with
    /// the session cookie, besides the server's own (an `Origin` matching `Host`).
    pub allowed_origins: Vec<String>,
    /// Reverse proxies (addresses or networks) whose `X-Forwarded-For` names the client's
    /// address (for per-IP login limits and sessions); empty: the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// Where operators' endpoints (/healthz, /readyz, /metrics) are also served, on a
    /// listener of their own that client connections cannot starve; unset: none.
    pub ops_addr: Option<SocketAddr>,
    /// The threads on the delivery path (the sockets' async runtime, the log writer and its
    /// sync thread, the hub) ask the kernel for its shortest time slice (Linux 6.12 and later), so
    /// that they get the core soon after they wake; false leaves the kernel's default.
    pub short_slices: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_secs: 30,
            log_api: true,
            max_connections: 4096,
            max_connections_per_ip: 1024,
            header_read_timeout_ms: 10_000,
            trusted_proxies: Vec::new(),
            graphiql: true,
            short_slices: true,
            allowed_origins: Vec::new(),
            ops_addr: None,
        }
    }
}

/// `[cache]`: bounds of the in-memory caches that serve hot reads without storage.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Decoded log events (post, comment and message bodies and their edits), MiB.
    pub events_mib: u64,
    /// User profiles.
    pub users: usize,
    /// Session states (the per-request session check).
    pub sessions: usize,
    /// Room records.
    pub rooms: usize,
    /// Room memberships (the authorization of every room read).
    pub memberships: usize,
    /// Whether a post is live (not deleted), for timelines.
    pub posts: usize,
    /// Access tokens already verified (each is checked cryptographically once, then served
    /// from here until it expires; its session is still checked on every request).
    pub verified_tokens: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        let engine = girok_engine::hot::HotConfig::default();
        Self {
            events_mib: engine.event_bytes >> 20,
            users: engine.users,
            sessions: engine.sessions,
            rooms: engine.rooms,
            memberships: engine.memberships,
            posts: engine.posts,
            verified_tokens: 50_000,
        }
    }
}

/// `[limits]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest HTTP request body, in bytes.
    pub max_request_bytes: usize,
    /// Deepest GraphQL query.
    pub graphql_max_depth: usize,
    /// Most complex GraphQL query (async-graphql's field count measure).
    pub graphql_max_complexity: usize,
    /// Most fields, fragment spreads and inline fragments in a GraphQL document (all its
    /// operations and fragments) with every fragment spread written out; checked before
    /// validation, whose work it bounds.
    pub graphql_max_nodes: u64,
    /// Most fragment definitions in a GraphQL document.
    pub graphql_max_fragments: usize,
    /// Most members of a group room, its owner included (at most 1,000).
    pub max_room_members: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 64 * 1024,
            graphql_max_depth: 16,
            graphql_max_complexity: 1000,
            graphql_max_nodes: 2000,
            graphql_max_fragments: 128,
            max_room_members: girok_engine::limits::MAX_ROOM_MEMBERS,
        }
    }
}

/// `[auth]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Lifetime of an access token (JWT), seconds.
    pub access_token_ttl_secs: u64,
    /// `iss` and `aud` of access tokens (checked on every request).
    pub issuer: String,
    pub audience: String,
    /// Login attempts allowed per minute per account (however it is named: username or
    /// email), and per client IP.
    pub login_per_minute_per_username: u32,
    pub login_per_minute_per_ip: u32,
    /// Registrations allowed per minute per client IP (burst: the same number).
    pub registrations_per_minute_per_ip: u32,
    /// Mark the session cookies `Secure` (turn off only for plain-HTTP development).
    pub secure_cookies: bool,
    /// Password hashes (argon2id, ~40 ms each) running at once; 0 = cores - 1 (at least 1).
    /// Each hashing thread keeps one 19 MiB buffer for the life of the process.
    pub password_threads: usize,
    /// Hashes that may wait for a thread; past them logins, registrations and password
    /// changes answer 429 `OVERLOADED` with `Retry-After` at once.
    pub password_queue: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 900,
            issuer: "girok".into(),
            audience: "girok".into(),
            login_per_minute_per_username: 10,
            login_per_minute_per_ip: 60,
            registrations_per_minute_per_ip: 20,
            secure_cookies: true,
            password_threads: 0,
            password_queue: girok_engine::accounts::DEFAULT_PASSWORD_QUEUE,
        }
    }
}

/// `[ws]`: per-connection WebSocket limits.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsConfig {
    /// Largest frame (and message) a client may send; larger ones end the connection.
    pub max_frame_bytes: usize,
    pub max_subscriptions: usize,
    /// Most signed-in live connections (`/ws` and `/graphql/ws` together) of one user;
    /// past it a connection is refused (`TOO_MANY_SOCKETS`).
    pub max_sockets_per_user: usize,
    /// `send` frames per second (token bucket with `send_burst`); beyond: an error frame.
    pub sends_per_second: u32,
    pub send_burst: u32,
    /// Sends of one connection waiting for their acks; beyond it girok stops reading that
    /// connection until acks go out (the client is pushed back by TCP).
    pub max_sends_in_flight: usize,
    /// Server pings this often; a client silent for `idle_timeout_ms` is closed (4002).
    pub heartbeat_ms: u64,
    pub idle_timeout_ms: u64,
    /// Without cookie or Bearer header on the upgrade, the `auth` frame must come within this.
    pub auth_timeout_ms: u64,
    /// A client whose socket accepts no data for this long is closed (4003 slow consumer).
    pub write_timeout_ms: u64,
    /// Most events of the subscribed topic itself (the room's, or the user's) a resume
    /// (`fromSeq`) may replay; past them: `RESUME_TOO_OLD`.
    pub max_resume_events: u64,
    /// Most log events (of every topic) a resume may read through to find its topic's;
    /// past them: `RESUME_TOO_OLD`.
    pub max_resume_scan_events: u64,
    /// No longer used (deliveries are written to the socket without a per-connection queue);
    /// still accepted so that configuration files that set it keep loading.
    #[serde(default, skip_serializing)]
    pub outbound_queue: Option<usize>,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_subscriptions: 100,
            max_sockets_per_user: 32,
            sends_per_second: 50,
            send_burst: 100,
            max_sends_in_flight: 64,
            heartbeat_ms: 20_000,
            idle_timeout_ms: 60_000,
            auth_timeout_ms: 10_000,
            write_timeout_ms: 10_000,
            max_resume_events: 100_000,
            max_resume_scan_events: 1_000_000,
            outbound_queue: None,
        }
    }
}

/// `[quic]`: the QUIC endpoint (girok/1 for native clients; docs/quic.md). Per-connection
/// send, subscription and resume limits are the WebSocket's (`[ws]`), and so is the count of
/// a user's live connections (`ws.max_sockets_per_user`, both protocols together).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuicConfig {
    pub enabled: bool,
    /// The UDP address.
    pub addr: SocketAddr,
    /// A PEM certificate chain and its PEM private key; without them girok makes a
    /// self-signed ECDSA P-256 certificate in `<data_dir>/quic/`, valid
    /// `self_signed_days`, and makes a new one when less than a third of that is left.
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    /// Names (DNS names or IP addresses) the self-signed certificate is valid for.
    pub hostnames: Vec<String>,
    /// At most 14 (what browsers accept of a certificate pinned by its hash, counted from
    /// its start, an hour before it was made).
    pub self_signed_days: u32,
    /// Open QUIC connections; past it new ones are refused (`CONNECTION_REFUSED`). Past
    /// half of it, a client whose address is not validated yet is asked to prove it (a QUIC
    /// retry) before it takes a slot.
    pub max_connections: usize,
    /// Open QUIC connections from one IP address (0: no ceiling).
    pub max_connections_per_ip: usize,
    /// Largest frame a client may send (its length prefix says so before it is read).
    pub max_frame_bytes: usize,
    /// A connection that has sent nothing (not even a keep-alive) for this long is closed.
    pub idle_timeout_ms: u64,
    /// The server's keep-alive packets (0: none): they keep NAT bindings open on mobile
    /// networks.
    pub keep_alive_ms: u64,
    /// Reads (`request` frames) of one connection answered at once; past it girok stops
    /// reading the control stream until answers go out.
    pub max_requests_in_flight: usize,
    /// Accept 0-RTT data from a client resuming a session: only replay-safe frames (auth,
    /// subscribe, reads, pings, sends with a `client_id`) are taken before the handshake is
    /// confirmed.
    pub zero_rtt: bool,
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            addr: SocketAddr::from(([127, 0, 0, 1], 8443)),
            cert_path: None,
            key_path: None,
            hostnames: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            self_signed_days: 13,
            max_connections: 20_000,
            max_connections_per_ip: 1024,
            max_frame_bytes: 64 * 1024,
            idle_timeout_ms: 60_000,
            keep_alive_ms: 15_000,
            max_requests_in_flight: 16,
            zero_rtt: true,
        }
    }
}

/// Largest `quic.max_frame_bytes` girok takes: the windows it sizes from it stay well inside
/// QUIC's limits, and a frame is read into memory whole.
pub const MAX_QUIC_FRAME_BYTES: usize = 16 * 1024 * 1024;

impl QuicConfig {
    /// The largest frame a connection takes: `max_frame_bytes`, at least 1 KiB.
    pub fn frame_bytes(&self) -> usize {
        self.max_frame_bytes.max(1024)
    }

    /// Refuses settings the endpoint cannot be built from (checked before anything starts).
    pub fn check(&self) -> anyhow::Result<()> {
        if self.max_frame_bytes > MAX_QUIC_FRAME_BYTES {
            anyhow::bail!(
                "quic.max_frame_bytes is {}; at most {MAX_QUIC_FRAME_BYTES} (16 MiB)",
                self.max_frame_bytes
            );
        }
        Ok(())
    }
}

/// `[web]`: the web app (built into the binary from `web/`; docs/web.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serve the web app at `/` (and its client-side routes); off: those paths answer 404.
    pub enabled: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}
