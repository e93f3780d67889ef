//! girok/1 over QUIC against the real binary: a QUIC user and a WebSocket user chat in one
//! room; a resume after a dropped connection delivers exactly the missed events; a
//! subscription survives the client's address changing (connection migration); 0-RTT; reads;
//! limits; bad input gets error frames or a clean close, and the server goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sockets;
use common::{Server, repository};
use girok_frontends::quic::client::{Connector, Delivery, QuicClient};
use girok_schemas::proto::envelope::Payload;
use girok_schemas::quic::{self, client_frame, server_frame::Frame};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn connector(server: &Server) -> Connector {
    let (_, sha256) = server.quic.as_ref().expect("QUIC is on");
    Connector::new(sha256).unwrap()
}

async fn connect(server: &Server, token: &str) -> (Connector, QuicClient) {
    let connector = connector(server);
    let mut client = connector
        .connect(server.quic.as_ref().unwrap().0)
        .await
        .unwrap();
    client.auth(token).await.unwrap();
    (connector, client)
}

/// The next delivery on `topic`'s stream, skipping typing and presence.
async fn next_on(client: &mut QuicClient, topic: &str) -> Frame {
    loop {
        match client.delivery_within(WAIT).await.unwrap() {
            Delivery::Frame { topic: t, frame } if t == topic => match frame.frame.unwrap() {
                Frame::Typing(_) | Frame::Presence(_) => continue,
                other => return other,
            },
            Delivery::Ended { topic: t } if t == topic => panic!("the stream of {topic} ended"),
            _ => continue,
        }
    }
}

/// The next message event on `topic`: its seq and body.
async fn next_message(client: &mut QuicClient, topic: &str) -> (u64, String) {
    loop {
        if let Frame::Event(event) = next_on(client, topic).await {
            let envelope = event.envelope.unwrap();
            assert_eq!(envelope.seq, event.seq);
            if let Some(Payload::MessageSent(sent)) = envelope.payload {
                return (event.seq, sent.body);
            }
        }
    }
}

async fn subscribed(client: &mut QuicClient, topic: &str, from_seq: Option<u64>) -> u64 {
    client.subscribed(topic, from_seq, WAIT).await.unwrap()
}

/// The ack of `reference`, skipping other answers.
async fn ack(client: &mut QuicClient, reference: &str) -> quic::Ack {
    loop {
        match client.answer_within(WAIT).await.unwrap() {
            Frame::Ack(ack) if ack.r#ref == reference => return ack,
            Frame::Error(error) if error.r#ref == reference => panic!("refused: {error:?}"),
            _ => {}
        }
    }
}

/// The next error answer, skipping others.
async fn error(client: &mut QuicClient) -> quic::Error {
    loop {
        match client.answer_within(WAIT).await.unwrap() {
            Frame::Error(error) => return error,
            _ => continue,
        }
    }
}

/// Two users, a room of both; (alice's token, bob's token, room).
async fn two_in_a_room(server: &Server) -> (String, String, String) {
    let bob = server.sign_in("bob").await;
    let bob_id = server.my_id().await;
    let alice = server.sign_in("alice").await;
    let room = server.create_room("quic").await;
    server.add_member(&room, &bob_id).await;
    (alice, bob, room)
}

