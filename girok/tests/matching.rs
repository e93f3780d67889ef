//! Random matching end to end: the real server, REST, WebSocket and graphql-transport-ws
//! clients. Two users are matched and chat; errors and limits; skips and blocks; preferences
//! honoured and relaxed; expiry and lost connections; a property test over thousands of
//! concurrent operations, checked against the log; kill -9 under heavy matching, then the same
//! checks and a replay whose write model equals the live one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sockets::{GraphqlWs, Socket, connect, graphql_ws, next_of, send, subscribe};
use common::{Server, call, user};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MATCHING_UPDATED: &str = "subscription { matchingUpdated { kind seq roomId sharedTags waitedMs reason byMe partner { id username } } }";

async fn join(server: &Server, token: &str, tags: &[&str], language: Option<&str>) -> (u16, Value) {
    call(
        server,
        "POST",
        "/v1/matching/queue",
        token,
        Some(json!({ "tags": tags, "language": language })),
    )
    .await
}

/// `POST /v1/matching/skip`, with `?requeue=` when given.
async fn skip(server: &Server, token: &str, requeue: Option<bool>) -> (u16, Value) {
    let path = match requeue {
        Some(requeue) => format!("/v1/matching/skip?requeue={requeue}"),
        None => "/v1/matching/skip".to_owned(),
    };
    call(server, "POST", &path, token, None).await
}

/// `DELETE /v1/matching/queue`.
async fn leave(server: &Server, token: &str) -> (u16, Value) {
    call(server, "DELETE", "/v1/matching/queue", token, None).await
}

/// `POST /v1/rooms/{room}/messages` with `body`.
async fn post_message(server: &Server, token: &str, room: &str, body: &str) -> (u16, Value) {
    let path = format!("/v1/rooms/{room}/messages");
    call(server, "POST", &path, token, Some(json!({ "body": body }))).await
}

async fn status(server: &Server, token: &str) -> Value {
    let (code, body) = call(server, "GET", "/v1/matching", token, None).await;
    assert_eq!(code, 200, "{body}");
    body
}

fn rest_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

/// A server whose users may join or skip `per_minute` times a minute, all at once.
fn start_with_matching_budget(dir: &tempfile::TempDir, per_minute: u32) -> Server {
    let budget = per_minute.to_string();
    start_in(
        dir,
        &[
            ("GIROK__RATE_LIMITS__MATCHING__PER_MINUTE", &budget),
            ("GIROK__RATE_LIMITS__MATCHING__BURST", &budget),
        ],
    )
}

/// A server on a fresh data directory in `dir` with `settings` (`GIROK__…` variables).
fn start_in(dir: &tempfile::TempDir, settings: &[(&str, &str)]) -> Server {
    Server::start_with_env(&dir.path().join("data"), &[], settings)
}

/// A matching subscription on `/ws`.
async fn matching_socket(server: &Server, token: &str) -> Socket {
    let mut socket = connect(server, Some(token)).await;
    next_of(&mut socket, "welcome").await;
    subscribe(&mut socket, "matching").await;
    socket
}

/// A `matchingUpdated` subscription over graphql-transport-ws.
async fn matching_subscription(server: &Server, token: &str) -> GraphqlWs {
    let (mut ws, ack) = graphql_ws(
        server,
        json!({ "authorization": format!("Bearer {token}") }),
    )
    .await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    ws.subscribe("m", MATCHING_UPDATED, json!({})).await;
    ws
}

