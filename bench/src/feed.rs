//! `feed`: users follow each other (plus one popular author everyone follows), then concurrent
//! submitters post through the engine (in-process). Prints durable posts/s, how long after its
//! ack a post is in its followers' timelines (p50/p99), and the latency of reading a home
//! timeline page (a merge of the followed authors' profile timelines) for a reader who follows
//! one author against one who follows many, measured in the same run (the ratio is the cost of
//! merging more authors).

use crate::report::Latency;
use anyhow::Context;
use girok_engine::accounts::Registration;
use girok_engine::feed::FeedCommand;
use girok_engine::{Command, Engine, EngineConfig};
use girok_schemas::UserId;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Users (registration hashes a password each: ~40 ms per user per core).
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Whom each user follows (besides the popular author).
    #[arg(long, default_value_t = 50)]
    follows: usize,
    /// Posts to write in total.
    #[arg(long, default_value_t = 20_000)]
    posts: usize,
    /// Concurrent submitters.
    #[arg(long, default_value_t = 64)]
    submitters: usize,
    /// Timeline pages read per reader kind.
    #[arg(long, default_value_t = 2_000)]
    reads: usize,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    users: usize,
    follows_per_user: usize,
    posts: usize,
    durable_posts_per_sec: f64,
    /// From the first post to every post in the views.
    in_views_posts_per_sec: f64,
    post_ack_latency: Latency,
    visible_in_timelines_after_ack: Latency,
    timeline_page_one_author: Latency,
    timeline_page_many_authors: Latency,
    ratio_many_to_one_p50: f64,
}

/// A small deterministic generator (no dependency needed for spreading load).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

pub fn run(args: &Args) -> anyhow::Result<Figures> {
    let temp = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = EngineConfig::new(temp.path().join("engine"));
        let engine = Engine::open(config).context("open engine")?;
        let users = args.users.max(3);
        println!(
            "feed: {users} users following {} each and one popular author, {} posts by {} submitters",
            args.follows, args.posts, args.submitters
        );
        let mut ids = Vec::with_capacity(users);
        for i in 0..users {
            let user = engine
                .register(Registration {
                    username: format!("user{i}"),
                    email: format!("user{i}@bench.example"),
                    password: "bench password".into(),
                    display_name: format!("User {i}"),
                })
                .await?;
            ids.push(user.id);
        }
        // users[0] is the popular author: everyone follows them. users[1] follows only them;
        // users[2] follows only ordinary authors.
        let popular = ids[0];
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut last = 0;
        for (i, &user) in ids.iter().enumerate().skip(1) {
            if i != 2 {
                last = follow(&engine, user, popular).await?;
            }
            if i == 1 {
                continue;
            }
            let mut followed = std::collections::HashSet::new();
            while followed.len() < args.follows.min(users - 3) {
                let other = ids[3 + (next(&mut rng) as usize % (users - 3))];
                if other != user && followed.insert(other) {
                    last = follow(&engine, user, other).await?;
                }
            }
        }
        engine.wait_for_views(Some(last)).await?;

        let ids = Arc::new(ids);
        let per_task = args.posts / args.submitters.max(1);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..args.submitters.max(1) {
            let (engine, ids) = (engine.clone(), ids.clone());
            tasks.push(tokio::spawn(async move {
                let mut acks = Histogram::<u64>::new(3)?;
                let mut visible = Histogram::<u64>::new(3)?;
                let mut rng = 0x2545_f491_4f6c_dd1d_u64 ^ (t as u64 + 1);
                for i in 0..per_task {
                    // One post in a hundred is the popular author's.
                    let author = if i % 100 == 0 {
                        ids[0]
                    } else {
                        ids[3 + (next(&mut rng) as usize % (ids.len() - 3))]
                    };
                    let sent = Instant::now();
                    let ack = engine
                        .execute(
                            author,
                            Command::Feed(FeedCommand::CreatePost {
                                content: format!("post {t}-{i} about streaming"),
                                media_ids: Vec::new(),
                            }),
                        )
                        .await?;
                    let acked = sent.elapsed();
                    acks.record(acked.as_micros() as u64)?;
                    // Every tenth post: how long until the timelines reflect it.
                    if i % 10 == 0 {
                        engine.wait_for_views(Some(ack.seq)).await?;
                        visible.record((sent.elapsed() - acked).as_micros() as u64)?;
                    }
                }
                anyhow::Ok((acks, visible))
            }));
        }
        let mut acks = Histogram::<u64>::new(3)?;
        let mut visible = Histogram::<u64>::new(3)?;
        for task in tasks {
            let (a, v) = task.await??;
            acks.add(a)?;
            visible.add(v)?;
        }
        let acked_in = started.elapsed();
        let head = engine.head();
        engine.wait_for_views(Some(head)).await?;
        let in_views = started.elapsed();
        let posts = per_task * args.submitters.max(1);

        let one = read_pages(&engine, ids[1], args.reads).await?;
        let many = read_pages(&engine, ids[2], args.reads).await?;
        engine.shutdown().await;

        let figures = Figures {
            users,
            follows_per_user: args.follows,
            posts,
            durable_posts_per_sec: posts as f64 / acked_in.as_secs_f64(),
            in_views_posts_per_sec: posts as f64 / in_views.as_secs_f64(),
            post_ack_latency: Latency::of(&acks),
            visible_in_timelines_after_ack: Latency::of(&visible),
            ratio_many_to_one_p50: many.value_at_quantile(0.5) as f64
                / one.value_at_quantile(0.5).max(1) as f64,
            timeline_page_one_author: Latency::of(&one),
            timeline_page_many_authors: Latency::of(&many),
        };
        println!("durable posts:             {:>10.0} posts/s", figures.durable_posts_per_sec);
        println!("in the views:              {:>10.0} posts/s", figures.in_views_posts_per_sec);
        println!("post ack latency:          {}", figures.post_ack_latency);
        println!("in timelines after ack:    {}", figures.visible_in_timelines_after_ack);
        println!("home page, following 1:    {}", figures.timeline_page_one_author);
        println!(
            "home page, following {:<4} {}",
            format!("{}:", args.follows.min(users - 3)),
            figures.timeline_page_many_authors
        );
        println!(
            "ratio many / one p50:      {:>10.2}",
            figures.ratio_many_to_one_p50
        );
        Ok(figures)
    })
}

async fn follow(engine: &Engine, user: UserId, other: UserId) -> anyhow::Result<u64> {
    let ack = engine
        .execute(user, Command::Feed(FeedCommand::Follow { user: other }))
        .await?;
    Ok(ack.seq)
}

/// `reads` first pages (20 posts, bodies included) of `reader`'s home timeline.
async fn read_pages(
    engine: &Engine,
    reader: UserId,
    reads: usize,
) -> anyhow::Result<Histogram<u64>> {
    let mut latency = Histogram::<u64>::new(3)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    for _ in 0..reads {
        let started = Instant::now();
        let page = engine.timeline(reader, None, Some(20), None).await?;
        anyhow::ensure!(!page.posts.is_empty(), "an empty timeline measures nothing");
        latency.record(started.elapsed().as_micros() as u64)?;
        if Instant::now() > deadline {
            break;
        }
    }
    Ok(latency)
}
