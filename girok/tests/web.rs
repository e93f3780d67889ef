//! The web app, end to end: girok serves it (the page for client-side routes, hashed assets
//! cached for good, a strict Content-Security-Policy, the API's paths never swallowed, off
//! with `web.enabled = false`); the GraphQL reads it relies on (`users(ids)`,
//! `Author.followedByMe`); and the app itself in a real browser (Debian's Chromium driven by
//! playwright-core, `tests/browser/webapp.mjs`) with three people against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, as_user, header, repository, user};
use serde_json::json;

/// The script and style URLs index.html names.
fn asset_paths(html: &str) -> Vec<String> {
    html.split('"')
        .filter(|part| part.starts_with("/assets/"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_app_is_served_with_its_caching_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);

    for path in ["/", "/rooms/some-room", "/u/alice", "/search?q=x"] {
        let page = server.get(path).await;
        assert_eq!(page.status().as_u16(), 200, "{path}");
        assert_eq!(
            header(&page, "content-type").as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(header(&page, "cache-control").as_deref(), Some("no-cache"));
        let policy = header(&page, "content-security-policy").unwrap();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(page.text().await.unwrap().contains("<div id=\"app\">"));
    }

    // Revalidating the page costs a 304 while the build is the same.
    let page = server.get("/").await;
    let etag = header(&page, "etag").expect("the page has an entity tag");
    let again = server
        .client
        .get(server.url("/rooms/x"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(header(&again, "etag").as_deref(), Some(etag.as_str()));
    assert!(again.bytes().await.unwrap().is_empty());
    let other = server
        .client
        .get(server.url("/"))
        .header("if-none-match", "\"another-build\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);

    let html = server.get("/").await.text().await.unwrap();
    let assets = asset_paths(&html);
    assert_eq!(assets.len(), 2, "one script and one stylesheet: {html}");
    for asset in &assets {
        let plain = server.get(asset).await;
        assert_eq!(plain.status().as_u16(), 200, "{asset}");
        assert_eq!(
            header(&plain, "cache-control").as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(header(&plain, "content-encoding"), None);
        let plain_bytes = plain.bytes().await.unwrap();
        let gzipped = server
            .client
            .get(server.url(asset))
            .header("accept-encoding", "br, gzip;q=0.9")
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&gzipped, "content-encoding").as_deref(),
            Some("gzip")
        );
        assert_eq!(header(&gzipped, "vary").as_deref(), Some("accept-encoding"));
        let gzip_bytes = gzipped.bytes().await.unwrap();
        assert!(gzip_bytes.len() < plain_bytes.len(), "{asset}");
    }
    let script = assets.iter().find(|a| a.ends_with(".js")).unwrap();
    assert!(
        header(&server.get(script).await, "content-type")
            .unwrap()
            .starts_with("text/javascript")
    );

    // The API's paths, files and other methods are never the app's page.
    for path in [
        "/assets/app-missing.js",
        "/assets/../index.html",
        "/assets/..%2Findex.html",
        "/assets/index.html",
        "/v1/no-such-route",
        "/graphql/nothing",
        "/ws/x",
        "/favicon.ico",
        "/rooms/a.png",
    ] {
        let missing = server.get(path).await;
        assert_eq!(missing.status().as_u16(), 404, "{path}");
        let body: serde_json::Value = missing.json().await.unwrap();
        assert_eq!(body["error"]["code"], "NOT_FOUND", "{path}");
    }
    let posted = server
        .client
        .post(server.url("/rooms"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 404);
    let gzip_twin = format!("{}.gz", script);
    assert_eq!(server.get(&gzip_twin).await.status().as_u16(), 404);
    // gzip refused with q=0 is not sent.
    let refused = server
        .client
        .get(server.url(script))
        .header("accept-encoding", "gzip;q=0, identity")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&refused, "content-encoding"), None);
    // HEAD: the same answers without a body.
    for path in ["/rooms/x", script.as_str()] {
        let head = server.client.head(server.url(path)).send().await.unwrap();
        assert_eq!(head.status().as_u16(), 200, "{path}");
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
    }
    // A weak validator (a compressing proxy's W/"…") still revalidates.
    let weak = server
        .client
        .get(server.url("/"))
        .header("if-none-match", format!("W/{etag}"))
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status().as_u16(), 304);
}

#[tokio::test]
async fn the_app_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &[],
        &[("GIROK__WEB__ENABLED", "false")],
    );
    for path in ["/", "/rooms/x"] {
        let page = server.get(path).await;
        assert_eq!(page.status().as_u16(), 404, "{path}");
    }
    let html = std::fs::read_to_string(repository().join("frontends/assets/web/index.html"))
        .expect("the committed build of the web app");
    for asset in asset_paths(&html) {
        assert_eq!(server.get(&asset).await.status().as_u16(), 404, "{asset}");
    }
    // The API is unaffected.
    assert_eq!(server.get("/healthz").await.status().as_u16(), 200);
}

