//! Accounts and sessions in the engine: registration rules, login, refresh rotation and reuse
//! detection, logout, password change, profiles, and the write model rebuilt from the log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use girok_engine::accounts::{ClientInfo, ProfilePatch, Registration};
use girok_engine::{Engine, EngineConfig, Offline};
use girok_storage::{Store, StoreConfig};
use std::sync::Arc;

fn engine(dir: &std::path::Path) -> Arc<Engine> {
    let mut config = EngineConfig::new(dir);
    config.workers = 1;
    Engine::open(config).unwrap()
}

fn client() -> ClientInfo {
    ClientInfo {
        ip: "127.0.0.1".into(),
        user_agent: "tests".into(),
    }
}

async fn register(
    engine: &Engine,
    username: &str,
    email: &str,
) -> girok_engine::accounts::UserView {
    engine
        .register(Registration {
            username: username.into(),
            email: email.into(),
            password: "correct horse".into(),
            display_name: "Someone".into(),
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_rules_and_login() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let alice = register(&engine, "Alice", "alice@example.org").await;
    assert_eq!(alice.username, "Alice");

    let again = |username: &str, email: &str, password: &str| {
        engine.register(Registration {
            username: username.into(),
            email: email.into(),
            password: password.into(),
            display_name: "X".into(),
        })
    };
    assert_eq!(
        again("aLICE", "other@example.org", "12345678")
            .await
            .unwrap_err()
            .code(),
        "USERNAME_TAKEN"
    );
    assert_eq!(
        again("bob", "ALICE@example.org", "12345678")
            .await
            .unwrap_err()
            .code(),
        "EMAIL_TAKEN"
    );
    assert_eq!(
        again("b", "b@example.org", "12345678")
            .await
            .unwrap_err()
            .code(),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        again("bob", "not-an-email", "12345678")
            .await
            .unwrap_err()
            .code(),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        again("bob", "b@example.org", "short")
            .await
            .unwrap_err()
            .code(),
        "INVALID_ARGUMENT"
    );

    let by_name = engine
        .login("alice", "correct horse", &client())
        .await
        .unwrap();
    assert_eq!(by_name.user, alice.id);
    let by_email = engine
        .login("Alice@Example.org", "correct horse", &client())
        .await
        .unwrap();
    assert_ne!(by_name.session, by_email.session);
    assert_eq!(
        engine.active_session(by_name.session).await.unwrap(),
        Some(alice.id)
    );

    let wrong = engine.login("alice", "wrong password", &client()).await;
    assert_eq!(wrong.unwrap_err().code(), "INVALID_CREDENTIALS");
    let unknown = engine.login("nobody", "whatever1", &client()).await;
    assert_eq!(unknown.unwrap_err().code(), "INVALID_CREDENTIALS");
    assert_eq!(engine.sessions(alice.id).await.unwrap().len(), 2);

    // The log records the failures with a reason, and never a password.
    engine.shutdown().await;
    drop(engine);
    let report = Offline::open(dir.path()).unwrap().log_report().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    assert_eq!(report.per_type["auth.login.failed"], 2);
    assert_eq!(report.per_type["auth.user.logged_in"], 2);
    let log = store.read_range(1, u64::MAX, usize::MAX).unwrap();
    for (_, bytes) in &log {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("correct horse") && !text.contains("wrong password"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let user = register(&engine, "carol", "carol@example.org").await;
    let first = engine
        .login("carol", "correct horse", &client())
        .await
        .unwrap();
    let second = engine
        .refresh(&first.refresh_token, &client())
        .await
        .unwrap();
    assert_eq!(second.session, first.session, "same family");
    assert_ne!(second.refresh_token, first.refresh_token);
    let third = engine
        .refresh(&second.refresh_token, &client())
        .await
        .unwrap();

    // The first token again: reuse. The whole session goes, the newest token with it.
    let reused = engine.refresh(&first.refresh_token, &client()).await;
    assert_eq!(reused.unwrap_err().code(), "REFRESH_TOKEN_REUSED");
    assert_eq!(engine.active_session(first.session).await.unwrap(), None);
    let after = engine.refresh(&third.refresh_token, &client()).await;
    assert_eq!(after.unwrap_err().code(), "INVALID_REFRESH_TOKEN");
    assert!(engine.sessions(user.id).await.unwrap().is_empty());
    assert_eq!(
        engine
            .refresh("made-up", &client())
            .await
            .unwrap_err()
            .code(),
        "INVALID_REFRESH_TOKEN"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_password_change_profile_and_session_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let user = register(&engine, "dave", "dave@example.org").await;
    let a = engine
        .login("dave", "correct horse", &client())
        .await
        .unwrap();
    let b = engine
        .login("dave", "correct horse", &client())
        .await
        .unwrap();
    let c = engine
        .login("dave", "correct horse", &client())
        .await
        .unwrap();

    engine.logout(user.id, a.session).await.unwrap();
    assert_eq!(engine.active_session(a.session).await.unwrap(), None);
    assert_eq!(
        engine
            .session_for_refresh_token(&a.refresh_token)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        engine.logout(user.id, a.session).await.unwrap_err().code(),
        "SESSION_NOT_FOUND"
    );

    engine.revoke_session(user.id, b.session).await.unwrap();
    let sessions = engine.sessions(user.id).await.unwrap();
    assert_eq!(
        sessions.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![c.session]
    );
    // Someone else's session cannot be revoked by id.
    let eve = register(&engine, "eve", "eve@example.org").await;
    assert_eq!(
        engine
            .revoke_session(eve.id, c.session)
            .await
            .unwrap_err()
            .code(),
        "SESSION_NOT_FOUND"
    );

    let wrong = engine
        .change_password(user.id, "not it at all", "new password 1")
        .await;
    assert_eq!(wrong.unwrap_err().code(), "INVALID_CREDENTIALS");
    engine
        .change_password(user.id, "correct horse", "new password 1")
        .await
        .unwrap();
    assert_eq!(
        engine.active_session(c.session).await.unwrap(),
        None,
        "all sessions revoked"
    );
    assert!(
        engine
            .login("dave", "correct horse", &client())
            .await
            .is_err()
    );
    engine
        .login("dave", "new password 1", &client())
        .await
        .unwrap();

    // An avatar must be a ready image of the user's own.
    let unknown = ProfilePatch {
        display_name: None,
        bio: None,
        avatar_media_id: Some("media-1".into()),
    };
    let refused = engine.update_profile(user.id, unknown).await.unwrap_err();
    assert_eq!(refused.code(), "MEDIA_NOT_FOUND");
    let mut png = Vec::new();
    image::DynamicImage::new_rgb8(4, 4)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let (avatar, _) = engine
        .upload_media(user.id, "image/png".into(), png.into())
        .await
        .unwrap();
    let avatar = avatar.to_string();
    while engine.media(Some(user.id), &avatar).await.unwrap().state != "ready" {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let updated = engine
        .update_profile(
            user.id,
            ProfilePatch {
                display_name: Some(" Dave D. ".into()),
                bio: Some("hello".into()),
                avatar_media_id: Some(avatar.clone()),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.display_name, "Dave D.");
    assert_eq!(updated.avatar_media_id.as_deref(), Some(avatar.as_str()));
    assert_eq!(engine.user_by_username("DAVE").await.unwrap().bio, "hello");
    let huge = "d".repeat(100_000);
    assert_eq!(
        engine.user_by_username(&huge).await.unwrap_err().code(),
        "USER_NOT_FOUND"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_model_rebuilt_from_the_log_equals_the_live_one() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let user = register(&engine, "frank", "frank@example.org").await;
    let login = engine
        .login("frank", "correct horse", &client())
        .await
        .unwrap();
    let rotated = engine
        .refresh(&login.refresh_token, &client())
        .await
        .unwrap();
    engine
        .login("frank", "bad password", &client())
        .await
        .unwrap_err();
    let other = engine
        .login("frank", "correct horse", &client())
        .await
        .unwrap();
    engine.revoke_session(user.id, other.session).await.unwrap();
    engine
        .update_profile(
            user.id,
            ProfilePatch {
                bio: Some("bio".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let room = engine
        .execute(
            user.id,
            girok_engine::Command::Chat(girok_engine::ChatCommand::CreateRoom {
                title: "r".into(),
                members: Vec::new(),
            }),
        )
        .await
        .unwrap();
    engine
        .execute(
            user.id,
            girok_engine::Command::Chat(girok_engine::ChatCommand::SendMessage {
                room: girok_schemas::RoomId(room.id.0),
                body: "hi".into(),
                client_id: Some("k".into()),
                reply_to: None,
                attachments: Vec::new(),
            }),
        )
        .await
        .unwrap();
    engine.shutdown().await;
    drop(engine);

    let log = Offline::open(dir.path()).unwrap();
    let live = log.write_model_snapshot().unwrap();
    assert!(live.len() > 8);
    let applied = log.rebuild_write_model(|_| {}).unwrap();
    assert_eq!(applied, log.head());
    assert_eq!(log.write_model_snapshot().unwrap(), live);
    drop(log);

    // And the rebuilt model works: the rotated token still refreshes.
    let engine = engine_again(dir.path());
    engine
        .refresh(&rotated.refresh_token, &client())
        .await
        .unwrap();
    engine.shutdown().await;
}

fn engine_again(dir: &std::path::Path) -> Arc<Engine> {
    engine(dir)
}
