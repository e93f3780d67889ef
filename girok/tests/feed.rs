//! The feed end to end against the real binary: seed 001's timeline query in one round trip
//! with batched authors and comments, the feed's rules and typed errors, home timelines merged
//! from the followed authors' profiles, notifications and new posts pushed over the WebSocket and GraphQL
//! subscriptions, search over GraphQL and REST (messages only of your rooms), and everything
//! rebuilt from the log after kill -9.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sockets::{connect, graphql_ws, next_of, send, subscribe};
use common::{Server, as_user, code, user};
use serde_json::{Value, json};
use std::time::Duration;

/// Runs a query that must succeed as `token`; returns `data`.
async fn ok(server: &Server, token: &str, query: &str, variables: Value) -> Value {
    server.set_token(token);
    server.gql(query, variables).await
}

const POST: &str = "mutation($c: String!, $m: [String!]) { createPost(content: $c, mediaIds: $m) { id seq content mediaIds author { id name } likes likedByMe commentCount } }";
const LIKE: &str = "mutation($p: ID!) { likePost(id: $p) { likes likedByMe } }";
const UNLIKE: &str = "mutation($p: ID!) { unlikePost(id: $p) { likes likedByMe } }";
const COMMENT: &str =
    "mutation($p: ID!, $c: String!) { addComment(postId: $p, content: $c) { id seq content } }";
const FOLLOW: &str =
    "mutation($u: ID!) { follow(userId: $u) { seq following user { id followersCount } } }";
const UNFOLLOW: &str = "mutation($u: ID!) { unfollow(userId: $u) { seq following } }";
const DELETE_POST: &str = "mutation($p: ID!) { deletePost(id: $p) { seq } }";
/// Seed 001's timeline query, with read-your-writes.
const TIMELINE: &str = "query($l: Int, $c: String, $a: Seq) {
  timeline(limit: $l, cursor: $c, after: $a) {
    posts { id content author { id name avatar } likes likedByMe
            comments(limit: 3) { content author { name } } }
    pageInfo { hasNextPage endCursor }
  }
}";
const NOTIFICATIONS: &str = "query($a: Seq) { notifications(after: $a) { unreadCount readUpToSeq notifications { seq kind read actor { name } postId commentId } } }";

fn seq(value: &Value) -> u64 {
    value.as_u64().unwrap()
}

