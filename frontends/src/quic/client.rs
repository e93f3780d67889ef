//! A girok/1 client, for the tests and the bench (and a reference for native clients): it
//! pins the server's certificate by its SHA-256 (from `GET /v1/quic` or the start-up line),
//! opens the control stream, and hands out the frames of the control stream and of every
//! subscription stream as they come. [`Connector`] keeps TLS session tickets, so a second
//! connection to the same server can send its first frames in 0-RTT data.

use super::ALPN;
use super::frames::{FrameReader, encode};
use bytes::Bytes;
use girok_schemas::quic::{self, ClientFrame, ServerFrame, client_frame, server_frame};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Largest frame the client reads.
const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// What arrives on a subscription's stream.
#[derive(Debug)]
pub enum Delivery {
    /// A frame of the stream of `topic` (the first one is `subscribed`).
    Frame {
        topic: String,
        frame: Box<ServerFrame>,
    },
    /// The server finished the stream of `topic`.
    Ended { topic: String },
}

/// Makes connections to one server, keeping session tickets for 0-RTT.
pub struct Connector {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
}

impl Connector {
    /// A client endpoint on a free local port that trusts only the certificate whose SHA-256
    /// is `sha256_hex`.
    pub fn new(sha256_hex: &str) -> anyhow::Result<Self> {
        let pinned = parse_hex(sha256_hex)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                sha256: pinned,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        tls.enable_early_data = true;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.max_concurrent_uni_streams(1024u32.into());
        transport.keep_alive_interval(Some(Duration::from_secs(5)));
        config.transport_config(Arc::new(transport));
        let endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        Ok(Self { endpoint, config })
    }

    /// Connects after a full handshake.
    pub async fn connect(&self, server: SocketAddr) -> anyhow::Result<QuicClient> {
        let connecting = self
            .endpoint
            .connect_with(self.config.clone(), server, "localhost")?;
        let connection = connecting.await?;
        QuicClient::start(self.endpoint.clone(), connection).await
    }

    /// Connects with 0-RTT when a session ticket of an earlier connection allows it, writing
    /// `first` at once (then in 0-RTT data, before the handshake completes); `true` when the
    /// server accepted that early data (known once the handshake completes).
    pub async fn connect_early(
        &self,
        server: SocketAddr,
        first: Vec<client_frame::Frame>,
    ) -> anyhow::Result<(QuicClient, bool)> {
        let connecting = self
            .endpoint
            .connect_with(self.config.clone(), server, "localhost")?;
        let (connection, accepted) = match connecting.into_0rtt() {
            Ok((connection, accepted)) => (connection, Some(accepted)),
            Err(connecting) => (connecting.await?, None),
        };
        let mut client = QuicClient::start(self.endpoint.clone(), connection).await?;
        for frame in first {
            client.send(frame).await?;
        }
        let accepted = match accepted {
            Some(accepted) => accepted.await,
            None => false,
        };
        Ok((client, accepted))
    }

    /// Moves the endpoint to a new local UDP socket (as a phone that changes networks):
    /// open connections migrate to it.
    pub fn rebind(&self) -> anyhow::Result<SocketAddr> {
        let socket = std::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = socket.local_addr()?;
        self.endpoint.rebind(socket)?;
        Ok(addr)
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.endpoint.local_addr()?)
    }
}

/// A connection taken apart, for a caller that reads and writes from separate tasks.
pub struct Parts {
    pub connection: quinn::Connection,
    /// The client endpoint (its UDP socket), kept as long as the connection.
    pub endpoint: quinn::Endpoint,
    /// The control stream's sending side.
    pub control: quinn::SendStream,
    /// The control stream's frames.
    pub answers: FrameReader<quinn::RecvStream>,
    /// The subscriptions' frames.
    pub deliveries: mpsc::UnboundedReceiver<Delivery>,
}

/// One connection: the control stream, and the subscriptions' deliveries.
pub struct QuicClient {
    pub connection: quinn::Connection,
    endpoint: quinn::Endpoint,
    control: quinn::SendStream,
    answers: FrameReader<quinn::RecvStream>,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
}

impl QuicClient {
    async fn start(
        endpoint: quinn::Endpoint,
        connection: quinn::Connection,
    ) -> anyhow::Result<Self> {
        let (control, answers) = connection.open_bi().await?;
        let (to_client, deliveries) = mpsc::unbounded_channel();
        tokio::spawn(accept_streams(connection.clone(), to_client));
        Ok(Self {
            connection,
            endpoint,
            control,
            answers: FrameReader::new(answers, MAX_FRAME_BYTES),
            deliveries,
        })
    }

    /// The connection's parts.
    pub fn into_parts(self) -> Parts {
        Parts {
            connection: self.connection,
            endpoint: self.endpoint,
            control: self.control,
            answers: self.answers,
            deliveries: self.deliveries,
        }
    }

    /// Writes a frame on the control stream.
    pub async fn send(&mut self, frame: client_frame::Frame) -> anyhow::Result<()> {
        let bytes = encode(&ClientFrame { frame: Some(frame) });
        self.send_raw(bytes).await
    }

    /// Writes bytes as they are on the control stream (for tests of bad input).
    pub async fn send_raw(&mut self, bytes: Bytes) -> anyhow::Result<()> {
        self.control.write_all(&bytes).await?;
        Ok(())
    }

    /// The next frame of the control stream; `None` once the server finished it.
    pub async fn answer(&mut self) -> anyhow::Result<Option<server_frame::Frame>> {
        match self.answers.next::<ServerFrame>().await? {
            Some(Ok(frame)) => Ok(frame.frame),
            Some(Err(e)) => anyhow::bail!("the server sent an undecodable frame: {:?}", e.0),
            None => Ok(None),
        }
    }

