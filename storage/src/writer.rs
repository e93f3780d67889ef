//! The single log writer and its group commit.
//!
//! Submitters send commands over a bounded channel (a full channel pushes back on them). The
//! writer thread takes everything queued, up to `max_batch` commands, stages each with the
//! [`Stager`] (which checks it against the write model and appends its events), commits the
//! accepted writes as one atomic fjall batch, makes it durable with one fsync (or one flush to
//! the OS in `buffered` mode), advances the durable head, and only then answers every
//! submitter of the batch. One fsync is thus shared by every command that arrived while the
//! previous one ran, which is what makes durable ingest fast under concurrency.

use crate::store::Store;
use crate::txn::{BatchState, Txn};
use crate::{Error, Result};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Decides what a command means: validates it against the write model and stages its writes.
/// Called on the writer thread, one command at a time, in submission order.
pub trait Stager: Send + 'static {
    type Command: Send + 'static;
    type Accepted: Send + 'static;
    type Rejected: Send + 'static + From<Error>;

    /// Stages one command. On `Err`, nothing it wrote to `txn` is kept.
    fn stage(
        &mut self,
        command: Self::Command,
        txn: &mut Txn<'_>,
    ) -> Result<Self::Accepted, Self::Rejected>;
}

type Reply<S> = oneshot::Sender<Result<<S as Stager>::Accepted, <S as Stager>::Rejected>>;

enum Message<S: Stager> {
    Command(S::Command, Reply<S>),
    Shutdown,
}

/// The submitting side; cheap to clone.
pub struct Appender<S: Stager> {
    tx: mpsc::Sender<Message<S>>,
}

impl<S: Stager> Clone for Appender<S> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<S: Stager> Appender<S> {
    /// Submits a command and waits until it is durable (or rejected).
    pub async fn submit(&self, command: S::Command) -> Result<S::Accepted, S::Rejected> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Message::Command(command, reply))
            .await
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// The same, for callers on a plain thread (never call it inside an async task).
    pub fn submit_blocking(&self, command: S::Command) -> Result<S::Accepted, S::Rejected> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .blocking_send(Message::Command(command, reply))
            .map_err(|_| Error::Closed)?;
        answer.blocking_recv().map_err(|_| Error::Closed)?
    }
}

/// Owns the writer thread.
pub struct WriterHandle<S: Stager> {
    appender: Appender<S>,
    thread: Option<JoinHandle<()>>,
}

/// Tuning of the writer.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    /// Most commands staged into one batch.
    pub max_batch: usize,
    /// Commands that may wait in the queue before submitters are pushed back.
    pub queue: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch: 4096,
            queue: 65_536,
        }
    }
}

impl<S: Stager> WriterHandle<S> {
    /// Starts the writer thread for `store`.
    pub fn spawn(store: Arc<Store>, stager: S, config: WriterConfig) -> Result<Self> {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let thread = std::thread::Builder::new()
            .name("girok-log-writer".into())
            .spawn(move || run(store, stager, rx, config.max_batch.max(1)))?;
        Ok(Self {
            appender: Appender { tx },
            thread: Some(thread),
        })
    }

    /// Whether the writer thread is still accepting commands.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// A handle for submitting commands.
    pub fn appender(&self) -> Appender<S> {
        self.appender.clone()
    }

    /// Finishes every command queued before this call, makes it durable, and stops the thread.
    /// Blocks; call from a plain thread or `spawn_blocking`.
    pub fn shutdown(mut self) {
        let _ = self.appender.tx.blocking_send(Message::Shutdown);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("log writer thread panicked");
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn run<S: Stager>(
    store: Arc<Store>,
    mut stager: S,
    mut rx: mpsc::Receiver<Message<S>>,
    max_batch: usize,
) {
    let mut last_time_ms = 0i64;
    let mut stopping = false;
    let mut queued = Vec::with_capacity(max_batch);
    while !stopping {
        let Some(first) = rx.blocking_recv() else {
            break; // every appender is gone
        };
        queued.push(first);
        while queued.len() < max_batch {
            match rx.try_recv() {
                Ok(message) => queued.push(message),
                Err(_) => break,
            }
        }

        let first_seq = store.head().get() + 1;
        last_time_ms = last_time_ms.max(now_ms());
        let mut batch = BatchState::new(first_seq, last_time_ms);
        let mut replies = Vec::with_capacity(queued.len());
        for message in queued.drain(..) {
            let (command, reply) = match message {
                Message::Command(command, reply) => (command, reply),
                Message::Shutdown => {
                    stopping = true;
                    continue;
                }
            };
            let mut txn = Txn::new(&store, &mut batch);
            let outcome = stager.stage(command, &mut txn);
            match outcome {
                Ok(_) => txn.accept(),
                Err(_) => {
                    store.metrics().rejected.inc();
                }
            }
            replies.push((reply, outcome));
        }

        let appended = batch.appended(first_seq);
        if !batch.ops.is_empty()
            && let Err(error) = commit(&store, batch, first_seq, replies.len())
        {
            // fjall poisons itself after a failed journal write: nothing more can be accepted.
            tracing::error!(%error, "log commit failed; the writer stops");
            for (reply, _) in replies {
                let _ = reply.send(Err(Error::Closed.into()));
            }
            return;
        }
        if appended > 0 {
            tracing::trace!(first_seq, appended, "batch durable");
        }
        for (reply, outcome) in replies {
            // A submitter that gave up waiting is not an error: its write is durable anyway.
            let _ = reply.send(outcome);
        }
    }
    if let Err(error) = store.db().persist(fjall::PersistMode::SyncAll) {
        tracing::error!(%error, "final flush of the log failed");
    }
    tracing::info!(head = store.head().get(), "log writer stopped");
}

fn commit(store: &Store, batch: BatchState, first_seq: u64, commands: usize) -> Result<()> {
    let appended = batch.appended(first_seq);
    let mut writes = store.db().batch();
    for op in batch.ops {
        match op {
            crate::txn::Op::Put(table, key, value) => {
                writes.insert(store.keyspace(table), key, value)
            }
            crate::txn::Op::Delete(table, key) => writes.remove(store.keyspace(table), key),
        }
    }
    writes.commit()?;
    let started = Instant::now();
    store
        .db()
        .persist(store.config().durability.persist_mode())?;
    let metrics = store.metrics();
    metrics
        .fsync_seconds
        .observe(started.elapsed().as_secs_f64());
    metrics.batches.inc();
    metrics.batch_commands.observe(commands as f64);
    metrics.appends.inc_by(appended);
    if appended > 0 {
        let head = first_seq + appended - 1;
        metrics.head.set(head as i64);
        store.head().advance(head);
    }
    Ok(())
}