#[tokio::test]
async fn quic_and_websocket_users_chat_and_a_resume_delivers_exactly_the_missed_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (alice, bob, room) = two_in_a_room(&server).await;
    let topic = format!("chat:{room}");

    let (connector, mut quic_alice) = connect(&server, &alice).await;
    subscribed(&mut quic_alice, &topic, None).await;
    let mut ws_bob = sockets::connect(&server, Some(&bob)).await;
    sockets::subscribe(&mut ws_bob, &topic).await;

    // QUIC → WebSocket.
    quic_alice
        .send_message("a1", &room, "hello from quic", Some("c-a1"))
        .await
        .unwrap();
    let acked = ack(&mut quic_alice, "a1").await;
    assert!(!acked.duplicate);
    let event = sockets::next_of(&mut ws_bob, "event").await;
    assert_eq!(event["event"]["payload"]["body"], "hello from quic");
    assert_eq!(event["seq"], acked.seq);
    // Alice sees her own message on her stream too.
    assert_eq!(
        next_message(&mut quic_alice, &topic).await,
        (acked.seq, "hello from quic".into())
    );

    // WebSocket → QUIC.
    sockets::send(
        &mut ws_bob,
        json!({ "type": "send", "ref": "b1", "roomId": room, "body": "hello from ws" }),
    )
    .await;
    let bob_ack = sockets::next_of(&mut ws_bob, "ack").await;
    let (seq, body) = next_message(&mut quic_alice, &topic).await;
    assert_eq!(
        (seq, body.as_str()),
        (bob_ack["seq"].as_u64().unwrap(), "hello from ws")
    );

    // A read over the same connection: the REST history page.
    let (status, page) = quic_alice
        .read(
            1,
            &format!("/v1/rooms/{room}/messages?first=10&after={seq}"),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{page}");
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["hello from ws", "hello from quic"]);
    // A resend with the same client id is a duplicate, not a second message.
    quic_alice
        .send_message("a1-again", &room, "hello from quic", Some("c-a1"))
        .await
        .unwrap();
    let again = ack(&mut quic_alice, "a1-again").await;
    assert!(again.duplicate);
    assert_eq!(again.seq, acked.seq);

    // Alice's connection drops; Bob sends three; Alice resumes after the last seq she saw.
    quic_alice.connection.close(0u32.into(), b"bye");
    drop(quic_alice);
    let mut missed = Vec::new();
    for i in 0..3 {
        sockets::send(
            &mut ws_bob,
            json!({ "type": "send", "ref": format!("m{i}"), "roomId": room, "body": format!("missed {i}") }),
        )
        .await;
        let ack = sockets::next_of(&mut ws_bob, "ack").await;
        missed.push((ack["seq"].as_u64().unwrap(), format!("missed {i}")));
    }
    let mut quic_alice = connector
        .connect(server.quic.as_ref().unwrap().0)
        .await
        .unwrap();
    quic_alice.auth(&alice).await.unwrap();
    subscribed(&mut quic_alice, &topic, Some(seq)).await;
    for want in &missed {
        assert_eq!(&next_message(&mut quic_alice, &topic).await, want);
    }
    // Then live, with nothing repeated in between.
    sockets::send(
        &mut ws_bob,
        json!({ "type": "send", "ref": "live", "roomId": room, "body": "live again" }),
    )
    .await;
    let live = sockets::next_of(&mut ws_bob, "ack").await;
    assert_eq!(
        next_message(&mut quic_alice, &topic).await,
        (live["seq"].as_u64().unwrap(), "live again".into())
    );
    // Unsubscribing finishes the stream and says so on the control stream.
    quic_alice
        .send(client_frame::Frame::Unsubscribe(quic::Unsubscribe {
            topic: topic.clone(),
        }))
        .await
        .unwrap();
    match quic_alice.answer_within(WAIT).await.unwrap() {
        Frame::Unsubscribed(u) => assert_eq!(u.topic, topic),
        other => panic!("expected unsubscribed, got {other:?}"),
    }
    loop {
        match quic_alice.delivery_within(WAIT).await.unwrap() {
            Delivery::Ended { topic: t } if t == topic => break,
            _ => continue,
        }
    }
}

