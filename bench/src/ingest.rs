//! `ingest`: N concurrent submitters send chat messages through the engine (validation,
//! sequencer, group commit with fsync per batch, views running); in the same run, the raw
//! rate of inserting the same number of same-sized values into fjall from one thread without
//! any fsync. Prints events/s, the ratio, ack latency percentiles and the mean batch size.

use crate::report::Latency;
use anyhow::Context;
use girok_engine::Durability;
use girok_engine::{ChatCommand, Command, Engine, EngineConfig};
use girok_schemas::{RoomId, UserId};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent submitters.
    #[arg(long, default_value_t = 256)]
    submitters: usize,
    /// Messages to send in total.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Rooms the messages are spread over.
    #[arg(long, default_value_t = 64)]
    rooms: usize,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 100)]
    body_bytes: usize,
    /// `sync` (fsync per batch, the default) or `buffered`.
    #[arg(long, default_value = "sync")]
    durability: String,
    /// Dataflow workers (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Data directory for the engine (default: a fresh temp dir, removed afterwards).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    submitters: usize,
    events: usize,
    durability: String,
    durable_events_per_sec: f64,
    raw_fjall_unsynced_inserts_per_sec: f64,
    ratio_durable_to_raw: f64,
    ack_latency: Latency,
    mean_batch_size: f64,
    batches: u64,
    views_caught_up_after_ms: u64,
    encoded_event_bytes: usize,
    /// CPU seconds per thread group during the durable run, and the run's wall time.
    cpu_seconds_by_thread: std::collections::BTreeMap<String, f64>,
    wall_seconds: f64,
}