    /// The next control frame within `within`.
    pub async fn answer_within(&mut self, within: Duration) -> anyhow::Result<server_frame::Frame> {
        match tokio::time::timeout(within, self.answer()).await {
            Ok(Ok(Some(frame))) => Ok(frame),
            Ok(Ok(None)) => anyhow::bail!("the control stream ended"),
            Ok(Err(error)) => Err(error),
            Err(_) => anyhow::bail!("no answer within {within:?}"),
        }
    }

    /// The next delivery of any subscription within `within`.
    pub async fn delivery_within(&mut self, within: Duration) -> anyhow::Result<Delivery> {
        match tokio::time::timeout(within, self.deliveries.recv()).await {
            Ok(Some(delivery)) => Ok(delivery),
            Ok(None) => anyhow::bail!("the connection is gone"),
            Err(_) => anyhow::bail!("no delivery within {within:?}"),
        }
    }

    /// Signs in; the `welcome` frame.
    pub async fn auth(&mut self, token: &str) -> anyhow::Result<quic::Welcome> {
        self.send(client_frame::Frame::Auth(quic::Auth {
            token: token.into(),
        }))
        .await?;
        match self.answer_within(Duration::from_secs(10)).await? {
            server_frame::Frame::Welcome(welcome) => Ok(welcome),
            other => anyhow::bail!("expected welcome, got {other:?}"),
        }
    }

    pub async fn subscribe(&mut self, topic: &str, from_seq: Option<u64>) -> anyhow::Result<()> {
        self.send(subscribe_frame(topic, from_seq)).await
    }

    /// Subscribes to `topic` and waits, at most `within`, for its stream's `subscribed`
    /// (deliveries of other topics meanwhile are dropped); the head seq it names.
    pub async fn subscribed(
        &mut self,
        topic: &str,
        from_seq: Option<u64>,
        within: Duration,
    ) -> anyhow::Result<u64> {
        self.subscribe(topic, from_seq).await?;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Delivery::Frame { topic: t, frame } = self.delivery_within(left).await?
                && t == topic
                && let Some(server_frame::Frame::Subscribed(subscribed)) = frame.frame
            {
                return Ok(subscribed.head_seq);
            }
        }
    }

    /// Sends a chat message (answered later by an ack with `reference`).
    pub async fn send_message(
        &mut self,
        reference: &str,
        room: &str,
        body: &str,
        client_id: Option<&str>,
    ) -> anyhow::Result<()> {
        self.send(send_frame(reference, room, body, client_id))
            .await
    }

    /// A read: the REST status and JSON body of `path` (no other frame may be awaited at once).
    pub async fn read(&mut self, id: u64, path: &str) -> anyhow::Result<(u32, serde_json::Value)> {
        self.send(client_frame::Frame::Request(quic::Request {
            id,
            path: path.into(),
        }))
        .await?;
        loop {
            match self.answer_within(Duration::from_secs(10)).await? {
                server_frame::Frame::Response(response) if response.id == id => {
                    return Ok((response.status, serde_json::from_slice(&response.json)?));
                }
                server_frame::Frame::Error(error) if error.r#ref == id.to_string() => {
                    anyhow::bail!("read refused: {} {}", error.code, error.message)
                }
                _ => {}
            }
        }
    }
}

/// Reads every stream the server opens, forwarding its frames by topic.
async fn accept_streams(connection: quinn::Connection, to_client: mpsc::UnboundedSender<Delivery>) {
    while let Ok(stream) = connection.accept_uni().await {
        let to_client = to_client.clone();
        tokio::spawn(async move {
            let mut frames = FrameReader::new(stream, MAX_FRAME_BYTES);
            let mut topic = String::new();
            while let Ok(Some(Ok(frame))) = frames.next::<ServerFrame>().await {
                if let Some(server_frame::Frame::Subscribed(subscribed)) = &frame.frame {
                    topic = subscribed.topic.clone();
                }
                let delivery = Delivery::Frame {
                    topic: topic.clone(),
                    frame: Box::new(frame),
                };
                if to_client.send(delivery).is_err() {
                    return;
                }
            }
            let _ = to_client.send(Delivery::Ended { topic });
        });
    }
}

fn parse_hex(hex: &str) -> anyhow::Result<[u8; 32]> {
    let hex = hex.trim();
    anyhow::ensure!(
        hex.len() == 64 && hex.is_ascii(),
        "a SHA-256 is 64 hex digits"
    );
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    Ok(out)
}

/// Trusts one certificate, named by its SHA-256 (as browsers' `serverCertificateHashes`);
/// the handshake's signatures are verified as usual. Unlike a browser it does not check the
/// certificate's validity dates: the pin is the trust, and girok replaces its certificate
/// before it expires.
#[derive(Debug)]
struct Pinned {
    sha256: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if found == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server's certificate is not the pinned one".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A `subscribe` frame (for clients that write their control stream themselves, as the
/// benches' do after [`QuicClient::into_parts`]).
pub fn subscribe_frame(topic: &str, from_seq: Option<u64>) -> client_frame::Frame {
    client_frame::Frame::Subscribe(quic::Subscribe {
        topic: topic.into(),
        from_seq,
    })
}

/// A `send` frame of a message to `room` (the body moved in, not copied: the load
/// generators send hundreds of thousands).
pub fn send_frame(
    reference: &str,
    room: &str,
    body: impl Into<String>,
    client_id: Option<&str>,
) -> client_frame::Frame {
    client_frame::Frame::Send(quic::Send {
        r#ref: reference.into(),
        room_id: room.into(),
        body: body.into(),
        client_id: client_id.map(Into::into),
        ..Default::default()
    })
}