#[tokio::test]
async fn matching_tells_each_their_own_story_and_the_feed_pushes_posts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let bob = server.sign_in("bob").await;
    let bob_id = server.my_id().await;
    let alice = server.sign_in("alice").await;
    let (_connector, mut quic_alice) = connect(&server, &alice).await;
    subscribed(&mut quic_alice, "matching", None).await;
    subscribed(&mut quic_alice, "feed", None).await;
    let item = async |client: &mut QuicClient, topic: &str| -> (String, serde_json::Value) {
        match next_on(client, topic).await {
            Frame::Item(item) => (item.kind, serde_json::from_slice(&item.json).unwrap()),
            other => panic!("expected an item, got {other:?}"),
        }
    };
    // Alice waits, Bob joins: each is told of the match, Alice with Bob's public profile.
    let (status, body) = server.post_json("/v1/matching/queue", json!({})).await;
    assert_eq!(status, 201, "{body}");
    let (kind, queued) = item(&mut quic_alice, "matching").await;
    assert_eq!(
        (kind.as_str(), &queued["type"]),
        ("matching", &json!("queued"))
    );
    server.set_token(&bob);
    let (status, body) = server.post_json("/v1/matching/queue", json!({})).await;
    assert_eq!(status, 201, "{body}");
    let (_, matched) = item(&mut quic_alice, "matching").await;
    assert_eq!(matched["type"], "matched");
    assert_eq!(matched["partner"]["id"], bob_id.as_str());
    assert!(matched["partner"].get("waitedMs").is_none());
    // Alice's own post comes as a feed item.
    server.set_token(&alice);
    let (status, post) = server
        .post_json("/v1/posts", json!({ "content": "over quic" }))
        .await;
    assert_eq!(status, 201, "{post}");
    let (kind, pushed) = item(&mut quic_alice, "feed").await;
    assert_eq!(
        (kind.as_str(), &pushed["content"]),
        ("post", &json!("over quic"))
    );
}

#[tokio::test]
async fn a_subscription_survives_the_client_changing_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (alice, bob, room) = two_in_a_room(&server).await;
    let topic = format!("chat:{room}");
    let (connector, mut quic_alice) = connect(&server, &alice).await;
    subscribed(&mut quic_alice, &topic, None).await;
    let before = connector.local_addr().unwrap();
    let connection_id = quic_alice.connection.stable_id();
    let after = connector.rebind().unwrap();
    assert_ne!(before.port(), after.port());
    // Alice speaks first from the new address (the server validates the new path), then Bob.
    quic_alice
        .send_message("r1", &room, "from my new address", Some("r1"))
        .await
        .unwrap();
    let acked = ack(&mut quic_alice, "r1").await;
    assert_eq!(
        next_message(&mut quic_alice, &topic).await,
        (acked.seq, "from my new address".into())
    );
    server.set_token(&bob);
    let (status, sent) = server
        .post_json(
            &format!("/v1/rooms/{room}/messages"),
            json!({ "body": "did you move?" }),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let (_, body) = next_message(&mut quic_alice, &topic).await;
    assert_eq!(body, "did you move?");
    // The same connection all along, still open.
    assert_eq!(quic_alice.connection.stable_id(), connection_id);
    assert!(quic_alice.connection.close_reason().is_none());
}

#[tokio::test]
async fn zero_rtt_takes_replay_safe_frames_before_the_handshake_completes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let token = server.sign_in("early").await;
    let addr = server.quic.as_ref().unwrap().0;
    let connector = connector(&server);
    // A first connection leaves a session ticket with the client.
    let mut first = connector.connect(addr).await.unwrap();
    first.auth(&token).await.unwrap();
    first.connection.close(0u32.into(), b"bye");
    drop(first);
    // Its first frames go in 0-RTT data: a sign-in and a read, both replay-safe.
    let first = vec![
        client_frame::Frame::Auth(quic::Auth {
            token: token.clone(),
        }),
        client_frame::Frame::Request(quic::Request {
            id: 6,
            path: "/v1/rooms".into(),
        }),
    ];
    let (mut early, accepted) = connector.connect_early(addr, first).await.unwrap();
    assert!(
        accepted,
        "the server took the second connection's 0-RTT data"
    );
    match early.answer_within(WAIT).await.unwrap() {
        Frame::Welcome(welcome) => assert!(!welcome.user_id.is_empty()),
        other => panic!("expected welcome, got {other:?}"),
    }
    match early.answer_within(WAIT).await.unwrap() {
        Frame::Response(response) => assert_eq!((response.id, response.status), (6, 200)),
        other => panic!("expected the read's response, got {other:?}"),
    }
    let (status, rooms) = early.read(7, "/v1/rooms").await.unwrap();
    assert_eq!(status, 200, "{rooms}");
    // (`girok_quic_zero_rtt_total` counts control streams still in 0-RTT when girok took
    // them; on loopback the handshake may complete first, which is no less safe.)
}

