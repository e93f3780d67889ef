//! `read-data`: writes the read benchmark's data set into a data directory through the engine
//! (in-process, durable, every invariant checked): users, a follow graph with log-normal
//! out-degrees (mean 50) and Zipf popularity plus one author everyone follows, posts by Zipf
//! authors, likes and comments on Zipf-chosen posts, and group rooms with message histories.
//! Passwords are hashed once and the hash reused (`Engine::register_prehashed`): the log is
//! the one `register` would write, without 40 ms of argon2 per account. `read-load` then reads
//! the data over HTTP from a `girok serve` started on the directory (scripts/read-load.sh).

use anyhow::{Context, ensure};
use futures::StreamExt;
use girok_engine::accounts::Registration;
use girok_engine::feed::FeedCommand;
use girok_engine::{ChatCommand, Command, Engine, EngineConfig};
use girok_schemas::{EventId, RoomId, UserId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Every generated account's password (`read-load` signs in with it).
pub const PASSWORD: &str = "read bench password";

/// The username of generated user `index` (user 0 is the author everyone follows).
pub fn username(index: usize) -> String {
    format!("reader{index}")
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The data directory to fill (must not hold a log yet).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Users.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Mean number of accounts a user follows (log-normal, besides user 0).
    #[arg(long, default_value_t = 50)]
    pub mean_follows: usize,
    /// Posts.
    #[arg(long, default_value_t = 200_000)]
    pub posts: usize,
    /// Likes (distinct user and post pairs).
    #[arg(long, default_value_t = 1_000_000)]
    pub likes: usize,
    /// Comments.
    #[arg(long, default_value_t = 200_000)]
    pub comments: usize,
    /// Members per group room (users are grouped in order: 0..size, size..2*size, ...).
    #[arg(long, default_value_t = 10)]
    pub room_size: usize,
    /// Chat messages, spread over the rooms.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Commands in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Seed of the generator (the same seed gives the same data shape).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct Figures {
    users: usize,
    follows: usize,
    posts: usize,
    likes: usize,
    comments: usize,
    rooms: usize,
    messages: usize,
    head_seq: u64,
    seconds: f64,
}

/// Draws ranks 0..n with probability proportional to 1 / (rank + 1)^s.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n.max(1))
            .map(|rank| {
                total += 1.0 / ((rank + 1) as f64).powf(s);
                total
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut StdRng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let target = rng.random::<f64>() * total;
        self.cumulative
            .partition_point(|&c| c < target)
            .min(self.cumulative.len() - 1)
    }
}

/// A log-normal draw with the given mean and a shape of 1 (a long tail of heavy followers).
fn log_normal(rng: &mut StdRng, mean: f64) -> f64 {
    let sigma = 1.0_f64;
    let mu = mean.max(1.0).ln() - sigma * sigma / 2.0;
    // Box-Muller.
    let (u1, u2) = (
        rng.random::<f64>().max(f64::MIN_POSITIVE),
        rng.random::<f64>(),
    );
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (mu + sigma * z).exp()
}

const WORDS: &[&str] = &[
    "streaming",
    "dataflow",
    "coffee",
    "morning",
    "weekend",
    "music",
    "garden",
    "river",
    "city",
    "train",
    "photo",
    "sunset",
    "recipe",
    "book",
    "match",
    "game",
    "code",
    "rust",
    "walk",
    "friends",
    "summer",
    "rain",
    "mountain",
    "concert",
    "movie",
    "night",
    "market",
    "bread",
];

fn sentence(rng: &mut StdRng, words: std::ops::Range<usize>) -> String {
    let count = rng.random_range(words);
    (0..count)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `commands` with at most `concurrency` in flight; any rejection is an error (the
/// generator only asks for what the rules allow). Returns the ids the acks carry, in order.
async fn execute_all(
    engine: &Arc<Engine>,
    commands: Vec<(UserId, Command)>,
    concurrency: usize,
) -> anyhow::Result<Vec<EventId>> {
    let answers: Vec<_> = futures::stream::iter(commands)
        .map(|(actor, command)| {
            let engine = engine.clone();
            async move { engine.execute(actor, command).await }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    answers
        .into_iter()
        .map(|answer| {
            answer
                .map(|ack| ack.id)
                .context("a generated command was refused")
        })
        .collect()
}

pub fn run(args: &Args) -> anyhow::Result<Figures> {
    ensure!(
        (3..=1_000_000).contains(&args.users),
        "--users: 3 to 1,000,000"
    );
    ensure!(
        (2..=1_000).contains(&args.room_size),
        "--room-size: 2 to 1,000 (a room's member limit)"
    );
    ensure!(
        (1..=1_000).contains(&args.mean_follows),
        "--mean-follows: 1 to 1,000"
    );
    ensure!(
        args.users * args.mean_follows <= 50_000_000,
        "--users × --mean-follows: at most 50,000,000 follows"
    );
    for (name, value) in [
        ("--posts", args.posts),
        ("--likes", args.likes),
        ("--comments", args.comments),
        ("--messages", args.messages),
    ] {
        ensure!(value <= 50_000_000, "{name}: at most 50,000,000");
    }
    let queue = girok_engine::WriterConfig::default().queue;
    ensure!(
        (1..=queue).contains(&args.concurrency),
        "--concurrency: 1 to {queue} (the writer's queue: more would be refused as overloaded)"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(generate(args))
}

async fn generate(args: &Args) -> anyhow::Result<Figures> {
    let started = Instant::now();
    let engine = Engine::open(EngineConfig::new(&args.data_dir)).context("open engine")?;
    ensure!(
        engine.head() == 0,
        "{} already holds a log (head {}): read-data fills a fresh directory",
        args.data_dir.display(),
        engine.head()
    );
    let mut rng = StdRng::seed_from_u64(args.seed);
    let phase = |name: &str, count: usize, since: Instant| {
        println!(
            "  {name:<9} {count:>9} in {:>6.1} s",
            since.elapsed().as_secs_f64()
        );
    };

    let since = Instant::now();
    let hash = engine.passwords().hash(PASSWORD.into()).await?;
    let registrations: Vec<_> = futures::stream::iter(0..args.users)
        .map(|i| {
            let (engine, hash) = (engine.clone(), hash.clone());
            async move {
                let registration = Registration {
                    username: username(i),
                    email: format!("{}@bench.example", username(i)),
                    password: String::new(),
                    display_name: format!("Reader {i}"),
                };
                engine.register_prehashed(registration, hash).await
            }
        })
        .buffered(args.concurrency.max(1))
        .collect()
        .await;
    let users: Vec<UserId> = registrations
        .into_iter()
        .map(|r| r.map(|user| user.id))
        .collect::<Result<_, _>>()?;
    phase("users", users.len(), since);

    let since = Instant::now();
    let popularity = Zipf::new(args.users, 1.0);
    let mut follows = Vec::new();
    for (i, &user) in users.iter().enumerate().skip(1) {
        follows.push((user, users[0]));
        let wanted = (log_normal(&mut rng, args.mean_follows as f64).round() as usize)
            .clamp(1, args.users - 2);
        let mut chosen = HashSet::new();
        let mut attempts = 0;
        while chosen.len() < wanted && attempts < wanted * 20 {
            attempts += 1;
            let other = popularity.sample(&mut rng);
            if other != i && other != 0 && chosen.insert(other) {
                follows.push((user, users[other]));
            }
        }
    }
    let follow_count = follows.len();
    let commands = follows
        .into_iter()
        .map(|(user, other)| (user, Command::Feed(FeedCommand::Follow { user: other })))
        .collect();
    execute_all(&engine, commands, args.concurrency).await?;
    phase("follows", follow_count, since);

    let since = Instant::now();
    let commands = (0..args.posts)
        .map(|_| {
            let author = users[popularity.sample(&mut rng)];
            let content = sentence(&mut rng, 12..28);
            let post = FeedCommand::CreatePost {
                content,
                media_ids: Vec::new(),
            };
            (author, Command::Feed(post))
        })
        .collect();
    let posts = execute_all(&engine, commands, args.concurrency).await?;
    phase("posts", posts.len(), since);

    let since = Instant::now();
    let post_popularity = Zipf::new(posts.len(), 0.8);
    // Newer posts are more popular: rank 0 is the newest.
    let pick_post = |rng: &mut StdRng| posts[posts.len() - 1 - post_popularity.sample(rng)];
    let mut liked = HashSet::with_capacity(args.likes.min(posts.len() * users.len()));
    let mut attempts = 0;
    while liked.len() < args.likes && attempts < args.likes * 4 && !posts.is_empty() {
        attempts += 1;
        liked.insert((pick_post(&mut rng), users[rng.random_range(0..users.len())]));
    }
    let like_count = liked.len();
    let commands = liked
        .into_iter()
        .map(|(post, user)| (user, Command::Feed(FeedCommand::LikePost { post })))
        .collect();
    execute_all(&engine, commands, args.concurrency).await?;
    phase("likes", like_count, since);

    let since = Instant::now();
    let commands = (0..if posts.is_empty() { 0 } else { args.comments })
        .map(|_| {
            let comment = FeedCommand::AddComment {
                post: pick_post(&mut rng),
                content: sentence(&mut rng, 4..12),
            };
            (
                users[rng.random_range(0..users.len())],
                Command::Feed(comment),
            )
        })
        .collect();
    let comments = execute_all(&engine, commands, args.concurrency).await?;
    phase("comments", comments.len(), since);

    let since = Instant::now();
    let groups: Vec<&[UserId]> = users.chunks(args.room_size).collect();
    let commands = groups
        .iter()
        .enumerate()
        .map(|(i, members)| {
            let room = Command::Chat(ChatCommand::CreateRoom {
                title: format!("room {i}"),
                members: members[1..].to_vec(),
            });
            (members[0], room)
        })
        .collect();
    let rooms: Vec<RoomId> = execute_all(&engine, commands, args.concurrency)
        .await?
        .into_iter()
        .map(|id| RoomId(id.0))
        .collect();
    let commands = (0..args.messages)
        .map(|_| {
            let group = rng.random_range(0..groups.len());
            let sender = groups[group][rng.random_range(0..groups[group].len())];
            let send = Command::Chat(ChatCommand::SendMessage {
                room: rooms[group],
                body: sentence(&mut rng, 4..16),
                client_id: None,
                reply_to: None,
                attachments: Vec::new(),
            });
            (sender, send)
        })
        .collect();
    let messages = execute_all(&engine, commands, args.concurrency).await?;
    phase("messages", messages.len(), since);

    let head = engine.head();
    // A large follow graph keeps the feed views busy well past a read's wait: wait in turns.
    let deadline = Instant::now() + std::time::Duration::from_secs(3600);
    while let Err(error) = engine.wait_for_views(Some(head)).await {
        ensure!(Instant::now() < deadline, "{error}");
    }
    // And the search index, so that a server started on the data does not index its tail first.
    while let Err(error) = engine.wait_for_search(Some(head)).await {
        ensure!(Instant::now() < deadline, "{error}");
    }
    engine.shutdown().await;
    let figures = Figures {
        users: users.len(),
        follows: follow_count,
        posts: posts.len(),
        likes: like_count,
        comments: comments.len(),
        rooms: rooms.len(),
        messages: messages.len(),
        head_seq: head,
        seconds: started.elapsed().as_secs_f64(),
    };
    println!(
        "read-data: {} events in {:.0} s into {}",
        head,
        figures.seconds,
        args.data_dir.display()
    );
    Ok(figures)
}
