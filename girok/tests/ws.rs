//! The WebSocket at /ws with a real WebSocket client against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Server;
use common::sockets::{connect, next, next_of, send, subscribe, upgrade_request};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Alice creates a room and adds nobody; Bob joins it. Returns (room, alice's, bob's token).
async fn two_users_one_room(server: &Server) -> (String, String, String) {
    let bob = server.sign_in("bob").await;
    let bob_id = server.my_id().await;
    let alice = server.sign_in("alice").await;
    let room = server.create_room("ws").await;
    server.add_member(&room, &bob_id).await;
    server.set_token(&bob);
    (room, alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_over_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (room, alice_token, bob_token) = two_users_one_room(&server).await;

    // Alice signs in with an auth frame, Bob with the header on the upgrade.
    let mut alice = connect(&server, None).await;
    send(
        &mut alice,
        json!({ "type": "subscribe", "topic": format!("chat:{room}") }),
    )
    .await;
    assert_eq!(next(&mut alice).await["code"], "UNAUTHENTICATED");
    send(&mut alice, json!({ "type": "auth", "token": alice_token })).await;
    assert_eq!(next(&mut alice).await["type"], "welcome");
    let mut bob = connect(&server, Some(&bob_token)).await;
    assert_eq!(next(&mut bob).await["type"], "welcome");
    for socket in [&mut alice, &mut bob] {
        let topic = format!("chat:{room}");
        assert_eq!(subscribe(socket, &topic).await["topic"], topic);
    }

    send(
        &mut alice,
        json!({ "type": "send", "ref": "r1", "roomId": room, "body": "hi bob", "clientId": "a1" }),
    )
    .await;
    // Alice gets her ack and her own message, in either order: acks and events are written
    // to the socket apart.
    let (mut ack, mut own) = (None, None);
    while ack.is_none() || own.is_none() {
        let frame = next(&mut alice).await;
        match frame["type"].as_str() {
            Some("ack") => ack = Some(frame),
            Some("event") => own = Some(frame),
            _ => {}
        }
    }
    let (ack, own) = (ack.unwrap(), own.unwrap());
    assert_eq!(ack["ref"], "r1");
    let seq = ack["seq"].as_u64().unwrap();
    assert_eq!(own["seq"], seq);
    let event = next_of(&mut bob, "event").await;
    assert_eq!(event["seq"], seq);
    assert_eq!(event["event"]["payload"]["body"], "hi bob");
    assert_eq!(event["event"]["type"], "chat.message.sent");

    // A retried send (same clientId) acks the same seq, and Bob gets no duplicate.
    send(
        &mut alice,
        json!({ "type": "send", "ref": "r2", "roomId": room, "body": "hi bob", "clientId": "a1" }),
    )
    .await;
    let retry = next_of(&mut alice, "ack").await;
    assert_eq!(
        (retry["seq"].as_u64(), retry["duplicate"].as_bool()),
        (Some(seq), Some(true))
    );
    send(
        &mut bob,
        json!({ "type": "send", "ref": "b1", "roomId": room, "body": "hello alice" }),
    )
    .await;
    let bob_ack = next_of(&mut bob, "ack").await;
    let to_alice = next_of(&mut alice, "event").await;
    assert_eq!(
        to_alice["seq"], bob_ack["seq"],
        "the next event Alice sees is Bob's, not a duplicate"
    );

    send(&mut bob, json!({ "type": "ping" })).await;
    assert_eq!(next_of(&mut bob, "pong").await["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_delivers_exactly_the_missed_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (room, alice_token, bob_token) = two_users_one_room(&server).await;
    let topic = format!("chat:{room}");

    let mut bob = connect(&server, Some(&bob_token)).await;
    subscribe(&mut bob, &topic).await;
    let mut alice = connect(&server, Some(&alice_token)).await;
    send(
        &mut alice,
        json!({ "type": "send", "roomId": room, "body": "seen" }),
    )
    .await;
    let seen = next_of(&mut alice, "ack").await["seq"].as_u64().unwrap();
    let last_seen = next_of(&mut bob, "event").await["seq"].as_u64().unwrap();
    assert_eq!(last_seen, seen);
    drop(bob);

    let mut missed = Vec::new();
    for i in 0..5 {
        send(
            &mut alice,
            json!({ "type": "send", "roomId": room, "body": format!("missed {i}") }),
        )
        .await;
        missed.push(next_of(&mut alice, "ack").await["seq"].as_u64().unwrap());
    }
    let mut bob = connect(&server, Some(&bob_token)).await;
    send(
        &mut bob,
        json!({ "type": "subscribe", "topic": topic, "fromSeq": last_seen }),
    )
    .await;
    next_of(&mut bob, "subscribed").await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(next_of(&mut bob, "event").await["seq"].as_u64().unwrap());
    }
    assert_eq!(got, missed, "exactly the missed events, in order");
    send(
        &mut alice,
        json!({ "type": "send", "roomId": room, "body": "live again" }),
    )
    .await;
    let live = next_of(&mut alice, "ack").await["seq"].as_u64().unwrap();
    assert_eq!(
        next_of(&mut bob, "event").await["seq"],
        live,
        "then live, no duplicate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_limits_and_bad_frames_get_error_frames() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(
        dir.path(),
        "[ws]\nmax_subscriptions = 2\nsends_per_second = 1\nsend_burst = 3\n",
    );
    let (room, _alice, _bob) = two_users_one_room(&server).await;
    let mallory = server.sign_in("mallory").await;
    let mut socket = connect(&server, Some(&mallory)).await;
    next_of(&mut socket, "welcome").await;

    send(
        &mut socket,
        json!({ "type": "subscribe", "topic": format!("chat:{room}") }),
    )
    .await;
    assert_eq!(
        next(&mut socket).await["code"],
        "NOT_A_MEMBER",
        "nobody reads a room they are not in"
    );
    send(
        &mut socket,
        json!({ "type": "send", "roomId": room, "body": "let me in" }),
    )
    .await;
    assert_eq!(next(&mut socket).await["code"], "NOT_A_MEMBER");
    send(
        &mut socket,
        json!({ "type": "subscribe", "topic": "gossip" }),
    )
    .await;
    assert_eq!(next(&mut socket).await["code"], "UNKNOWN_TOPIC");
    socket.send(Message::text("{not json")).await.unwrap();
    assert_eq!(next(&mut socket).await["code"], "BAD_FRAME");
    send(&mut socket, json!({ "type": "teleport" })).await;
    assert_eq!(next(&mut socket).await["code"], "BAD_FRAME");

    // Subscriptions: two allowed, the third refused.
    let own = server.create_room("mine").await;
    subscribe(&mut socket, &format!("chat:{own}")).await;
    subscribe(&mut socket, "notifications").await;
    let other = server.create_room("third").await;
    send(
        &mut socket,
        json!({ "type": "subscribe", "topic": format!("chat:{other}") }),
    )
    .await;
    // (Joining "third" is itself a notification to Mallory; skip to the error.)
    assert_eq!(
        next_of(&mut socket, "error").await["code"],
        "TOO_MANY_SUBSCRIPTIONS"
    );

    // Sends: the burst (3 tokens, one spent on the refused send above unless it refilled
    // meanwhile), then error frames, and the connection stays usable.
    let mut codes = Vec::new();
    for i in 0..5 {
        send(
            &mut socket,
            json!({ "type": "send", "ref": format!("s{i}"), "roomId": own, "body": "x" }),
        )
        .await;
        loop {
            let frame = next(&mut socket).await;
            if frame["type"] == "ack" || frame["type"] == "error" {
                codes.push(frame["code"].as_str().unwrap_or("ack").to_owned());
                break;
            }
        }
    }
    let acks = codes.iter().take_while(|c| *c == "ack").count();
    assert!((2..=3).contains(&acks), "{codes:?}");
    assert!(
        codes[acks..].iter().all(|c| c == "RATE_LIMITED"),
        "{codes:?}"
    );
    send(&mut socket, json!({ "type": "ping" })).await;
    assert_eq!(next_of(&mut socket, "pong").await["type"], "pong");

    // An invalid Bearer header fails the upgrade itself.
    let request = upgrade_request(&server, Some("forged"));
    assert!(tokio_tungstenite::connect_async(request).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_ends_the_subscription_and_notifications_tell_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (room, alice_token, bob_token) = two_users_one_room(&server).await;
    let mut bob = connect(&server, Some(&bob_token)).await;
    subscribe(&mut bob, &format!("chat:{room}")).await;
    subscribe(&mut bob, "notifications").await;
    server.set_token(&bob_token);
    server
        .gql(
            "mutation($r: ID!) { leaveRoom(roomId: $r) }",
            json!({ "r": room }),
        )
        .await;
    let mut topics = Vec::new();
    for _ in 0..2 {
        let event = next_of(&mut bob, "event").await;
        assert_eq!(event["event"]["type"], "chat.member.left");
        topics.push(event["topic"].as_str().unwrap().to_owned());
    }
    topics.sort();
    assert_eq!(
        topics,
        vec![format!("chat:{room}"), "notifications".to_owned()]
    );
    // Alice keeps talking; Bob, gone, hears nothing more.
    let mut alice = connect(&server, Some(&alice_token)).await;
    send(
        &mut alice,
        json!({ "type": "send", "roomId": room, "body": "bob left" }),
    )
    .await;
    next_of(&mut alice, "ack").await;
    send(&mut bob, json!({ "type": "ping" })).await;
    assert_eq!(
        next(&mut bob).await["type"],
        "pong",
        "no event for a room Bob left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_and_unauthenticated_ones_are_closed_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(
        dir.path(),
        "[ws]\nheartbeat_ms = 200\nidle_timeout_ms = 600\nauth_timeout_ms = 500\n",
    );
    let token = server.sign_in("quiet").await;

    // Never authenticates: closed with 4001.
    let mut anonymous = connect(&server, None).await;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), anonymous.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => break frame.unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 4001);

    // Authenticated, but stops reading (so it answers no pings): closed with 4002 idle.
    let mut quiet = connect(&server, Some(&token)).await;
    next_of(&mut quiet, "welcome").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), quiet.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => break frame.unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 4002);
    assert_eq!(close.reason.as_str(), "idle timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_reach_subscribers_and_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (room, alice_token, bob_token) = two_users_one_room(&server).await;
    let mut bob = connect(&server, Some(&bob_token)).await;
    subscribe(&mut bob, &format!("chat:{room}")).await;

    server.set_token(&alice_token);
    let sent = server
        .gql(common::SEND, json!({ "r": room, "b": "helo" }))
        .await;
    let message = sent["sendMessage"]["id"].as_str().unwrap().to_owned();
    let edited = server
        .gql(
            "mutation($m: ID!) { editMessage(messageId: $m, body: \"hello\") }",
            json!({ "m": message }),
        )
        .await;
    let history = server
        .history(&room, edited["editMessage"].as_u64().unwrap())
        .await;
    assert_eq!(history[0]["body"], "hello");

    let mut seen = Vec::new();
    for _ in 0..2 {
        let event = next_of(&mut bob, "event").await;
        seen.push(event["event"]["type"].as_str().unwrap().to_owned());
        if event["event"]["type"] == "chat.message.edited" {
            assert_eq!(event["event"]["payload"]["body"], "hello");
            assert_eq!(event["event"]["payload"]["messageId"], message.as_str());
        }
    }
    assert_eq!(seen, vec!["chat.message.sent", "chat.message.edited"]);

    // Bob may not edit Alice's message.
    server.set_token(&bob_token);
    let (_, body) = server
        .gql_status(
            "mutation($m: ID!) { editMessage(messageId: $m, body: \"mine now\") }",
            json!({ "m": message }),
        )
        .await;
    assert_eq!(common::code(&body), "NOT_MESSAGE_AUTHOR");

    server.set_token(&alice_token);
    let deleted = server
        .gql(
            "mutation($m: ID!) { deleteMessage(messageId: $m) }",
            json!({ "m": message }),
        )
        .await;
    let event = next_of(&mut bob, "event").await;
    assert_eq!(event["event"]["type"], "chat.message.deleted");
    assert!(
        server
            .history(&room, deleted["deleteMessage"].as_u64().unwrap())
            .await
            .is_empty(),
        "deleted text is gone from the history"
    );
}

