//! The pipeline thread: tails the log from seq 1, turns every event into its audit row and
//! feeds it to the rollup dataflow (one timely worker, each event at its own seq), and hands
//! the shipper one [`Batch`] per chunk: every row caused by seqs `first..=last`. A bounded
//! channel carries the batches, so while ClickHouse is away the pipeline waits instead of
//! growing memory; the log keeps everything.

use crate::rollups::{RollupInputs, RollupKey};
use crate::rows::{AuditRow, RollupRow};
use girok_engine::{LogSource, Tailer};
use girok_schemas::{Event, Seq};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use timely::dataflow::ProbeHandle;
use tokio::sync::mpsc;

/// Events read per step.
const CHUNK: usize = 4096;
/// How often a caught-up pipeline looks at the log head.
const POLL: Duration = Duration::from_millis(20);

/// Where the pipeline reads the log: the engine's output interface, served by the running
/// engine (`Engine`) or a data directory no server uses (`Offline`, for a rebuild).
pub trait EventSource: LogSource<Entry = Event> + Send + Sync + 'static {}

impl<T: LogSource<Entry = Event> + Send + Sync + 'static> EventSource for T {}

/// Every row caused by the events `first..=last`.
#[derive(Debug, Default)]
pub struct Batch {
    pub first: Seq,
    pub last: Seq,
    /// Commit time of `last`.
    pub last_time_ms: i64,
    pub audit: Vec<AuditRow>,
    /// Diffs per rollup (in `Rollup::ALL` order), each in seq order.
    pub rollups: [Vec<RollupRow>; 5],
}

impl Batch {
    pub fn rows(&self) -> usize {
        self.audit.len() + self.rollups.iter().map(Vec::len).sum::<usize>()
    }

    /// Appends the next batch (`other.first == self.last + 1`).
    pub fn append(&mut self, other: Batch) {
        self.last = other.last;
        self.last_time_ms = other.last_time_ms;
        self.audit.extend(other.audit);
        for (mine, theirs) in self.rollups.iter_mut().zip(other.rollups) {
            mine.extend(theirs);
        }
    }
}

/// Runs the pipeline on its own thread until `stop`, the channel closes, or (with `until`)
/// the batch reaching that seq has been handed over. `audit_held`: the highest seq
/// `audit_events` is known to hold (the shipper raises it once it has read ClickHouse); no
/// audit row is built for what lies at or below it, so a restart over a long log does not
/// serialize every event again only for the shipper to drop it.
pub fn spawn(
    source: Arc<dyn EventSource>,
    batches: mpsc::Sender<Batch>,
    stop: Arc<AtomicBool>,
    until: Option<Seq>,
    audit_held: Arc<AtomicU64>,
) -> crate::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("girok-analytics".into())
        .spawn(move || {
            girok_engine::background::lower_priority("analytics pipeline");
            timely::execute_directly(move |worker| {
                run(worker, &*source, &batches, &stop, until, &audit_held)
            })
        })
        .map_err(|e| crate::Error::Config(format!("cannot start the analytics pipeline: {e}")))
}

fn run(
    worker: &mut timely::worker::Worker,
    source: &dyn EventSource,
    batches: &mpsc::Sender<Batch>,
    stop: &AtomicBool,
    until: Option<Seq>,
    audit_held: &AtomicU64,
) {
    let mut inputs = RollupInputs::default();
    let captured: Rc<RefCell<Vec<(RollupKey, Seq, isize)>>> = Rc::default();
    let probe = ProbeHandle::new();
    {
        let captured = captured.clone();
        let probe = probe.clone();
        worker.dataflow::<Seq, _, _>(|scope| {
            inputs
                .build(scope)
                .inspect_batch(move |_, updates| captured.borrow_mut().extend_from_slice(updates))
                .probe_with(&probe);
        });
    }
    let mut tail = Tailer::new(source, 1, until, "analytics pipeline");
    inputs.advance_to(tail.position());
    while !stop.load(Ordering::Acquire) {
        if tail.finished() {
            return;
        }
        let events = match tail.next_chunk(CHUNK) {
            Ok(events) => events,
            Err(retry) => {
                std::thread::sleep(retry.after);
                continue;
            }
        };
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            std::thread::sleep(POLL);
            continue;
        };
        let mut batch = Batch {
            first: first.seq,
            last: last.seq,
            last_time_ms: last.commit_time_ms,
            ..Batch::default()
        };
        let held = audit_held.load(Ordering::Acquire);
        for event in &events {
            if event.seq > held {
                batch.audit.push(AuditRow::of(event));
            }
            inputs.feed(event);
        }
        let next = tail.position();
        inputs.advance_to(next);
        while probe.less_than(&next) {
            worker.step();
        }
        for ((rollup, bucket, key), seq, diff) in captured.borrow_mut().drain(..) {
            batch.rollups[rollup as usize].push(RollupRow {
                bucket,
                key,
                n: diff as i64,
                seq,
            });
        }
        for rows in &mut batch.rollups {
            rows.sort_by_key(|row| row.seq);
        }
        if batches.blocking_send(batch).is_err() {
            return;
        }
    }
}
