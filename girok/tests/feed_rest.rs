//! REST for the feed (posts, likes, comments, follows, timelines, notifications), through the
//! real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, call};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_likes_comments_follows_timelines_and_notifications_over_rest() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let bob = server.sign_in("bob").await;
    let bob_id = server.my_id().await;
    let ann = server.sign_in("ann").await;
    let ann_id = server.my_id().await;

    let m1 = common::ready_media(&server, &bob, 1).await.remove(0);
    let (status, post) = call(
        &server,
        "POST",
        "/v1/posts",
        &bob,
        Some(json!({ "content": "hello @ann", "mediaIds": [m1] })),
    )
    .await;
    assert_eq!(status, 201, "{post}");
    assert_eq!(post["authorId"], bob_id.as_str());
    assert_eq!(post["likes"], 0);
    let id = post["id"].as_str().unwrap().to_owned();
    for (body, status, code) in [
        (
            json!({ "content": "x".repeat(5001) }),
            422,
            "INVALID_ARGUMENT",
        ),
        (
            json!({ "content": "ok", "extra": 1 }),
            422,
            "INVALID_ARGUMENT",
        ),
        (json!({}), 422, "INVALID_ARGUMENT"),
    ] {
        let (got, answer) = call(&server, "POST", "/v1/posts", &bob, Some(body)).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code))
        );
    }

    // Like once, then a conflict; comment; follow.
    let (status, liked) = call(&server, "POST", &format!("/v1/posts/{id}/like"), &ann, None).await;
    assert_eq!(
        (
            status,
            liked["likes"].as_u64(),
            liked["likedByMe"].as_bool()
        ),
        (200, Some(1), Some(true))
    );
    let (status, again) = call(&server, "POST", &format!("/v1/posts/{id}/like"), &ann, None).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("ALREADY_LIKED"))
    );
    let (status, comment) = call(
        &server,
        "POST",
        &format!("/v1/posts/{id}/comments"),
        &ann,
        Some(json!({ "content": " hi bob " })),
    )
    .await;
    assert_eq!(status, 201, "{comment}");
    assert_eq!(comment["content"], "hi bob");
    let (status, followed) = call(
        &server,
        "POST",
        &format!("/v1/users/{bob_id}/follow"),
        &ann,
        None,
    )
    .await;
    assert_eq!(status, 200, "{followed}");
    let at = followed["seq"].as_u64().unwrap();

    // Timeline, profile, comments, followers.
    let (status, timeline) = call(
        &server,
        "GET",
        &format!("/v1/timeline?limit=10&after={at}"),
        &ann,
        None,
    )
    .await;
    assert_eq!(status, 200, "{timeline}");
    assert_eq!(timeline["posts"][0]["id"], id.as_str());
    assert_eq!(timeline["posts"][0]["commentCount"], 1);
    assert_eq!(timeline["pageInfo"]["hasNextPage"], false);
    let (_, profile) = call(
        &server,
        "GET",
        &format!("/v1/users/{bob_id}/posts"),
        &ann,
        None,
    )
    .await;
    assert_eq!(profile["posts"].as_array().unwrap().len(), 1);
    let (_, comments) = call(
        &server,
        "GET",
        &format!("/v1/posts/{id}/comments"),
        &bob,
        None,
    )
    .await;
    assert_eq!(comments["comments"][0]["authorId"], ann_id.as_str());
    let (_, followers) = call(
        &server,
        "GET",
        &format!("/v1/users/{bob_id}/followers"),
        &bob,
        None,
    )
    .await;
    assert_eq!(followers["totalCount"], 1);
    assert_eq!(followers["users"][0]["userId"], ann_id.as_str());
    let (status, bad) = call(&server, "GET", "/v1/timeline?cursor=nope", &ann, None).await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (422, Some("INVALID_ARGUMENT"))
    );

    // Notifications: bob has a like, a comment and a follower; ann a mention. Mark read.
    let (_, notes) = call(
        &server,
        "GET",
        &format!("/v1/notifications?after={at}"),
        &bob,
        None,
    )
    .await;
    let kinds: Vec<&str> = notes["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["follow", "comment", "like"]);
    assert_eq!(notes["unreadCount"], 3);
    let (_, notes) = call(&server, "GET", "/v1/notifications", &ann, None).await;
    assert_eq!(notes["notifications"][0]["kind"], "mention");
    let (status, read) = call(
        &server,
        "POST",
        "/v1/notifications/read",
        &bob,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{read}");
    let (_, notes) = call(
        &server,
        "GET",
        &format!("/v1/notifications?after={}", read["seq"]),
        &bob,
        None,
    )
    .await;
    assert_eq!(notes["unreadCount"], 0);

    // Edit, unlike, unfollow, delete; then the post is gone.
    let (status, edited) = call(
        &server,
        "PATCH",
        &format!("/v1/posts/{id}"),
        &bob,
        Some(json!({ "content": "edited" })),
    )
    .await;
    assert_eq!((status, edited["content"].as_str()), (200, Some("edited")));
    assert_eq!(edited["mediaIds"], json!([m1]), "omitted media are kept");
    let (_, cleared) = call(
        &server,
        "PATCH",
        &format!("/v1/posts/{id}"),
        &bob,
        Some(json!({ "content": "edited", "mediaIds": [] })),
    )
    .await;
    assert_eq!(cleared["mediaIds"], json!([]));
    assert!(edited["editedAt"].is_string());
    let (status, forbidden) = call(
        &server,
        "PATCH",
        &format!("/v1/posts/{id}"),
        &ann,
        Some(json!({ "content": "mine now" })),
    )
    .await;
    assert_eq!(
        (status, forbidden["error"]["code"].as_str()),
        (403, Some("NOT_POST_AUTHOR"))
    );
    let (_, unliked) = call(
        &server,
        "DELETE",
        &format!("/v1/posts/{id}/like"),
        &ann,
        None,
    )
    .await;
    assert_eq!(unliked["likes"], 0);
    let (status, _) = call(
        &server,
        "DELETE",
        &format!("/v1/users/{bob_id}/follow"),
        &ann,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, deleted) = call(&server, "DELETE", &format!("/v1/posts/{id}"), &bob, None).await;
    assert_eq!(status, 200, "{deleted}");
    let (status, gone) = call(
        &server,
        "GET",
        &format!("/v1/posts/{id}?after={}", deleted["seq"]),
        &ann,
        None,
    )
    .await;
    assert_eq!(
        (status, gone["error"]["code"].as_str()),
        (404, Some("POST_NOT_FOUND"))
    );
    let (status, gone) = call(
        &server,
        "DELETE",
        &format!("/v1/comments/{}", comment["id"].as_str().unwrap()),
        &ann,
        None,
    )
    .await;
    assert_eq!(
        (status, gone["error"]["code"].as_str()),
        (404, Some("COMMENT_NOT_FOUND"))
    );
}
