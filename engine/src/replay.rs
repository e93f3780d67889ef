//! Replay: rebuilds every view from the log (all of it, or up to a seq) with the same dataflow
//! the live engine runs, and reports each view's digest so that the result can be compared
//! with a live engine's. The search index is rebuilt beside them and reported as the view
//! `search`.

use crate::dataflow;
use crate::search::{Indexer, SearchIndex};
use crate::views::{ViewSummary, Views};
use girok_schemas::Seq;
use girok_storage::Store;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The outcome of a replay.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    /// The seq the views were rebuilt up to.
    pub to_seq: Seq,
    /// Events replayed (the log may start after seq 1 one day; today it is `to_seq`).
    pub events: u64,
    pub elapsed_ms: u64,
    pub events_per_sec: f64,
    pub views: Vec<ViewSummary>,
    /// Entries that did not decode and were skipped.
    pub undecodable: u64,
}

/// Rebuilds the views from `store` up to `to_seq` (default: the head). `progress(done, total)`
/// is called every 10 ms.
pub fn replay(
    store: Arc<Store>,
    to_seq: Option<Seq>,
    config: dataflow::DataflowConfig,
    mut progress: impl FnMut(Seq, Seq),
) -> crate::Result<(ReplayReport, Arc<Views>)> {
    let head = store.head().get();
    let target = to_seq.map_or(head, |t| t.min(head));
    let first = store.stats()?.first_seq.unwrap_or(1);
    let views = Arc::new(Views::temporary()?);
    let started = Instant::now();
    let search = Arc::new(SearchIndex::new()?);
    let indexer = Indexer::start(store.clone(), search.clone(), Some(target))?;
    let mut flow = dataflow::start(
        store,
        views.clone(),
        config,
        Some(target),
        crate::views::Resumed::default(),
    )?;
    let joiner = std::thread::spawn(move || flow.join());
    while !joiner.is_finished() {
        progress(views.watermark.get().min(target), target);
        std::thread::sleep(Duration::from_millis(10));
    }
    if joiner.join().is_err() {
        return Err(crate::Error::Internal("replay worker panicked".into()));
    }
    indexer.join();
    let reached = views.watermark.get();
    progress(reached.min(target), target);
    if reached < target {
        return Err(crate::Error::Internal(format!(
            "replay stopped at seq {reached} before reaching {target}"
        )));
    }
    let elapsed = started.elapsed();
    let events = if target >= first {
        target - first + 1
    } else {
        0
    };
    let report = ReplayReport {
        to_seq: target,
        events,
        elapsed_ms: elapsed.as_millis() as u64,
        events_per_sec: events as f64 / elapsed.as_secs_f64().max(1e-9),
        views: {
            let mut summaries = views.summaries();
            summaries.push(ViewSummary {
                name: "search",
                watermark: search.watermark.get(),
                digest: search.digest(),
            });
            summaries
        },
        undecodable: views.undecodable(),
    };
    Ok((report, views))
}