#[tokio::test]
async fn people_are_looked_up_by_id_with_whether_i_follow_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (alice_token, alice) = user(&server, "alice").await;
    let (_, bob) = user(&server, "bob").await;
    let lookup =
        "query($ids: [ID!]!) { users(ids: $ids) { id username name followedByMe followersCount } }";
    let nobody = "01a23de5-0000-7000-8000-000000000000";

    let data = as_user(
        &server,
        &alice_token,
        lookup,
        json!({ "ids": [bob, nobody, alice] }),
    )
    .await;
    let users = data["data"]["users"].as_array().unwrap();
    assert_eq!(users.len(), 2, "an unknown id is left out: {data}");
    assert_eq!(users[0]["username"], "bob");
    assert_eq!(users[0]["followedByMe"], false);
    assert_eq!(users[1]["username"], "alice");
    assert_eq!(users[1]["followedByMe"], false, "never yourself");

    let followed = as_user(
        &server,
        &alice_token,
        "mutation($u: ID!) { follow(userId: $u) { seq } }",
        json!({ "u": bob }),
    )
    .await;
    assert!(followed.get("errors").is_none(), "{followed}");
    let data = as_user(&server, &alice_token, lookup, json!({ "ids": [bob] })).await;
    assert_eq!(data["data"]["users"][0]["followedByMe"], true, "{data}");
    assert_eq!(data["data"]["users"][0]["followersCount"], 1, "{data}");

    // Limits and bad input are typed errors; signed out is refused.
    let many: Vec<String> = (0..101).map(|_| bob.clone()).collect();
    let data = as_user(&server, &alice_token, lookup, json!({ "ids": many })).await;
    assert_eq!(
        data["errors"][0]["extensions"]["code"], "INVALID_ARGUMENT",
        "{data}"
    );
    let data = as_user(
        &server,
        &alice_token,
        lookup,
        json!({ "ids": ["not-an-id"] }),
    )
    .await;
    assert_eq!(
        data["errors"][0]["extensions"]["code"], "INVALID_ARGUMENT",
        "{data}"
    );
    *server.token.write().unwrap() = None;
    let (_, data) = server.gql_status(lookup, json!({ "ids": [bob] })).await;
    assert_eq!(
        data["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{data}"
    );
}

#[tokio::test]
async fn the_app_works_in_a_real_browser() {
    let (node_modules, chromium) = common::browser();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    // Screenshots of each step are kept as test artefacts (not committed).
    let shots = repository().join("target/test-artifacts/web");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        tokio::process::Command::new("node")
            .arg(repository().join("girok/tests/browser/webapp.mjs"))
            .args([node_modules, chromium, server.base.clone()])
            .arg(&shots)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser scenario finished within 300 s")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("PASS"),
        "the browser scenario failed ({}); screenshots in {}\n{stdout}\n{stderr}",
        output.status,
        shots.display()
    );
}