/// Sends `count` messages without waiting for acks; returns the acks' seqs, in order.
async fn send_pipelined(
    socket: &mut common::sockets::Socket,
    room: &str,
    count: usize,
    body: &str,
) -> Vec<u64> {
    for i in 0..count {
        send(
            socket,
            json!({ "type": "send", "ref": i.to_string(), "roomId": room, "body": format!("{i} {body}") }),
        )
        .await;
    }
    let mut seqs = Vec::with_capacity(count);
    for i in 0..count {
        let ack = next_of(socket, "ack").await;
        assert_eq!(
            ack["ref"],
            i.to_string(),
            "acks come in the order of the sends"
        );
        seqs.push(ack["seq"].as_u64().unwrap());
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_sends_are_acked_and_a_lagging_subscriber_catches_up_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // One event of buffer per topic: any batch of two events puts a subscriber behind.
    let server = Server::start_with_config(
        dir.path(),
        "[engine]\ntopic_capacity = 1\n[ws]\nsends_per_second = 100000\nsend_burst = 100000\n",
    );
    let (room, alice_token, bob_token) = two_users_one_room(&server).await;
    let mut bob = connect(&server, Some(&bob_token)).await;
    subscribe(&mut bob, &format!("chat:{room}")).await;
    let mut alice = connect(&server, Some(&alice_token)).await;

    let seqs = send_pipelined(&mut alice, &room, 300, "pipelined").await;
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "one connection's sends enter the log in the order sent"
    );
    let mut delivered = Vec::new();
    while delivered.len() < seqs.len() {
        let frame = next(&mut bob).await;
        assert_ne!(frame["type"], "error", "{frame}");
        if frame["type"] == "event" {
            delivered.push(frame["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(delivered, seqs, "every message once, in order, no gap");
    assert!(
        server.metric("girok_ws_catch_ups_total").await > 0,
        "the subscriber fell behind the hub and read the gap from the log"
    );
    assert_eq!(
        server.metric("girok_ws_slow_consumer_closes_total").await,
        0
    );
    send(&mut bob, json!({ "type": "ping" })).await;
    next_of(&mut bob, "pong").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_client_that_does_not_read_is_closed_as_a_slow_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(
        dir.path(),
        "[ws]\nsends_per_second = 100000\nsend_burst = 100000\nwrite_timeout_ms = 500\n",
    );
    let (room, alice_token, bob_token) = two_users_one_room(&server).await;
    let carol_token = server.sign_in("carol").await;
    let carol_id = server.my_id().await;
    server.set_token(&alice_token);
    server.add_member(&room, &carol_id).await;

    // Carol subscribes, then reads nothing, through a small receive buffer.
    let request = upgrade_request(&server, Some(&carol_token));
    let mut carol = common::sockets::connect_small_buffer(&server, request).await;
    next_of(&mut carol, "welcome").await;
    subscribe(&mut carol, &format!("chat:{room}")).await;
    let mut bob = connect(&server, Some(&bob_token)).await;
    subscribe(&mut bob, &format!("chat:{room}")).await;

    // 2,000 messages of 4 KB: far more than the socket buffers hold.
    let mut alice = connect(&server, Some(&alice_token)).await;
    let body = "x".repeat(4000);
    let reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while seqs.len() < 2000 {
            let frame = next(&mut bob).await;
            if frame["type"] == "event" {
                seqs.push(frame["seq"].as_u64().unwrap());
            }
        }
        seqs
    });
    let sent = send_pipelined(&mut alice, &room, 2000, &body).await;
    let delivered = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivered, sent, "the client that reads gets everything");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while server.metric("girok_ws_slow_consumer_closes_total").await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the client that reads nothing is closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server.metric("girok_ws_slow_consumer_closes_total").await,
        1
    );
    // Carol finds her connection over once she reads what was buffered.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match carol.next().await {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => break None,
            }
        }
    })
    .await
    .expect("the connection ends");
    assert!(matches!(ended, None | Some(4003)), "{ended:?}");
}
