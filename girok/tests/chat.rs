//! Chat end to end against the real binary: group and direct rooms, owner-managed members,
//! room lists with unread counts that follow read receipts, history cursors both ways, GraphQL
//! subscriptions over graphql-transport-ws, and presence and typing over the WebSocket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sockets::{connect, graphql_ws, next_of, send, subscribe};
use common::{Server, as_user, code, user};
use serde_json::{Value, json};

const CREATE: &str =
    "mutation($t: String!, $m: [ID!]) { createRoom(title: $t, memberIds: $m) { id seq } }";
const ADD: &str = "mutation($r: ID!, $u: ID!) { addMember(roomId: $r, userId: $u) }";
const REMOVE: &str = "mutation($r: ID!, $u: ID!) { removeMember(roomId: $r, userId: $u) }";
const LEAVE: &str = "mutation($r: ID!) { leaveRoom(roomId: $r) }";
const SEND: &str =
    "mutation($r: ID!, $b: String!) { sendMessage(roomId: $r, body: $b) { seq id } }";
const DIRECT: &str = "mutation($u: ID!) { openDirectRoom(userId: $u) { id seq created } }";
const ROOM: &str = "query($r: ID!, $a: Seq) { room(id: $r, after: $a) { kind title memberCount directWithId unreadCount readUpToSeq members { userId readUpToSeq online } typing } }";
const ROOMS: &str = "query($f: Int, $c: String, $a: Seq) { rooms(first: $f, cursor: $c, after: $a) { nodes { id title unreadCount lastActivitySeq lastMessage { body } } pageInfo { hasNextPage endCursor } } }";
const MARK: &str =
    "mutation($r: ID!, $u: Seq) { markRead(roomId: $r, upToSeq: $u) { readUpToSeq seq } }";