/// Polls `token`'s status until `done` holds (at most 10 s).
async fn status_until(server: &Server, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = status(server, token).await;
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "status never reached: {now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_are_matched_and_chat_in_their_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(&dir, &[]);
    let (ann, ann_id) = user(&server, "ann").await;
    let (bob, bob_id) = user(&server, "bob").await;
    let (cat, _) = user(&server, "cat").await;
    let mut ann_ws = matching_socket(&server, &ann).await;
    let mut bob_gql = matching_subscription(&server, &bob).await;
    let mut ann_notes = connect(&server, Some(&ann)).await;
    next_of(&mut ann_notes, "welcome").await;
    subscribe(&mut ann_notes, "notifications").await;

    let (code, joined) = join(&server, &ann, &["Music", "chess"], Some("EN")).await;
    assert_eq!(code, 201, "{joined}");
    assert_eq!(
        joined["status"]["queued"]["tags"],
        json!(["music", "chess"])
    );
    assert_eq!(joined["status"]["queued"]["language"], "en");
    assert_eq!(joined["status"]["waiting"], 1);
    assert_eq!(joined["status"]["match"], Value::Null);
    let queued = next_of(&mut ann_ws, "queued").await;
    assert_eq!(queued["ticketId"], joined["ticketId"]);

    // Bob joins over GraphQL: Ann waits and fits, so the join itself matches them.
    server.set_token(&bob);
    let data = server
        .gql(
            "mutation { joinMatching(tags: [\"music\"], language: \"en\") { seq matched { roomId } status { waiting queued { tags } match { roomId partner { username } } } } }",
            json!({}),
        )
        .await;
    let status_now = &data["joinMatching"]["status"];
    assert_eq!(status_now["queued"], Value::Null);
    assert_eq!(status_now["waiting"], 0);
    assert_eq!(status_now["match"]["partner"]["username"], "ann");
    let room = status_now["match"]["roomId"].as_str().unwrap().to_owned();
    assert_eq!(
        data["joinMatching"]["matched"]["roomId"], room,
        "the join's own match"
    );
    assert_eq!(joined["matched"], Value::Null, "Ann's join found nobody");

    let matched = next_of(&mut ann_ws, "matched").await;
    assert_eq!(matched["roomId"], room);
    assert_eq!(matched["partner"]["username"], "bob");
    assert_eq!(matched["partner"]["id"], bob_id);
    assert!(
        matched["partner"].get("email").is_none(),
        "a public profile"
    );
    assert_eq!(matched["sharedTags"], json!(["music"]));
    let queued = bob_gql.next_for("m").await;
    assert_eq!(
        queued["payload"]["data"]["matchingUpdated"]["kind"],
        "QUEUED"
    );
    let update = bob_gql.next_for("m").await;
    let update = &update["payload"]["data"]["matchingUpdated"];
    assert_eq!(update["kind"], "MATCHED", "{update}");
    assert_eq!(update["roomId"], room);
    assert_eq!(update["partner"]["id"], ann_id);
    assert_eq!(update["sharedTags"], json!(["music"]));

    // Ann's own topic says the match put her in a room; what is each one's own (the
    // tickets, the waits) stays out of it (her `matched` frame above tells her own wait).
    let note = next_of(&mut ann_notes, "event").await;
    let shown = &note["event"];
    assert_eq!(shown["type"], "matching.matched", "{note}");
    assert_eq!(shown["payload"]["roomId"], room);
    assert_eq!(shown["payload"]["roomTitle"], "Random match: music");
    for private in ["waitAMs", "waitBMs", "ticketASeq", "ticketBSeq"] {
        assert_eq!(shown["payload"][private], 0, "{note}");
    }

    // The match room is a room like any other for its two members.
    let (code, info) = call(&server, "GET", &format!("/v1/rooms/{room}"), &ann, None).await;
    assert_eq!(code, 200, "{info}");
    assert_eq!(info["title"], "Random match: music");
    let mut chat = connect(&server, Some(&bob)).await;
    next_of(&mut chat, "welcome").await;
    subscribe(&mut chat, &format!("chat:{room}")).await;
    let (code, sent) = post_message(&server, &ann, &room, "hi stranger").await;
    assert_eq!(code, 201, "{sent}");
    let event = next_of(&mut chat, "event").await;
    assert_eq!(event["event"]["payload"]["body"], "hi stranger");
    let path = format!("/v1/rooms/{room}/messages?after={}", sent["seq"]);
    let (code, page) = call(&server, "GET", &path, &bob, None).await;
    assert_eq!(code, 200);
    assert_eq!(page["messages"][0]["body"], "hi stranger");
    // Its members are the match's two (`chat/membership.rs`: from matching's rows).
    let members_path = format!("/v1/rooms/{room}/members");
    let (code, members) = call(&server, "GET", &members_path, &bob, None).await;
    assert_eq!(code, 200, "{members}");
    let mut expected = vec![ann_id.clone(), bob_id.clone()];
    expected.sort();
    let listed: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, expected, "{members}");
    // Nobody else reads it.
    let (code, refused) = call(&server, "GET", &path, &cat, None).await;
    assert_eq!((code, rest_code(&refused)), (403, "NOT_A_MEMBER"));
    let (code, refused) = call(&server, "GET", &members_path, &cat, None).await;
    assert_eq!((code, rest_code(&refused)), (403, "NOT_A_MEMBER"));
    let (code, refused) = post_message(&server, &cat, &room, "let me in").await;
    assert_eq!((code, rest_code(&refused)), (403, "NOT_A_MEMBER"));
    // A match room is left by ending the match.
    let (code, refused) = call(
        &server,
        "POST",
        &format!("/v1/rooms/{room}/leave"),
        &ann,
        None,
    )
    .await;
    assert_eq!(
        (code, rest_code(&refused)),
        (409, "MATCH_ROOM"),
        "{refused}"
    );

    // A notification each, naming the partner and the room.
    let (code, notes) = call(&server, "GET", "/v1/notifications", &ann, None).await;
    assert_eq!(code, 200, "{notes}");
    let note = &notes["notifications"][0];
    assert_eq!(note["kind"], "match", "{notes}");
    assert_eq!(
        (note["roomId"].as_str(), note["actorId"].as_str()),
        (Some(room.as_str()), Some(bob_id.as_str()))
    );
    server.set_token(&bob);
    let data = server
        .gql(
            "{ notifications { notifications { kind roomId actor { id } } } }",
            json!({}),
        )
        .await;
    let note = &data["notifications"]["notifications"][0];
    assert_eq!(note["kind"], "MATCH", "{data}");
    assert_eq!(
        (note["roomId"].as_str(), note["actor"]["id"].as_str()),
        (Some(room.as_str()), Some(ann_id.as_str()))
    );

    // Both see the match in their status.
    let ann_status = status(&server, &ann).await;
    assert_eq!(ann_status["match"]["roomId"], room);
    assert_eq!(ann_status["match"]["partner"]["username"], "bob");
    server.set_token(&bob);
    let data = server
        .gql(
            "{ matchingStatus { waiting match { roomId partner { username } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["matchingStatus"]["match"]["partner"]["username"],
        "ann"
    );

    // The match opened its room in one event (no `chat.*` events of its own), and the skip
    // that ends it is one event too: Bob hears it on the room's topic (whose follow it ends)
    // and on his own, and neither reads the room any more.
    let log = log_events(&server).await;
    let types: Vec<&str> = log.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(!types.contains(&"chat.room.created"), "{types:?}");
    assert!(!types.contains(&"chat.member.joined"), "{types:?}");
    subscribe(&mut chat, "notifications").await;
    let (code, skipped) = skip(&server, &ann, Some(false)).await;
    assert_eq!(code, 200, "{skipped}");
    let mut topics = Vec::new();
    for _ in 0..2 {
        let event = next_of(&mut chat, "event").await;
        assert_eq!(event["event"]["type"], "matching.skipped", "{event}");
        assert_eq!(event["event"]["payload"]["membersLeft"], true, "{event}");
        let until = &event["event"]["payload"]["until"];
        assert_eq!(until, "1970-01-01T00:00:00.000Z", "{event}");
        topics.push(event["topic"].as_str().unwrap().to_owned());
    }
    topics.sort();
    assert_eq!(topics, [format!("chat:{room}"), "notifications".to_owned()]);
    // Read again from the log (a resume), Bob's own events are shown the same way: the match
    // and the skip, without the waits or the end of the pair's exclusion.
    let mut again = connect(&server, Some(&bob)).await;
    next_of(&mut again, "welcome").await;
    send(
        &mut again,
        json!({ "type": "subscribe", "topic": "notifications", "fromSeq": 0 }),
    )
    .await;
    let replayed = next_of(&mut again, "event").await;
    assert_eq!(replayed["event"]["type"], "matching.matched", "{replayed}");
    assert_eq!(replayed["event"]["payload"]["waitAMs"], 0, "{replayed}");
    let replayed = next_of(&mut again, "event").await;
    assert_eq!(replayed["event"]["type"], "matching.skipped", "{replayed}");
    assert_eq!(
        replayed["event"]["payload"]["until"],
        "1970-01-01T00:00:00.000Z"
    );
    for token in [&ann, &bob] {
        let (code, refused) = call(&server, "GET", &format!("/v1/rooms/{room}"), token, None).await;
        assert_eq!((code, rest_code(&refused)), (403, "NOT_A_MEMBER"));
    }
    let types: Vec<String> = log_events(&server)
        .await
        .iter()
        .filter_map(|e| e["type"].as_str().map(str::to_owned))
        .collect();
    assert!(!types.iter().any(|t| t == "chat.member.left"), "{types:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_typed_and_joins_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_matching_budget(&dir, 4);
    let (ann, ann_id) = user(&server, "ann").await;
    let (bob, bob_id) = user(&server, "bob").await;

    // Refused input spends nothing of the budget; refusals by the rules do (a skip, a join).
    for (tags, language) in [
        (json!(["two words"]), json!(null)),
        (json!(["x".repeat(33)]), json!(null)),
        (
            json!((0..11).map(|i| format!("t{i}")).collect::<Vec<_>>()),
            json!(null),
        ),
        (json!([]), json!("en_US")),
        (json!("music"), json!(null)),
    ] {
        let body = json!({ "tags": tags, "language": language });
        let (code, refused) = call(&server, "POST", "/v1/matching/queue", &ann, Some(body)).await;
        assert_eq!(
            (code, rest_code(&refused)),
            (422, "INVALID_ARGUMENT"),
            "{refused}"
        );
    }
    let (code, refused) = leave(&server, &ann).await;
    assert_eq!((code, rest_code(&refused)), (409, "NOT_QUEUED"));
    let (code, refused) = skip(&server, &ann, None).await;
    assert_eq!((code, rest_code(&refused)), (409, "NOT_MATCHED"));
    let (code, _) = join(&server, &ann, &[], None).await;
    assert_eq!(code, 201);
    let (code, refused) = join(&server, &ann, &[], None).await;
    assert_eq!((code, rest_code(&refused)), (409, "ALREADY_QUEUED"));
    let (code, _) = leave(&server, &ann).await;
    assert_eq!(code, 200);
    // Ann's fourth write of the kind within the minute is her budget's last.
    let (code, _) = join(&server, &ann, &[], None).await;
    assert_eq!(code, 201);
    let (code, _) = join(&server, &bob, &[], None).await;
    assert_eq!(code, 201, "bob's own budget");
    let (code, refused) = join(&server, &bob, &[], None).await;
    assert_eq!(
        (code, rest_code(&refused)),
        (409, "ALREADY_MATCHED"),
        "{refused}"
    );
    let response = server
        .client
        .post(server.url("/v1/matching/queue"))
        .bearer_auth(&ann)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(common::header(&response, "retry-after").is_some());
    let body: Value = response.json().await.unwrap();
    assert_eq!(rest_code(&body), "RATE_LIMITED");

    // Blocks: yourself, nobody, twice, and taking back what is not there.
    let path = format!("/v1/users/{ann_id}/block");
    let (code, refused) = call(&server, "POST", &path, &ann, None).await;
    assert_eq!(
        (code, rest_code(&refused)),
        (422, "INVALID_ARGUMENT"),
        "{refused}"
    );
    let nobody = format!("/v1/users/{}/block", uuid::Uuid::now_v7());
    let (code, refused) = call(&server, "POST", &nobody, &ann, None).await;
    assert_eq!((code, rest_code(&refused)), (404, "USER_NOT_FOUND"));
    let (code, refused) = call(&server, "POST", "/v1/users/not-an-id/block", &ann, None).await;
    assert_eq!((code, rest_code(&refused)), (422, "INVALID_ARGUMENT"));
    let (code, refused) = call(
        &server,
        "DELETE",
        &format!("/v1/users/{bob_id}/block"),
        &ann,
        None,
    )
    .await;
    assert_eq!((code, rest_code(&refused)), (409, "NOT_BLOCKED"));
    // GraphQL says the same codes in `extensions.code`.
    server.set_token(&ann);
    let (_, body) = server
        .gql_status(
            "mutation { joinMatching(tags: [\"a b\"]) { seq } }",
            json!({}),
        )
        .await;
    assert_eq!(common::code(&body), "INVALID_ARGUMENT");
    let (_, body) = server
        .gql_status("mutation { leaveMatching }", json!({}))
        .await;
    assert_eq!(common::code(&body), "NOT_QUEUED");
    // Without a token: 401.
    let response = server
        .client
        .get(server.url("/v1/matching"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // An unknown topic names the known ones.
    let mut socket = connect(&server, Some(&ann)).await;
    next_of(&mut socket, "welcome").await;
    send(
        &mut socket,
        json!({ "type": "subscribe", "topic": "matchmaking" }),
    )
    .await;
    let error = next_of(&mut socket, "error").await;
    assert_eq!(error["code"], "UNKNOWN_TOPIC");
    assert!(error["message"].as_str().unwrap().contains("matching"));
}

/// Frames off `socket` until one of each of `kinds` came (the first of each; others skipped):
/// an answer and a topic's frame travel apart, in either order.
async fn frames_of(socket: &mut Socket, kinds: &[&str]) -> HashMap<String, Value> {
    let mut seen = HashMap::new();
    while seen.len() < kinds.len() {
        let frame = common::sockets::next(socket).await;
        let kind = frame["type"].as_str().unwrap_or_default().to_owned();
        if kinds.contains(&kind.as_str()) {
            seen.entry(kind).or_insert(frame);
        }
    }
    seen
}

/// The `error` frame answering the frame `reference` named.
async fn refusal(socket: &mut Socket, reference: &str) -> Value {
    let error = next_of(socket, "error").await;
    assert_eq!(error["ref"], reference, "{error}");
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_skips_and_leaves_over_the_websocket_are_acknowledged_or_refused_by_ref() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_matching_budget(&dir, 6);
    let (ann, ann_id) = user(&server, "ann").await;
    let (bob, bob_id) = user(&server, "bob").await;
    let mut ann_ws = matching_socket(&server, &ann).await;
    let mut bob_ws = matching_socket(&server, &bob).await;
    // Each user's other connection: it hears what the first one's answers say.
    let mut ann_watch = matching_socket(&server, &ann).await;
    let mut bob_watch = matching_socket(&server, &bob).await;

    // Ann waits: her ack names the ticket the `queued` frame of her other connection names.
    send(
        &mut ann_ws,
        json!({ "type": "join", "ref": "a1", "tags": ["Go"], "language": "en" }),
    )
    .await;
    let ack = next_of(&mut ann_ws, "matchingAck").await;
    assert_eq!(ack["ref"], "a1", "{ack}");
    assert_eq!(ack["matched"], Value::Null, "{ack}");
    assert!(ack["seq"].as_u64().unwrap() > 0);
    let queued = next_of(&mut ann_watch, "queued").await;
    assert_eq!(queued["ticketId"], ack["ticketId"]);
    assert_eq!(queued["tags"], json!(["go"]));

    // Bob's join matches them at once: his ack says with whom (with Ann's profile), Ann's
    // topic and Bob's other connection say so too.
    send(
        &mut bob_ws,
        json!({ "type": "join", "ref": "b1", "tags": ["go"] }),
    )
    .await;
    let ack = next_of(&mut bob_ws, "matchingAck").await;
    assert_eq!(ack["ref"], "b1", "{ack}");
    assert_eq!(ack["matched"]["partnerId"], ann_id, "{ack}");
    assert_eq!(ack["matched"]["partner"]["id"], ann_id, "{ack}");
    assert_eq!(ack["matched"]["partner"]["username"], "ann", "{ack}");
    let room = ack["matched"]["roomId"].as_str().unwrap().to_owned();
    let matched = next_of(&mut ann_ws, "matched").await;
    assert_eq!(matched["roomId"], room);
    assert_eq!(matched["partner"]["id"], bob_id);
    assert_eq!(matched["seq"], ack["matched"]["seq"]);
    let told = frames_of(&mut bob_watch, &["queued", "matched"]).await;
    assert_eq!(told["queued"]["ticketId"], ack["ticketId"]);
    assert_eq!(told["matched"]["roomId"], room);
    assert_eq!(told["matched"]["partner"]["id"], ann_id);
    assert_eq!(status(&server, &bob).await["match"]["roomId"], room);

    // Refusals name the frame they answer; bad input spends no budget, the rest does.
    send(&mut bob_ws, json!({ "type": "join", "ref": "b2" })).await;
    assert_eq!(refusal(&mut bob_ws, "b2").await["code"], "ALREADY_MATCHED");
    let bad = json!({ "type": "join", "ref": "bad", "tags": ["two words"] });
    send(&mut bob_ws, bad).await;
    assert_eq!(
        refusal(&mut bob_ws, "bad").await["code"],
        "INVALID_ARGUMENT"
    );
    send(&mut bob_ws, json!({ "type": "join", "ref": 7 })).await;
    assert_eq!(next_of(&mut bob_ws, "error").await["code"], "BAD_FRAME");

    // Bob ends the match without queueing again; Ann hears it, and so does Bob's other
    // connection.
    let skip = json!({ "type": "skip", "ref": "b3", "requeue": false });
    send(&mut bob_ws, skip).await;
    let ack = next_of(&mut bob_ws, "matchingAck").await;
    assert_eq!(ack["ref"], "b3", "{ack}");
    assert!(ack.get("ticketId").is_none(), "no ticket opened: {ack}");
    assert_eq!(ack["matched"], Value::Null);
    let skipped = next_of(&mut ann_ws, "skipped").await;
    assert_eq!(
        (skipped["roomId"].as_str(), &skipped["byMe"]),
        (Some(room.as_str()), &json!(false))
    );
    let skipped = next_of(&mut bob_watch, "skipped").await;
    assert_eq!(skipped["byMe"], true, "{skipped}");
    send(&mut bob_ws, json!({ "type": "skip", "ref": "b4" })).await;
    assert_eq!(refusal(&mut bob_ws, "b4").await["code"], "NOT_MATCHED");
    send(&mut ann_ws, json!({ "type": "leave", "ref": "a2" })).await;
    assert_eq!(refusal(&mut ann_ws, "a2").await["code"], "NOT_QUEUED");

    // Bob queues again (his fifth join or skip of the minute) and leaves (leaving spends
    // nothing).
    send(&mut bob_ws, json!({ "type": "join", "ref": "b5" })).await;
    let ack = next_of(&mut bob_ws, "matchingAck").await;
    assert_eq!(
        (ack["ref"].as_str(), &ack["matched"]),
        (Some("b5"), &Value::Null)
    );
    assert_eq!(
        status(&server, &bob).await["queued"]["ticketId"],
        ack["ticketId"]
    );
    send(&mut bob_ws, json!({ "type": "leave", "ref": "b6" })).await;
    let left = next_of(&mut bob_ws, "matchingAck").await;
    assert_eq!(left["ref"], "b6", "{left}");
    assert!(left["seq"].as_u64() > ack["seq"].as_u64(), "{left}");
    assert!(left.get("ticketId").is_none(), "{left}");
    let told = frames_of(&mut bob_watch, &["queued", "dequeued"]).await;
    assert_eq!(told["queued"]["ticketId"], ack["ticketId"]);
    assert_eq!(told["dequeued"]["reason"], "left");

    // His other connection joins (the sixth and last of the minute): its ticket is the first
    // thing the `matching` topic of the first connection said, whose own commands' events
    // (the tickets, the match its join made, the skip, the leave) its answers told instead.
    send(&mut bob_watch, json!({ "type": "join", "ref": "w1" })).await;
    let ack = next_of(&mut bob_watch, "matchingAck").await;
    assert_eq!(ack["ref"], "w1", "{ack}");
    let topic_frame = loop {
        let frame = common::sockets::next(&mut bob_ws).await;
        if frame["topic"] == "matching" {
            break frame;
        }
    };
    assert_eq!(
        (&topic_frame["type"], &topic_frame["ticketId"]),
        (&json!("queued"), &ack["ticketId"]),
        "{topic_frame}"
    );
    send(&mut bob_ws, json!({ "type": "leave", "ref": "b7" })).await;
    assert_eq!(next_of(&mut bob_ws, "matchingAck").await["ref"], "b7");
    send(&mut bob_ws, json!({ "type": "join", "ref": "b8" })).await;
    let error = refusal(&mut bob_ws, "b8").await;
    assert_eq!(error["code"], "RATE_LIMITED", "{error}");
    assert!(error["retryAfterMs"].as_u64().unwrap() > 0, "{error}");
    assert_eq!(status(&server, &bob).await["queued"], Value::Null);

    // A connection that never signed in is refused.
    let mut stranger = connect(&server, None).await;
    send(&mut stranger, json!({ "type": "join", "ref": "s1" })).await;
    assert_eq!(
        next_of(&mut stranger, "error").await["code"],
        "UNAUTHENTICATED"
    );

    // The ten commands that reached the log writer (a1, b1, b2, b3, b4, a2, b5, b6, w1, b7; not
    // the malformed ones nor b8, refused before it) went through each stage of the
    // command-time metric once, by the time their answers were written.
    let count = |stage| format!("girok_ws_command_seconds_count{{stage=\"{stage}\"}}");
    assert_eq!(server.metric(&count("queued")).await, 10);
    assert_eq!(server.metric(&count("durable")).await, 10);
    assert_eq!(server.metric(&count("answered")).await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skips_keep_a_pair_apart_and_blocks_stop_matches_and_direct_messages() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(&dir, &[]);
    let (ann, _) = user(&server, "ann").await;
    let (bob, bob_id) = user(&server, "bob").await;
    let (cat, cat_id) = user(&server, "cat").await;
    let mut bob_ws = matching_socket(&server, &bob).await;
    join(&server, &ann, &[], None).await;
    let (_, joined) = join(&server, &bob, &[], None).await;
    let room = joined["status"]["match"]["roomId"]
        .as_str()
        .unwrap()
        .to_owned();
    next_of(&mut bob_ws, "matched").await;
    let messages = format!("/v1/rooms/{room}/messages");
    for token in [&ann, &bob] {
        let body = json!({ "body": "hello" });
        let (code, sent) = call(&server, "POST", &messages, token, Some(body)).await;
        assert_eq!(code, 201, "{sent}");
    }

    // Ann skips: both leave the room, which closes; Ann waits again.
    let (code, skipped) = skip(&server, &ann, None).await;
    assert_eq!(code, 200, "{skipped}");
    assert_eq!(skipped["status"]["match"], Value::Null);
    assert!(
        skipped["status"]["queued"].is_object(),
        "re-queued: {skipped}"
    );
    let frame = next_of(&mut bob_ws, "skipped").await;
    assert_eq!(
        (frame["roomId"].as_str(), frame["byMe"].as_bool()),
        (Some(room.as_str()), Some(false))
    );
    for token in [&ann, &bob] {
        let (code, refused) = call(&server, "GET", &messages, token, None).await;
        assert_eq!(
            (code, rest_code(&refused)),
            (403, "NOT_A_MEMBER"),
            "the match room closed"
        );
        // Nor do they write there, though both did a moment ago.
        let body = json!({ "body": "still there?" });
        let (code, refused) = call(&server, "POST", &messages, token, Some(body)).await;
        assert_eq!(
            (code, rest_code(&refused)),
            (403, "NOT_A_MEMBER"),
            "{refused}"
        );
    }
    // Bob joins: Ann waits, but not for him.
    let (_, joined) = join(&server, &bob, &[], None).await;
    assert_eq!(joined["status"]["match"], Value::Null, "{joined}");
    assert_eq!(joined["status"]["waiting"], 2);
    // Cat joins: Ann waited longest, so Cat meets her.
    let (_, joined) = join(&server, &cat, &[], None).await;
    assert_eq!(
        joined["status"]["match"]["partner"]["username"], "ann",
        "{joined}"
    );
    // Cat skips without waiting again; Bob still waits (for someone else).
    let (code, skipped) = skip(&server, &cat, Some(false)).await;
    assert_eq!(code, 200);
    assert_eq!(skipped["status"]["queued"], Value::Null);

    // Cat blocks Bob: they are never matched, and no direct message passes either way.
    let (code, dm) = call(
        &server,
        "POST",
        "/v1/rooms/direct",
        &bob,
        Some(json!({ "userId": cat_id })),
    )
    .await;
    assert!(code == 200 || code == 201, "{dm}");
    let dm = dm["id"].as_str().unwrap().to_owned();
    let (code, blocked) = call(
        &server,
        "POST",
        &format!("/v1/users/{bob_id}/block"),
        &cat,
        None,
    )
    .await;
    assert_eq!(
        (code, blocked["blocked"].as_bool()),
        (200, Some(true)),
        "{blocked}"
    );
    let (code, refused) = call(
        &server,
        "POST",
        &format!("/v1/users/{bob_id}/block"),
        &cat,
        None,
    )
    .await;
    assert_eq!((code, rest_code(&refused)), (409, "ALREADY_BLOCKED"));
    let (_, list) = call(&server, "GET", "/v1/blocks", &cat, None).await;
    assert_eq!(list["users"][0]["username"], "bob");
    for (from, to_id) in [(&bob, &cat_id), (&cat, &bob_id)] {
        let (code, refused) = call(
            &server,
            "POST",
            "/v1/rooms/direct",
            from,
            Some(json!({ "userId": to_id })),
        )
        .await;
        assert_eq!((code, rest_code(&refused)), (403, "BLOCKED"), "{refused}");
    }
    for token in [&bob, &cat] {
        let (code, refused) = post_message(&server, token, &dm, "hello?").await;
        assert_eq!((code, rest_code(&refused)), (403, "BLOCKED"), "{refused}");
    }
    let (_, joined) = join(&server, &cat, &[], None).await;
    assert_eq!(
        joined["status"]["match"],
        Value::Null,
        "cat never meets bob: {joined}"
    );
    // Unblocked, the two can write again, and the matcher pairs the two who wait at once.
    let (code, _) = call(
        &server,
        "DELETE",
        &format!("/v1/users/{bob_id}/block"),
        &cat,
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = post_message(&server, &cat, &dm, "ok").await;
    assert_eq!(code, 201);
    let now = status_until(&server, &cat, |s| s["match"].is_object()).await;
    assert_eq!(now["match"]["partner"]["username"], "bob", "{now}");
    // Blocking your partner ends the match.
    let (code, _) = call(
        &server,
        "POST",
        &format!("/v1/users/{cat_id}/block"),
        &bob,
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(status(&server, &bob).await["match"], Value::Null);
    assert_eq!(status(&server, &cat).await["match"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_are_honoured_while_a_fit_waits_and_relaxed_with_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(&dir, &[("GIROK__MATCHING__RELAX_AFTER_SECS", "2")]);
    let (ann, _) = user(&server, "ann").await;
    let (bob, _) = user(&server, "bob").await;
    let (cat, _) = user(&server, "cat").await;
    let (dan, _) = user(&server, "dan").await;
    let mut bob_ws = matching_socket(&server, &bob).await;
    join(&server, &ann, &["chess"], Some("en")).await;
    let (_, joined) = join(&server, &bob, &["music"], Some("ko")).await;
    assert_eq!(joined["status"]["match"], Value::Null, "nothing in common");
    // Cat fits Ann (tag and language), though Bob waits too.
    let (_, joined) = join(&server, &cat, &["chess", "go"], Some("en")).await;
    assert_eq!(
        joined["status"]["match"]["partner"]["username"], "ann",
        "{joined}"
    );
    // Dan speaks Bob's language with no shared tag: not before half of relax_after.
    let started = Instant::now();
    let mut dan_ws = matching_socket(&server, &dan).await;
    let (_, joined) = join(&server, &dan, &["go"], Some("ko")).await;
    assert_eq!(joined["status"]["match"], Value::Null, "{joined}");
    let matched = next_of(&mut dan_ws, "matched").await;
    assert_eq!(matched["partner"]["username"], "bob");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The pair relaxed once Bob, who waited longer, had waited half of relax_after (1 s).
    let matched = next_of(&mut bob_ws, "matched").await;
    assert_eq!(matched["partner"]["username"], "dan");
    assert!(matched["waitedMs"].as_i64().unwrap() >= 1_000, "{matched}");
    let (eve, _) = user(&server, "eve").await;
    let (fay, _) = user(&server, "fay").await;
    let mut fay_ws = matching_socket(&server, &fay).await;
    join(&server, &eve, &["chess"], Some("en")).await;
    let (_, joined) = join(&server, &fay, &["music"], Some("ko")).await;
    assert_eq!(joined["status"]["match"], Value::Null);
    // Different languages: only once the longer wait passes relax_after (2 s).
    let matched = next_of(&mut fay_ws, "matched").await;
    assert_eq!(matched["partner"]["username"], "eve");
    assert!(matched["waitedMs"].as_i64().unwrap() >= 1_900, "{matched}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_pair_meets_again_once_its_exclusion_ends() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough for a kill -9 and a restart on a busy machine.
    let settings = [("GIROK__MATCHING__SKIP_EXCLUSION_SECS", "6")];
    let server = start_in(&dir, &settings);
    let (ann, _) = user(&server, "ann").await;
    let (bob, _) = user(&server, "bob").await;
    join(&server, &ann, &[], None).await;
    join(&server, &bob, &[], None).await;
    assert_eq!(server.metric("girok_matching_matched_users ").await, 2);
    let skipped_at = Instant::now();
    let (code, _) = skip(&server, &ann, None).await;
    assert_eq!(code, 200);
    assert_eq!(server.metric("girok_matching_pairs_apart ").await, 1);
    assert_eq!(server.metric("girok_matching_matched_users ").await, 0);
    // The matcher keeps the exclusion in memory; a restart loads it from the write model.
    server.kill9();
    let server = start_in(&dir, &settings);
    let (_, joined) = join(&server, &bob, &[], None).await;
    assert_eq!(joined["matched"], Value::Null, "kept apart: {joined}");
    assert_eq!(server.metric("girok_matching_pairs_apart ").await, 1);
    // Both wait; once the exclusion is over, the matcher pairs them without anyone joining.
    let now = status_until(&server, &bob, |s| s["match"].is_object()).await;
    assert_eq!(now["match"]["partner"]["username"], "ann", "{now}");
    assert!(
        skipped_at.elapsed() >= Duration::from_millis(5800),
        "not before the exclusion ended"
    );
    assert_eq!(server.metric("girok_matching_pairs_apart ").await, 0);
    assert_eq!(server.metric("girok_matching_matched_users ").await, 2);
}

/// The tickets' and matches' rows are written behind, at checkpoints: what was acknowledged
/// since the last one survives a kill -9 (a load applies the log after it), statuses read
/// while the rows are behind show it, a match keeps its preferences for the requeue after a
/// skip, and a stopped server leaves the rows current (the write model equal to a rebuild's,
/// with an ended skip exclusion's rows removed by a later skip in both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_behind_survive_a_kill_9_and_a_stop_leaves_them_current() {
    let dir = tempfile::tempdir().unwrap();
    let settings = [("GIROK__MATCHING__SKIP_EXCLUSION_SECS", "3")];
    let server = start_in(&dir, &settings);
    let (ann, _) = user(&server, "ann").await;
    let (bob, _) = user(&server, "bob").await;
    let (cat, _) = user(&server, "cat").await;
    assert_eq!(join(&server, &ann, &["jazz"], Some("en")).await.0, 201);
    let (_, matched) = join(&server, &bob, &["jazz"], Some("en")).await;
    assert!(matched["status"]["match"].is_object(), "{matched}");
    assert_eq!(join(&server, &cat, &[], None).await.0, 201);
    // Read at once (the rows are most likely still behind) and killed at once.
    let ann_before = status(&server, &ann).await;
    assert_eq!(
        ann_before["match"]["partner"]["username"], "bob",
        "{ann_before}"
    );
    let cat_before = status(&server, &cat).await;
    assert!(cat_before["queued"].is_object(), "{cat_before}");
    server.kill9();

    let server = start_in(&dir, &settings);
    let ann_after = status(&server, &ann).await;
    assert_eq!(ann_after["match"], ann_before["match"], "{ann_after}");
    assert_eq!(
        status(&server, &bob).await["match"]["partner"]["username"],
        "ann"
    );
    // They are still in their room (its members are the match's, from the rows and the log
    // after them) and chat in it; cat is not.
    let room = ann_after["match"]["roomId"].as_str().unwrap().to_owned();
    let messages = format!("/v1/rooms/{room}/messages");
    let body = json!({ "body": "still here?" });
    let (code, sent) = call(&server, "POST", &messages, &ann, Some(body)).await;
    assert_eq!(code, 201, "{sent}");
    let path = format!("{messages}?after={}", sent["seq"]);
    let (code, page) = call(&server, "GET", &path, &bob, None).await;
    assert_eq!(code, 200, "{page}");
    assert_eq!(page["messages"][0]["body"], "still here?", "{page}");
    let (code, refused) = call(&server, "GET", &path, &cat, None).await;
    assert_eq!((code, rest_code(&refused)), (403, "NOT_A_MEMBER"));
    let cat_after = status(&server, &cat).await;
    assert_eq!(cat_after["queued"], cat_before["queued"], "{cat_after}");
    assert_eq!(cat_after["waiting"], 1, "{cat_after}");
    // cat leaves; ann skips and waits again with the match's preferences, apart from bob.
    let (code, _) = leave(&server, &cat).await;
    assert_eq!(code, 200);
    let (code, body) = skip(&server, &ann, Some(true)).await;
    assert_eq!(code, 200, "{body}");
    let skipped_at = std::time::Instant::now();
    // The skip took both out of the room.
    for token in [&ann, &bob] {
        let (code, refused) = call(&server, "GET", &path, token, None).await;
        assert_eq!((code, rest_code(&refused)), (403, "NOT_A_MEMBER"));
        let body = json!({ "body": "hello?" });
        let (code, refused) = call(&server, "POST", &messages, token, Some(body)).await;
        assert_eq!((code, rest_code(&refused)), (403, "NOT_A_MEMBER"));
    }
    let requeued = status(&server, &ann).await;
    assert_eq!(requeued["match"], Value::Null, "{requeued}");
    assert_eq!(requeued["queued"]["tags"], json!(["jazz"]), "{requeued}");
    assert_eq!(requeued["queued"]["language"], "en", "{requeued}");
    assert_eq!(status(&server, &bob).await["match"], Value::Null);
    // Bob waits too, kept apart from Ann; killed at once, the skip (most likely only in the
    // log yet) still keeps them apart after the restart: Bob's join again looks for a partner
    // at once, and Ann is still not one.
    assert_eq!(join(&server, &bob, &["jazz"], Some("en")).await.0, 201);
    server.kill9();
    let server = start_in(&dir, &settings);
    let (code, _) = leave(&server, &bob).await;
    assert_eq!(code, 200);
    let (code, again) = join(&server, &bob, &["jazz"], Some("en")).await;
    assert_eq!(code, 201, "{again}");
    for who in [&ann, &bob] {
        let after = status(&server, who).await;
        assert!(after["queued"].is_object(), "{after}");
        assert_eq!(after["match"], Value::Null, "{after}");
    }
    let (code, _) = leave(&server, &bob).await;
    assert_eq!(code, 200);
    // Once that exclusion ended they meet again, and the next skip removes the ended
    // exclusion's rows (as a rebuild removes them).
    tokio::time::sleep(Duration::from_millis(3100).saturating_sub(skipped_at.elapsed())).await;
    let (_, again) = join(&server, &bob, &["jazz"], Some("en")).await;
    assert_eq!(
        again["status"]["match"]["partner"]["username"], "ann",
        "{again}"
    );
    let (code, body) = skip(&server, &bob, Some(false)).await;
    assert_eq!(code, 200, "{body}");

    // A stop writes what is behind: the write model is what a rebuild from the log makes.
    assert!(server.terminate().success());
    let (code, stdout, stderr) = common::girok(&[
        "replay",
        "--json",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        report["write_model_digest_before"], report["write_model_digest_after"],
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_expire_and_close_with_their_last_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(&dir, &[("GIROK__MATCHING__TICKET_TTL_SECS", "1")]);
    let (ann, _) = user(&server, "ann").await;
    let (bob, _) = user(&server, "bob").await;
    let mut ann_ws = matching_socket(&server, &ann).await;
    join(&server, &ann, &[], None).await;
    let expired = next_of(&mut ann_ws, "expired").await;
    assert!(expired["ticketSeq"].as_u64().unwrap() > 0);
    assert_eq!(status(&server, &ann).await["queued"], Value::Null);

    let closed = closed_tickets_until(&server, 1).await;
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["payload"]["reason"], "expired");
    assert_eq!(closed[0]["actor"], Value::Null, "girok's own decision");
    // A ticket without any live connection waits on (until it expires).
    join(&server, &bob, &[], None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(status(&server, &bob).await["queued"].is_object());

    // With the default time to live: Bob waits on a GraphQL socket and a WebSocket; closing
    // one is not enough, closing both closes his ticket.
    let server = Server::start(&dir.path().join("long"), &[]);
    let (bob, _) = user(&server, "bob").await;
    let gql = matching_subscription(&server, &bob).await;
    let ws = matching_socket(&server, &bob).await;
    // The GraphQL socket counts as a live connection from its `connection_ack` on; its
    // subscription's first frame is not waited for (graphql-transport-ws has no
    // "subscription active" answer, so a join right after subscribing may come before it).
    join(&server, &bob, &["late"], None).await;
    drop(ws);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        status(&server, &bob).await["queued"].is_object(),
        "one connection is left"
    );
    drop(gql);
    let now = status_until(&server, &bob, |s| s["queued"].is_null()).await;
    assert_eq!(now["waiting"], 0);
    // The log says why (the status shows the command as soon as it is decided; the log's
    // readers, once it is durable).
    let closed = closed_tickets_until(&server, 1).await;
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["payload"]["reason"], "disconnected");
}

/// The log's `matching.ticket.closed` events once there are at least `count` (10 s at most).
async fn closed_tickets_until(server: &Server, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let closed: Vec<Value> = log_events(server)
            .await
            .into_iter()
            .filter(|e| e["type"] == "matching.ticket.closed")
            .collect();
        if closed.len() >= count || Instant::now() >= deadline {
            return closed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every event of the log, through the operators' log API.
async fn log_events(server: &Server) -> Vec<Value> {
    let token = server.operator_token();
    let mut all = Vec::new();
    let mut from = 1;
    loop {
        let (code, page) = call(
            server,
            "GET",
            &format!("/v1/log/events?from={from}&limit=1000"),
            &token,
            None,
        )
        .await;
        assert_eq!(code, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            return all;
        }
        all.extend(events.iter().cloned());
        from = page["next"].as_u64().unwrap();
    }
}

/// What the log says of matching, checked event by event: a ticket opens only for a user
/// who neither waits nor is matched; a match pairs two distinct users whose tickets are open,
/// neither in a match, no block between them and no skip exclusion still running; a skip
/// ends a match both were in; a ticket closes once. Returns (who waits, who is in which room).
fn check_matching_log(events: &[Value]) -> (HashSet<String>, HashMap<String, String>) {
    let mut open: HashMap<String, u64> = HashMap::new();
    let mut matched: HashMap<String, String> = HashMap::new();
    // RFC 3339 times with milliseconds in UTC compare as text.
    let mut apart_until: HashMap<(String, String), String> = HashMap::new();
    let mut blocks: HashSet<(String, String)> = HashSet::new();
    let pair = |a: &str, b: &str| {
        if a < b {
            (a.to_owned(), b.to_owned())
        } else {
            (b.to_owned(), a.to_owned())
        }
    };
    let mut matches = 0;
    for event in events {
        let p = &event["payload"];
        let actor = event["actor"].as_str().unwrap_or("").to_owned();
        match event["type"].as_str().unwrap() {
            "matching.ticket.opened" => {
                assert!(!open.contains_key(&actor), "two open tickets: {event}");
                assert!(
                    !matched.contains_key(&actor),
                    "queued while matched: {event}"
                );
                open.insert(actor, event["seq"].as_u64().unwrap());
            }
            "matching.ticket.closed" => {
                let owner = p["userId"].as_str().unwrap();
                assert_eq!(
                    open.remove(owner),
                    p["ticketSeq"].as_u64(),
                    "closed a ticket not open: {event}"
                );
            }
            "matching.matched" => {
                matches += 1;
                let (a, b) = (p["userA"].as_str().unwrap(), p["userB"].as_str().unwrap());
                assert_ne!(a, b, "matched with themselves");
                // The match closes both tickets.
                assert_eq!(open.remove(a), p["ticketASeq"].as_u64(), "{event}");
                assert_eq!(open.remove(b), p["ticketBSeq"].as_u64(), "{event}");
                assert!(
                    !matched.contains_key(a) && !matched.contains_key(b),
                    "two matches: {event}"
                );
                assert!(
                    !blocks.contains(&(a.to_owned(), b.to_owned()))
                        && !blocks.contains(&(b.to_owned(), a.to_owned())),
                    "blocked pair matched: {event}"
                );
                if let Some(until) = apart_until.get(&pair(a, b)) {
                    assert!(
                        until.as_str() <= event["time"].as_str().unwrap(),
                        "skipped pair matched again: {event}"
                    );
                }
                let title = p["roomTitle"].as_str().unwrap_or_default();
                assert!(title.starts_with("Random match"), "opens its room: {event}");
                let room = p["roomId"].as_str().unwrap().to_owned();
                matched.insert(a.to_owned(), room.clone());
                matched.insert(b.to_owned(), room);
            }
            "matching.skipped" => {
                let partner = p["partner"].as_str().unwrap();
                let room = p["roomId"].as_str().unwrap();
                assert_eq!(p["membersLeft"], true, "both leave its room: {event}");
                assert_eq!(matched.remove(&actor).as_deref(), Some(room), "{event}");
                assert_eq!(matched.remove(partner).as_deref(), Some(room), "{event}");
                apart_until.insert(
                    pair(&actor, partner),
                    p["until"].as_str().unwrap().to_owned(),
                );
            }
            "user.blocked" => {
                assert!(blocks.insert((actor, p["userId"].as_str().unwrap().to_owned())));
            }
            "user.unblocked" => {
                assert!(blocks.remove(&(actor, p["userId"].as_str().unwrap().to_owned())));
            }
            _ => {}
        }
    }
    assert!(
        open.keys().all(|user| !matched.contains_key(user)),
        "a user both waits and is matched"
    );
    eprintln!(
        "log checked: {matches} matches, {} waiting, {} matched",
        open.len(),
        matched.len()
    );
    (open.into_keys().collect(), matched)
}

/// Users who join, leave, skip, block and unblock, connect and disconnect, at random, each on
/// its own task; `acked` gets what was acknowledged (`ticket:<id>` per join, `match:<room>` per
/// match a join or skip made at once, `seq:<n>` per write); returns how many operations ran.
async fn churn(
    server: Arc<Server>,
    users: Vec<(String, String)>,
    seed: u64,
    operations: usize,
    acked: Arc<std::sync::Mutex<Vec<String>>>,
) -> usize {
    let ids: Vec<String> = users.iter().map(|(_, id)| id.clone()).collect();
    let mut tasks = Vec::new();
    for (i, (token, _)) in users.into_iter().enumerate() {
        let server = server.clone();
        let ids = ids.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (i as u64 * 0x9e37_79b9));
            let tags = ["music", "chess", "go", "film"];
            let languages = [None, Some("en"), Some("ko")];
            let mut socket: Option<Socket> = None;
            let mut done = 0;
            for _ in 0..operations {
                let roll = rng.random_range(0..100);
                let (code, body) = if roll < 40 {
                    let picked: Vec<&str> = tags
                        .iter()
                        .copied()
                        .filter(|_| rng.random_bool(0.4))
                        .collect();
                    let language = languages[rng.random_range(0..languages.len())];
                    let answer = join(&server, &token, &picked, language).await;
                    if answer.0 == 201 {
                        let ticket = answer.1["ticketId"].as_str().unwrap();
                        acked.lock().unwrap().push(format!("ticket:{ticket}"));
                    }
                    answer
                } else if roll < 90 {
                    let other = &ids[rng.random_range(0..ids.len())];
                    let (method, path) = match roll {
                        40..55 => ("DELETE", "/v1/matching/queue".to_owned()),
                        55..75 => {
                            let requeue = rng.random_bool(0.5);
                            ("POST", format!("/v1/matching/skip?requeue={requeue}"))
                        }
                        75..82 => ("POST", format!("/v1/users/{other}/block")),
                        _ => ("DELETE", format!("/v1/users/{other}/block")),
                    };
                    call(&server, method, &path, &token, None).await
                } else {
                    // Connect, or drop the connection (which closes an open ticket).
                    match socket.take() {
                        Some(open) => drop(open),
                        None => socket = Some(connect(&server, Some(&token)).await),
                    }
                    (200, Value::Null)
                };
                assert!(code < 500, "server error {code}: {body}");
                if (200..300).contains(&code) {
                    let mut acked = acked.lock().unwrap();
                    if let Some(seq) = body["seq"].as_u64() {
                        acked.push(format!("seq:{seq}"));
                    }
                    if let Some(room) = body["matched"]["roomId"].as_str() {
                        acked.push(format!("match:{room}"));
                    }
                }
                if code >= 400 {
                    let expected = [
                        "ALREADY_QUEUED",
                        "NOT_QUEUED",
                        "ALREADY_MATCHED",
                        "NOT_MATCHED",
                        "ALREADY_BLOCKED",
                        "NOT_BLOCKED",
                        "INVALID_ARGUMENT",
                    ];
                    assert!(
                        expected.contains(&rest_code(&body)),
                        "unexpected refusal: {body}"
                    );
                }
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total
}

/// Everything acknowledged is in the log, once: each ticket (by id) and match (by room) in
/// exactly one event, each acknowledged write's seq among the events.
fn acknowledged_once(events: &[Value], acked: &[String]) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for event in events {
        let key = match event["type"].as_str().unwrap() {
            "matching.ticket.opened" => format!("ticket:{}", event["id"].as_str().unwrap()),
            "matching.matched" => format!("match:{}", event["payload"]["roomId"].as_str().unwrap()),
            _ => continue,
        };
        *counts.entry(key).or_default() += 1;
    }
    let head = events.last().map_or(0, |e| e["seq"].as_u64().unwrap());
    let (mut tickets, mut matches) = (0, 0);
    for change in acked {
        if let Some(seq) = change.strip_prefix("seq:") {
            assert!(
                seq.parse::<u64>().unwrap() <= head,
                "acknowledged {change} lost"
            );
            continue;
        }
        assert_eq!(counts.get(change), Some(&1), "acknowledged {change}");
        tickets += usize::from(change.starts_with("ticket:"));
        matches += usize::from(change.starts_with("match:"));
    }
    eprintln!("{tickets} acknowledged tickets and {matches} matches, each once in the log");
    assert!(tickets > 0 && matches > 0);
}

fn seed() -> u64 {
    std::env::var("GIROK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random())
}

async fn users(server: &Server, prefix: &str, count: usize) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for i in 0..count {
        all.push(user(server, &format!("{prefix}{i}")).await);
    }
    all
}

/// Every user's status agrees with what the log says.
async fn statuses_agree(server: &Server, users: &[(String, String)], events: &[Value]) {
    let mut events = events.to_vec();
    // girok's own waves (relaxed preferences, expiries) may write between the log's read and
    // the statuses': then read both again, until the log stood still while they were read.
    for _ in 0..20 {
        let (waiting, matched) = check_matching_log(&events);
        let mut disagreeing = Vec::new();
        for (token, id) in users {
            let now = status(server, token).await;
            if now["queued"].is_object() != waiting.contains(id)
                || now["match"]["roomId"].as_str() != matched.get(id).map(String::as_str)
            {
                disagreeing.push(format!("{id}: {now}"));
            }
        }
        let total = status(server, &users[0].0).await["waiting"].as_u64();
        let after = log_events(server).await;
        if after.len() == events.len() {
            assert_eq!(
                disagreeing,
                Vec::<String>::new(),
                "statuses against the log"
            );
            assert_eq!(total, Some(waiting.len() as u64));
            return;
        }
        events = after;
    }
    panic!("the log never stood still");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_churn_keeps_every_matching_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(start_in(
        &dir,
        &[
            ("GIROK__MATCHING__RELAX_AFTER_SECS", "1"),
            ("GIROK__MATCHING__TICKET_TTL_SECS", "3"),
        ],
    ));
    let people = users(&server, "churner", 24).await;
    for round in 0..2 {
        let seed = seed();
        eprintln!("round {round}: GIROK_TEST_SEED={seed}");
        let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let ran = churn(server.clone(), people.clone(), seed, 120, acked.clone()).await;
        assert_eq!(ran, 24 * 120);
        let events = log_events(&server).await;
        statuses_agree(&server, &people, &events).await;
        acknowledged_once(&events, &acked.lock().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_heavy_matching_keeps_every_acknowledged_change_and_replays_equal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("GIROK__MATCHING__RELAX_AFTER_SECS", "1")];
    let server = Arc::new(Server::start_with_env(&data, &[], &env));
    let pid = server.child.id();
    let people = users(&server, "crasher", 24).await;
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let load = tokio::spawn(churn(
        server.clone(),
        people.clone(),
        seed(),
        400,
        acked.clone(),
    ));
    // Kill while the load runs: once a good share of joins were acknowledged.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 400 {
        assert!(Instant::now() < deadline, "the load made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The load's tasks share the server's handle: kill the process by its pid.
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Requests fail once the server is gone; the tasks stop at their first failure.
    assert!(load.await.is_err(), "the load saw the server die");
    drop(server);
    let acked: Vec<String> = acked.lock().unwrap().clone();

    let server = Server::start_with_env(&data, &[], &env);
    let events = log_events(&server).await;
    acknowledged_once(&events, &acked);
    statuses_agree(&server, &people, &events).await;
    // Matching goes on after the restart: once those who waited through it leave, two
    // newcomers pair.
    for (token, _) in &people {
        leave(&server, token).await;
    }
    let (x, _) = user(&server, "newcomerx").await;
    let (y, _) = user(&server, "newcomery").await;
    join(&server, &x, &[], None).await;
    let (_, joined) = join(&server, &y, &[], None).await;
    assert!(joined["status"]["match"].is_object(), "{joined}");
    // The views (match notifications and the match rooms' histories among them) as live.
    let ready = common::views_caught_up(&server).await;
    assert!(server.terminate().success());
    let (code, stdout, stderr) =
        common::girok(&["replay", "--json", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        report["write_model_digest_before"], report["write_model_digest_after"],
        "{report}"
    );
    let replayed = common::assert_replay_equals(&ready, &report);
    assert!(
        replayed.iter().any(|name| name == "notifications"),
        "{report}"
    );
    assert!(report["write_model_events"].as_u64().unwrap() as usize >= events.len());
}

/// Joins, the match they make and a skip are answered once written to the OS without an
/// fsync (`matching.durability = buffered`, the default; the kill -9 test above shows that
/// none of them is lost to a crash of girok); a message in the match room is fsynced, which
/// makes the match before it durable too, and so is a block; the background sync covers the
/// skip within a second. With `matching.durability = sync`, every join is fsynced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_is_answered_without_an_fsync_unless_configured_and_chat_always_is() {
    const SYNCS: &str = "girok_log_syncs_total ";
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(&dir, &[]);
    let (ann, _) = user(&server, "ann").await;
    let (bob, bob_id) = user(&server, "bob").await;
    let before = server.metric(SYNCS).await;
    assert!(before > 0, "signing up is fsynced");
    assert_eq!(join(&server, &ann, &[], None).await.0, 201);
    let (code, joined) = join(&server, &bob, &[], None).await;
    assert_eq!(code, 201, "{joined}");
    let room = joined["matched"]["roomId"].as_str().unwrap().to_owned();
    assert_eq!(server.metric(SYNCS).await, before, "no join was fsynced");
    let (code, sent) = post_message(&server, &ann, &room, "hi").await;
    assert_eq!(code, 201, "{sent}");
    let after_message = server.metric(SYNCS).await;
    assert!(after_message > before, "the message was fsynced");
    let (code, skipped) = skip(&server, &ann, Some(false)).await;
    assert_eq!(code, 200, "{skipped}");
    assert_eq!(
        server.metric(SYNCS).await,
        after_message,
        "the skip was not"
    );
    // The background sync covers it within `storage.background_sync_ms` (1 s).
    let skip_seq = skipped["seq"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metric("girok_log_synced_seq ").await < skip_seq {
        assert!(
            Instant::now() < deadline,
            "the background sync never covered the skip"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.metric("girok_log_background_syncs_total ").await > 0);
    assert_eq!(
        server.metric(SYNCS).await,
        after_message,
        "no write's own fsync did"
    );
    let path = format!("/v1/users/{bob_id}/block");
    let (code, blocked) = call(&server, "POST", &path, &ann, None).await;
    assert_eq!(code, 200, "{blocked}");
    assert!(
        server.metric(SYNCS).await > after_message,
        "the block was fsynced"
    );

    let dir = tempfile::tempdir().unwrap();
    let server = start_in(&dir, &[("GIROK__MATCHING__DURABILITY", "sync")]);
    let (cat, _) = user(&server, "cat").await;
    let before = server.metric(SYNCS).await;
    assert_eq!(join(&server, &cat, &[], None).await.0, 201);
    assert!(server.metric(SYNCS).await > before, "the join was fsynced");
}
