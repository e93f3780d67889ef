//! The feed in-process: write rules, home timelines merged from the profile timelines of
//! everyone a reader follows (a follow brings an author's older posts, an unfollow or a
//! deletion takes them out), counts, notifications as a view (retracted
//! by unlikes, deletes and unfollows), live pushes, search, and replay equal to live.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use girok_engine::feed::FeedCommand;
use girok_engine::search::SearchKind;
use girok_engine::search::{SearchQuery, SearchResult};
use girok_engine::views::NotificationKind;
use girok_engine::{ChatCommand, Command, Engine, EngineConfig, Offline, ReplayOptions};
use girok_schemas::{EventId, Seq, UserId};
use std::time::Duration;

fn config(dir: &std::path::Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.workers = 2;
    config.read_wait = Duration::from_secs(10);
    config
}

async fn user(engine: &Engine, name: &str) -> UserId {
    engine
        .register(girok_engine::accounts::Registration {
            username: name.into(),
            email: format!("{name}@example.org"),
            password: "correct horse battery".into(),
            display_name: format!("{name} display"),
        })
        .await
        .unwrap()
        .id
}

async fn run(engine: &Engine, actor: UserId, command: FeedCommand) -> girok_engine::Ack {
    engine.execute(actor, Command::Feed(command)).await.unwrap()
}

async fn post(engine: &Engine, author: UserId, content: &str) -> (EventId, Seq) {
    let ack = run(
        engine,
        author,
        FeedCommand::CreatePost {
            content: content.into(),
            media_ids: vec![],
        },
    )
    .await;
    (ack.id, ack.seq)
}

async fn home(engine: &Engine, reader: UserId, after: Seq) -> Vec<String> {
    let page = engine
        .timeline(reader, None, Some(100), Some(after))
        .await
        .unwrap();
    page.posts.into_iter().map(|p| p.content).collect()
}