#[tokio::test]
async fn bad_input_gets_error_frames_or_a_clean_close_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (alice, _bob, room) = two_in_a_room(&server).await;
    let addr = server.quic.as_ref().unwrap().0;
    let connector = connector(&server);

    // Garbage datagrams before any handshake: ignored.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for size in [1usize, 20, 1200, 1500] {
        udp.send_to(&vec![0xab; size], addr).unwrap();
    }

    let mut client = connector.connect(addr).await.unwrap();
    // Before auth: refused, the connection stays.
    client
        .subscribe(&format!("chat:{room}"), None)
        .await
        .unwrap();
    assert_eq!(error(&mut client).await.code, "UNAUTHENTICATED");
    client
        .send(client_frame::Frame::Auth(quic::Auth {
            token: "not.a.token".into(),
        }))
        .await
        .unwrap();
    assert_eq!(error(&mut client).await.code, "UNAUTHENTICATED");
    client.auth(&alice).await.unwrap();
    // A whole frame that is not a ClientFrame, and one of an unknown type.
    client
        .send_raw(bytes::Bytes::from_static(&[3, 0xff, 0xff, 0xff]))
        .await
        .unwrap();
    assert_eq!(error(&mut client).await.code, "BAD_FRAME");
    // Field 99 (unknown to this server): an empty frame.
    client
        .send_raw(bytes::Bytes::from_static(&[3, 0x98, 0x06, 0x01]))
        .await
        .unwrap();
    assert_eq!(error(&mut client).await.code, "BAD_FRAME");
    client.subscribe("nonsense", None).await.unwrap();
    let unknown = error(&mut client).await;
    assert_eq!(
        (unknown.code.as_str(), unknown.topic.as_str()),
        ("UNKNOWN_TOPIC", "nonsense")
    );
    client
        .send_message("bad", "not-a-room", "x", None)
        .await
        .unwrap();
    let refused = error(&mut client).await;
    assert_eq!(
        (refused.code.as_str(), refused.r#ref.as_str()),
        ("INVALID_ARGUMENT", "bad")
    );
    // A read outside /v1 and one of a room that is not ours.
    let outside = client.read(1, "/metrics").await.unwrap_err().to_string();
    assert!(outside.contains("INVALID_ARGUMENT"), "{outside}");
    // A media variant's bytes are not a read's answer (refused before they are read).
    let photo = common::ready_media(&server, &alice, 1).await;
    let media = format!("/v1/media/{}/full", photo[0]);
    let binary = client.read(2, &media).await.unwrap_err().to_string();
    assert!(binary.contains("UNSUPPORTED_TYPE"), "{binary}");
    // Still served: a message goes through.
    client
        .send_message("ok", &room, "still here", None)
        .await
        .unwrap();
    let acked = ack(&mut client, "ok").await;
    // A frame length past the limit: an error frame, then the connection closes (4007).
    client
        .send_raw(bytes::Bytes::from_static(&[0x80, 0x80, 0x80, 0x01]))
        .await
        .unwrap();
    assert_eq!(error(&mut client).await.code, "FRAME_TOO_LARGE");
    let closed = tokio::time::timeout(WAIT, client.connection.closed())
        .await
        .unwrap();
    assert!(
        closed.to_string().contains("4007") || format!("{closed:?}").contains("4007"),
        "{closed:?}"
    );

    // Only one control stream: a client that opens another stream is closed (4007).
    let mut greedy = connector.connect(addr).await.unwrap();
    greedy.auth(&alice).await.unwrap();
    let (mut second, _) = greedy.connection.open_bi().await.unwrap();
    second.write_all(b"\x02\x32\x00").await.unwrap();
    assert_eq!(error(&mut greedy).await.code, "TOO_MANY_STREAMS");
    let closed = tokio::time::timeout(WAIT, greedy.connection.closed())
        .await
        .unwrap();
    assert!(format!("{closed:?}").contains("4007"), "{closed:?}");

    // A frame cut short by the end of the stream: the connection ends, nothing else.
    let mut truncated = connector.connect(addr).await.unwrap();
    truncated.auth(&alice).await.unwrap();
    truncated
        .send_raw(bytes::Bytes::from_static(&[10, 1, 2]))
        .await
        .unwrap();
    drop(truncated);

    // The server is alive and kept the acknowledged message.
    let mut again = connector.connect(addr).await.unwrap();
    again.auth(&alice).await.unwrap();
    let (status, page) = again
        .read(2, &format!("/v1/rooms/{room}/messages?after={}", acked.seq))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(page["messages"][0]["body"], "still here");
    // Someone else's room: the REST answer, 403/404 with its code.
    let carol = server.sign_in("carol").await;
    let mut outsider = connector.connect(addr).await.unwrap();
    outsider.auth(&carol).await.unwrap();
    let (status, body) = outsider
        .read(3, &format!("/v1/rooms/{room}/messages"))
        .await
        .unwrap();
    assert!(status == 403 || status == 404, "{status} {body}");
    outsider
        .subscribe(&format!("chat:{room}"), None)
        .await
        .unwrap();
    let denied = error(&mut outsider).await;
    assert!(
        ["NOT_A_MEMBER", "ROOM_NOT_FOUND", "FORBIDDEN"].contains(&denied.code.as_str()),
        "{denied:?}"
    );
    assert_eq!(server.get("/healthz").await.status().as_u16(), 200);
}

