//! The engine end to end in-process: commands through the sequencer and group commit, views
//! maintained by real timely workers, read-your-writes, the hub, and replay equal to live.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use girok_engine::{
    ChatCommand, Command, Engine, EngineConfig, Error, Follow, FollowEnd, FollowOptions,
    HistoryQuery, LiveScope, MatchingCommand, Offline, OnLag, ReplayOptions, Start, Topic,
};
use girok_schemas::{Payload, RoomId, UserId};
use girok_storage::Table;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn config(dir: &std::path::Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.workers = 2;
    config.read_wait = Duration::from_secs(10);
    config
}

async fn create_room(engine: &Engine, actor: UserId, title: &str) -> RoomId {
    let ack = engine
        .execute(
            actor,
            Command::Chat(ChatCommand::CreateRoom {
                title: title.into(),
                members: Vec::new(),
            }),
        )
        .await
        .unwrap();
    RoomId(ack.id.0)
}

/// A registered user (rooms only take members who exist).
async fn user(engine: &Engine, name: &str) -> UserId {
    engine
        .register(girok_engine::accounts::Registration {
            username: name.into(),
            email: format!("{name}@example.org"),
            password: "correct horse battery".into(),
            display_name: name.into(),
        })
        .await
        .unwrap()
        .id
}

/// The owner adds a member.
async fn add(engine: &Engine, owner: UserId, room: RoomId, user: UserId) -> u64 {
    engine
        .execute(owner, Command::Chat(ChatCommand::AddMember { room, user }))
        .await
        .unwrap()
        .seq
}

