//! Accounts, sessions and tokens through the real binary with a real HTTP client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, code, girok};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

async fn post(server: &Server, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    let mut request = server.client.post(server.url(path)).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(server: &Server, path: &str, token: &str) -> (u16, Value) {
    let response = server
        .client
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn register(server: &Server, username: &str) -> (u16, Value) {
    post(
        server,
        "/v1/auth/register",
        json!({ "username": username, "email": format!("{}@example.org", username.to_lowercase()),
                "password": "password123", "displayName": "Name" }),
        None,
    )
    .await
}

async fn login(server: &Server, username: &str, password: &str) -> (u16, Value) {
    post(
        server,
        "/v1/auth/login",
        json!({ "username": username, "password": password }),
        None,
    )
    .await
}

fn rest_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_me_refresh_logout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (status, user) = register(&server, "Alice").await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["username"], "Alice");
    let (status, body) = register(&server, "alice").await;
    assert_eq!((status, rest_code(&body)), (409, "USERNAME_TAKEN"));

    let (status, tokens) = login(&server, "alice@example.org", "password123").await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["expiresIn"], 900);
    let access = tokens["accessToken"].as_str().unwrap().to_owned();
    let refresh = tokens["refreshToken"].as_str().unwrap().to_owned();
    let (status, me) = get(&server, "/v1/users/me", &access).await;
    assert_eq!(
        (status, me["email"].as_str()),
        (200, Some("alice@example.org"))
    );

    let (status, fresh) = post(
        &server,
        "/v1/auth/refresh",
        json!({ "refreshToken": refresh }),
        None,
    )
    .await;
    assert_eq!(status, 200, "{fresh}");
    let access2 = fresh["accessToken"].as_str().unwrap().to_owned();
    let refresh2 = fresh["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);

    let (status, patched) = server
        .client
        .patch(server.url("/v1/users/me"))
        .bearer_auth(&access2)
        .json(&json!({ "bio": "hi", "displayName": "Al" }))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(patched.json::<Value>().await.unwrap()["displayName"], "Al");
    let public = server.get("/v1/users/ALICE").await;
    let public: Value = public.json().await.unwrap();
    assert_eq!(public["bio"], "hi");
    assert!(
        public.get("email").is_none(),
        "no email in a public profile"
    );

    let (status, _) = post(&server, "/v1/auth/logout", json!({}), Some(&access2)).await;
    assert_eq!(status, 204);
    // Revocation is immediate: both access tokens of the session and its refresh token fail.
    for token in [&access, &access2] {
        let (status, body) = get(&server, "/v1/users/me", token).await;
        assert_eq!((status, rest_code(&body)), (401, "UNAUTHENTICATED"));
    }
    let (status, body) = post(
        &server,
        "/v1/auth/refresh",
        json!({ "refreshToken": refresh2 }),
        None,
    )
    .await;
    assert_eq!((status, rest_code(&body)), (401, "INVALID_REFRESH_TOKEN"));
    let (status, body) = login(&server, "alice", "wrong password").await;
    assert_eq!((status, rest_code(&body)), (401, "INVALID_CREDENTIALS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_refresh_token_revokes_the_family() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    register(&server, "bob").await;
    let (_, first) = login(&server, "bob", "password123").await;
    let (_, second) = post(
        &server,
        "/v1/auth/refresh",
        json!({ "refreshToken": first["refreshToken"] }),
        None,
    )
    .await;
    let (status, body) = post(
        &server,
        "/v1/auth/refresh",
        json!({ "refreshToken": first["refreshToken"] }),
        None,
    )
    .await;
    assert_eq!((status, rest_code(&body)), (401, "REFRESH_TOKEN_REUSED"));
    let (status, _) = post(
        &server,
        "/v1/auth/refresh",
        json!({ "refreshToken": second["refreshToken"] }),
        None,
    )
    .await;
    assert_eq!(status, 401, "the newest token of the family is dead too");
    let (status, _) = get(
        &server,
        "/v1/users/me",
        second["accessToken"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, 401, "and so is its access token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_cookie_login_sets_strict_cookies_and_needs_csrf_for_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    register(&server, "carol").await;
    let response = server
        .client
        .post(server.url("/graphql"))
        .json(&json!({ "query": "mutation { login(username: \"carol\", password: \"password123\", useCookie: true) { accessToken refreshToken csrfToken user { username } } }" }))
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body: Value = response.json().await.unwrap();
    let payload = &body["data"]["login"];
    assert_eq!(
        payload["accessToken"],
        Value::Null,
        "no token reaches JavaScript"
    );
    assert_eq!(payload["refreshToken"], Value::Null);
    let csrf = payload["csrfToken"].as_str().unwrap().to_owned();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("girok_session="))
        .expect("session cookie");
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=604800",
    ] {
        assert!(
            session.contains(attribute),
            "{attribute} missing from {session}"
        );
    }
    let csrf_cookie = cookies
        .iter()
        .find(|c| c.starts_with("girok_csrf="))
        .expect("csrf cookie");
    assert!(!csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"));
    let session_value = session.split(';').next().unwrap().to_owned();
    let cookie_header = format!("{session_value}; girok_csrf={csrf}");

    let as_browser = |query: &str, with_csrf: bool| {
        let mut request = server
            .client
            .post(server.url("/graphql"))
            .header("cookie", &cookie_header)
            .json(&json!({ "query": query }));
        if with_csrf {
            request = request.header("x-csrf-token", &csrf);
        }
        async move { request.send().await.unwrap() }
    };
    let me: Value = as_browser("{ me { username } }", false)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["data"]["me"]["username"], "carol",
        "reads need no CSRF token"
    );
    let refused: Value = as_browser("mutation { createRoom(title: \"x\") { id } }", false)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(code(&refused), "CSRF_FAILED");
    let created: Value = as_browser("mutation { createRoom(title: \"x\") { id } }", true)
        .await
        .json()
        .await
        .unwrap();
    assert!(created["data"]["createRoom"]["id"].is_string(), "{created}");

    let logout = as_browser("mutation { logout }", true).await;
    let cleared: Vec<String> = logout
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("girok_session=;") && c.contains("Max-Age=0"))
    );
    let after: Value = as_browser("{ me { username } }", false)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(code(&after), "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_forged_alg_none_and_wrong_key_tokens_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    register(&server, "dave").await;
    let (_, tokens) = login(&server, "dave", "password123").await;
    let good = tokens["accessToken"].as_str().unwrap();
    let (status, _) = get(&server, "/v1/users/me", good).await;
    assert_eq!(status, 200);

    // Forge claims like the real ones, but wrong in one way each.
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(good)
        .unwrap()
        .claims;
    let keys = girok_frontends::auth::keys::load_or_create(&data).unwrap();
    let ours = &keys.keys[0];
    let our_key = EncodingKey::from_ed_der(&ours.pkcs8_der().unwrap());
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(ours.kid.clone());
    let sign = |claims: &Value, header: &Header, key: &EncodingKey| {
        jsonwebtoken::encode(header, claims, key).unwrap()
    };
    let mut expired = claims.clone();
    expired["exp"] = json!(claims["iat"].as_i64().unwrap() - 3600);
    expired["nbf"] = json!(claims["iat"].as_i64().unwrap() - 7200);
    let mut wrong_audience = claims.clone();
    wrong_audience["aud"] = json!("someone-else");
    let mut not_yet = claims.clone();
    not_yet["nbf"] = json!(claims["iat"].as_i64().unwrap() + 3600);
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");

    let stranger = girok_frontends::auth::keys::rotate(&dir.path().join("other"), false).unwrap();
    let stranger_key = EncodingKey::from_ed_der(&stranger.pkcs8_der().unwrap());
    let mut unknown_kid = header.clone();
    unknown_kid.kid = Some(stranger.kid.clone());
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&claims)
    );

    let bad = [
        ("expired", sign(&expired, &header, &our_key)),
        ("wrong audience", sign(&wrong_audience, &header, &our_key)),
        ("not yet valid", sign(&not_yet, &header, &our_key)),
        ("no exp", sign(&no_exp, &header, &our_key)),
        ("forged with our kid", sign(&claims, &header, &stranger_key)),
        ("unknown kid", sign(&claims, &unknown_kid, &stranger_key)),
        ("HS256", hs),
        ("alg none", alg_none),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in bad {
        let (status, body) = get(&server, "/v1/users/me", &token).await;
        assert_eq!(
            (status, rest_code(&body)),
            (401, "UNAUTHENTICATED"),
            "{what}"
        );
    }

    // JWKS publishes our public key under the kid tokens carry.
    let jwks: Value = server
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(key["kid"], ours.kid.as_str());
    assert_eq!(
        jsonwebtoken::decode_header(good).unwrap().kid.as_deref(),
        Some(ours.kid.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_rate_limit_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::start_with_config(dir.path(), "[auth]\nlogin_per_minute_per_username = 3\n");
    register(&server, "erin").await;
    for _ in 0..3 {
        let (status, _) = login(&server, "erin", "wrong password").await;
        assert_eq!(status, 401);
    }
    let response = server
        .client
        .post(server.url("/v1/auth/login"))
        .json(&json!({ "username": "ERIN", "password": "password123" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(rest_code(&response.json().await.unwrap()), "RATE_LIMITED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_400_or_422_with_stable_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let cases = [
        (
            json!({ "username": "frank", "email": "f@example.org", "password": "password123" }),
            422,
            "INVALID_ARGUMENT",
        ),
        (
            json!({ "username": "f", "email": "f@example.org", "password": "password123", "displayName": "F" }),
            422,
            "INVALID_ARGUMENT",
        ),
        (
            json!({ "username": "x".repeat(31), "email": "f@example.org", "password": "password123", "displayName": "F" }),
            422,
            "INVALID_ARGUMENT",
        ),
        (
            json!({ "username": "frank", "email": "nope", "password": "password123", "displayName": "F" }),
            422,
            "INVALID_ARGUMENT",
        ),
        (
            json!({ "username": "frank", "email": "f@example.org", "password": "short", "displayName": "F" }),
            422,
            "INVALID_ARGUMENT",
        ),
        (
            json!({ "username": 42, "email": "f@example.org", "password": "password123", "displayName": "F" }),
            422,
            "INVALID_ARGUMENT",
        ),
        (
            json!({ "username": "frank", "email": "f@example.org", "password": "password123", "displayName": "F", "admin": true }),
            422,
            "INVALID_ARGUMENT",
        ),
    ];
    for (body, status, expected) in cases {
        let (got, answer) = post(&server, "/v1/auth/register", body.clone(), None).await;
        assert_eq!((got, rest_code(&answer)), (status, expected), "{body}");
    }
    let response = server
        .client
        .post(server.url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{broken")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(rest_code(&response.json().await.unwrap()), "BAD_REQUEST");
    let (status, body) = post(&server, "/v1/auth/refresh", json!({}), None).await;
    assert_eq!((status, rest_code(&body)), (422, "INVALID_ARGUMENT"));
    let (status, body) = get(&server, "/v1/users/me", "").await;
    assert_eq!((status, rest_code(&body)), (401, "UNAUTHENTICATED"));
    let (status, _) = post(
        &server,
        "/v1/users/me/change-password",
        json!({ "currentPassword": "a", "newPassword": "b" }),
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_password_change_and_replay_rebuild_users_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    register(&server, "gina").await;
    let (_, one) = login(&server, "gina", "password123").await;
    let (_, two) = login(&server, "gina", "password123").await;
    let one_access = one["accessToken"].as_str().unwrap();
    let (status, list) = get(&server, "/v1/users/me/sessions", one_access).await;
    assert_eq!(status, 200);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Used once before: its token is verified and its session known (both cached).
    let (status, _) = get(
        &server,
        "/v1/users/me",
        two["accessToken"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let response = server
        .client
        .delete(server.url(&format!("/v1/users/me/sessions/{other}")))
        .bearer_auth(one_access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let (status, _) = get(
        &server,
        "/v1/users/me",
        two["accessToken"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, 401, "the revoked session's token stops working");

    // A refresh, then stop, replay everything, start again: users and sessions come back.
    let (_, rotated) = post(
        &server,
        "/v1/auth/refresh",
        json!({ "refreshToken": one["refreshToken"] }),
        None,
    )
    .await;
    assert!(server.terminate().success());
    let (status, stdout, stderr) =
        girok(&["replay", "--json", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(status, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["write_model_events"].as_u64().unwrap() >= 5);
    let server = Server::start(&data, &[]);
    let (status, me) = get(
        &server,
        "/v1/users/me",
        rotated["accessToken"].as_str().unwrap(),
    )
    .await;
    assert_eq!((status, me["username"].as_str()), (200, Some("gina")));
    let (status, body) = post(
        &server,
        "/v1/auth/refresh",
        json!({ "refreshToken": one["refreshToken"] }),
        None,
    )
    .await;
    assert_eq!(
        (status, rest_code(&body)),
        (401, "REFRESH_TOKEN_REUSED"),
        "rotation history survived"
    );
    let (_, fresh) = login(&server, "gina", "password123").await;
    let access = fresh["accessToken"].as_str().unwrap().to_owned();

    // Changing the password ends every session.
    let (status, _) = post(
        &server,
        "/v1/users/me/change-password",
        json!({ "currentPassword": "password123", "newPassword": "new password 9" }),
        Some(&access),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = get(&server, "/v1/users/me", &access).await;
    assert_eq!(status, 401);
    let (status, _) = login(&server, "gina", "new password 9").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_needs_a_principal_and_the_creator_is_the_first_member() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (_, body) = server
        .gql_status("mutation { createRoom(title: \"x\") { id } }", json!({}))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    server.sign_in("hana").await;
    let room = server.create_room("mine").await;
    let data = server
        .gql(
            "query($r: ID!) { room(id: $r) { creatorId } me { id } }",
            json!({ "r": room }),
        )
        .await;
    assert_eq!(data["room"]["creatorId"], data["me"]["id"]);
    server.sign_in("ivan").await;
    let (_, body) = server
        .gql_status(
            "query($r: ID!) { messages(roomId: $r) { nodes { seq } } }",
            json!({ "r": room }),
        )
        .await;
    assert_eq!(
        code(&body),
        "NOT_A_MEMBER",
        "nobody reads a room they are not in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_account_operations() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let registered = server
        .gql(
            "mutation { register(username: \"Jun\", email: \"jun@example.org\", password: \"password123\", displayName: \"Jun\") { id username email } }",
            json!({}),
        )
        .await;
    assert_eq!(registered["register"]["email"], "jun@example.org");
    let (_, body) = server
        .gql_status(
            "mutation { register(username: \"JUN\", email: \"x@example.org\", password: \"password123\", displayName: \"J\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "USERNAME_TAKEN");
    let login = server
        .gql("mutation { login(username: \"jun\", password: \"password123\") { accessToken refreshToken expiresIn } }", json!({}))
        .await;
    let other = login["login"]["refreshToken"].as_str().unwrap().to_owned();
    server.set_token(login["login"]["accessToken"].as_str().unwrap());
    let second = server
        .gql(
            "mutation { login(username: \"jun\", password: \"password123\") { accessToken } }",
            json!({}),
        )
        .await;
    server.set_token(second["login"]["accessToken"].as_str().unwrap());

    let data = server
        .gql("{ me { username } sessions { id current } user(username: \"jun\") { email displayName } }", json!({}))
        .await;
    assert_eq!(data["me"]["username"], "Jun");
    assert_eq!(
        data["user"]["email"],
        Value::Null,
        "public profiles hide the email"
    );
    let sessions = data["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let not_current = sessions.iter().find(|s| s["current"] == false).unwrap()["id"].clone();
    server
        .gql(
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({ "id": not_current }),
        )
        .await;
    let (_, body) = server
        .gql_status(
            "mutation($t: String!) { refresh(refreshToken: $t) { accessToken } }",
            json!({ "t": other }),
        )
        .await;
    assert_eq!(
        code(&body),
        "INVALID_REFRESH_TOKEN",
        "the revoked session cannot refresh"
    );
    let updated = server
        .gql("mutation { updateMe(bio: \"hello\") { bio } }", json!({}))
        .await;
    assert_eq!(updated["updateMe"]["bio"], "hello");
    let (_, body) = server
        .gql_status("mutation { changePassword(currentPassword: \"nope nope\", newPassword: \"password456\") }", json!({}))
        .await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS");
    server
        .gql("mutation { changePassword(currentPassword: \"password123\", newPassword: \"password456\") }", json!({}))
        .await;
    let (_, body) = server.gql_status("{ me { username } }", json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
}
