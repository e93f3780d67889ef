//! WebSocket clients for tests: girok's own protocol at `/ws` and graphql-transport-ws at
//! `/graphql/ws` (tokio-tungstenite, a real client).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use super::Server;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The `/ws` upgrade request, with the token as a Bearer header if given.
pub fn upgrade_request(server: &Server, token: Option<&str>) -> Request {
    let url = server.base.replace("http://", "ws://") + "/ws";
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

/// The `/graphql/ws` upgrade request, speaking graphql-transport-ws.
pub fn graphql_request(server: &Server) -> Request {
    let url = server.base.replace("http://", "ws://") + "/graphql/ws";
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    request
}

/// Opens `request` through a small (4 KiB) receive buffer: a client that stops reading fills
/// it, and then the server's socket buffers, at once.
pub async fn connect_small_buffer(server: &Server, request: Request) -> Socket {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(socket.connect(addr).await.unwrap());
    tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap()
        .0
}

/// Opens `/ws`, with the token as a Bearer header on the upgrade if given.
pub async fn connect(server: &Server, token: Option<&str>) -> Socket {
    tokio_tungstenite::connect_async(upgrade_request(server, token))
        .await
        .unwrap()
        .0
}

pub async fn send(socket: &mut Socket, frame: Value) {
    socket.send(Message::text(frame.to_string())).await.unwrap();
}

/// The next JSON frame (skipping pings), within 10 s.
pub async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame in time")
            .expect("connection open")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Subscribes to `topic` and waits for the `subscribed` frame.
pub async fn subscribe(socket: &mut Socket, topic: &str) -> Value {
    send(socket, json!({ "type": "subscribe", "topic": topic })).await;
    next_of(socket, "subscribed").await
}

/// The next frame of type `kind`, skipping others.
pub async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let frame = next(socket).await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

/// A graphql-transport-ws client: messages of subscriptions nobody is waiting for yet are
/// kept until asked for.
pub struct GraphqlWs {
    pub socket: Socket,
    pending: Vec<Value>,
}

/// Opens `/graphql/ws` speaking graphql-transport-ws and sends `connection_init` with
/// `payload`; returns the client and the server's first answer.
pub async fn graphql_ws(server: &Server, payload: Value) -> (GraphqlWs, Value) {
    let (mut socket, response) = tokio_tungstenite::connect_async(graphql_request(server))
        .await
        .unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "graphql-transport-ws"
    );
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": payload }),
    )
    .await;
    let answer = next_or_close(&mut socket).await;
    let client = GraphqlWs {
        socket,
        pending: Vec::new(),
    };
    (client, answer)
}

impl GraphqlWs {
    /// Starts subscription `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        send(
            &mut self.socket,
            json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }),
        )
        .await;
    }

    /// The next `next`, `error` or `complete` message of subscription `id` (pings answered),
    /// or a `close`.
    pub async fn next_for(&mut self, id: &str) -> Value {
        if let Some(i) = self.pending.iter().position(|m| m["id"] == id) {
            return self.pending.remove(i);
        }
        loop {
            let message = next_or_close(&mut self.socket).await;
            if message["type"] == "ping" {
                send(&mut self.socket, json!({ "type": "pong" })).await;
                continue;
            }
            if message["id"] == id || message["type"] == "close" {
                return message;
            }
            self.pending.push(message);
        }
    }
}

/// The next JSON message, or `{"type": "close", "code": N}` when the server closes (of a
/// socket, or of its reading half).
pub async fn next_or_close<S>(socket: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message in time");
        match message {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(Message::Close(frame))) => {
                return json!({
                    "type": "close",
                    "code": frame.as_ref().map(|f| u16::from(f.code)),
                    "reason": frame.map(|f| f.reason.to_string()),
                });
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return json!({ "type": "close", "code": null }),
        }
    }
}