#[tokio::test]
async fn limits_are_answered_with_error_frames_or_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &[],
        &[
            ("GIROK__WS__MAX_SUBSCRIPTIONS", "1"),
            ("GIROK__WS__SENDS_PER_SECOND", "1"),
            ("GIROK__WS__SEND_BURST", "1"),
            ("GIROK__QUIC__MAX_CONNECTIONS", "1"),
            ("GIROK__QUIC__MAX_FRAME_BYTES", "1024"),
        ],
    );
    let (alice, _bob, room) = two_in_a_room(&server).await;
    let (connector, mut client) = connect(&server, &alice).await;
    subscribed(&mut client, &format!("chat:{room}"), None).await;
    client.subscribe("notifications", None).await.unwrap();
    assert_eq!(error(&mut client).await.code, "TOO_MANY_SUBSCRIPTIONS");
    client.send_message("1", &room, "one", None).await.unwrap();
    client.send_message("2", &room, "two", None).await.unwrap();
    // The refusal is immediate, the ack comes once the first is durable: either order.
    let (mut acked, mut limited) = (None, None);
    while acked.is_none() || limited.is_none() {
        match client.answer_within(WAIT).await.unwrap() {
            Frame::Ack(a) => acked = Some(a),
            Frame::Error(e) => limited = Some(e),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(acked.unwrap().r#ref, "1");
    let limited = limited.unwrap();
    assert_eq!(
        (limited.code.as_str(), limited.r#ref.as_str()),
        ("RATE_LIMITED", "2")
    );
    assert!(limited.retry_after_ms.is_some());
    // A second connection past quic.max_connections is refused.
    let refused = connector.connect(server.quic.as_ref().unwrap().0).await;
    assert!(refused.is_err(), "a second connection was accepted");
    assert!(server.metric("girok_quic_connections_refused_total").await >= 1);
    // A frame over quic.max_frame_bytes: refused by its length.
    client
        .send_message("big", &room, &"x".repeat(2000), None)
        .await
        .unwrap();
    assert_eq!(error(&mut client).await.code, "FRAME_TOO_LARGE");
}

#[tokio::test]
async fn the_endpoint_and_its_certificate_are_published() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (addr, sha256) = server.quic.clone().unwrap();
    let (status, info) = server.get_json("/v1/quic").await;
    assert_eq!(status, 200);
    assert_eq!(info["enabled"], true);
    assert_eq!(info["port"], addr.port());
    assert_eq!(info["alpn"], json!(["girok/1", "h3"]));
    assert_eq!(info["webTransportPath"], "/girok/1");
    assert_eq!(info["certificateSha256"], sha256.as_str());
    assert!(info["certificateNotAfter"].is_string());
    // A client pinning another certificate does not connect.
    let wrong = Connector::new(&"00".repeat(32)).unwrap();
    assert!(wrong.connect(addr).await.is_err());
    // A clean stop closes connections with 1001 (going away).
    let token = server.sign_in("leaving").await;
    let connector = Connector::new(&sha256).unwrap();
    let mut client = connector.connect(addr).await.unwrap();
    client.auth(&token).await.unwrap();
    let stopped = tokio::task::spawn_blocking(move || server.terminate());
    let closed = tokio::time::timeout(WAIT, client.connection.closed())
        .await
        .unwrap();
    assert!(format!("{closed:?}").contains("1001"), "{closed:?}");
    assert!(stopped.await.unwrap().success());
    // The certificate is kept across a restart (pinned clients keep working).
    let server = Server::start(&dir.path().join("data"), &[]);
    assert_eq!(server.quic.as_ref().unwrap().1, sha256);
    // Off when disabled.
    drop(server);
    let server = Server::start(&dir.path().join("data"), &["--no-quic"]);
    assert!(server.quic.is_none());
    let (_, info) = server.get_json("/v1/quic").await;
    assert_eq!(info["enabled"], false);
}

/// Runs a client nobody here wrote (`command`, given the server, alice's token and the room)
/// through the same conversation: it prints READY once signed in and subscribed, `ACK <seq>`
/// for its own message, then `GOT <seq> <body>` for Bob's answer.
async fn a_foreign_client_chats(
    server: &Server,
    room: &str,
    bob: &str,
    mut command: tokio::process::Command,
) {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the client starts");
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(90), lines.next_line())
            .await
            .expect("the client answers in time")
            .unwrap()
            .expect("the client printed a line")
    };
    assert_eq!(next_line().await, "READY");
    let acked: u64 = next_line()
        .await
        .strip_prefix("ACK ")
        .expect("its send acknowledged")
        .parse()
        .unwrap();
    // Its message is in the room's history, then Bob answers and it hears him.
    let history = server.history(room, acked).await;
    assert!(history.iter().any(|m| m["seq"] == acked));
    server.set_token(bob);
    let (status, sent) = server
        .post_json(
            &format!("/v1/rooms/{room}/messages"),
            json!({ "body": "hi there" }),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(next_line().await, format!("GOT {} hi there", sent["seq"]));
    let status = child.wait().await.unwrap();
    assert!(status.success(), "the client failed: {status}");
}

#[tokio::test]
async fn a_python_aioquic_client_written_from_the_docs_chats() {
    let python = std::env::var("GIROK_TEST_AIOQUIC_PYTHON").expect(
        "GIROK_TEST_AIOQUIC_PYTHON is not set: run scripts/test.sh, or point it at the python \
         of `scripts/aioquic.sh install`",
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (alice, bob, room) = two_in_a_room(&server).await;
    let (addr, sha256) = server.quic.clone().unwrap();
    let mut command = tokio::process::Command::new(&python);
    command
        .arg(repository().join("girok/tests/clients/girok1_aioquic.py"))
        .args([
            addr.ip().to_string(),
            addr.port().to_string(),
            sha256,
            alice,
            room.clone(),
        ])
        .arg(repository().join("schemas/proto"));
    a_foreign_client_chats(&server, &room, &bob, command).await;
}

#[tokio::test]
async fn chromium_speaks_girok1_over_webtransport() {
    let (node_modules, chromium) = common::browser();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (alice, bob, room) = two_in_a_room(&server).await;
    let (addr, sha256) = server.quic.clone().unwrap();
    // Screenshots are kept as test artefacts (not committed).
    let shots = repository().join("target/test-artifacts/quic");
    std::fs::create_dir_all(&shots).unwrap();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(repository().join("girok/tests/browser/webtransport.mjs"))
        .args([
            node_modules,
            chromium,
            server.base.clone(),
            addr.port().to_string(),
        ])
        .args([sha256, alice, room.clone()])
        .arg(repository().join("schemas/proto"))
        .arg(&shots);
    a_foreign_client_chats(&server, &room, &bob, command).await;
    assert!(
        server
            .metric("girok_quic_webtransport_sessions_total")
            .await
            >= 1
    );
}
