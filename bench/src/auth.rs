//! `auth`: token verifications per second (one thread), logins per second (argon2id on the
//! bounded pool), and chat-send latency alone and during a login burst, all in-process on one
//! engine, measured in the same run.

use crate::report::Latency;
use girok_engine::accounts::{ClientInfo, Registration};
use girok_engine::{ChatCommand, Command, Engine, EngineConfig};
use girok_frontends::auth::keys;
use girok_frontends::auth::tokens::Tokens;
use girok_schemas::{RoomId, SessionId, UserId};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Logins in the burst.
    #[arg(long, default_value_t = 200)]
    logins: usize,
    /// Concurrent login clients.
    #[arg(long, default_value_t = 32)]
    login_clients: usize,
    /// Token verifications to time.
    #[arg(long, default_value_t = 200_000)]
    verifications: usize,
    /// Chat senders running during both latency phases.
    #[arg(long, default_value_t = 8)]
    chat_senders: usize,
    /// Length of each chat latency phase, seconds.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Password hashing threads (default: cores - 1).
    #[arg(long)]
    password_threads: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    token_verifications_per_sec: f64,
    /// Checks of a token verified before (the verified-token cache).
    cached_token_checks_per_sec: f64,
    logins_per_sec: f64,
    login_latency: Latency,
    password_pool_threads: usize,
    chat_send_alone: Latency,
    chat_sends_alone: u64,
    chat_send_during_login_burst: Latency,
    chat_sends_during_burst: u64,
    p99_ratio_burst_to_alone: f64,
}

pub fn run(args: &Args) -> anyhow::Result<Figures> {
    let temp = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    // Verifications: one thread, our real token code.
    let key_file = keys::load_or_create(temp.path())?;
    let tokens = Tokens::new(&key_file, "girok", "girok", 900, 1024)?;
    let token = tokens.issue(UserId::new_v7(), SessionId::new_v7())?;
    let rate = |check: &dyn Fn() -> bool| -> anyhow::Result<f64> {
        let started = Instant::now();
        for _ in 0..args.verifications {
            anyhow::ensure!(check(), "a valid token was refused");
        }
        Ok(args.verifications as f64 / started.elapsed().as_secs_f64())
    };
    let verifications_per_sec = rate(&|| tokens.verify_signed(&token).is_some())?;
    println!("token verification:        {verifications_per_sec:>10.0} /s (1 thread, EdDSA)");
    let cached_token_checks_per_sec = rate(&|| tokens.verify(&token).is_some())?;
    println!(
        "token check, verified once:{cached_token_checks_per_sec:>10.0} /s (1 thread, cached)"
    );

    runtime.block_on(async {
        let mut config = EngineConfig::new(temp.path().join("engine"));
        if let Some(threads) = args.password_threads {
            config.password_threads = threads;
        }
        let threads = config.password_threads;
        let engine = Engine::open(config)?;
        engine
            .register(Registration {
                username: "bench".into(),
                email: "bench@example.org".into(),
                password: "bench password".into(),
                display_name: "Bench".into(),
            })
            .await?;
        let sender = UserId::new_v7();
        let room = RoomId(
            engine
                .execute(
                    sender,
                    Command::Chat(ChatCommand::CreateRoom {
                        title: "bench".into(),
                        members: Vec::new(),
                    }),
                )
                .await?
                .id
                .0,
        );
        let phase = Duration::from_secs(args.seconds.max(1));

        let (alone, alone_count) =
            chat_latency(&engine, sender, room, args.chat_senders, phase, None).await?;
        println!("chat send alone:           {alone} ({alone_count} sends)");

        let burst_done = Arc::new(AtomicBool::new(false));
        let burst = {
            let (engine, done) = (engine.clone(), burst_done.clone());
            let (logins, clients) = (args.logins, args.login_clients.max(1));
            tokio::spawn(async move {
                let started = Instant::now();
                let mut tasks = Vec::new();
                for c in 0..clients {
                    let engine = engine.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut histogram = Histogram::<u64>::new(3)?;
                        let client = ClientInfo {
                            ip: format!("10.0.0.{c}"),
                            user_agent: "bench".into(),
                        };
                        for _ in 0..logins / clients {
                            let t = Instant::now();
                            engine.login("bench", "bench password", &client).await?;
                            histogram.record(t.elapsed().as_micros() as u64)?;
                        }
                        anyhow::Ok(histogram)
                    }));
                }
                let mut latency = Histogram::<u64>::new(3)?;
                for task in tasks {
                    latency.add(task.await??)?;
                }
                done.store(true, Ordering::Release);
                let done_logins = (logins / clients) * clients;
                anyhow::Ok((
                    done_logins as f64 / started.elapsed().as_secs_f64(),
                    latency,
                ))
            })
        };
        let (during, during_count) = chat_latency(
            &engine,
            sender,
            room,
            args.chat_senders,
            phase,
            Some(&burst_done),
        )
        .await?;
        let (logins_per_sec, login_latency) = burst.await??;
        println!(
            "logins:                    {logins_per_sec:>10.1} /s ({threads} hashing threads)"
        );
        println!("login latency:             {}", Latency::of(&login_latency));
        println!("chat send during burst:    {during} ({during_count} sends)");
        let ratio = during.p99_us as f64 / alone.p99_us.max(1) as f64;
        println!("chat p99 burst / alone:    {ratio:>10.2}");
        engine.shutdown().await;
        Ok(Figures {
            token_verifications_per_sec: verifications_per_sec,
            cached_token_checks_per_sec,
            logins_per_sec,
            login_latency: Latency::of(&login_latency),
            password_pool_threads: threads,
            chat_send_alone: alone,
            chat_sends_alone: alone_count,
            chat_send_during_login_burst: during,
            chat_sends_during_burst: during_count,
            p99_ratio_burst_to_alone: ratio,
        })
    })
}

/// Chat sends from `senders` tasks for `phase` (or, with `until`, until it is set and at
/// least `phase` has passed); returns their latency and count.
async fn chat_latency(
    engine: &Arc<Engine>,
    sender: UserId,
    room: RoomId,
    senders: usize,
    phase: Duration,
    until: Option<&Arc<AtomicBool>>,
) -> anyhow::Result<(Latency, u64)> {
    let started = Instant::now();
    let until = until.cloned();
    let mut tasks = Vec::new();
    for _ in 0..senders.max(1) {
        let (engine, until) = (engine.clone(), until.clone());
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new(3)?;
            loop {
                let finished = started.elapsed() >= phase
                    && until.as_ref().is_none_or(|u| u.load(Ordering::Acquire));
                if finished {
                    return anyhow::Ok(histogram);
                }
                let t = Instant::now();
                engine
                    .execute(
                        sender,
                        Command::Chat(ChatCommand::SendMessage {
                            room,
                            body: "ping".into(),
                            client_id: None,
                            reply_to: None,
                            attachments: Vec::new(),
                        }),
                    )
                    .await?;
                histogram.record(t.elapsed().as_micros() as u64)?;
            }
        }));
    }
    let mut all = Histogram::<u64>::new(3)?;
    for task in tasks {
        all.add(task.await??)?;
    }
    Ok((Latency::of(&all), all.len()))
}