fn contents(timeline: &Value) -> Vec<String> {
    timeline["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["content"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_timeline_query_answers_in_one_round_trip_with_batched_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &[],
        // A key older builds used: still accepted (and ignored), so old settings load.
        &[("GIROK__ENGINE__FANOUT_MAX_FOLLOWERS", "2")],
    );
    let (ann, ann_id) = user(&server, "ann").await;
    let (bob, bob_id) = user(&server, "bob").await;
    let (cat, cat_id) = user(&server, "cat").await;
    let (dan, _) = user(&server, "dan").await;

    // Posts and their limits.
    let media = common::ready_media(&server, &bob, 2).await;
    let first = ok(
        &server,
        &bob,
        POST,
        json!({ "c": "  bob one ", "m": media }),
    )
    .await;
    let first = &first["createPost"];
    assert_eq!(first["content"], "bob one");
    assert_eq!(first["mediaIds"], json!(media));
    assert_eq!(first["author"]["id"], bob_id.as_str());
    let bob_one = first["id"].as_str().unwrap().to_owned();
    for (content, media, field) in [
        ("x".repeat(5001), json!([]), "content"),
        ("  ".into(), json!([]), "content"),
        ("ok".into(), json!(["a", "b", "c", "d", "e"]), "mediaIds"),
    ] {
        let body = as_user(&server, &bob, POST, json!({ "c": content, "m": media })).await;
        assert_eq!(code(&body), "INVALID_ARGUMENT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field);
    }
    let long = ok(&server, &cat, POST, json!({ "c": "é".repeat(5000) })).await;
    let cat_long = long["createPost"]["id"].as_str().unwrap().to_owned();
    ok(&server, &cat, DELETE_POST, json!({ "p": cat_long })).await;
    let cat_one = ok(&server, &cat, POST, json!({ "c": "cat one" })).await["createPost"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&server, &bob, POST, json!({ "c": "bob two" })).await;

    // Ann follows both: their earlier posts backfill her timeline.
    ok(&server, &ann, FOLLOW, json!({ "u": bob_id })).await;
    let followed = ok(&server, &ann, FOLLOW, json!({ "u": cat_id })).await;
    assert_eq!(followed["follow"]["user"]["followersCount"], 1);
    // Likes (once each) and comments by several authors.
    let liked = ok(&server, &ann, LIKE, json!({ "p": bob_one })).await;
    assert_eq!(liked["likePost"], json!({ "likes": 1, "likedByMe": true }));
    assert_eq!(
        code(&as_user(&server, &ann, LIKE, json!({ "p": bob_one })).await),
        "ALREADY_LIKED"
    );
    ok(&server, &cat, LIKE, json!({ "p": bob_one })).await;
    for (token, text) in [
        (&cat, "first!"),
        (&dan, "second"),
        (&bob, "thanks"),
        (&cat, "4th"),
    ] {
        ok(&server, token, COMMENT, json!({ "p": bob_one, "c": text })).await;
    }
    let last = ok(&server, &dan, COMMENT, json!({ "p": cat_one, "c": "meow" })).await;
    let after = seq(&last["addComment"]["seq"]);

    // One request answers the seed's query; authors and comments are read in batches.
    let (users_before, comments_before) = batch_loads(&server).await;
    let page = ok(&server, &ann, TIMELINE, json!({ "l": 20, "a": after })).await;
    let timeline = &page["timeline"];
    assert_eq!(contents(timeline), ["bob two", "cat one", "bob one"]);
    let bob_one_post = &timeline["posts"][2];
    assert_eq!(bob_one_post["author"]["name"], "bob");
    assert_eq!(bob_one_post["author"]["avatar"], Value::Null);
    assert_eq!(bob_one_post["likes"], 2);
    assert_eq!(bob_one_post["likedByMe"], true);
    let comments: Vec<(&str, &str)> = bob_one_post["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["content"].as_str().unwrap(),
                c["author"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        comments,
        [("first!", "cat"), ("second", "dan"), ("thanks", "bob")]
    );
    assert_eq!(timeline["posts"][1]["comments"][0]["author"]["name"], "dan");
    assert_eq!(timeline["pageInfo"]["hasNextPage"], false);
    let (users_after, comments_after) = batch_loads(&server).await;
    assert_eq!(
        users_after - users_before,
        1,
        "post and comment authors prefetched in one batch"
    );
    assert_eq!(comments_after - comments_before, 1, "one batch of comments");

    // The page came from the hot-object caches the second time; a profile change shows at
    // once (the cached profile is dropped when the change commits, before its ack).
    ok(&server, &ann, TIMELINE, json!({ "l": 20 })).await;
    let hits = server
        .metric("girok_cache_lookups_total{cache=\"events\",result=\"hit\"}")
        .await;
    assert!(
        hits >= 3,
        "post bodies served from the event cache: {hits} hits"
    );
    ok(
        &server,
        &bob,
        "mutation { updateMe(displayName: \"Bob B.\") { displayName } }",
        json!({}),
    )
    .await;
    let page = ok(&server, &ann, TIMELINE, json!({ "l": 20 })).await;
    assert_eq!(page["timeline"]["posts"][0]["author"]["name"], "Bob B.");
    assert_eq!(
        page["timeline"]["posts"][2]["comments"][2]["author"]["name"],
        "Bob B."
    );
    // A post deleted after the page was cached is gone at once, even without `after`.
    let bob_two = page["timeline"]["posts"][0]["id"].clone();
    ok(&server, &bob, DELETE_POST, json!({ "p": bob_two })).await;
    let page = ok(&server, &ann, TIMELINE, json!({ "l": 20 })).await;
    assert_eq!(contents(&page["timeline"]), ["cat one", "bob one"]);
    ok(&server, &bob, POST, json!({ "c": "bob two" })).await;

    // Pages continue with the cursor.
    let page = ok(&server, &ann, TIMELINE, json!({ "l": 2 })).await;
    assert_eq!(contents(&page["timeline"]), ["bob two", "cat one"]);
    assert_eq!(page["timeline"]["pageInfo"]["hasNextPage"], true);
    let cursor = page["timeline"]["pageInfo"]["endCursor"].clone();
    let page = ok(&server, &ann, TIMELINE, json!({ "l": 2, "c": cursor })).await;
    assert_eq!(contents(&page["timeline"]), ["bob one"]);
    for (limit, cursor) in [
        (json!(0), json!(null)),
        (json!(101), json!(null)),
        (json!(2), json!("x")),
    ] {
        let body = as_user(&server, &ann, TIMELINE, json!({ "l": limit, "c": cursor })).await;
        assert_eq!(code(&body), "INVALID_ARGUMENT", "{body}");
    }

    // Dan follows bob too: bob's older posts and his new one are in both followers' timelines.
    ok(&server, &dan, FOLLOW, json!({ "u": bob_id })).await;
    let third = ok(&server, &bob, POST, json!({ "c": "bob three" })).await;
    let at = seq(&third["createPost"]["seq"]);
    let page = ok(&server, &dan, TIMELINE, json!({ "a": at })).await;
    assert_eq!(
        contents(&page["timeline"]),
        ["bob three", "bob two", "bob one"]
    );
    let page = ok(&server, &ann, TIMELINE, json!({ "l": 1, "a": at })).await;
    assert_eq!(contents(&page["timeline"]), ["bob three"]);

    // Profile timelines, follower lists, and the rules' typed errors.
    let profile = ok(
        &server,
        &ann,
        "query($u: ID!) { userTimeline(userId: $u) { posts { content } } followers(userId: $u, first: 1) { totalCount edges { user { username } } pageInfo { hasNextPage } } }",
        json!({ "u": bob_id }),
    )
    .await;
    assert_eq!(
        contents(&profile["userTimeline"]),
        ["bob three", "bob two", "bob one"]
    );
    assert_eq!(profile["followers"]["totalCount"], 2);
    assert_eq!(profile["followers"]["edges"][0]["user"]["username"], "dan");
    assert_eq!(profile["followers"]["pageInfo"]["hasNextPage"], true);
    let cases = [
        (&ann, FOLLOW, json!({ "u": ann_id }), "INVALID_ARGUMENT"),
        (&ann, FOLLOW, json!({ "u": bob_id }), "ALREADY_FOLLOWING"),
        (&dan, UNFOLLOW, json!({ "u": cat_id }), "NOT_FOLLOWING"),
        (
            &ann,
            DELETE_POST,
            json!({ "p": bob_one }),
            "NOT_POST_AUTHOR",
        ),
        (
            &ann,
            DELETE_POST,
            json!({ "p": "not-an-id" }),
            "INVALID_ARGUMENT",
        ),
        (&dan, UNLIKE, json!({ "p": bob_one }), "NOT_LIKED"),
        (&ann, LIKE, json!({ "p": cat_long }), "POST_NOT_FOUND"),
        (
            &ann,
            COMMENT,
            json!({ "p": bob_one, "c": "x".repeat(1001) }),
            "INVALID_ARGUMENT",
        ),
    ];
    for (token, query, variables, expected) in cases {
        let body = as_user(&server, token, query, variables.clone()).await;
        assert_eq!(code(&body), expected, "{query} {variables}: {body}");
    }

    // Unfollowing and deleting retract from the timeline.
    ok(&server, &ann, UNFOLLOW, json!({ "u": cat_id })).await;
    let gone = ok(&server, &bob, DELETE_POST, json!({ "p": bob_one })).await;
    let page = ok(
        &server,
        &ann,
        TIMELINE,
        json!({ "a": gone["deletePost"]["seq"] }),
    )
    .await;
    assert_eq!(contents(&page["timeline"]), ["bob three", "bob two"]);

    // A bad token: UNAUTHENTICATED.
    server.set_token("not-a-token");
    let (status, body) = server.gql_status(TIMELINE, json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_and_new_posts_are_pushed_over_websocket_and_graphql() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (ann, ann_id) = user(&server, "ann").await;
    let (bob, bob_id) = user(&server, "bob").await;
    let mine = ok(&server, &ann, POST, json!({ "c": "ann's post" })).await;
    let ann_post = mine["createPost"]["id"].as_str().unwrap().to_owned();

    // The WebSocket: `notifications` and `feed` topics.
    let mut ws = connect(&server, Some(&ann)).await;
    next_of(&mut ws, "welcome").await;
    subscribe(&mut ws, "notifications").await;
    subscribe(&mut ws, "feed").await;

    // GraphQL subscriptions; they start asynchronously, so warm up until one is seen.
    let (mut gql_ws, ack) =
        graphql_ws(&server, json!({ "authorization": format!("Bearer {ann}") })).await;
    assert_eq!(ack["type"], "connection_ack");
    gql_ws
        .subscribe(
            "notes",
            "subscription { notificationAdded { seq kind actor { name } postId } }",
            json!({}),
        )
        .await;
    gql_ws
        .subscribe(
            "feed",
            "subscription { feedPostAdded { content author { name } } }",
            json!({}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Bob follows ann: a follow notification, on both.
    let followed = ok(&server, &bob, FOLLOW, json!({ "u": ann_id })).await;
    let frame = next_of(&mut ws, "notification").await;
    assert_eq!(frame["topic"], "notifications");
    assert_eq!(frame["notification"]["kind"], "follow");
    assert_eq!(frame["notification"]["actorId"], bob_id.as_str());
    assert_eq!(frame["seq"], followed["follow"]["seq"]);
    let note = gql_ws.next_for("notes").await;
    assert_eq!(
        note["payload"]["data"]["notificationAdded"]["kind"], "FOLLOW",
        "{note}"
    );
    assert_eq!(
        note["payload"]["data"]["notificationAdded"]["actor"]["name"],
        "bob"
    );

    // A like, a comment and a mention.
    ok(&server, &bob, LIKE, json!({ "p": ann_post })).await;
    ok(
        &server,
        &bob,
        COMMENT,
        json!({ "p": ann_post, "c": "nice" }),
    )
    .await;
    let mention = ok(&server, &bob, POST, json!({ "c": "hello @ann" })).await;
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let frame = next_of(&mut ws, "notification").await;
        kinds.push(frame["notification"]["kind"].as_str().unwrap().to_owned());
        let note = gql_ws.next_for("notes").await;
        let kind = note["payload"]["data"]["notificationAdded"]["kind"].clone();
        assert_eq!(
            kind.as_str().unwrap().to_lowercase(),
            kinds[kinds.len() - 1]
        );
    }
    assert_eq!(kinds, ["like", "comment", "mention"]);

    // The list, unread count and mark-read.
    let at = seq(&mention["createPost"]["seq"]);
    let list = ok(&server, &ann, NOTIFICATIONS, json!({ "a": at })).await;
    let list = &list["notifications"];
    assert_eq!(list["unreadCount"], 4);
    let listed: Vec<&str> = list["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["MENTION", "COMMENT", "LIKE", "FOLLOW"]);
    assert_eq!(list["notifications"][2]["postId"], ann_post.as_str());
    let read = ok(
        &server,
        &ann,
        "mutation { markNotificationsRead { seq readUpToSeq } }",
        json!({}),
    )
    .await;
    let list = ok(
        &server,
        &ann,
        NOTIFICATIONS,
        json!({ "a": read["markNotificationsRead"]["seq"] }),
    )
    .await;
    assert_eq!(list["notifications"]["unreadCount"], 0);
    assert_eq!(list["notifications"]["notifications"][0]["read"], true);

    // New posts of people ann follows reach her feed; others' do not.
    ok(&server, &ann, FOLLOW, json!({ "u": bob_id })).await;
    let (carl, _) = user(&server, "carl").await;
    ok(&server, &carl, POST, json!({ "c": "nobody follows carl" })).await;
    ok(&server, &bob, POST, json!({ "c": "bob posts" })).await;
    let frame = next_of(&mut ws, "post").await;
    assert_eq!(frame["topic"], "feed");
    assert_eq!(frame["post"]["content"], "bob posts");
    assert_eq!(frame["post"]["authorId"], bob_id.as_str());
    // bob's earlier "hello @ann" came before ann followed him: not in her feed.
    let post = gql_ws.next_for("feed").await;
    assert_eq!(
        post["payload"]["data"]["feedPostAdded"]["content"], "bob posts",
        "{post}"
    );
    assert_eq!(
        post["payload"]["data"]["feedPostAdded"]["author"]["name"],
        "bob"
    );

    // Unknown topics are refused with a typed error frame.
    send(&mut ws, json!({ "type": "subscribe", "topic": "gossip" })).await;
    let error = next_of(&mut ws, "error").await;
    assert_eq!(error["code"], "UNKNOWN_TOPIC");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_respects_rooms_over_graphql_and_rest_and_the_feed_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let (ann, _) = user(&server, "ann").await;
    let (bob, bob_id) = user(&server, "bob").await;
    let post = ok(
        &server,
        &ann,
        POST,
        json!({ "c": "rust streaming systems" }),
    )
    .await;
    let post_id = post["createPost"]["id"].as_str().unwrap().to_owned();
    server.set_token(&ann);
    let room = server.create_room("rustaceans").await;
    let sent = ok(
        &server,
        &ann,
        "mutation($r: ID!) { sendMessage(roomId: $r, body: \"a secret rust plan\") { seq } }",
        json!({ "r": room }),
    )
    .await;
    let at = seq(&sent["sendMessage"]["seq"]);
    const SEARCH: &str = "query($q: String!, $k: SearchKind, $a: Seq, $f: Int, $c: String) {
      search(query: $q, kind: $k, afterSeq: $a, first: $f, after: $c) {
        results { __typename ... on Post { id content } ... on Author { username }
                  ... on Message { body } }
        pageInfo { hasNextPage endCursor } } }";
    let found = ok(&server, &ann, SEARCH, json!({ "q": "rust", "a": at })).await;
    let kinds: Vec<&str> = found["search"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["__typename"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2, "{found}");
    assert!(kinds.contains(&"Post") && kinds.contains(&"Message"));
    let theirs = ok(&server, &bob, SEARCH, json!({ "q": "rust", "a": at })).await;
    assert_eq!(
        theirs["search"]["results"].as_array().unwrap().len(),
        1,
        "{theirs}"
    );
    assert_eq!(theirs["search"]["results"][0]["id"], post_id.as_str());
    let users = ok(
        &server,
        &bob,
        SEARCH,
        json!({ "q": "ann", "k": "USER", "a": at }),
    )
    .await;
    assert_eq!(users["search"]["results"][0]["username"], "ann");
    let paged = ok(
        &server,
        &ann,
        SEARCH,
        json!({ "q": "rust", "f": 1, "a": at }),
    )
    .await;
    assert_eq!(paged["search"]["pageInfo"]["hasNextPage"], true);
    let cursor = paged["search"]["pageInfo"]["endCursor"].clone();
    let rest = ok(
        &server,
        &ann,
        SEARCH,
        json!({ "q": "rust", "f": 1, "c": cursor }),
    )
    .await;
    assert_eq!(rest["search"]["results"].as_array().unwrap().len(), 1);
    assert_eq!(rest["search"]["pageInfo"]["hasNextPage"], false);
    let body = as_user(&server, &ann, SEARCH, json!({ "q": " " })).await;
    assert_eq!(code(&body), "INVALID_ARGUMENT");

    // REST: the same search.
    server.set_token(&bob);
    let (status, body) = server
        .get_json(&format!("/v1/search?q=rust&afterSeq={at}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 1);
    assert_eq!(body["results"][0]["kind"], "post");
    server.set_token(&ann);
    let (_, body) = server.get_json("/v1/search?q=secret&kind=message").await;
    assert_eq!(body["results"][0]["message"]["body"], "a secret rust plan");
    let (status, body) = server.get_json("/v1/search?q=rust&kind=spam").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("INVALID_ARGUMENT"))
    );
    let (status, body) = server.get_json("/v1/search").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );

    // Acknowledged feed writes survive kill -9; the views and the index are rebuilt.
    ok(&server, &ann, FOLLOW, json!({ "u": bob_id })).await;
    ok(&server, &bob, LIKE, json!({ "p": post_id })).await;
    let last = ok(&server, &bob, POST, json!({ "c": "after the crash" })).await;
    let last = seq(&last["createPost"]["seq"]);
    server.kill9();
    let server = Server::start(&data, &[]);
    let page = ok(&server, &ann, TIMELINE, json!({ "a": last })).await;
    assert_eq!(
        contents(&page["timeline"]),
        ["after the crash", "rust streaming systems"]
    );
    assert_eq!(page["timeline"]["posts"][1]["likes"], 1);
    let found = ok(&server, &bob, SEARCH, json!({ "q": "crash", "a": last })).await;
    assert_eq!(found["search"]["results"].as_array().unwrap().len(), 1);
}

/// Comments `c0`, `c1`, … on post `id`, one by each of `commenters` in turn; the last seq.
async fn comment_in_turn(server: &Server, id: &Value, commenters: &[&String]) -> u64 {
    let mut last = 0;
    for (n, token) in commenters.iter().enumerate() {
        let c = ok(
            server,
            token,
            COMMENT,
            json!({ "p": id, "c": format!("c{n}") }),
        )
        .await;
        last = seq(&c["addComment"]["seq"]);
    }
    last
}

/// `liker` likes post `id`, then its `author` edits it to `content`; the edit's seq.
async fn like_and_edit(
    server: &Server,
    id: &Value,
    liker: &str,
    author: &str,
    content: &str,
) -> u64 {
    ok(server, liker, LIKE, json!({ "p": id })).await;
    let edit = "mutation($p: ID!, $c: String!) { editPost(id: $p, content: $c) { seq } }";
    let edited = ok(server, author, edit, json!({ "p": id, "c": content })).await;
    seq(&edited["editPost"]["seq"])
}

/// A page's posts resolved in one pass, and by the derived resolvers.
async fn post_pages(server: &Server) -> (u64, u64) {
    let pages = |path: &str| format!("girok_graphql_post_pages_total{{path=\"{path}\"}}");
    (
        server.metric(&pages("direct")).await,
        server.metric(&pages("fields")).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_posts_resolved_in_one_pass_answer_exactly_as_the_field_resolvers_do() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (ann, ann_id) = user(&server, "ann").await;
    let (bob, bob_id) = user(&server, "bob").await;
    let (cat, _) = user(&server, "cat").await;
    let media = common::ready_media(&server, &bob, 4).await;
    ok(
        &server,
        &bob,
        "mutation($a: String) { updateMe(displayName: \"Bob B.\", avatarMediaId: $a) { displayName } }",
        json!({ "a": media[3] }),
    )
    .await;
    ok(&server, &ann, FOLLOW, json!({ "u": bob_id })).await;
    let mut last = 0;
    for (i, media) in [json!([]), json!([media[0], media[1]]), json!([media[2]])]
        .into_iter()
        .enumerate()
    {
        let post = ok(
            &server,
            &bob,
            POST,
            json!({ "c": format!("post {i}"), "m": media }),
        )
        .await;
        let id = post["createPost"]["id"].clone();
        last = comment_in_turn(&server, &id, &[&cat, &ann, &bob, &cat][..=i]).await;
        if i == 1 {
            last = like_and_edit(&server, &id, &ann, &bob, "post 1, edited").await;
        }
    }
    let own = ok(&server, &ann, POST, json!({ "c": "ann's own" })).await;
    last = last.max(seq(&own["createPost"]["seq"]));

    // Every plain field, aliases, __typename, named and inline fragments, comment limits
    // given inline, by variable and by default.
    const FIELDS: &str = "fragment P on Post {
        __typename id seq content mediaIds createdAt editedAt likes likedByMe commentCount
        writer: author { __typename id username name avatar }
        firstTwo: comments(limit: $two) { ...C }
        comments { id author { name ... on Author { username } } }
        none: comments(limit: 0) { id }
        ... on Post { again: content }
        ... { seqAgain: seq }
        ... on Post { id __typename writer: author { name } }
        firstTwo: comments(limit: $two) { id author { username } }
      }
      fragment C on Comment { __typename id seq postId content createdAt author { id name } }";
    let page = ok(
        &server,
        &ann,
        &format!(
            "query($a: Seq, $two: Int) {{ timeline(after: $a) {{ posts {{ ...P }} }} }} {FIELDS}"
        ),
        json!({ "a": last, "two": 2 }),
    )
    .await;
    let posts = page["timeline"]["posts"].as_array().unwrap();
    assert_eq!(posts.len(), 4);
    let (direct, fields) = post_pages(&server).await;
    assert_eq!((direct, fields), (1, 0), "the page took the one-pass path");
    let single = format!("query($p: ID!, $two: Int) {{ post(id: $p) {{ ...P }} }} {FIELDS}");
    let mut single_keys = Vec::new();
    for post in posts {
        let variables = json!({ "p": post["id"], "two": 2 });
        let one = ok(&server, &ann, &single, variables.clone()).await;
        assert_eq!(post, &one["post"]);
        // Keys in selection order, as both paths send them (`data`, `post`, then the post's).
        server.set_token(&ann);
        single_keys.extend(keys_in_order(&server.gql_text(&single, variables).await).split_off(2));
    }
    server.set_token(&ann);
    let page_text = server
        .gql_text(
            &format!("query($two: Int) {{ timeline {{ posts {{ ...P }} }} }} {FIELDS}"),
            json!({ "two": 2 }),
        )
        .await;
    // `data`, `timeline`, `posts`, then the posts'.
    assert_eq!(keys_in_order(&page_text).split_off(3), single_keys);
    // Newest first: ann's own post, then bob's posts 2, 1 and 0.
    assert_eq!(posts[0]["writer"]["id"], ann_id.as_str());
    assert_eq!(posts[0]["writer"]["avatar"], Value::Null);
    assert_eq!(posts[1]["writer"]["avatar"], media[3].as_str());
    assert_eq!(posts[1]["mediaIds"], json!([media[2]]));
    assert_eq!(posts[1]["firstTwo"].as_array().unwrap().len(), 2);
    assert_eq!(posts[1]["comments"].as_array().unwrap().len(), 3);
    assert_eq!(posts[1]["comments"][1]["author"]["username"], "ann");
    assert_eq!(posts[2]["content"], "post 1, edited");
    assert!(posts[2]["editedAt"].is_string());
    assert_eq!(posts[2]["likedByMe"], true);
    assert_eq!(posts[2]["likes"], 1);
    assert_eq!(posts[3]["editedAt"], Value::Null);

    // What the one pass leaves to the field resolvers answers as they do: a field that reads
    // the engine, a fragment on another type, and an out-of-range limit's typed error.
    let counted = ok(
        &server,
        &ann,
        "{ timeline { posts { content author { name followersCount } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        counted["timeline"]["posts"][1]["author"]["followersCount"],
        1
    );
    let fields_before = post_pages(&server).await.1;
    let bad = as_user(
        &server,
        &ann,
        "{ timeline { posts { comments(limit: 21) { id } } } }",
        json!({}),
    )
    .await;
    assert_eq!(code(&bad), "INVALID_ARGUMENT", "{bad}");
    let typed = ok(
        &server,
        &ann,
        "{ timeline { posts { ... on Post { id } ... on SearchResult { __typename } } } }",
        json!({}),
    )
    .await;
    assert_eq!(typed["timeline"]["posts"].as_array().unwrap().len(), 4);
    assert_eq!(post_pages(&server).await.1, fields_before + 2);
}

/// Timeline pages answered whole without async-graphql's executor (`path="answer"`).
async fn answered_pages(server: &Server) -> u64 {
    server
        .metric("girok_graphql_post_pages_total{path=\"answer\"}")
        .await
}

/// Sends `query` (no variables) twice as `token`: the first request goes through the
/// executor (the document is new), the second may be answered without it. Both texts must be
/// equal; returns the second and whether it was answered without the executor.
async fn twice(server: &Server, token: &str, query: &str) -> (String, bool) {
    server.set_token(token);
    let first = server.gql_text(query, json!({})).await;
    let before = answered_pages(server).await;
    let second = server.gql_text(query, json!({})).await;
    assert_eq!(second, first, "the two answers to {query} differ");
    (second, answered_pages(server).await > before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_queries_answered_without_the_executor_are_byte_for_byte_its_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (ann, _) = user(&server, "ann").await;
    let (bob, bob_id) = user(&server, "bob").await;
    let (cat, _) = user(&server, "cat").await;
    ok(
        &server,
        &bob,
        "mutation { updateMe(displayName: \"Bob \\\"B\\\" <b>\") { displayName } }",
        json!({}),
    )
    .await;
    ok(&server, &ann, FOLLOW, json!({ "u": bob_id })).await;
    let mut last = 0;
    for i in 0..3 {
        let content = format!("post {i}: \"quoted\", \\ and \u{e9}\u{1F600}\n\t</p>");
        let post = ok(&server, &bob, POST, json!({ "c": content })).await;
        let id = post["createPost"]["id"].clone();
        last = comment_in_turn(&server, &id, &[&cat, &ann, &bob][..=i]).await;
        if i == 1 {
            last = like_and_edit(&server, &id, &ann, &bob, "edited").await;
        }
    }

    // Every field the one pass answers, aliases, __typename and fragments on the same type
    // (the text closes the operation too).
    const PAGE: &str = "{ __typename posts { __typename id seq content mediaIds createdAt
        editedAt likes likedByMe commentCount author { __typename id username name avatar }
        comments { id seq postId content createdAt author { name username } }
        none: comments(limit: 0) { id } ...More } pageInfo { hasNextPage endCursor __typename } } }
        fragment More on Post { two: comments(limit: 2) { ... on Comment { c: content } } ... { s: seq } }";
    server.set_token(&ann);
    let executed = server
        .gql_text(
            &format!("query Home($l: Int, $a: Seq) {{ home: timeline(limit: $l, after: $a) {PAGE}"),
            json!({ "l": 2, "a": last }),
        )
        .await;
    assert_eq!(answered_pages(&server).await, 0);
    let (direct, answered) = twice(
        &server,
        &ann,
        &format!("query Home {{ home: timeline(limit: 2, after: \"{last}\") {PAGE}"),
    )
    .await;
    assert!(
        answered,
        "the literal query was answered without the executor"
    );
    assert_eq!(direct, executed);
    let page: Value = serde_json::from_str(&direct).unwrap();
    let posts = page["data"]["home"]["posts"].as_array().unwrap();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0]["comments"].as_array().unwrap().len(), 3);
    assert_eq!(posts[0]["two"].as_array().unwrap().len(), 2);
    assert_eq!(posts[1]["content"], "edited");
    assert_eq!(posts[1]["likedByMe"], true);
    assert_eq!(posts[0]["author"]["name"], "Bob \"B\" <b>");
    let end = page["data"]["home"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap();
    assert_eq!(page["data"]["home"]["pageInfo"]["hasNextPage"], true);

    // The next page, by a literal cursor, anonymous operation, default limit.
    let (next, answered) = twice(
        &server,
        &ann,
        &format!("{{ timeline(cursor: \"{end}\") {PAGE}"),
    )
    .await;
    assert!(answered);
    server.set_token(&ann);
    let executed = server
        .gql_text(
            &format!("query($c: String) {{ timeline(cursor: $c) {PAGE}"),
            json!({ "c": end }),
        )
        .await;
    assert_eq!(next, executed);
    let next: Value = serde_json::from_str(&next).unwrap();
    assert_eq!(
        next["data"]["timeline"]["posts"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        next["data"]["timeline"]["pageInfo"]["endCursor"],
        Value::Null
    );

    // Left to the executor, which answers as before: a key selected twice, a field that reads
    // the engine, a directive, another root field beside it, variables.
    for query in [
        "{ timeline { posts { id id } } }",
        "{ timeline { posts { id ... on Post { id } } } }",
        "{ timeline { posts { author { followersCount } } } }",
        "{ timeline { posts { id @include(if: true) } } }",
        "{ timeline { posts { id } } me { id } }",
        "{ t: timeline { pageInfo { hasNextPage } } u: timeline { posts { id } } }",
    ] {
        let (text, answered) = twice(&server, &ann, query).await;
        assert!(!answered, "{query} was answered without the executor");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert!(body.get("errors").is_none(), "{query}: {body}");
    }
    // A document whose shape falls back after the read (a key selected twice) is not tried
    // without the executor again: its page's authors are read twice once, then once.
    let twice_keyed = "{ timeline { posts { id id author { name } } } }";
    server.set_token(&ann);
    let mut users_loaded = Vec::new();
    for _ in 0..3 {
        let before = batch_loads(&server).await.0;
        server.gql_text(twice_keyed, json!({})).await;
        users_loaded.push(batch_loads(&server).await.0 - before);
    }
    assert_eq!(users_loaded, [1, 2, 1]);
    // Refusals keep their codes: arguments out of range, a bad cursor, no sign-in.
    for (query, expected) in [
        (
            "{ timeline(limit: 0) { posts { id } } }",
            "INVALID_ARGUMENT",
        ),
        (
            "{ timeline(limit: 101) { posts { id } } }",
            "INVALID_ARGUMENT",
        ),
        (
            "{ timeline(cursor: \"nope\") { posts { id } } }",
            "INVALID_ARGUMENT",
        ),
        (
            "{ timeline { posts { comments(limit: 21) { id } } } }",
            "INVALID_ARGUMENT",
        ),
    ] {
        for _ in 0..2 {
            let body = as_user(&server, &ann, query, json!({})).await;
            assert_eq!(code(&body), expected, "{query}: {body}");
        }
    }
    let signed_in = "{ timeline { posts { id } } }";
    let (_, answered) = twice(&server, &ann, signed_in).await;
    assert!(answered);
    *server.token.write().unwrap() = None;
    let (status, body) = server.gql_status(signed_in, json!({})).await;
    assert_eq!((status, code(&body)), (200, "UNAUTHENTICATED"), "{body}");
}

/// The object keys of a JSON text in the order they appear (keys are plain words here, and
/// no string value has a word in quotes followed by a colon).
fn keys_in_order(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('"') {
        let after = &rest[open + 1..];
        let word = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if after[word..].starts_with("\":") && word > 0 {
            keys.push(after[..word].to_owned());
            rest = &after[word + 2..];
        } else {
            // Skip this string: up to its closing quote.
            let close = after.find('"').map_or(after.len(), |c| c + 1);
            rest = &after[close..];
        }
    }
    keys
}

/// Batches the GraphQL users and comments loaders have run so far.
async fn batch_loads(server: &Server) -> (u64, u64) {
    let loads = |loader: &str| format!("girok_graphql_batch_loads_total{{loader=\"{loader}\"}}");
    (
        server.metric(&loads("users")).await,
        server.metric(&loads("comments")).await,
    )
}

/// Search hits for `q` (up to 20), with the index reflecting `after`.
async fn hits(server: &Server, token: &str, q: &str, after: u64) -> Vec<Value> {
    const FIND: &str = "query($q: String!, $a: Seq) { search(query: $q, afterSeq: $a, first: 20) {
        results { __typename ... on Post { id content } ... on Author { username } } } }";
    let found = ok(server, token, FIND, json!({ "q": q, "a": after })).await;
    found["search"]["results"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_index_resumes_from_its_checkpoint_after_a_stop_and_a_kill_9_and_equals_replay()
{
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let (ann, _) = user(&server, "ann").await;
    let mut last = 0;
    let mut ids = Vec::new();
    for i in 0..12 {
        let post = ok(
            &server,
            &ann,
            POST,
            json!({ "c": format!("word{i} common") }),
        )
        .await;
        ids.push(post["createPost"]["id"].as_str().unwrap().to_owned());
        last = seq(&post["createPost"]["seq"]);
    }
    ok(
        &server,
        &ann,
        "mutation($p: ID!) { editPost(id: $p, content: \"renamed common\") { id } }",
        json!({ "p": ids[0] }),
    )
    .await;
    ok(&server, &ann, DELETE_POST, json!({ "p": ids[1] })).await;
    ok(
        &server,
        &ann,
        "mutation { updateMe(bio: \"loves zebras\") { id } }",
        json!({}),
    )
    .await;
    let barrier = ok(&server, &ann, POST, json!({ "c": "barrier one" })).await;
    last = last.max(seq(&barrier["createPost"]["seq"]));
    assert_eq!(hits(&server, &ann, "common", last).await.len(), 11);
    assert!(
        server
            .metrics()
            .await
            .contains("\ngirok_search_resumed_seq 0\n")
    );
    assert!(server.terminate().success());

    // After a clean stop the index is not rebuilt: it resumes after what it had committed, and
    // every document is there once, edits and deletes included.
    let server = Server::start(&data, &[]);
    let resumed = server.metric("girok_search_resumed_seq").await;
    assert!(
        resumed >= last,
        "resumed at {resumed}, indexed up to {last}"
    );
    assert_eq!(hits(&server, &ann, "common", last).await.len(), 11);
    assert_eq!(hits(&server, &ann, "word0", last).await.len(), 0);
    assert_eq!(hits(&server, &ann, "renamed", last).await.len(), 1);
    assert_eq!(hits(&server, &ann, "word1", last).await.len(), 0);
    let zebras = hits(&server, &ann, "zebras", last).await;
    assert_eq!(zebras.len(), 1);
    assert_eq!(zebras[0]["username"], "ann");

    // Edits of documents committed before the restart replace them (found through the
    // committed index), and a kill -9 loses nothing and indexes nothing twice.
    ok(
        &server,
        &ann,
        "mutation($p: ID!) { editPost(id: $p, content: \"again common\") { id } }",
        json!({ "p": ids[2] }),
    )
    .await;
    ok(&server, &ann, DELETE_POST, json!({ "p": ids[3] })).await;
    ok(
        &server,
        &ann,
        "mutation { updateMe(bio: \"now loves yaks\") { id } }",
        json!({}),
    )
    .await;
    for i in 0..5 {
        let post = ok(
            &server,
            &ann,
            POST,
            json!({ "c": format!("late{i} common") }),
        )
        .await;
        last = seq(&post["createPost"]["seq"]);
    }
    assert_eq!(hits(&server, &ann, "common", last).await.len(), 15);
    server.kill9();
    let server = Server::start(&data, &[]);
    // Everything up to `last` was committed before the kill (the searches above waited for
    // it), so the index resumes at least there.
    assert!(server.metric("girok_search_resumed_seq").await >= last.max(resumed));
    assert_eq!(hits(&server, &ann, "common", last).await.len(), 15);
    assert_eq!(hits(&server, &ann, "word2", last).await.len(), 0);
    assert_eq!(hits(&server, &ann, "again", last).await.len(), 1);
    assert_eq!(hits(&server, &ann, "zebras", last).await.len(), 0);
    assert_eq!(hits(&server, &ann, "yaks", last).await.len(), 1);
    let (_, ready) = server.get_json("/readyz").await;
    let views = ready["views"].as_array().unwrap();
    let live = views
        .iter()
        .find(|v| v["name"] == "search")
        .unwrap()
        .clone();
    assert_eq!(live["watermark"], last);
    assert!(server.terminate().success());

    // Replay builds the index from seq 1 and gets the same digest as the resumed one.
    let (status, stdout, stderr) =
        common::girok(&["replay", "--json", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(status, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let replayed = report["views"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "search")
        .unwrap()
        .clone();
    assert_eq!(replayed["digest"], live["digest"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_rounds_that_change_no_document_commit_nothing_yet_searches_see_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (ann, _) = user(&server, "ann").await;
    let (_, bob_id) = user(&server, "bob").await;
    let post = ok(&server, &ann, POST, json!({ "c": "indexed words" })).await;
    assert_eq!(
        hits(&server, &ann, "indexed", seq(&post["createPost"]["seq"]))
            .await
            .len(),
        1
    );
    let before = server.metric("girok_search_commits").await;
    assert!(before >= 1);
    // Follows change no document: each round ends with the index reflecting it (a search
    // waits for that), without a commit (at most one, should ten seconds have passed).
    for round in 0..5 {
        let change = if round % 2 == 0 { FOLLOW } else { UNFOLLOW };
        let ack = ok(&server, &ann, change, json!({ "u": bob_id })).await;
        let at = seq(&ack[if round % 2 == 0 { "follow" } else { "unfollow" }]["seq"]);
        assert_eq!(hits(&server, &ann, "indexed", at).await.len(), 1);
    }
    let after = server.metric("girok_search_commits").await;
    assert!(
        after - before <= 1,
        "{} commits for rounds without documents",
        after - before
    );
    // A round with a new document commits.
    let post = ok(&server, &ann, POST, json!({ "c": "more indexed words" })).await;
    assert_eq!(
        hits(&server, &ann, "indexed", seq(&post["createPost"]["seq"]))
            .await
            .len(),
        2
    );
    assert!(server.metric("girok_search_commits").await > after);
}
