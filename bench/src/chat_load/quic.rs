//! `chat-load --transport quic`: the same clients over girok/1 (QUIC). Each client connects to
//! the endpoint `GET /v1/quic` names, pinning its certificate by hash, signs in on its control
//! stream and subscribes to its room, whose events then come on a stream of their own; sends
//! and acks go over the control stream. Frames are classified into the same [`Frame`]s as the
//! WebSocket's, so both transports are counted by the same code.

use super::{CONNECT_CONCURRENCY, CONNECT_TIMEOUT, Frame, Layout, Run, count, on_frame};
use crate::client::Account;
use crate::client::collect;
use anyhow::Context;
use bytes::Bytes;
use girok_frontends::quic::client::{self as quic_client, Connector, Delivery, Parts};
use girok_frontends::quic::frames::{FrameReader, encode};
use girok_schemas::proto::envelope::Payload;
use girok_schemas::quic::{ClientFrame, ServerFrame, server_frame};
use std::net::SocketAddr;
use std::rc::Rc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Connections that share one client UDP socket (one quinn endpoint).
const CLIENTS_PER_ENDPOINT: usize = 100;

/// Connects, signs in and subscribes every client, in client order.
pub(super) async fn connect_all(
    http: &reqwest::Client,
    base: &str,
    layout: &Layout,
    accounts: &[Account],
    rooms: &[String],
) -> anyhow::Result<Vec<Parts>> {
    let (addr, sha256) = crate::client::quic_endpoint(http, base).await?;
    println!(
        "connect: {} QUIC clients at {addr} ({CONNECT_CONCURRENCY} at a time, {CLIENTS_PER_ENDPOINT} per UDP socket)",
        layout.clients
    );
    let connectors = crate::client::quic_connectors(&sha256, layout.clients, CLIENTS_PER_ENDPOINT)?;
    let connections = (0..layout.clients)
        .map(|c| {
            let token = &accounts[layout.user(c)].token;
            let room = &rooms[layout.room(c)];
            let connector = &connectors[c / CLIENTS_PER_ENDPOINT];
            async move {
                tokio::time::timeout(CONNECT_TIMEOUT, connect(connector, addr, token, room))
                    .await
                    .context("not connected and subscribed within 30 s")?
                    .with_context(|| format!("client {c}"))
            }
        })
        .collect();
    collect("clients", connections, CONNECT_CONCURRENCY).await
}

async fn connect(
    connector: &Connector,
    addr: SocketAddr,
    token: &str,
    room: &str,
) -> anyhow::Result<Parts> {
    let mut client = connector.connect(addr).await?;
    client.auth(token).await?;
    client
        .subscribed(&format!("chat:{room}"), None, CONNECT_TIMEOUT)
        .await?;
    Ok(client.into_parts())
}

/// A send frame's bytes.
pub(super) fn send_frame(room: &str, n: u64, body: String) -> Bytes {
    encode(&ClientFrame {
        frame: Some(quic_client::send_frame(&n.to_string(), room, body, None)),
    })
}

/// One client's receiving side until the end of the drain: acks and errors from the control
/// stream, deliveries from the room's stream, and how the connection ended.
pub(super) async fn read(
    (connection, _endpoint): (quinn::Connection, quinn::Endpoint),
    mut answers: FrameReader<quinn::RecvStream>,
    mut deliveries: mpsc::UnboundedReceiver<Delivery>,
    run: Rc<Run>,
    c: usize,
    until: Instant,
) {
    let end = tokio::time::sleep_until(until);
    tokio::pin!(end);
    let mut answering = true;
    loop {
        tokio::select! {
            biased;
            () = &mut end => return,
            answer = answers.next::<ServerFrame>(), if answering => match answer {
                Ok(Some(Ok(frame))) => on_server_frame(&run, c, frame),
                Ok(Some(Err(_))) => run.tally.borrow_mut().counts.strays += 1,
                // The control stream ended: the connection's end says why.
                Ok(None) | Err(_) => answering = false,
            },
            Some(delivery) = deliveries.recv() => {
                if let Delivery::Frame { frame, .. } = delivery {
                    on_server_frame(&run, c, *frame);
                }
            }
            reason = connection.closed() => {
                let mut tally = run.tally.borrow_mut();
                match reason {
                    quinn::ConnectionError::ApplicationClosed(close) => {
                        let key = format!(
                            "{} {}",
                            close.error_code,
                            String::from_utf8_lossy(&close.reason)
                        );
                        count(&mut tally.counts.closes_by_code, key.trim());
                    }
                    other => count(&mut tally.counts.connection_errors, &other.to_string()),
                }
                tally.clients[c].connected = false;
                return;
            }
        }
    }
}

fn on_server_frame(run: &Run, c: usize, frame: ServerFrame) {
    match frame.frame {
        Some(server_frame::Frame::Ack(ack)) => on_frame(run, c, Frame::Ack(&ack.r#ref)),
        Some(server_frame::Frame::Error(error)) => on_frame(run, c, Frame::Error(&error.code)),
        Some(server_frame::Frame::Event(event)) => match event.envelope.and_then(|e| e.payload) {
            Some(Payload::MessageSent(sent)) => on_frame(run, c, Frame::Message(&sent.body)),
            _ => on_frame(run, c, Frame::Other),
        },
        _ => on_frame(run, c, Frame::Other),
    }
}