const HISTORY: &str = "query($r: ID!) { messages(roomId: $r) { nodes { seq } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_manage_group_rooms_and_each_pair_has_one_direct_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &[],
        &[("GIROK__LIMITS__MAX_ROOM_MEMBERS", "3")],
    );
    let (alice, alice_id) = user(&server, "alice").await;
    let (bob, bob_id) = user(&server, "bob").await;
    let (carol, carol_id) = user(&server, "carol").await;
    let (_, dave_id) = user(&server, "dave").await;

    let created = as_user(
        &server,
        &alice,
        CREATE,
        json!({ "t": "team", "m": [bob_id] }),
    )
    .await;
    let room = created["data"]["createRoom"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let seq = created["data"]["createRoom"]["seq"].clone();
    let info = as_user(&server, &bob, ROOM, json!({ "r": room, "a": seq })).await;
    assert_eq!(info["data"]["room"]["kind"], "GROUP");
    assert_eq!(info["data"]["room"]["memberCount"], 2);

    // Only the owner changes members; nobody adds themselves.
    let body = as_user(&server, &carol, ADD, json!({ "r": room, "u": carol_id })).await;
    assert_eq!(code(&body), "NOT_A_MEMBER");
    let body = as_user(&server, &bob, ADD, json!({ "r": room, "u": carol_id })).await;
    assert_eq!(code(&body), "NOT_ROOM_OWNER");
    // Refused (and the refusal remembered) before she is added; read at once after.
    let body = as_user(&server, &carol, HISTORY, json!({ "r": room })).await;
    assert_eq!(code(&body), "NOT_A_MEMBER");
    let body = as_user(&server, &alice, ADD, json!({ "r": room, "u": carol_id })).await;
    assert!(body["data"]["addMember"].as_u64().is_some(), "{body}");
    let body = as_user(&server, &carol, HISTORY, json!({ "r": room })).await;
    assert!(body["errors"].is_null(), "a member reads: {body}");
    // The cap (3 here; 1,000 by default) holds.
    let body = as_user(&server, &alice, ADD, json!({ "r": room, "u": dave_id })).await;
    assert_eq!(code(&body), "ROOM_FULL");
    let unknown = "01900000-0000-7000-8000-000000000000";
    let body = as_user(&server, &alice, REMOVE, json!({ "r": room, "u": carol_id })).await;
    assert!(body["data"]["removeMember"].as_u64().is_some(), "{body}");
    for query in [HISTORY, ROOM] {
        let body = as_user(&server, &carol, query, json!({ "r": room })).await;
        assert_eq!(code(&body), "NOT_A_MEMBER", "removed means no access");
    }
    let body = as_user(&server, &alice, ADD, json!({ "r": room, "u": unknown })).await;
    assert_eq!(code(&body), "USER_NOT_FOUND");
    let body = as_user(&server, &alice, LEAVE, json!({ "r": room })).await;
    assert_eq!(code(&body), "OWNER_CANNOT_LEAVE");
    let body = as_user(&server, &bob, LEAVE, json!({ "r": room })).await;
    assert!(body["data"]["leaveRoom"].as_u64().is_some());
    let body = as_user(&server, &bob, SEND, json!({ "r": room, "b": "hi" })).await;
    assert_eq!(code(&body), "NOT_A_MEMBER");

    // Direct rooms: one per pair, from either side; fixed members.
    let first = as_user(&server, &alice, DIRECT, json!({ "u": bob_id })).await;
    assert_eq!(first["data"]["openDirectRoom"]["created"], true);
    let again = as_user(&server, &bob, DIRECT, json!({ "u": alice_id })).await;
    assert_eq!(again["data"]["openDirectRoom"]["created"], false);
    let direct = first["data"]["openDirectRoom"]["id"].as_str().unwrap();
    assert_eq!(again["data"]["openDirectRoom"]["id"], direct);
    let seq = again["data"]["openDirectRoom"]["seq"].clone();
    let info = as_user(&server, &bob, ROOM, json!({ "r": direct, "a": seq })).await;
    assert_eq!(info["data"]["room"]["kind"], "DIRECT");
    assert_eq!(info["data"]["room"]["directWithId"], alice_id.as_str());
    assert_eq!(info["data"]["room"]["memberCount"], 2);
    let body = as_user(&server, &bob, LEAVE, json!({ "r": direct })).await;
    assert_eq!(code(&body), "DIRECT_ROOM");
    let body = as_user(&server, &alice, ADD, json!({ "r": direct, "u": carol_id })).await;
    assert_eq!(code(&body), "DIRECT_ROOM");
    let body = as_user(&server, &carol, HISTORY, json!({ "r": direct })).await;
    assert_eq!(code(&body), "NOT_A_MEMBER");
    let body = as_user(&server, &alice, DIRECT, json!({ "u": alice_id })).await;
    assert_eq!(code(&body), "INVALID_ARGUMENT");
    let body = as_user(&server, &alice, DIRECT, json!({ "u": unknown })).await;
    assert_eq!(code(&body), "USER_NOT_FOUND");
}