pub fn run(args: &Args) -> anyhow::Result<Figures> {
    let durability = match args.durability.as_str() {
        "sync" => Durability::Sync,
        "buffered" => Durability::Buffered,
        other => anyhow::bail!("--durability {other:?}: expected sync or buffered"),
    };
    let body = "x".repeat(args.body_bytes);
    let temp = tempfile::tempdir()?;
    let engine_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().join("engine"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    println!(
        "ingest: {} messages of {} bytes, {} submitters, {} rooms, durability {}",
        args.events, args.body_bytes, args.submitters, args.rooms, args.durability
    );
    let cpu_before = crate::cpu::by_thread();
    let (durable_rate, latency, batches, appended, catch_up, wall) = runtime.block_on(async {
        let mut config = EngineConfig::new(&engine_dir);
        config.store.durability = durability;
        if let Some(workers) = args.workers {
            config.workers = workers;
        }
        let engine = Engine::open(config).context("open engine")?;
        let actor = UserId::new_v7();
        let mut rooms = Vec::new();
        for i in 0..args.rooms.max(1) {
            let ack = engine
                .execute(
                    actor,
                    Command::Chat(ChatCommand::CreateRoom {
                        title: format!("bench {i}"),
                        members: Vec::new(),
                    }),
                )
                .await?;
            rooms.push(RoomId(ack.id.0));
        }
        let (appended_before, batches_before) = engine.writer_counters();
        let rooms = Arc::new(rooms);
        let per_task = args.events / args.submitters.max(1);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..args.submitters.max(1) {
            let (engine, rooms, body) = (engine.clone(), rooms.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let mut histogram = Histogram::<u64>::new(3)?;
                for i in 0..per_task {
                    let room = rooms[(t + i) % rooms.len()];
                    let sent = Instant::now();
                    engine
                        .execute(
                            actor,
                            Command::Chat(ChatCommand::SendMessage {
                                room,
                                body: body.clone(),
                                client_id: None,
                                reply_to: None,
                                attachments: Vec::new(),
                            }),
                        )
                        .await?;
                    histogram.record(sent.elapsed().as_micros() as u64)?;
                }
                anyhow::Ok(histogram)
            }));
        }
        let mut latency = Histogram::<u64>::new(3)?;
        for task in tasks {
            latency.add(task.await??)?;
        }
        let elapsed = started.elapsed();
        let sent = per_task * args.submitters.max(1);
        let (appended_after, batches_after) = engine.writer_counters();
        let head = engine.head();
        let caught_up = engine
            .views()
            .watermark
            .wait_for(head, Duration::from_secs(600))
            .await
            .is_ok();
        let catch_up = started.elapsed().saturating_sub(elapsed);
        anyhow::ensure!(caught_up, "views did not catch up");
        let wall = started.elapsed();
        let cpu = crate::cpu::since(&cpu_before);
        engine.shutdown().await;
        anyhow::Ok((
            sent as f64 / elapsed.as_secs_f64(),
            latency,
            batches_after - batches_before,
            appended_after - appended_before,
            catch_up,
            (wall, cpu),
        ))
    })?;
    let (wall, cpu_by_thread) = wall;

    let event_bytes = sample_event_bytes(&body);
    let raw_rate = raw_fjall_rate(&temp.path().join("raw"), args.events, event_bytes)?;
    let figures = Figures {
        submitters: args.submitters,
        events: args.events,
        durability: args.durability.clone(),
        durable_events_per_sec: durable_rate,
        raw_fjall_unsynced_inserts_per_sec: raw_rate,
        ratio_durable_to_raw: durable_rate / raw_rate,
        ack_latency: Latency::of(&latency),
        mean_batch_size: appended as f64 / batches.max(1) as f64,
        batches,
        views_caught_up_after_ms: catch_up.as_millis() as u64,
        encoded_event_bytes: event_bytes,
        cpu_seconds_by_thread: cpu_by_thread,
        wall_seconds: wall.as_secs_f64(),
    };
    println!(
        "durable ingest:            {:>10.0} events/s",
        figures.durable_events_per_sec
    );
    println!(
        "raw fjall, no fsync:       {:>10.0} inserts/s",
        figures.raw_fjall_unsynced_inserts_per_sec
    );
    println!(
        "ratio durable / raw:       {:>10.2}",
        figures.ratio_durable_to_raw
    );
    println!("ack latency:               {}", figures.ack_latency);
    println!(
        "group commit:              {} batches, {:.1} events per batch",
        figures.batches, figures.mean_batch_size
    );
    println!(
        "views caught up:           {} ms after the last ack",
        figures.views_caught_up_after_ms
    );
    println!(
        "CPU seconds by thread over {:.2} s wall ({:.2} s of CPU on 2 cores):",
        figures.wall_seconds,
        2.0 * figures.wall_seconds
    );
    for (thread, seconds) in &figures.cpu_seconds_by_thread {
        println!("  {thread:<24} {seconds:>6.2}");
    }
    Ok(figures)
}

/// The size of one encoded message event, so the raw baseline writes the same bytes.
fn sample_event_bytes(body: &str) -> usize {
    girok_schemas::encode_event(&girok_schemas::Event {
        seq: 1_000_000,
        commit_time_ms: 1_700_000_000_000,
        id: girok_schemas::EventId::new_v7(),
        actor: Some(UserId::new_v7()),
        payload: girok_schemas::Payload::MessageSent {
            room: RoomId::new_v7(),
            body: body.to_owned(),
            client_id: None,
            reply_to: None,
            attachments: Vec::new(),
        },
    })
    .len()
}

/// One thread inserting `count` values of `size` bytes under sequential big-endian keys into
/// a fresh fjall keyspace, never persisting: the rate the durable log should approach.
fn raw_fjall_rate(dir: &std::path::Path, count: usize, size: usize) -> anyhow::Result<f64> {
    let db = fjall::Database::builder(dir).open()?;
    let keyspace = db.keyspace("raw", fjall::KeyspaceCreateOptions::default)?;
    let value = vec![7u8; size];
    let started = Instant::now();
    for seq in 0..count as u64 {
        keyspace.insert(seq.to_be_bytes(), value.as_slice())?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}