async fn kinds(engine: &Engine, reader: UserId, after: Seq) -> Vec<NotificationKind> {
    engine
        .notifications(reader, None, Some(100), Some(after))
        .await
        .unwrap()
        .notifications
        .into_iter()
        .map(|n| n.kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn home_timelines_follow_the_graph_and_page_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let ann = user(&engine, "ann").await;
    let bob = user(&engine, "bob").await;
    let (_, s) = post(&engine, bob, "bob one").await;
    assert_eq!(home(&engine, ann, s).await, Vec::<String>::new());

    // Following backfills; new posts arrive; own posts are there.
    let ack = run(&engine, ann, FeedCommand::Follow { user: bob }).await;
    assert_eq!(home(&engine, ann, ack.seq).await, ["bob one"]);
    let (bob_two, _) = post(&engine, bob, "bob two").await;
    let (_, s) = post(&engine, ann, "ann one").await;
    assert_eq!(
        home(&engine, ann, s).await,
        ["ann one", "bob two", "bob one"]
    );

    // Deleting retracts; unfollowing retracts the rest.
    let ack = run(&engine, bob, FeedCommand::DeletePost { post: bob_two }).await;
    assert_eq!(home(&engine, ann, ack.seq).await, ["ann one", "bob one"]);
    let ack = run(&engine, ann, FeedCommand::Unfollow { user: bob }).await;
    assert_eq!(home(&engine, ann, ack.seq).await, ["ann one"]);

    // Bob gains followers: each of them sees his posts, older and newer.
    let mut followers = vec![ann];
    for name in ["cat", "dan"] {
        followers.push(user(&engine, name).await);
    }
    let mut last = 0;
    for f in &followers {
        last = run(&engine, *f, FeedCommand::Follow { user: bob })
            .await
            .seq;
    }
    engine.wait_for_views(Some(last)).await.unwrap();
    let (_, s) = post(&engine, bob, "bob three").await;
    assert_eq!(
        home(&engine, ann, s).await,
        ["bob three", "ann one", "bob one"]
    );
    assert_eq!(
        home(&engine, followers[2], s).await,
        ["bob three", "bob one"]
    );

    // Pages: newest first, the cursor continues, across authors.
    let first = engine.timeline(ann, None, Some(2), None).await.unwrap();
    let contents: Vec<_> = first.posts.iter().map(|p| p.content.as_str()).collect();
    assert_eq!(contents, ["bob three", "ann one"]);
    let rest = engine
        .timeline(ann, first.next_cursor, Some(2), None)
        .await
        .unwrap();
    assert_eq!(rest.posts.len(), 1);
    assert_eq!(rest.posts[0].content, "bob one");
    assert_eq!(rest.next_cursor, None);

    // Profile timeline, follower lists and counts.
    let profile = engine
        .user_timeline(ann, bob, None, Some(10), None)
        .await
        .unwrap();
    assert_eq!(profile.posts.len(), 2);
    assert_eq!(engine.follow_counts(bob).await.unwrap(), (3, 0));
    let page = engine.followers(bob, None, Some(2), None).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.edges.len(), 2);
    assert_eq!(page.edges[0].user, followers[2], "most recent first");
    let next = engine
        .followers(bob, page.next_cursor, Some(2), None)
        .await
        .unwrap();
    assert_eq!(next.edges.len(), 1);
    assert_eq!(next.edges[0].user, followers[0]);

    // Whom ann follows, most recent first, paged: bob (followed again above), then cat, dan.
    let mut last = 0;
    for other in &followers[1..] {
        last = run(&engine, ann, FeedCommand::Follow { user: *other })
            .await
            .seq;
    }
    let page = engine
        .following(ann, None, Some(2), Some(last))
        .await
        .unwrap();
    assert_eq!(page.total, 3);
    let users: Vec<_> = page.edges.iter().map(|e| e.user).collect();
    assert_eq!(users, [followers[2], followers[1]]);
    assert!(page.edges[0].since_seq > page.edges[1].since_seq);
    let next = engine
        .following(ann, page.next_cursor, Some(2), None)
        .await
        .unwrap();
    let users: Vec<_> = next.edges.iter().map(|e| e.user).collect();
    assert_eq!((users, next.next_cursor), (vec![bob], None));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn likes_comments_and_notifications_are_views_that_retract() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let ann = user(&engine, "ann").await;
    let bob = user(&engine, "bob").await;
    let mut live = engine.subscribe_notifications(ann);
    let (p, _) = post(&engine, ann, "hello").await;

    // Like: once per user; counted; notifies the author; unlike retracts both.
    let liked = run(&engine, bob, FeedCommand::LikePost { post: p }).await;
    let again = engine
        .execute(bob, Command::Feed(FeedCommand::LikePost { post: p }))
        .await
        .unwrap_err();
    assert_eq!(again.code(), "ALREADY_LIKED");
    let seen = engine.post(bob, p, Some(liked.seq)).await.unwrap();
    assert_eq!((seen.like_count, seen.liked_by_me), (1, true));
    assert_eq!(
        kinds(&engine, ann, liked.seq).await,
        [NotificationKind::Like]
    );
    let pushed = tokio::time::timeout(Duration::from_secs(5), live.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (pushed.seq, pushed.kind),
        (liked.seq, NotificationKind::Like)
    );
    let unliked = run(&engine, bob, FeedCommand::UnlikePost { post: p }).await;
    assert_eq!(kinds(&engine, ann, unliked.seq).await, []);
    let seen = engine.post(bob, p, Some(unliked.seq)).await.unwrap();
    assert_eq!((seen.like_count, seen.liked_by_me), (0, false));

    // Comment with a mention of a third user; follow; the author's own like is no news.
    let cat = user(&engine, "cat").await;
    let comment = run(
        &engine,
        bob,
        FeedCommand::AddComment {
            post: p,
            content: "hi @Cat and @nobody".into(),
        },
    )
    .await;
    run(&engine, ann, FeedCommand::LikePost { post: p }).await;
    let follow = run(&engine, bob, FeedCommand::Follow { user: ann }).await;
    assert_eq!(
        kinds(&engine, ann, follow.seq).await,
        [NotificationKind::Follow, NotificationKind::Comment]
    );
    assert_eq!(
        kinds(&engine, cat, follow.seq).await,
        [NotificationKind::Mention]
    );
    let page = engine
        .notifications(ann, None, None, Some(follow.seq))
        .await
        .unwrap();
    assert_eq!(page.unread_count, 2);
    assert_eq!(page.notifications[0].actor, Some(bob));
    assert_eq!(page.notifications[1].comment, Some(comment.id));

    // Mark read: forward only.
    let read = run(
        &engine,
        ann,
        FeedCommand::MarkNotificationsRead { up_to: None },
    )
    .await;
    let page = engine
        .notifications(ann, None, None, Some(read.seq))
        .await
        .unwrap();
    assert_eq!(page.unread_count, 0);
    assert!(page.notifications.iter().all(|n| n.read));
    let back = run(
        &engine,
        ann,
        FeedCommand::MarkNotificationsRead { up_to: Some(1) },
    )
    .await;
    assert!(back.duplicate);

    // Comments are listed with the post and counted; deleting the comment retracts its
    // notification and the mention; unfollow retracts the follow.
    let comments = engine.first_comments(vec![seen.seq], 3).await.unwrap();
    assert_eq!(comments[&seen.seq][0].content, "hi @Cat and @nobody");
    let err = engine
        .execute(
            ann,
            Command::Feed(FeedCommand::DeleteComment {
                comment: comment.id,
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_COMMENT_AUTHOR");
    run(
        &engine,
        bob,
        FeedCommand::DeleteComment {
            comment: comment.id,
        },
    )
    .await;
    let gone = run(&engine, bob, FeedCommand::Unfollow { user: ann }).await;
    assert_eq!(kinds(&engine, ann, gone.seq).await, []);
    assert_eq!(kinds(&engine, cat, gone.seq).await, []);

    // Mentions follow edits: a post that names cat notifies; the edit that drops the name
    // retracts it; naming her again notifies at the edit.
    let (p2, s) = post(&engine, bob, "hey @cat").await;
    assert_eq!(kinds(&engine, cat, s).await, [NotificationKind::Mention]);
    let edit = |content: &str| FeedCommand::EditPost {
        post: p2,
        content: content.into(),
        media_ids: None,
    };
    let dropped = run(&engine, bob, edit("hey all")).await;
    assert_eq!(kinds(&engine, cat, dropped.seq).await, []);
    let named = run(&engine, bob, edit("hey again @cat")).await;
    let page = engine
        .notifications(cat, None, None, Some(named.seq))
        .await
        .unwrap();
    assert_eq!(page.notifications.len(), 1);
    assert_eq!(page.notifications[0].seq, named.seq);
    assert_eq!(page.notifications[0].post, Some(p2));
    let post = engine.post(cat, p2, None).await.unwrap();
    assert_eq!(post.content, "hey again @cat");
    assert!(post.edited_ms.is_some());

    // Deleting the post retracts its like count, comments and the mention.
    run(&engine, bob, FeedCommand::LikePost { post: p }).await;
    let deleted = run(&engine, ann, FeedCommand::DeletePost { post: p }).await;
    assert_eq!(kinds(&engine, ann, deleted.seq).await, []);
    let err = engine.post(ann, p, None).await.unwrap_err();
    assert_eq!(err.code(), "POST_NOT_FOUND");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_finds_posts_users_and_only_messages_of_my_rooms_and_replay_matches() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let ann = user(&engine, "ann").await;
    let bob = user(&engine, "bob").await;
    let (p, _) = post(&engine, ann, "the quick brown fox").await;
    let room = engine
        .execute(
            ann,
            Command::Chat(ChatCommand::CreateRoom {
                title: "foxes".into(),
                members: vec![],
            }),
        )
        .await
        .unwrap();
    let room = girok_schemas::RoomId(room.id.0);
    let sent = engine
        .execute(
            ann,
            Command::Chat(ChatCommand::SendMessage {
                room,
                body: "a secret fox den".into(),
                client_id: None,
                reply_to: None,
                attachments: Vec::new(),
            }),
        )
        .await
        .unwrap();
    let search = |who: UserId, text: &str, kind: Option<SearchKind>| {
        let engine = engine.clone();
        let text = text.to_owned();
        async move {
            engine
                .search(
                    who,
                    SearchQuery {
                        text,
                        kind,
                        after: Some(sent.seq),
                        ..SearchQuery::default()
                    },
                )
                .await
                .unwrap()
                .results
        }
    };
    let mine = search(ann, "fox", None).await;
    assert_eq!(mine.len(), 2, "{mine:?}");
    let theirs = search(bob, "fox", None).await;
    assert_eq!(theirs.len(), 1, "bob is not in the room: {theirs:?}");
    assert!(matches!(&theirs[0], SearchResult::Post(post) if post.id == p));
    let users = search(bob, "ann", Some(SearchKind::User)).await;
    assert!(matches!(&users[..], [SearchResult::User(u)] if u.id == ann));

    // Edits and deletes reach the index.
    let edit = run(
        &engine,
        ann,
        FeedCommand::EditPost {
            post: p,
            content: "a lazy dog".into(),
            media_ids: Some(vec![]),
        },
    )
    .await;
    let found = engine
        .search(
            bob,
            SearchQuery {
                text: "dog".into(),
                after: Some(edit.seq),
                ..SearchQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.results.len(), 1);
    let bad = engine
        .search(
            bob,
            SearchQuery {
                text: "   ".into(),
                ..SearchQuery::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code(), "INVALID_ARGUMENT");

    // Replay gives the same views and index.
    let head = engine.head();
    let live = engine.summaries_at(head).await.unwrap();
    engine.shutdown().await;
    drop(engine);
    let log = Offline::open(dir.path()).unwrap();
    let options = ReplayOptions::new(2);
    let report = tokio::task::spawn_blocking(move || log.replay(options, |_, _| {}).unwrap())
        .await
        .unwrap();
    assert_eq!(report.views, live);
    assert!(
        live.iter()
            .any(|v| v.name == "search" && v.digest.entries == 4)
    );
}

/// A steady trickle of posts is committed to the search index at most every `COMMIT_EVERY`
/// (each commit is a new segment, its merges and a dozen fsyncs), not at every poll of the
/// log, and every post is searchable in the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickle_of_documents_commits_the_index_at_most_every_commit_interval() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    engine.register_metrics(&mut registry);
    let commits = || {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix("girok_search_commits "))
            .expect("the commit count is exported")
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let ann = user(&engine, "ann").await;
    // Settled: the registration's commit is behind us.
    let settled = engine
        .search(
            ann,
            SearchQuery {
                text: "ann".into(),
                after: Some(engine.head()),
                ..SearchQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(settled.results.len(), 1);
    let before = commits();
    let started = std::time::Instant::now();
    let mut last = 0;
    // One post every 10 ms: the indexer (polling every 50 ms) is caught up at each poll.
    for n in 0..100 {
        last = post(&engine, ann, &format!("trickle number{n}")).await.1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let found = engine
        .search(
            ann,
            SearchQuery {
                text: "trickle".into(),
                after: Some(last),
                limit: Some(100),
                ..SearchQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.results.len(), 100);
    let elapsed = started.elapsed();
    let made = commits() - before;
    let most =
        elapsed.as_millis() as u64 / girok_engine::search::COMMIT_EVERY.as_millis() as u64 + 1;
    assert!(
        (1..=most).contains(&made),
        "{made} commits in {elapsed:?}: at most one per {:?}",
        girok_engine::search::COMMIT_EVERY
    );
    engine.shutdown().await;
}

/// What a reader sees of the feed: home timeline, notifications, follow counts and lists.
async fn seen(engine: &Engine, reader: UserId, after: Seq) -> String {
    let home = engine
        .timeline(reader, None, Some(100), Some(after))
        .await
        .unwrap();
    let notes = engine
        .notifications(reader, None, Some(100), Some(after))
        .await
        .unwrap();
    let counts = engine.follow_counts(reader).await.unwrap();
    let followers = engine
        .followers(reader, None, Some(100), None)
        .await
        .unwrap();
    let following = engine
        .following(reader, None, Some(100), None)
        .await
        .unwrap();
    format!(
        "{:?}\n{:?} unread {}\n{counts:?}\n{:?}\n{:?}",
        home.posts, notes.notifications, notes.unread_count, followers.edges, following.edges
    )
}

/// Every view's digest rebuilt from the log alone, with this file's configuration.
async fn replayed(dir: &std::path::Path) -> Vec<girok_engine::views::ViewSummary> {
    let log = Offline::open(dir).unwrap();
    let options = ReplayOptions::new(2);
    tokio::task::spawn_blocking(move || log.replay_views(options, |_, _| {}).unwrap())
        .await
        .unwrap()
        .0
        .views
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn feed_views_restore_from_their_stored_inputs_and_equal_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    // First run: follows, posts with mentions, an edit, likes and an
    // unlike, comments and a deleted one, a deleted post, an unfollow, a read marker.
    let (names, kept_post, kept_like_post, before) = {
        let engine = Engine::open(config(dir.path())).unwrap();
        let mut names = Vec::new();
        for name in ["ann", "bob", "cat", "dan", "eve"] {
            names.push(user(&engine, name).await);
        }
        let [ann, bob, cat, dan, eve] = names[..] else {
            unreachable!()
        };
        for follower in [ann, cat, dan] {
            run(&engine, follower, FeedCommand::Follow { user: bob }).await;
        }
        run(&engine, bob, FeedCommand::Follow { user: ann }).await;
        run(&engine, eve, FeedCommand::Follow { user: ann }).await;
        let (p1, _) = post(&engine, bob, "bob says hi to @ann").await;
        let (p2, _) = post(&engine, ann, "ann one").await;
        let (p3, _) = post(&engine, ann, "ann two, soon gone").await;
        for i in 0..3 {
            post(&engine, ann, &format!("ann extra {i}")).await;
        }
        run(
            &engine,
            ann,
            FeedCommand::EditPost {
                post: p2,
                content: "ann one, edited for @cat".into(),
                media_ids: None,
            },
        )
        .await;
        for liker in [bob, cat, eve] {
            run(&engine, liker, FeedCommand::LikePost { post: p2 }).await;
        }
        run(&engine, cat, FeedCommand::UnlikePost { post: p2 }).await;
        run(&engine, dan, FeedCommand::LikePost { post: p1 }).await;
        let comment = |post, content: &str| FeedCommand::AddComment {
            post,
            content: content.into(),
        };
        run(&engine, eve, comment(p2, "nice @bob")).await;
        let gone = run(&engine, bob, comment(p2, "to be deleted")).await;
        run(
            &engine,
            bob,
            FeedCommand::DeleteComment { comment: gone.id },
        )
        .await;
        run(&engine, ann, FeedCommand::DeletePost { post: p3 }).await;
        run(&engine, dan, FeedCommand::Unfollow { user: bob }).await;
        let last = run(
            &engine,
            ann,
            FeedCommand::MarkNotificationsRead { up_to: None },
        )
        .await;
        let mut before = Vec::new();
        for reader in &names {
            before.push(seen(&engine, *reader, last.seq).await);
        }
        engine.shutdown().await;
        (names, p2, p1, before)
    };
    let [ann, bob, cat, dan, eve] = names[..] else {
        unreachable!()
    };

    // Second run: the feed views come back from their stored inputs, not from the log (a
    // second feeding of the log's facts would double them, and the digests would differ).
    {
        let engine = Engine::open(config(dir.path())).unwrap();
        let resumed = engine.views_resumed_from();
        assert_eq!(resumed, engine.head(), "a clean stop checkpoints the head");
        for (reader, was) in names.iter().zip(&before) {
            assert_eq!(&seen(&engine, *reader, resumed).await, was);
        }
        let live = engine.summaries_at(resumed).await.unwrap();
        // Then the log moves on past the checkpoint: restored facts are retracted (an unlike,
        // a deleted post, an unfollow) and new ones join them (follows, a post, a like).
        run(&engine, eve, FeedCommand::UnlikePost { post: kept_post }).await;
        run(
            &engine,
            dan,
            FeedCommand::UnlikePost {
                post: kept_like_post,
            },
        )
        .await;
        run(&engine, eve, FeedCommand::Follow { user: bob }).await;
        run(&engine, cat, FeedCommand::Unfollow { user: bob }).await;
        run(&engine, dan, FeedCommand::Follow { user: bob }).await;
        post(&engine, bob, "bob again, @eve").await;
        run(
            &engine,
            bob,
            FeedCommand::DeletePost {
                post: kept_like_post,
            },
        )
        .await;
        let last = run(&engine, cat, FeedCommand::LikePost { post: kept_post }).await;
        for reader in [ann, bob, cat, dan, eve] {
            seen(&engine, reader, last.seq).await;
        }
        let moved = engine.summaries_at(last.seq).await.unwrap();
        engine.shutdown().await;
        drop(engine);
        assert_ne!(live, moved);
        assert_eq!(
            replayed(dir.path()).await,
            moved,
            "restored views equal a replay"
        );
    }

    // Third run: the inputs written after the restore add up to the checkpoint's digest, so
    // the views resume again.
    {
        let engine = Engine::open(config(dir.path())).unwrap();
        assert_eq!(engine.views_resumed_from(), engine.head());
        engine.shutdown().await;
    }

    // Fourth run: stored inputs that do not add up to the checkpoint's digest (a row lost) are
    // not served: every view is built from the log again, to the replay's digests.
    {
        let disk = girok_storage::ViewStore::open(
            &dir.path().join(girok_engine::VIEWS_DIR),
            1 << 20,
            |_| {},
        )
        .unwrap();
        let mut first = None;
        let mut follows = 0;
        disk.for_each(girok_storage::ViewTable::FeedInput, |key, _| {
            first.get_or_insert_with(|| key.to_vec());
            // A follow's row starts with its kind, 4: follows are not stored.
            follows += usize::from(key.first() == Some(&4));
            Ok(())
        })
        .unwrap();
        assert_eq!(follows, 0, "follows are not among the stored inputs");
        let lost =
            girok_storage::ViewWrite::Delete(girok_storage::ViewTable::FeedInput, first.unwrap());
        disk.write(&[lost], true).unwrap();
        disk.flush().unwrap();
    }
    let engine = Engine::open(config(dir.path())).unwrap();
    assert_eq!(engine.views_resumed_from(), 0, "rebuilt from the log");
    let head = engine.head();
    let live = engine.summaries_at(head).await.unwrap();
    engine.shutdown().await;
    drop(engine);
    assert_eq!(replayed(dir.path()).await, live);
}

/// `reader`'s whole home timeline paged `page` at a time, newest first.
async fn home_pages(engine: &Engine, reader: UserId, page: usize, after: Seq) -> Vec<Seq> {
    let mut seqs = Vec::new();
    let mut cursor = None;
    loop {
        let found = engine
            .timeline(reader, cursor, Some(page), Some(after))
            .await
            .unwrap();
        assert!(found.posts.len() <= page);
        seqs.extend(found.posts.iter().map(|p| p.seq));
        match found.next_cursor {
            Some(next) => cursor = Some(next),
            None => return seqs,
        }
    }
}

/// What `reader`'s home timeline must show: every live post of the reader and of whom they
/// follow, newest first, read from the authors' own timelines.
async fn expected_home(
    engine: &Engine,
    reader: UserId,
    follows: &[UserId],
    after: Seq,
) -> Vec<Seq> {
    let mut seqs = Vec::new();
    for author in follows.iter().chain([&reader]) {
        let page = engine
            .user_timeline(reader, *author, None, Some(100), Some(after))
            .await
            .unwrap();
        seqs.extend(page.posts.iter().map(|p| p.seq));
    }
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_home_timeline_pages_exactly_its_authors_posts_through_follows_and_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let mut users = Vec::new();
    for name in ["ann", "bob", "cat", "dan", "eve"] {
        users.push(user(&engine, name).await);
    }
    let [ann, bob, cat, dan, eve] = users[..] else {
        unreachable!()
    };
    // Dan and eve post before anyone follows them: a later follow brings their older posts.
    let mut dans = Vec::new();
    for i in 0..4 {
        dans.push(post(&engine, dan, &format!("dan {i}")).await.0);
        post(&engine, eve, &format!("eve {i}")).await;
    }
    run(&engine, ann, FeedCommand::Follow { user: bob }).await;
    run(&engine, ann, FeedCommand::Follow { user: cat }).await;
    let mut bobs = Vec::new();
    let mut last = 0;
    for i in 0..5 {
        bobs.push(post(&engine, bob, &format!("bob {i}")).await.0);
        last = post(&engine, cat, &format!("cat {i}")).await.1;
        if i % 2 == 0 {
            last = post(&engine, ann, &format!("ann {i}")).await.1;
        }
    }
    let check = |follows: Vec<UserId>, after: Seq| {
        let engine = &engine;
        async move {
            let expected = expected_home(engine, ann, &follows, after).await;
            for page in [1, 2, 5, 100] {
                assert_eq!(
                    home_pages(engine, ann, page, after).await,
                    expected,
                    "page {page}"
                );
            }
            expected.len()
        }
    };
    assert_eq!(check(vec![bob, cat], last).await, 13);

    // An unfollow takes all of cat's posts out; a follow brings all of dan's; deleted posts
    // are gone; a post lands on top.
    run(&engine, ann, FeedCommand::Unfollow { user: cat }).await;
    run(&engine, ann, FeedCommand::Follow { user: dan }).await;
    run(&engine, bob, FeedCommand::DeletePost { post: bobs[0] }).await;
    run(&engine, dan, FeedCommand::DeletePost { post: dans[3] }).await;
    let last = post(&engine, bob, "bob on top").await.1;
    assert_eq!(check(vec![bob, dan], last).await, 11);

    // Eve, followed by everyone: her posts among the others'.
    for follower in [bob, cat, dan] {
        run(&engine, follower, FeedCommand::Follow { user: eve }).await;
    }
    let last = run(&engine, ann, FeedCommand::Follow { user: eve })
        .await
        .seq;
    assert_eq!(check(vec![bob, dan, eve], last).await, 15);

    // Replay equals live.
    let live = engine.summaries_at(engine.head()).await.unwrap();
    engine.shutdown().await;
    drop(engine);
    assert_eq!(replayed(dir.path()).await, live);
}
