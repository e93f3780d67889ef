//! The pipeline thread: restores the rollup dataflow from the sink's checkpoint (or starts it
//! empty at seq 1), tails the log from there, turns every event into its audit row and feeds it
//! to the rollup dataflow (one timely worker, each event at its own seq), and hands the shipper
//! one [`Batch`] per chunk: every row caused by its events, and the checkpoint's row
//! changes. A bounded channel carries the batches, so while ClickHouse is away the pipeline
//! waits instead of growing memory; the log keeps everything.
//!
//! A checkpoint is used only if ClickHouse holds the audit rows up to it: the shipper commits a
//! checkpoint once ClickHouse holds its batch, so one past what ClickHouse holds means the
//! database was emptied or replaced since, and the pipeline then starts over from seq 1.

use crate::flow::{Restored, RollupFlow, RollupRows};
use crate::rows::AuditRow;
use crate::state::{self, StateChanges};
use girok_engine::{LogSource, SinkState, Tailer};
use girok_schemas::{Event, Seq};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Events read per step.
const CHUNK: usize = 4096;
/// How often a caught-up pipeline looks at the log head.
const POLL: Duration = Duration::from_millis(20);

/// Where the pipeline reads the log: the engine's output interface, served by the running
/// engine (`Engine`) or a data directory no server uses (`Offline`, for a rebuild).
pub trait EventSource: LogSource<Entry = Event> + Send + Sync + 'static {}

impl<T: LogSource<Entry = Event> + Send + Sync + 'static> EventSource for T {}

/// Every row caused by the events after the previous batch's, up to `last`.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub last: Seq,
    /// Commit time of `last`.
    pub last_time_ms: i64,
    pub audit: Vec<AuditRow>,
    /// Diffs per rollup (in `Rollup::ALL` order), each in seq order.
    pub rollups: RollupRows,
    /// How the checkpoint's rows change with these events.
    pub state: StateChanges,
}

impl Batch {
    pub fn rows(&self) -> usize {
        self.audit.len() + self.rollups.iter().map(Vec::len).sum::<usize>()
    }

    /// Appends the next batch (the one starting at `self.last + 1`).
    pub fn append(&mut self, other: Batch) {
        self.last = other.last;
        self.last_time_ms = other.last_time_ms;
        self.audit.extend(other.audit);
        for (mine, theirs) in self.rollups.iter_mut().zip(other.rollups) {
            mine.extend(theirs);
        }
        self.state.append(other.state);
    }
}

/// What the pipeline and the shipper tell each other besides the batches.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// The highest seq `audit_events` is known to hold (the shipper raises it once it has read
    /// ClickHouse); no audit row is built for what lies at or below it, so a restart over a
    /// long log does not serialize every event again only for the shipper to drop it.
    pub audit_held: AtomicU64,
    /// Set by the shipper once it has read what ClickHouse holds: the pipeline waits for it
    /// before it chooses where to start.
    pub clickhouse_read: AtomicBool,
    /// The checkpoint the pipeline resumed from (0: it started from seq 1).
    pub resumed_from: AtomicU64,
}

/// Everything the pipeline thread works with.
pub(crate) struct Pipeline {
    pub source: Arc<dyn EventSource>,
    pub state: Arc<SinkState>,
    pub batches: mpsc::Sender<Batch>,
    pub stop: Arc<AtomicBool>,
    /// Stop once the batch reaching this seq has been handed over (a rebuild).
    pub until: Option<Seq>,
    pub progress: Arc<Progress>,
}