fn send(room: RoomId, body: &str, client_id: Option<&str>) -> Command {
    Command::Chat(ChatCommand::SendMessage {
        room,
        body: body.into(),
        client_id: client_id.map(Into::into),
        reply_to: None,
        attachments: Vec::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_are_acked_in_order_and_read_back_with_after() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let alice = UserId::new_v7();
    let rooms = [
        create_room(&engine, alice, "one").await,
        create_room(&engine, alice, "two").await,
    ];
    let mut tasks = Vec::new();
    for t in 0..16 {
        let engine = engine.clone();
        let room = rooms[t % 2];
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0..25 {
                let body = format!("t{t} m{i}");
                let ack = engine
                    .execute(alice, send(room, &body, None))
                    .await
                    .unwrap();
                acks.push((room, ack.seq, body));
            }
            acks
        }));
    }
    let mut acks = Vec::new();
    for task in tasks {
        acks.extend(task.await.unwrap());
    }
    let max_seq = acks.iter().map(|a| a.1).max().unwrap();
    for room in rooms {
        let mut expected: Vec<_> = acks.iter().filter(|a| a.0 == room).collect();
        expected.sort_by_key(|a| std::cmp::Reverse(a.1));
        let mut got = Vec::new();
        let mut before = None;
        loop {
            let page = engine
                .messages(
                    alice,
                    room,
                    HistoryQuery {
                        before,
                        limit: Some(30),
                        after: Some(max_seq),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            before = page.messages.last().map(|m| m.seq);
            got.extend(page.messages);
            if !page.has_older {
                break;
            }
        }
        assert_eq!(got.len(), expected.len());
        for (message, (_, seq, body)) in got.iter().zip(expected) {
            assert_eq!((message.seq, &message.body), (*seq, body));
            assert_eq!(message.sender, Some(alice));
        }
        let info = engine.room(alice, room, Some(max_seq)).await.unwrap();
        assert_eq!(info.message_count, 200);
        let last = info.last_message.unwrap();
        assert_eq!(
            (last.seq, last.commit_time_ms),
            (got[0].seq, got[0].commit_time_ms)
        );
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retry_returns_the_original_ack() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let alice = UserId::new_v7();
    let room = create_room(&engine, alice, "r").await;
    let first = engine
        .execute(alice, send(room, "once", Some("k1")))
        .await
        .unwrap();
    let retry = engine
        .execute(alice, send(room, "once", Some("k1")))
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(retry.duplicate);
    assert_eq!((retry.seq, retry.id), (first.seq, first.id));
    let reused = engine.execute(alice, send(room, "other", Some("k1"))).await;
    assert_eq!(reused.unwrap_err().code(), "IDEMPOTENCY_KEY_REUSED");
    // Another user's identical key is a different key.
    let bob = user(&engine, "bob").await;
    add(&engine, alice, room, bob).await;
    let bobs = engine
        .execute(bob, send(room, "once", Some("k1")))
        .await
        .unwrap();
    assert!(!bobs.duplicate);
    let page = engine
        .messages(
            alice,
            room,
            HistoryQuery {
                after: Some(bobs.seq),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 2, "the retry appended nothing");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_rooms_non_members_and_bad_input_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let (alice, mallory) = (UserId::new_v7(), user(&engine, "mallory").await);
    let room = create_room(&engine, alice, "private").await;
    let nowhere = RoomId::new_v7();
    let head = engine.head();

    let err = engine
        .execute(alice, send(nowhere, "hi", None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RoomNotFound(r) if r == nowhere));
    let err = engine
        .execute(mallory, send(room, "hi", None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_A_MEMBER");
    let err = engine
        .messages(mallory, room, HistoryQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_A_MEMBER");
    let err = engine.room(mallory, room, None).await.unwrap_err();
    assert_eq!(err.code(), "NOT_A_MEMBER");
    let err = engine
        .messages(alice, nowhere, HistoryQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ROOM_NOT_FOUND");
    let err = engine
        .execute(alice, send(room, "", None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    let err = engine
        .execute(alice, send(room, &"x".repeat(4097), None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    let err = engine
        .execute(
            alice,
            Command::Chat(ChatCommand::CreateRoom {
                title: "t".repeat(101),
                members: Vec::new(),
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    let err = engine
        .messages(
            alice,
            room,
            HistoryQuery {
                limit: Some(101),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    assert_eq!(engine.head(), head, "no rejected command appended anything");

    // Membership changes: nobody adds themselves; the owner adds, not twice; leave; send
    // after leaving.
    let err = engine
        .execute(
            mallory,
            Command::Chat(ChatCommand::AddMember {
                room,
                user: mallory,
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_A_MEMBER");
    add(&engine, alice, room, mallory).await;
    let err = engine
        .execute(
            alice,
            Command::Chat(ChatCommand::AddMember {
                room,
                user: mallory,
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ALREADY_MEMBER");
    let err = engine
        .execute(
            mallory,
            Command::Chat(ChatCommand::RemoveMember { room, user: alice }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_ROOM_OWNER");
    let err = engine
        .execute(alice, Command::Chat(ChatCommand::LeaveRoom { room }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "OWNER_CANNOT_LEAVE");
    engine
        .execute(mallory, Command::Chat(ChatCommand::LeaveRoom { room }))
        .await
        .unwrap();
    let err = engine
        .execute(mallory, send(room, "bye", None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_A_MEMBER");
    let err = engine
        .execute(mallory, Command::Chat(ChatCommand::LeaveRoom { room }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_A_MEMBER");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_beyond_the_view_times_out_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.read_wait = Duration::from_millis(100);
    let engine = Engine::open(config).unwrap();
    let alice = UserId::new_v7();
    let room = create_room(&engine, alice, "r").await;
    let err = engine
        .messages(
            alice,
            room,
            HistoryQuery {
                after: Some(1_000_000),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    match err {
        Error::ViewTimeout {
            after, watermark, ..
        } => {
            assert_eq!(after, 1_000_000);
            assert!(watermark < after);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_publishes_committed_events_to_room_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let alice = UserId::new_v7();
    let room = create_room(&engine, alice, "live").await;
    let other = create_room(&engine, alice, "quiet").await;
    let mut room_events = engine.hub().subscribe(Topic::Room(room));
    let mut all_events = engine.hub().subscribe(Topic::Log);
    engine
        .execute(alice, send(other, "elsewhere", None))
        .await
        .unwrap();
    let ack = engine
        .execute(alice, send(room, "hello", None))
        .await
        .unwrap();
    let event = loop {
        let event = tokio::time::timeout(Duration::from_secs(5), room_events.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.payload.room(), Some(room), "only this room's events");
        if event.seq >= ack.seq {
            break event;
        }
    };
    assert_eq!(event.seq, ack.seq);
    assert!(matches!(&event.payload, Payload::MessageSent { body, .. } if body == "hello"));
    // The log topic sees every room, in seq order. (Events committed just before subscribing
    // may or may not arrive: the hub publishes asynchronously; resuming from the log by seq is
    // how a client closes that gap.)
    let mut seen = Vec::new();
    while seen.last() != Some(&ack.seq) {
        let event = tokio::time::timeout(Duration::from_secs(5), all_events.recv())
            .await
            .unwrap()
            .unwrap();
        seen.push(event.seq);
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert!(
        seen.contains(&(ack.seq - 1)),
        "the other room's message came through too"
    );
    engine.shutdown().await;
}

/// The next events of a follow, or how it ended, within 5 s.
async fn next_of(follow: &mut Follow) -> Result<Vec<u64>, FollowEnd> {
    let mut events = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), follow.next(64, &mut events))
        .await
        .expect("a step in time")
        .map(|()| events.iter().map(|e| e.seq).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_resumes_from_the_log_then_goes_live_and_ends_when_the_member_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let (alice, bob, eve) = (
        user(&engine, "alice").await,
        user(&engine, "bob").await,
        user(&engine, "eve").await,
    );
    let room = create_room(&engine, alice, "followed").await;
    let other = create_room(&engine, alice, "elsewhere").await;
    add(&engine, alice, room, bob).await;
    let mut sent = Vec::new();
    for body in ["one", "two", "three"] {
        engine
            .execute(alice, send(other, "noise", None))
            .await
            .unwrap();
        sent.push(
            engine
                .execute(alice, send(room, body, None))
                .await
                .unwrap()
                .seq,
        );
    }
    let scope = LiveScope::Room { room, member: bob };
    let options = |from| FollowOptions {
        start: Start::After(from),
        max_resume: 10,
        max_scan: 1_000,
        on_lag: OnLag::CatchUp,
    };

    // From the first message: the two after it come from the log, only this room's.
    let mut follow = engine.follow(scope, options(sent[0])).await.unwrap();
    assert_eq!(follow.head(), engine.head());
    assert_eq!(next_of(&mut follow).await.unwrap(), sent[1..].to_vec());
    // Then live.
    let live = engine
        .execute(alice, send(room, "four", None))
        .await
        .unwrap()
        .seq;
    assert_eq!(next_of(&mut follow).await.unwrap(), vec![live]);
    // Bob is removed: that event is the last one, then the follow ends.
    let removed = engine
        .execute(
            alice,
            Command::Chat(ChatCommand::RemoveMember { room, user: bob }),
        )
        .await
        .unwrap()
        .seq;
    assert_eq!(next_of(&mut follow).await.unwrap(), vec![removed]);
    assert!(matches!(next_of(&mut follow).await, Err(FollowEnd::Left)));

    // A resume that would replay more of the room than allowed is refused up front; one that
    // would read through more of the log too.
    let tight = FollowOptions {
        max_resume: 1,
        ..options(sent[0])
    };
    let alice_scope = LiveScope::Room {
        room,
        member: alice,
    };
    assert!(matches!(
        engine.follow(alice_scope, tight).await,
        Err(FollowEnd::ResumeTooOld(_))
    ));
    let short = FollowOptions {
        max_scan: 2,
        ..options(sent[0])
    };
    assert!(matches!(
        engine.follow(alice_scope, short).await,
        Err(FollowEnd::ResumeTooOld(_))
    ));
    // A non-member cannot follow the room; a user's own scope is their joins and leaves.
    let outsider = LiveScope::Room { room, member: eve };
    match engine.follow(outsider, FollowOptions::live_only()).await {
        Err(FollowEnd::Failed(error)) => assert_eq!(error.code(), "NOT_A_MEMBER"),
        other => panic!(
            "a non-member followed the room: {:?}",
            other.map(|f| f.head())
        ),
    }
    let mut eves = engine
        .follow(LiveScope::User(eve), FollowOptions::live_only())
        .await
        .unwrap();
    let joined = add(&engine, alice, room, eve).await;
    engine
        .execute(alice, send(room, "for eve's room feed, not her own", None))
        .await
        .unwrap();
    assert_eq!(next_of(&mut eves).await.unwrap(), vec![joined]);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_rebuilds_views_equal_to_the_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let users: Vec<UserId> = (0..4).map(|_| UserId::new_v7()).collect();
    let mut rooms = Vec::new();
    for (i, user) in users.iter().enumerate() {
        rooms.push(create_room(&engine, *user, &format!("room {i}")).await);
    }
    let mut tasks = Vec::new();
    for (i, user) in users.iter().copied().enumerate() {
        let engine = engine.clone();
        let room = rooms[i];
        tasks.push(tokio::spawn(async move {
            for m in 0..150 {
                engine
                    .execute(user, send(room, &format!("{m}"), None))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let head = engine.head();
    let live_summaries = engine.summaries_at(head).await.unwrap();
    let live_snapshot = engine.views().room_history.snapshot().unwrap();

    assert_eq!(live_snapshot.len(), 4);
    engine.shutdown().await;
    drop(engine);

    let log = Arc::new(Offline::open(dir.path()).unwrap());
    let (report, views) = tokio::task::spawn_blocking({
        let log = log.clone();
        move || log.replay_views(ReplayOptions::new(2), |_, _| {}).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(report.to_seq, head);
    assert_eq!(report.views, live_summaries);
    assert_eq!(views.room_history.snapshot().unwrap(), live_snapshot);

    // Up to a seq: equal to the live history cut at that seq.
    let cut = head / 2;
    let (partial, views) = tokio::task::spawn_blocking(move || {
        let options = ReplayOptions {
            to_seq: Some(cut),
            ..ReplayOptions::new(1)
        };
        log.replay_views(options, |_, _| {}).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(partial.to_seq, cut);
    let mut expected = HashMap::new();
    for (room, (seqs, _)) in &live_snapshot {
        let kept: Vec<_> = seqs.iter().copied().filter(|s| *s <= cut).collect();
        if !kept.is_empty() {
            expected.insert(*room, kept);
        }
    }
    let rebuilt = views.room_history.snapshot().unwrap();
    assert_eq!(rebuilt.len(), expected.len());
    for (room, (seqs, last)) in rebuilt {
        assert_eq!(&seqs, &expected[&room]);
        assert_eq!(last.map(|l| l.0), seqs.last().copied());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_rebuild_on_restart_and_seqs_continue() {
    let dir = tempfile::tempdir().unwrap();
    let alice = UserId::new_v7();
    let (room, last) = {
        let engine = Engine::open(config(dir.path())).unwrap();
        let room = create_room(&engine, alice, "persist").await;
        let mut last = 0;
        for i in 0..10 {
            last = engine
                .execute(alice, send(room, &format!("{i}"), None))
                .await
                .unwrap()
                .seq;
        }
        engine.shutdown().await;
        (room, last)
    };
    let engine: Arc<Engine> = Engine::open(config(dir.path())).unwrap();
    assert_eq!(engine.head(), last);
    let page = engine
        .messages(
            alice,
            room,
            HistoryQuery {
                after: Some(last),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 10);
    assert_eq!(page.messages[0].body, "9");
    let next = engine
        .execute(alice, send(room, "after restart", None))
        .await
        .unwrap();
    assert_eq!(next.seq, last + 1);
    // Every view rebuilds up to the head it found at start, and then says so.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !engine.status().ready {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            engine.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(engine.status().views.iter().all(|v| v.watermark >= last));
    engine.shutdown().await;
}

/// Waits until every view reflects the whole log.
async fn until_ready(engine: &Engine) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !engine.status().ready || engine.status().views.iter().any(|v| v.lag > 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            engine.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Up to 100 of the newest messages of `room`, as `actor` reads them.
async fn newest_messages(
    engine: &Engine,
    actor: UserId,
    room: RoomId,
) -> girok_engine::MessagePage {
    let query = HistoryQuery {
        limit: Some(100),
        ..Default::default()
    };
    engine.messages(actor, room, query).await.unwrap()
}

/// Every view's digest rebuilt from the log alone (replay, in a view store of its own).
async fn replayed(dir: &std::path::Path) -> Vec<girok_engine::views::ViewSummary> {
    let log = Offline::open(dir).unwrap();
    tokio::task::spawn_blocking(move || log.replay_views(ReplayOptions::new(2), |_, _| {}).unwrap())
        .await
        .unwrap()
        .0
        .views
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_resume_from_their_checkpoint_and_one_of_another_format_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let alice = UserId::new_v7();
    let chat = |command| Command::Chat(command);
    // First run: members, messages, an edit, a deletion, receipts.
    let (room, bob, edited, pages) = {
        let engine = Engine::open(config(dir.path())).unwrap();
        assert_eq!(engine.views_resumed_from(), 0, "nothing to resume from");
        let bob = user(&engine, "bob").await;
        let room = create_room(&engine, alice, "kept").await;
        add(&engine, alice, room, bob).await;
        let mut acks = Vec::new();
        for i in 0..30 {
            let sender = if i % 3 == 0 { bob } else { alice };
            acks.push((
                sender,
                engine
                    .execute(sender, send(room, &format!("{i}"), None))
                    .await
                    .unwrap(),
            ));
        }
        let (_, edited) = acks[1];
        let edit = |message, body: &str| {
            chat(ChatCommand::EditMessage {
                message,
                body: body.into(),
                in_room: None,
            })
        };
        engine
            .execute(alice, edit(edited.id, "edited once"))
            .await
            .unwrap();
        let (_, deleted) = acks[29];
        engine
            .execute(
                alice,
                chat(ChatCommand::DeleteMessage {
                    message: deleted.id,
                    in_room: None,
                }),
            )
            .await
            .unwrap();
        let read = engine
            .execute(
                bob,
                chat(ChatCommand::MarkRead {
                    room,
                    up_to: Some(acks[10].1.seq),
                }),
            )
            .await
            .unwrap();
        until_ready(&engine).await;
        let query = HistoryQuery {
            after: Some(read.seq),
            limit: Some(100),
            ..Default::default()
        };
        let pages = engine.messages(alice, room, query).await.unwrap();
        engine.shutdown().await;
        (room, bob, edited, pages)
    };

    // Second run: the chat views load as of their checkpoint and answer as before; then the
    // log moves on past it (a second edit, a member leaving, a new message).
    {
        let engine = Engine::open(config(dir.path())).unwrap();
        let resumed = engine.views_resumed_from();
        assert!(resumed > 0, "the chat views resumed from a checkpoint");
        until_ready(&engine).await;
        let again = newest_messages(&engine, alice, room).await;
        assert_eq!(again.messages, pages.messages);
        let rooms = engine.rooms(bob, Default::default()).await.unwrap();
        assert_eq!(rooms.rooms.len(), 1);
        assert_eq!(rooms.rooms[0].message_count, 29);
        engine
            .execute(
                alice,
                chat(ChatCommand::EditMessage {
                    message: edited.id,
                    body: "edited twice".into(),
                    in_room: None,
                }),
            )
            .await
            .unwrap();
        engine
            .execute(bob, chat(ChatCommand::LeaveRoom { room }))
            .await
            .unwrap();
        engine
            .execute(alice, send(room, "after the checkpoint", None))
            .await
            .unwrap();
        until_ready(&engine).await;
        let live = engine.summaries_at(engine.head()).await.unwrap();
        let page = newest_messages(&engine, alice, room).await;
        assert_eq!(page.messages.len(), 30);
        assert_eq!(page.messages[0].body, "after the checkpoint");
        let edited_now = page.messages.iter().find(|m| m.id == edited.id).unwrap();
        assert_eq!(edited_now.body, "edited twice");
        assert!(
            engine
                .rooms(bob, Default::default())
                .await
                .unwrap()
                .rooms
                .is_empty()
        );
        engine.shutdown().await;
        drop(engine);
        assert_eq!(
            replayed(dir.path()).await,
            live,
            "resumed views equal a replay"
        );
    }

    // Third run: a checkpoint of a format this build does not know is dropped and the chat
    // views are built from the log again, to the same digests.
    {
        let disk = girok_storage::ViewStore::open(
            &dir.path().join(girok_engine::VIEWS_DIR),
            1 << 20,
            |_| {},
        )
        .unwrap();
        let key = b"views";
        let mut checkpoint: serde_json::Value = serde_json::from_slice(
            &disk
                .get(girok_storage::ViewTable::Checkpoint, key)
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        checkpoint["format"] = serde_json::json!(999);
        disk.write(
            &[girok_storage::ViewWrite::Put(
                girok_storage::ViewTable::Checkpoint,
                key.to_vec(),
                serde_json::to_vec(&checkpoint).unwrap(),
            )],
            true,
        )
        .unwrap();
        disk.flush().unwrap();
    }
    let engine = Engine::open(config(dir.path())).unwrap();
    assert_eq!(engine.views_resumed_from(), 0, "another format: rebuilt");
    until_ready(&engine).await;
    let live = engine.summaries_at(engine.head()).await.unwrap();
    engine.shutdown().await;
    drop(engine);
    assert_eq!(replayed(dir.path()).await, live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_deletes_and_replies_follow_their_rules_and_the_history_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let (alice, bob) = (UserId::new_v7(), user(&engine, "bob").await);
    let room = create_room(&engine, alice, "edits").await;
    add(&engine, alice, room, bob).await;
    let first = engine
        .execute(alice, send(room, "frist", None))
        .await
        .unwrap();
    let reply = engine
        .execute(
            bob,
            Command::Chat(ChatCommand::SendMessage {
                room,
                body: "typo!".into(),
                client_id: None,
                reply_to: Some(first.id),
                attachments: Vec::new(),
            }),
        )
        .await
        .unwrap();

    // Only the author edits or deletes; a message of another room cannot be answered.
    let edit = |who, message, body: &str| {
        engine.execute(
            who,
            Command::Chat(ChatCommand::EditMessage {
                message,
                body: body.into(),
                in_room: None,
            }),
        )
    };
    assert_eq!(
        edit(bob, first.id, "hijack").await.unwrap_err().code(),
        "NOT_MESSAGE_AUTHOR"
    );
    let edited = edit(alice, first.id, "first").await.unwrap();
    let other_room = create_room(&engine, bob, "elsewhere").await;
    let misplaced = Command::Chat(ChatCommand::SendMessage {
        room: other_room,
        body: "x".into(),
        client_id: None,
        reply_to: Some(first.id),
        attachments: Vec::new(),
    });
    assert_eq!(
        engine.execute(bob, misplaced).await.unwrap_err().code(),
        "MESSAGE_NOT_FOUND"
    );
    let outsider = UserId::new_v7();
    assert_eq!(
        edit(outsider, first.id, "x").await.unwrap_err().code(),
        "MESSAGE_NOT_FOUND",
        "to a non-member the message does not exist"
    );

    let page = engine
        .messages(
            alice,
            room,
            HistoryQuery {
                after: Some(edited.seq),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let bodies: Vec<_> = page
        .messages
        .iter()
        .map(|m| (m.body.as_str(), m.edited_ms.is_some()))
        .collect();
    assert_eq!(bodies, vec![("typo!", false), ("first", true)]);
    assert_eq!(page.messages[0].reply_to, Some(first.id));

    // Deleting retracts the message from the history and moves the room's last message back.
    let deleted = engine
        .execute(
            bob,
            Command::Chat(ChatCommand::DeleteMessage {
                message: reply.id,
                in_room: None,
            }),
        )
        .await
        .unwrap();
    let page = engine
        .messages(
            alice,
            room,
            HistoryQuery {
                after: Some(deleted.seq),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![first.seq]
    );
    let info = engine.room(alice, room, Some(deleted.seq)).await.unwrap();
    assert_eq!(
        (info.message_count, info.last_message.map(|m| m.seq)),
        (1, Some(first.seq))
    );
    assert_eq!(
        engine
            .execute(
                bob,
                Command::Chat(ChatCommand::DeleteMessage {
                    message: reply.id,
                    in_room: None
                })
            )
            .await
            .unwrap_err()
            .code(),
        "MESSAGE_NOT_FOUND",
        "deleted once"
    );
    engine
        .execute(
            alice,
            Command::Chat(ChatCommand::DeleteMessage {
                message: first.id,
                in_room: None,
            }),
        )
        .await
        .unwrap();
    let head = engine.head();
    let live = engine.summaries_at(head).await.unwrap();
    assert_eq!(
        engine.views().room_history.latest_edit(first.seq),
        None,
        "edits of deleted messages leave the view"
    );
    engine.shutdown().await;
    drop(engine);

    // Messages are addressed through the log: their ids name their seqs, sending wrote no
    // row of its own, each deletion one; rebuilding the write model from the log agrees.
    assert_eq!(first.id.derived_seq(), Some(first.seq));
    assert_eq!(reply.id.derived_seq(), Some(reply.seq));
    let log = Offline::open(dir.path()).unwrap();
    let before = log.write_model_snapshot().unwrap();
    let rows = |table| {
        before
            .iter()
            .filter(|(t, _, _)| *t == table)
            .map(|(_, key, _)| key.clone())
            .collect::<Vec<_>>()
    };
    assert!(rows(Table::MessageidMessage).is_empty());
    let deletions = rows(Table::MessageseqDeleted);
    assert_eq!(
        deletions,
        vec![
            first.seq.to_be_bytes().to_vec(),
            reply.seq.to_be_bytes().to_vec()
        ]
    );
    log.rebuild_write_model(|_| {}).unwrap();
    assert_eq!(log.write_model_snapshot().unwrap(), before);

    // Replay reaches the same view, edits and deletions included.
    let report =
        tokio::task::spawn_blocking(move || log.replay(ReplayOptions::new(2), |_, _| {}).unwrap())
            .await
            .unwrap();
    assert_eq!(report.views, live);
}

/// The write model's rows of `table`, read from the data directory (no engine running).
fn rows(dir: &std::path::Path, table: Table) -> Vec<Vec<u8>> {
    let log = Offline::open(dir).unwrap();
    log.write_model_snapshot()
        .unwrap()
        .into_iter()
        .filter(|(t, ..)| *t == table)
        .map(|(_, key, _)| key)
        .collect()
}

/// The skip exclusions in `untilms_skips`: `(span key, entries)` per span row (40 bytes an
/// entry), and whether its removal cursor is there.
fn skip_spans(dir: &std::path::Path) -> (Vec<(Vec<u8>, usize)>, bool) {
    let log = Offline::open(dir).unwrap();
    let rows: Vec<_> = log
        .write_model_snapshot()
        .unwrap()
        .into_iter()
        .filter(|(t, ..)| *t == Table::UntilmsSkips)
        .map(|(_, key, value)| (key, value.len()))
        .collect();
    let cursor = rows.iter().any(|(key, _)| key == &[0xff]);
    let spans = rows
        .into_iter()
        .filter(|(key, _)| key.len() == 8)
        .map(|(key, len)| {
            assert_eq!(len % 40, 0, "a span row holds whole entries");
            (key, len / 40)
        })
        .collect();
    (spans, cursor)
}

fn entries(spans: &[(Vec<u8>, usize)]) -> usize {
    spans.iter().map(|(_, entries)| entries).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_skip_exclusions_are_removed_by_later_skips_as_replay_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let mut config = config(dir.path());
        config.matching.skip_exclusion_ms = 300;
        Engine::open(config).unwrap()
    };
    let join = || {
        Command::Matching(MatchingCommand::Join {
            tags: Vec::new(),
            language: None,
        })
    };
    let skip = || Command::Matching(MatchingCommand::Skip { requeue: false });
    // Two pairs matched, then each ended by a skip: two exclusions, in the spans of their ends.
    let engine = open();
    let mut users = Vec::new();
    for name in ["ann", "bob", "cat", "dan", "eve", "fay"] {
        users.push(user(&engine, name).await);
    }
    for pair in users[..4].chunks(2) {
        engine.execute(pair[0], join()).await.unwrap();
        engine.execute(pair[1], join()).await.unwrap();
        engine.execute(pair[0], skip()).await.unwrap();
    }
    engine.shutdown().await;
    drop(engine);
    let (spans, cursor) = skip_spans(dir.path());
    assert_eq!(entries(&spans), 2, "{spans:?}");
    assert!(!cursor);

    // Once they ended, the next skip removes their spans; a new exclusion stays until it ends.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let engine = open();
    engine.execute(users[4], join()).await.unwrap();
    engine.execute(users[5], join()).await.unwrap();
    engine.execute(users[4], skip()).await.unwrap();
    engine.shutdown().await;
    drop(engine);
    let (spans, cursor) = skip_spans(dir.path());
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(entries(&spans), 1);
    assert!(
        cursor,
        "the removal cursor marks where the spans left start"
    );

    // The write model is a function of the log: a rebuild removes the same rows.
    let log = Offline::open(dir.path()).unwrap();
    let before = log.write_model_digest().unwrap();
    log.rebuild_write_model(|_| {}).unwrap();
    assert_eq!(log.write_model_digest().unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_exclusions_stored_by_builds_before_spans_are_moved_into_spans_and_still_hold() {
    let dir = tempfile::tempdir().unwrap();
    let join = || {
        Command::Matching(MatchingCommand::Join {
            tags: Vec::new(),
            language: None,
        })
    };
    let engine = Engine::open(config(dir.path())).unwrap();
    let (ann, bob) = (user(&engine, "ann").await, user(&engine, "bob").await);
    engine.shutdown().await;
    drop(engine);

    // Ann and Bob apart for an hour, as builds before `untilms_skips` stored it.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    let (low, high) = if ann <= bob { (ann, bob) } else { (bob, ann) };
    let pair = [low.as_bytes().as_slice(), high.as_bytes().as_slice()].concat();
    {
        let store =
            girok_storage::Store::open(girok_storage::StoreConfig::new(dir.path())).unwrap();
        store
            .rewrite(|txn| {
                txn.put(
                    Table::UserpairSkip,
                    pair.clone(),
                    until.to_be_bytes().to_vec(),
                );
                let index = [until.to_be_bytes().as_slice(), &pair].concat();
                txn.put(Table::UntilmsUserpair, index, Vec::new());
                txn.put(
                    Table::UntilmsUserpair,
                    vec![0xff],
                    1i64.to_be_bytes().to_vec(),
                );
                Ok::<_, girok_storage::Error>(())
            })
            .unwrap();
    }

    for restart in 0..2 {
        let engine = Engine::open(config(dir.path())).unwrap();
        if restart == 0 {
            engine.execute(ann, join()).await.unwrap();
            engine.execute(bob, join()).await.unwrap();
        }
        // Bob's join looks for a partner at once, and a status read after a restart loads
        // the stage with a wave: both still kept apart.
        for user in [ann, bob] {
            let status = engine.matching_status(user).await.unwrap();
            assert!(status.queued.is_some(), "restart {restart}: {status:?}");
            assert!(status.current.is_none(), "restart {restart}: {status:?}");
        }
        engine.shutdown().await;
        drop(engine);
        // The old tables are empty, the exclusion in its span.
        assert!(rows(dir.path(), Table::UserpairSkip).is_empty());
        assert!(rows(dir.path(), Table::UntilmsUserpair).is_empty());
        let (spans, _) = skip_spans(dir.path());
        assert_eq!(spans.len(), 1, "{spans:?}");
        assert_eq!(entries(&spans), 1);
    }
}

/// Consumers outside the engine (the analytics sink) read the log only as far as an fsync
/// covers it while the background sync runs: a matching join, which asks for no fsync, is
/// theirs once a later fsync covers it; with the background sync off they follow the durable
/// head, as every consumer inside does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_outside_follow_the_log_as_far_as_an_fsync_covers_it() {
    // `LogSource` is implemented for `Arc<Engine>` too: `engine.head()` would be its head,
    // so the engine's own is called by name.
    use girok_engine::LogSource;
    let join = || {
        Command::Matching(MatchingCommand::Join {
            tags: Vec::new(),
            language: None,
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let mut on = config(dir.path());
    // On, but not due during the test: only writes' own fsyncs move what is covered.
    on.writer.background_sync = Duration::from_secs(3600);
    let engine = Engine::open(on).unwrap();
    let ann = user(&engine, "ann").await;
    assert_eq!(
        LogSource::head(&*engine),
        Engine::head(&engine),
        "signing up is fsynced"
    );
    let joined = engine.execute(ann, join()).await.unwrap().seq;
    assert!(Engine::head(&engine) >= joined, "answered once in the log");
    assert!(
        LogSource::head(&*engine) < joined,
        "the join is not fsynced yet"
    );
    create_room(&engine, ann, "after").await;
    assert!(
        LogSource::head(&*engine) >= joined,
        "a room's creation is fsynced"
    );
    assert_eq!(
        LogSource::read(&*engine, joined, joined, 1).unwrap().len(),
        1
    );
    engine.shutdown().await;
    drop(engine);

    let mut off = config(dir.path());
    off.writer.background_sync = Duration::ZERO;
    let engine = Engine::open(off).unwrap();
    let left = engine.execute(ann, Command::Matching(MatchingCommand::Leave));
    let seq = left.await.unwrap().seq;
    assert_eq!(LogSource::head(&*engine), Engine::head(&engine));
    assert!(LogSource::head(&*engine) >= seq);
    engine.shutdown().await;
}
