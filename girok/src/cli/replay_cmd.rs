//! `girok replay`: rebuilds the write model (users, sessions, rooms, memberships, idempotency
//! keys, matching tickets, matches and blocks) and every view from the log with a progress
//! bar, and reports events/s, the write model's digest before and after the rebuild (equal
//! when the write model is what the log says) and each view's digest (compare them with
//! `/readyz` of a server on the same log).

use super::ReplayArgs;
use crate::config::Config;
use anyhow::Context;
use girok_engine::{Offline, ReplayOptions};
use indicatif::{ProgressBar, ProgressStyle};

pub fn run(config: Config, args: ReplayArgs) -> anyhow::Result<()> {
    let engine_config = config.engine_config()?;
    let workers = args.workers.unwrap_or(engine_config.workers);
    let log = Offline::open_with(&engine_config).with_context(|| {
        format!(
            "cannot open {} (replay needs the data directory to itself: stop `girok serve` first)",
            config.storage.data_dir.display()
        )
    })?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} replaying {msg} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // The write model is rebuilt only by a full replay: cut at a past seq, it would disagree
    // with the log the next server starts on.
    let write_model = if args.to_seq.is_none() {
        bar.set_length(log.head());
        bar.set_message("write model");
        let before = log.write_model_digest()?;
        let events = log.rebuild_write_model(|done| bar.set_position(done))?;
        Some((events, before, log.write_model_digest()?))
    } else {
        None
    };
    bar.set_message("views");
    let options = ReplayOptions {
        to_seq: args.to_seq,
        workers,
    };
    let report = log.replay(options, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        if let Some((events, before, after)) = write_model {
            json["write_model_events"] = serde_json::json!(events);
            json["write_model_digest_before"] = serde_json::json!(format!("{before:016x}"));
            json["write_model_digest_after"] = serde_json::json!(format!("{after:016x}"));
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!(
            "replayed {} events up to seq {} in {:.3} s: {:.0} events/s",
            report.events,
            report.to_seq,
            report.elapsed_ms as f64 / 1000.0,
            report.events_per_sec
        );
        if let Some((events, before, after)) = write_model {
            let verdict = if before == after {
                "equal to"
            } else {
                "DIFFERENT from"
            };
            println!(
                "write model rebuilt from {events} events: digest {after:016x}, {verdict} the \
                 one before ({before:016x})"
            );
        }
        for view in &report.views {
            println!(
                "view {}: watermark {}, {} entries, digest {:016x}",
                view.name, view.watermark, view.digest.entries, view.digest.hash
            );
        }
        if report.undecodable > 0 {
            println!(
                "warning: {} log entries could not be decoded",
                report.undecodable
            );
        }
    }
    Ok(())
}