impl Pipeline {
    /// Runs the pipeline on its own thread until `stop`, the channel closes, or `until`.
    pub(crate) fn spawn(self) -> crate::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("girok-analytics".into())
            .spawn(move || {
                girok_engine::background::lower_priority("analytics pipeline");
                timely::execute_directly(move |worker| self.run(worker))
            })
            .map_err(|e| crate::Error::Config(format!("cannot start the analytics pipeline: {e}")))
    }

    fn run(&self, worker: &mut timely::worker::Worker) {
        let mut flow = RollupFlow::new(worker);
        while !self.progress.clickhouse_read.load(Ordering::Acquire) {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(POLL);
        }
        let resumed = match self.checkpoint() {
            Some(restored) => {
                // The shipper hears of what the checkpoint covers as a batch without rows.
                let covered = Batch {
                    last: restored.seq,
                    last_time_ms: restored.time_ms,
                    ..Batch::default()
                };
                let seq = restored.seq;
                flow.restore(restored);
                if self.batches.blocking_send(covered).is_err() {
                    return;
                }
                seq
            }
            None => 0,
        };
        let mut tail = Tailer::new(&*self.source, resumed + 1, self.until, "analytics pipeline");
        while !self.stop.load(Ordering::Acquire) {
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
            let Some(last) = events.last() else {
                std::thread::sleep(POLL);
                continue;
            };
            let held = self.progress.audit_held.load(Ordering::Acquire);
            let audit = events
                .iter()
                .filter(|event| event.seq > held)
                .map(AuditRow::of)
                .collect();
            let (rollups, state) = flow.feed(&events, tail.position());
            let batch = Batch {
                last: last.seq,
                last_time_ms: last.commit_time_ms,
                audit,
                rollups,
                state,
            };
            if self.batches.blocking_send(batch).is_err() {
                return;
            }
        }
    }

    /// The checkpoint's facts, seq and that event's commit time, when there is one ClickHouse
    /// holds and this build reads; otherwise empties the state (the pipeline starts from seq 1).
    fn checkpoint(&self) -> Option<Restored> {
        let held = self.progress.audit_held.load(Ordering::Acquire);
        let head = self.source.head();
        if held > head {
            // The log lost its tail, ClickHouse did not: the events that take those seqs again
            // would be taken for shipped. Only a rebuild makes them agree.
            tracing::error!(
                clickhouse_holds = held,
                log_head = head,
                "ClickHouse holds events past the log's head: run `girok analytics rebuild`"
            );
        }
        let restored = self
            .restorable(held, head)
            .and_then(|seq| match self.stored_facts() {
                Ok(Some(facts)) => Some(Restored {
                    facts,
                    seq,
                    time_ms: self.commit_time_ms(seq),
                }),
                Ok(None) => {
                    tracing::warn!("an analytics checkpoint row this build cannot read");
                    None
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the analytics checkpoint");
                    None
                }
            });
        match &restored {
            Some(restored) => {
                self.progress
                    .resumed_from
                    .store(restored.seq, Ordering::Release);
                tracing::info!(
                    seq = restored.seq,
                    facts = restored.facts.len(),
                    "analytics pipeline resumed from its checkpoint"
                );
            }
            None => {
                if let Err(error) = self.state.clear() {
                    tracing::warn!(%error, "cannot clear the analytics checkpoint");
                }
            }
        }
        restored
    }

    /// The seq of the checkpoint on disk, if a start may resume from it: ClickHouse holds
    /// everything it covers, the log reaches it (past the log's head only if the log lost its
    /// tail: buffered durability and an OS crash), and this build wrote its format.
    fn restorable(&self, held: Seq, head: Seq) -> Option<Seq> {
        let checkpoint = self
            .state
            .checkpoint()
            .inspect_err(|error| tracing::warn!(%error, "cannot read the analytics checkpoint"))
            .ok()??;
        let usable = checkpoint.format == state::format() && checkpoint.seq <= held.min(head);
        if !usable {
            tracing::warn!(
                checkpoint = checkpoint.seq,
                format = checkpoint.format,
                clickhouse_holds = held,
                log_head = head,
                "the analytics checkpoint does not match ClickHouse, the log or this build: \
                 starting from seq 1"
            );
        }
        usable.then_some(checkpoint.seq)
    }

    /// The facts of the checkpoint's rows, decoded as they are read (`None`: a row this build
    /// cannot read).
    fn stored_facts(&self) -> girok_engine::Result<Option<Vec<(state::Fact, u32)>>> {
        let mut facts = Some(Vec::new());
        self.state.for_each_row(&[], |key, value| {
            match (state::Fact::decode(key, value), facts.as_mut()) {
                (Some(fact), Some(facts)) => facts.push(fact),
                _ => facts = None,
            }
            Ok(())
        })?;
        Ok(facts)
    }

    /// The commit time of the event at `seq` (0 if it cannot be read).
    fn commit_time_ms(&self, seq: Seq) -> i64 {
        self.source
            .read(seq, seq, 1)
            .ok()
            .and_then(|events| events.first().map(|event| event.commit_time_ms))
            .unwrap_or(0)
    }
}