fn ids(rooms: &Value) -> Vec<String> {
    rooms["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_lists_follow_activity_and_unread_counts_follow_read_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (alice, _) = user(&server, "alice").await;
    let (bob, bob_id) = user(&server, "bob").await;
    let (carol, _) = user(&server, "carol").await;
    let mut rooms = Vec::new();
    for title in ["first", "second"] {
        let body = as_user(
            &server,
            &alice,
            CREATE,
            json!({ "t": title, "m": [bob_id] }),
        )
        .await;
        rooms.push(
            body["data"]["createRoom"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (first, second) = (rooms[0].clone(), rooms[1].clone());

    // The newest room first (joined last, no messages yet).
    let mut seqs = Vec::new();
    for b in ["one", "two", "three"] {
        let body = as_user(&server, &alice, SEND, json!({ "r": first, "b": b })).await;
        seqs.push(body["data"]["sendMessage"]["seq"].as_u64().unwrap());
    }
    let list = as_user(&server, &bob, ROOMS, json!({ "a": seqs[2] })).await;
    let list = &list["data"]["rooms"];
    assert_eq!(
        ids(list),
        vec![first.clone(), second.clone()],
        "activity moves a room up"
    );
    assert_eq!(list["nodes"][0]["unreadCount"], 3);
    assert_eq!(list["nodes"][0]["lastMessage"]["body"], "three");
    assert_eq!(list["nodes"][1]["unreadCount"], 0);
    assert_eq!(list["nodes"][1]["lastMessage"], Value::Null);

    // Receipts: up to a seq, then everything; never backwards; not beyond the head.
    let mark = as_user(&server, &bob, MARK, json!({ "r": first, "u": seqs[1] })).await;
    assert_eq!(mark["data"]["markRead"]["readUpToSeq"], seqs[1]);
    let seq = mark["data"]["markRead"]["seq"].clone();
    let info = as_user(&server, &bob, ROOM, json!({ "r": first, "a": seq })).await;
    assert_eq!(info["data"]["room"]["unreadCount"], 1);
    let mark = as_user(&server, &bob, MARK, json!({ "r": first })).await;
    let all_read = mark["data"]["markRead"]["readUpToSeq"].as_u64().unwrap();
    assert!(all_read > seqs[2]);
    let back = as_user(&server, &bob, MARK, json!({ "r": first, "u": seqs[0] })).await;
    assert_eq!(
        back["data"]["markRead"]["readUpToSeq"], all_read,
        "never backwards"
    );
    let seq = back["data"]["markRead"]["seq"].clone();
    let info = as_user(&server, &bob, ROOM, json!({ "r": first, "a": seq })).await;
    assert_eq!(info["data"]["room"]["unreadCount"], 0);
    assert_eq!(info["data"]["room"]["readUpToSeq"], all_read);
    let members = &info["data"]["room"]["members"];
    let bobs = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["userId"] == bob_id.as_str())
        .unwrap();
    assert_eq!(bobs["readUpToSeq"], all_read, "the receipt, per member");
    let beyond = as_user(&server, &bob, MARK, json!({ "r": first, "u": 1_000_000 })).await;
    assert_eq!(code(&beyond), "INVALID_ARGUMENT");
    let body = as_user(&server, &carol, MARK, json!({ "r": first })).await;
    assert_eq!(code(&body), "NOT_A_MEMBER");

    // Sending counts as reading: Bob's own message is not unread for him, but is for Alice.
    let sent = as_user(&server, &bob, SEND, json!({ "r": second, "b": "from bob" })).await;
    let seq = sent["data"]["sendMessage"]["seq"].clone();
    let list = as_user(&server, &bob, ROOMS, json!({ "a": seq, "f": 1 })).await;
    let page = &list["data"]["rooms"];
    assert_eq!(ids(page), vec![second.clone()]);
    assert_eq!(page["nodes"][0]["unreadCount"], 0);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let cursor = page["pageInfo"]["endCursor"].clone();
    let list = as_user(&server, &bob, ROOMS, json!({ "f": 1, "c": cursor })).await;
    assert_eq!(ids(&list["data"]["rooms"]), vec![first.clone()]);
    assert_eq!(list["data"]["rooms"]["pageInfo"]["hasNextPage"], false);
    let list = as_user(&server, &alice, ROOMS, json!({ "a": seq })).await;
    assert_eq!(list["data"]["rooms"]["nodes"][0]["unreadCount"], 1);
    let bad = as_user(&server, &alice, ROOMS, json!({ "c": "nonsense" })).await;
    assert_eq!(code(&bad), "INVALID_ARGUMENT");
    let list = as_user(&server, &carol, ROOMS, json!({})).await;
    assert_eq!(
        ids(&list["data"]["rooms"]),
        Vec::<String>::new(),
        "none of hers"
    );

    // History both ways from a message.
    let page = as_user(
        &server,
        &alice,
        "query($r: ID!, $s: Seq) { messages(roomId: $r, since: $s, first: 1) { nodes { seq } pageInfo { hasNextPage hasPreviousPage startCursor } } }",
        json!({ "r": first, "s": seqs[0] }),
    )
    .await;
    let page = &page["data"]["messages"];
    assert_eq!(page["nodes"][0]["seq"], seqs[1], "the next newer message");
    assert_eq!(page["pageInfo"]["hasPreviousPage"], true, "more newer ones");
    assert_eq!(page["pageInfo"]["hasNextPage"], true, "and older ones");
    let both = as_user(
        &server,
        &alice,
        "query($r: ID!) { messages(roomId: $r, since: 1, before: 9) { nodes { seq } } }",
        json!({ "r": first }),
    )
    .await;
    assert_eq!(code(&both), "INVALID_ARGUMENT");
}

const ADDED: &str = "subscription($r: ID!) { messageAdded(roomId: $r) { seq body senderId } }";
const UPDATED: &str =
    "subscription($r: ID!) { messageUpdated(roomId: $r) { messageId deleted body seq } }";
const ROOM_UPDATED: &str =
    "subscription { roomUpdated { roomId type seq room { unreadCount lastMessage { body } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_subscriptions_deliver_messages_edits_deletes_and_room_updates() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &[],
        &[("GIROK__WS__MAX_SUBSCRIPTIONS", "3")],
    );
    let (alice, _) = user(&server, "alice").await;
    let (bob, bob_id) = user(&server, "bob").await;
    let (carol, _) = user(&server, "carol").await;
    let body = as_user(
        &server,
        &alice,
        CREATE,
        json!({ "t": "live", "m": [bob_id] }),
    )
    .await;
    let room = body["data"]["createRoom"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // No credentials, or bad ones: the server closes the connection with the reason.
    let (_, refused) = graphql_ws(&server, json!({})).await;
    assert_eq!(refused["type"], "close", "{refused}");
    assert_eq!(refused["code"], 1002);
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("authorization")
    );
    let (_, refused) = graphql_ws(&server, json!({ "authorization": "Bearer nope" })).await;
    assert_eq!(refused["code"], 1002, "{refused}");

    let (mut socket, ack) =
        graphql_ws(&server, json!({ "authorization": format!("Bearer {bob}") })).await;
    assert_eq!(ack["type"], "connection_ack");
    // Queries run over the socket too, account reads included (they reach the same state as
    // over HTTP).
    socket
        .subscribe("me", "{ me { id username } }", json!({}))
        .await;
    let me = socket.next_for("me").await;
    assert_eq!(me["type"], "next", "{me}");
    assert_eq!(me["payload"]["data"]["me"]["id"], bob_id.as_str(), "{me}");
    assert_eq!(me["payload"]["data"]["me"]["username"], "bob", "{me}");
    assert_eq!(socket.next_for("me").await["type"], "complete");
    socket
        .subscribe("updated", UPDATED, json!({ "r": room }))
        .await;
    socket.subscribe("added", ADDED, json!({ "r": room })).await;
    socket.subscribe("rooms", ROOM_UPDATED, json!({})).await;
    // Subscriptions start asynchronously: send until the last one sees a message.
    let mut warmups = 0;
    loop {
        warmups += 1;
        as_user(&server, &alice, SEND, json!({ "r": room, "b": "warm-up" })).await;
        let got = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            socket.next_for("rooms"),
        )
        .await;
        if got.is_ok() {
            break;
        }
        assert!(warmups < 20, "roomUpdated never started");
    }

    let sent = as_user(
        &server,
        &alice,
        SEND,
        json!({ "r": room, "b": "hello bob" }),
    )
    .await;
    let message_id = sent["data"]["sendMessage"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let seq = sent["data"]["sendMessage"]["seq"].as_u64().unwrap();
    let added = loop {
        let next = socket.next_for("added").await;
        assert_eq!(next["type"], "next", "{next}");
        if next["payload"]["data"]["messageAdded"]["body"] == "hello bob" {
            break next;
        }
    };
    assert_eq!(added["payload"]["data"]["messageAdded"]["seq"], seq);
    let update = loop {
        let next = socket.next_for("rooms").await;
        if next["payload"]["data"]["roomUpdated"]["seq"] == seq {
            break next;
        }
    };
    let update = &update["payload"]["data"]["roomUpdated"];
    assert_eq!(update["type"], "chat.message.sent");
    assert_eq!(update["roomId"], room.as_str());
    assert_eq!(update["room"]["lastMessage"]["body"], "hello bob");
    assert_eq!(update["room"]["unreadCount"], warmups + 1);

    // Edits and deletes reach subscribers; a deletion carries no text.
    as_user(
        &server,
        &alice,
        "mutation($m: ID!) { editMessage(messageId: $m, body: \"hello, bob\") }",
        json!({ "m": message_id }),
    )
    .await;
    let edited = socket.next_for("updated").await;
    let edited = &edited["payload"]["data"]["messageUpdated"];
    assert_eq!(
        (edited["messageId"].as_str(), edited["deleted"].as_bool()),
        (Some(message_id.as_str()), Some(false))
    );
    assert_eq!(edited["body"], "hello, bob");
    as_user(
        &server,
        &alice,
        "mutation($m: ID!) { deleteMessage(messageId: $m) }",
        json!({ "m": message_id }),
    )
    .await;
    let deleted = socket.next_for("updated").await;
    let deleted = &deleted["payload"]["data"]["messageUpdated"];
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["body"], Value::Null);

    // Three subscriptions are this socket's limit here (100 by default).
    socket
        .subscribe("fourth", ADDED, json!({ "r": room }))
        .await;
    let refused = socket.next_for("fourth").await;
    assert!(
        refused.to_string().contains("TOO_MANY_SUBSCRIPTIONS"),
        "{refused}"
    );

    // A non-member cannot subscribe.
    let (mut outsider, ack) = graphql_ws(
        &server,
        json!({ "authorization": format!("Bearer {carol}") }),
    )
    .await;
    assert_eq!(ack["type"], "connection_ack");
    outsider.subscribe("x", ADDED, json!({ "r": room })).await;
    let denied = outsider.next_for("x").await;
    let errors = if denied["type"] == "error" {
        denied["payload"].clone()
    } else {
        denied["payload"]["errors"].clone()
    };
    assert_eq!(errors[0]["extensions"]["code"], "NOT_A_MEMBER", "{denied}");

    // Removal ends the removed member's room subscription.
    as_user(&server, &alice, REMOVE, json!({ "r": room, "u": bob_id })).await;
    loop {
        let next = socket.next_for("added").await;
        if next["type"] == "complete" {
            break;
        }
        assert_eq!(next["type"], "next", "{next}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_presence_and_typing_over_the_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (alice, alice_id) = user(&server, "alice").await;
    let (bob, bob_id) = user(&server, "bob").await;
    let (carol, _) = user(&server, "carol").await;
    let body = as_user(
        &server,
        &alice,
        CREATE,
        json!({ "t": "typing", "m": [bob_id] }),
    )
    .await;
    let room = body["data"]["createRoom"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let topic = format!("chat:{room}");

    let mut bobs = connect(&server, Some(&bob)).await;
    next_of(&mut bobs, "welcome").await;
    subscribe(&mut bobs, &topic).await;

    let mut alices = connect(&server, Some(&alice)).await;
    next_of(&mut alices, "welcome").await;
    let online = next_of(&mut bobs, "presence").await;
    assert_eq!(
        (online["userId"].as_str(), online["online"].as_bool()),
        (Some(alice_id.as_str()), Some(true))
    );
    send(&mut alices, json!({ "type": "typing", "roomId": room })).await;
    let typing = next_of(&mut bobs, "typing").await;
    assert_eq!(typing["userId"], alice_id.as_str());
    assert_eq!(typing["topic"], topic.as_str());

    let info = as_user(&server, &bob, ROOM, json!({ "r": room })).await;
    let room_info = &info["data"]["room"];
    assert_eq!(room_info["typing"], json!([alice_id]));
    let alice_member = room_info["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["userId"] == alice_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(alice_member["online"], true);

    // Outsiders neither type into the room nor see it.
    let mut carols = connect(&server, Some(&carol)).await;
    next_of(&mut carols, "welcome").await;
    send(&mut carols, json!({ "type": "typing", "roomId": room })).await;
    assert_eq!(next_of(&mut carols, "error").await["code"], "NOT_A_MEMBER");
    let body = as_user(&server, &carol, ROOM, json!({ "r": room })).await;
    assert_eq!(code(&body), "NOT_A_MEMBER");

    // Alice's last connection closes: Bob sees her go offline.
    drop(alices);
    let offline = next_of(&mut bobs, "presence").await;
    assert_eq!(
        (offline["userId"].as_str(), offline["online"].as_bool()),
        (Some(alice_id.as_str()), Some(false))
    );
}
