//! REST for chat under /v1/rooms, through the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, call};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_and_messages_over_rest() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let bob = server.sign_in("bob").await;
    let bob_id = server.my_id().await;
    let alice = server.sign_in("alice").await;

    let (status, room) = call(
        &server,
        "POST",
        "/v1/rooms",
        &alice,
        Some(json!({ "title": "rest" })),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    let id = room["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &server,
        "GET",
        &format!("/v1/rooms/{id}/messages"),
        &bob,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("NOT_A_MEMBER"))
    );
    let (status, _) = call(
        &server,
        "POST",
        &format!("/v1/rooms/{id}/members"),
        &alice,
        Some(json!({ "userId": bob_id })),
    )
    .await;
    assert_eq!(status, 200);

    let (status, first) = call(
        &server,
        "POST",
        &format!("/v1/rooms/{id}/messages"),
        &alice,
        Some(json!({ "body": "hi", "clientId": "k1" })),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = call(
        &server,
        "POST",
        &format!("/v1/rooms/{id}/messages"),
        &alice,
        Some(json!({ "body": "hi", "clientId": "k1" })),
    )
    .await;
    assert_eq!(
        (status, again["seq"].clone(), again["duplicate"].clone()),
        (200, first["seq"].clone(), json!(true))
    );
    let message = first["id"].as_str().unwrap();
    let (status, reply) = call(
        &server,
        "POST",
        &format!("/v1/rooms/{id}/messages"),
        &bob,
        Some(json!({ "body": "hey", "replyTo": message })),
    )
    .await;
    assert_eq!(status, 201);
    let (status, edit) = call(
        &server,
        "PATCH",
        &format!("/v1/rooms/{id}/messages/{message}"),
        &alice,
        Some(json!({ "body": "hi all" })),
    )
    .await;
    assert_eq!(status, 200);

    // A message is only reachable under its own room's path.
    let (_, elsewhere) = call(
        &server,
        "POST",
        "/v1/rooms",
        &alice,
        Some(json!({ "title": "other" })),
    )
    .await;
    let other = elsewhere["id"].as_str().unwrap();
    let (status, body) = call(
        &server,
        "PATCH",
        &format!("/v1/rooms/{other}/messages/{message}"),
        &alice,
        Some(json!({ "body": "wrong room" })),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("MESSAGE_NOT_FOUND"))
    );
    let (status, _) = call(
        &server,
        "DELETE",
        &format!("/v1/rooms/{other}/messages/{message}"),
        &alice,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let after = edit["seq"].as_u64().unwrap();
    let (status, page) = call(
        &server,
        "GET",
        &format!("/v1/rooms/{id}/messages?first=1&after={after}"),
        &bob,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["messages"][0]["body"], "hey");
    assert_eq!(page["messages"][0]["replyToId"], message);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let cursor = page["pageInfo"]["endCursor"].as_u64().unwrap();
    let (_, older) = call(
        &server,
        "GET",
        &format!("/v1/rooms/{id}/messages?before={cursor}"),
        &bob,
        None,
    )
    .await;
    assert_eq!(older["messages"][0]["body"], "hi all");
    assert_eq!(older["messages"][0]["edited"], true);

    let reply_id = reply["id"].as_str().unwrap();
    let (status, body) = call(
        &server,
        "DELETE",
        &format!("/v1/rooms/{id}/messages/{reply_id}"),
        &alice,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("NOT_MESSAGE_AUTHOR"))
    );
    let (status, gone) = call(
        &server,
        "DELETE",
        &format!("/v1/rooms/{id}/messages/{reply_id}"),
        &bob,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, info) = call(
        &server,
        "GET",
        &format!("/v1/rooms/{id}?after={}", gone["seq"]),
        &bob,
        None,
    )
    .await;
    assert_eq!(info["messageCount"], 1);

    // Typed errors for bad input.
    let (status, body) = call(
        &server,
        "GET",
        &format!("/v1/rooms/{id}/messages?first=abc"),
        &bob,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    let (status, body) = call(
        &server,
        "POST",
        &format!("/v1/rooms/{id}/messages"),
        &bob,
        Some(json!({ "body": "" })),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("INVALID_ARGUMENT"))
    );
    let (status, body) = call(&server, "GET", "/v1/rooms/not-a-room", &bob, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("INVALID_ARGUMENT"))
    );
    let (status, body) = call(
        &server,
        "POST",
        "/v1/rooms",
        "",
        Some(json!({ "title": "x" })),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_rooms_members_read_receipts_and_room_lists_over_rest() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let bob = server.sign_in("bob").await;
    let bob_id = server.my_id().await;
    let carol = server.sign_in("carol").await;
    let carol_id = server.my_id().await;
    let alice = server.sign_in("alice").await;

    // A direct room: 201 the first time, 200 with the same room afterwards.
    let direct = Some(json!({ "userId": bob_id }));
    let (status, room) = call(&server, "POST", "/v1/rooms/direct", &alice, direct.clone()).await;
    assert_eq!(
        (status, room["kind"].as_str()),
        (201, Some("direct")),
        "{room}"
    );
    let (status, again) = call(&server, "POST", "/v1/rooms/direct", &alice, direct).await;
    assert_eq!((status, &again["id"]), (200, &room["id"]));
    let dm = room["id"].as_str().unwrap();

    // A group with Carol added at creation; the owner removes her.
    let (status, group) = call(
        &server,
        "POST",
        "/v1/rooms",
        &alice,
        Some(json!({ "title": "g", "memberIds": [carol_id] })),
    )
    .await;
    assert_eq!((status, group["memberCount"].as_u64()), (201, Some(2)));
    let gid = group["id"].as_str().unwrap();
    let path = format!("/v1/rooms/{gid}/members/{carol_id}");
    let (status, body) = call(&server, "DELETE", &path, &carol, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("NOT_ROOM_OWNER"))
    );
    let (status, _) = call(&server, "DELETE", &path, &alice, None).await;
    assert_eq!(status, 200);
    let (status, body) = call(&server, "GET", &format!("/v1/rooms/{gid}"), &carol, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("NOT_A_MEMBER"))
    );

    // Bob gets a message, sees it unread, marks the room read.
    let (_, sent) = call(
        &server,
        "POST",
        &format!("/v1/rooms/{dm}/messages"),
        &alice,
        Some(json!({ "body": "psst" })),
    )
    .await;
    let seq = sent["seq"].as_u64().unwrap();
    let (status, list) = call(
        &server,
        "GET",
        &format!("/v1/rooms?after={seq}"),
        &bob,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["rooms"][0]["id"], dm);
    assert_eq!(list["rooms"][0]["unreadCount"], 1);
    assert_eq!(list["rooms"][0]["lastMessage"]["body"], "psst");
    let (status, read) = call(
        &server,
        "POST",
        &format!("/v1/rooms/{dm}/read"),
        &bob,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{read}");
    let (_, members) = call(
        &server,
        "GET",
        &format!("/v1/rooms/{dm}/members?after={}", read["seq"]),
        &alice,
        None,
    )
    .await;
    let bobs = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["userId"] == bob_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(bobs["readUpToSeq"], read["readUpToSeq"]);
    let (_, list) = call(&server, "GET", "/v1/rooms?first=1", &bob, None).await;
    assert_eq!(list["rooms"][0]["unreadCount"], 0);
    let (status, body) = call(&server, "GET", "/v1/rooms?first=0", &bob, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("INVALID_ARGUMENT"))
    );

    // Typing: members only.
    let (status, _) = call(
        &server,
        "POST",
        &format!("/v1/rooms/{dm}/typing"),
        &bob,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &server,
        "POST",
        &format!("/v1/rooms/{dm}/typing"),
        &carol,
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (_, members) = call(
        &server,
        "GET",
        &format!("/v1/rooms/{dm}/members"),
        &alice,
        None,
    )
    .await;
    assert_eq!(members["typing"], json!([bob_id]));
}
