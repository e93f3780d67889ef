//! What a [`crate::Stager`] sees while it stages one command: reads that include the writes of
//! earlier commands in the same (not yet committed) batch, buffered writes, and log appends with
//! the seq they will get. If the stager rejects the command, everything it buffered is dropped.

use crate::op::Op;
use crate::store::Store;
use crate::tables::Table;
use crate::{Error, Result, Seq};
use fjall::PersistMode;
use std::collections::HashMap;

/// The state of the batch being built: accepted commands' writes, in order.
pub(crate) struct BatchState {
    pub ops: Vec<Op>,
    /// Per table and key, the index in `ops` of this batch's latest write to it (log entries
    /// are in `log` instead). Keyed per table so that lookups borrow the key instead of
    /// allocating one.
    overlay: HashMap<Table, HashMap<Vec<u8>, usize>>,
    /// The index in `ops` of each log entry of this batch, in seq order from `first_seq`.
    log: Vec<usize>,
    first_seq: Seq,
    /// The seq the next append will get.
    pub next_seq: Seq,
    pub commit_time_ms: i64,
}

impl BatchState {
    pub fn new(next_seq: Seq, commit_time_ms: i64) -> Self {
        Self {
            ops: Vec::new(),
            overlay: HashMap::new(),
            log: Vec::new(),
            first_seq: next_seq,
            next_seq,
            commit_time_ms,
        }
    }

    /// Log entries this batch appended.
    pub fn appended(&self) -> u64 {
        self.next_seq - self.first_seq
    }

    /// Copies of this batch's log entries, in seq order from its first seq.
    pub fn log_entries(&self) -> Vec<Vec<u8>> {
        self.log
            .iter()
            .filter_map(|&index| match self.ops.get(index) {
                Some(Op::Put(_, _, bytes)) => Some(bytes.clone()),
                _ => None,
            })
            .collect()
    }

    /// Hands over which write-model keys this batch wrote (call once, before its ops are
    /// committed).
    pub fn take_written(&mut self) -> WrittenKeys {
        WrittenKeys(std::mem::take(&mut self.overlay))
    }

    /// The value of a key of this batch's writes: a log entry by its seq, anything else by
    /// the overlay. `None` when the batch did not write the key.
    fn written(&self, table: Table, key: &[u8]) -> Option<&Op> {
        let index = if table == Table::SeqEvent {
            let seq = Seq::from_be_bytes(key.try_into().ok()?);
            *self
                .log
                .get(usize::try_from(seq.checked_sub(self.first_seq)?).ok()?)?
        } else {
            *self.overlay.get(&table)?.get(key)?
        };
        self.ops.get(index)
    }
}

/// The write-model keys a committed batch wrote (put or deleted), per table: what a
/// [`crate::Stager`] keeping copies of the write model in memory must forget.
#[derive(Default)]
pub struct WrittenKeys(HashMap<Table, HashMap<Vec<u8>, usize>>);

impl WrittenKeys {
    /// The keys of `table` the batch wrote, in no particular order.
    pub fn keys(&self, table: Table) -> impl Iterator<Item = &[u8]> {
        self.0
            .get(&table)
            .into_iter()
            .flat_map(|keys| keys.keys().map(Vec::as_slice))
    }
}

/// One command's view of the batch.
pub struct Txn<'a> {
    store: &'a Store,
    batch: &'a mut BatchState,
    local: Vec<Op>,
    appended: u64,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(store: &'a Store, batch: &'a mut BatchState) -> Self {
        Self {
            store,
            batch,
            local: Vec::new(),
            appended: 0,
        }
    }

    /// The commit time every event of this batch carries (ms since the epoch, never decreasing
    /// along the log).
    pub fn commit_time_ms(&self) -> i64 {
        self.batch.commit_time_ms
    }

    /// The seq the next `append` will return.
    pub fn next_seq(&self) -> Seq {
        self.batch.next_seq + self.appended
    }

    /// Reads a value as it will be once this batch commits (log entries included, by seq).
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        for op in self.local.iter().rev() {
            match op {
                Op::Put(t, k, v) if *t == table && k == key => return Ok(Some(v.clone())),
                Op::Delete(t, k) if *t == table && k == key => return Ok(None),
                _ => {}
            }
        }
        match self.batch.written(table, key) {
            Some(Op::Put(_, _, value)) => Ok(Some(value.clone())),
            Some(Op::Delete(..)) => Ok(None),
            None => self.store.get(table, key),
        }
    }

    /// Every `(key, value)` of `table` whose key starts with `prefix`, as it will be once this
    /// batch commits (committed data, then this batch's and this command's writes on top).
    pub fn scan_prefix(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let stored = self.store.scan_prefix(table, prefix)?;
        Ok(self.with_writes(table, stored, |key| key.starts_with(prefix)))
    }

    /// The first `limit` entries of `table` with keys in `[start, end)`, in key order, as they
    /// will be once this batch commits, without reading the rest (a schedule keyed by time:
    /// what is due first).
    pub fn scan_range(
        &self,
        table: Table,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let within = |key: &[u8]| key >= start && key < end;
        // Each write of this batch in the range can hide at most one stored entry: reading
        // that many more is enough for the first `limit` that remain.
        let pending = self.writes(table).filter(|(key, _)| within(key)).count();
        let stored = self.store.scan_range(table, start..end, limit + pending)?;
        let mut entries = self.with_writes(table, stored, within);
        entries.truncate(limit);
        Ok(entries)
    }

    /// This batch's writes to `table`, then this command's (later ones win): each key with
    /// its value, `None` for a delete.
    fn writes(&self, table: Table) -> impl Iterator<Item = (&Vec<u8>, Option<&Vec<u8>>)> {
        let batch = self
            .batch
            .overlay
            .get(&table)
            .into_iter()
            .flatten()
            .map(|(key, &index)| (key, &self.batch.ops[index]));
        let local = self
            .local
            .iter()
            .filter(move |op| op.table() == table)
            .map(|op| match op {
                Op::Put(_, key, _) | Op::Delete(_, key) => (key, op),
            });
        batch.chain(local).map(|(key, op)| match op {
            Op::Put(_, _, value) => (key, Some(value)),
            Op::Delete(..) => (key, None),
        })
    }

    /// `stored` entries of `table` with this batch's and this command's writes `within` the
    /// scanned keys on top, in key order.
    fn with_writes(
        &self,
        table: Table,
        stored: Vec<(Vec<u8>, Vec<u8>)>,
        within: impl Fn(&[u8]) -> bool,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut merged: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> =
            stored.into_iter().map(|(k, v)| (k, Some(v))).collect();
        for (key, value) in self.writes(table).filter(|(key, _)| within(key)) {
            merged.insert(key.clone(), value.cloned());
        }
        merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }

    /// Whether a key exists once this batch commits.
    pub fn contains(&self, table: Table, key: &[u8]) -> Result<bool> {
        Ok(self.get(table, key)?.is_some())
    }

    /// Buffers a write-model write.
    pub fn put(&mut self, table: Table, key: Vec<u8>, value: Vec<u8>) {
        self.local.push(Op::Put(table, key, value));
    }

    /// Buffers a write-model delete.
    pub fn delete(&mut self, table: Table, key: Vec<u8>) {
        self.local.push(Op::Delete(table, key));
    }

    /// Appends an event; `encode` gets the event's seq and returns its bytes.
    pub fn append(&mut self, encode: impl FnOnce(Seq) -> Vec<u8>) -> Seq {
        let seq = self.next_seq();
        self.appended += 1;
        self.local.push(Op::Put(
            Table::SeqEvent,
            seq.to_be_bytes().to_vec(),
            encode(seq),
        ));
        seq
    }

    /// Makes this command's writes part of the batch.
    pub(crate) fn accept(self) {
        let Txn {
            batch,
            local,
            appended,
            ..
        } = self;
        for op in local {
            let index = batch.ops.len();
            match &op {
                Op::Put(Table::SeqEvent, ..) => batch.log.push(index),
                Op::Put(table, key, _) | Op::Delete(table, key) => {
                    batch
                        .overlay
                        .entry(*table)
                        .or_default()
                        .insert(key.clone(), index);
                }
            }
            batch.ops.push(op);
        }
        batch.next_seq += appended;
    }
}

impl Store {
    /// Runs `f` on a fresh batch and commits its writes durably, outside the log writer. Only
    /// for tools that own the data directory (replay rebuilding the write model); `f` may not
    /// append to the log.
    pub fn rewrite<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let head = self.head().get();
        let mut batch = BatchState::new(head + 1, 0);
        let mut txn = Txn::new(self, &mut batch);
        let out = f(&mut txn)?;
        txn.accept();
        if batch.appended() > 0 {
            return Err(
                Error::Io(std::io::Error::other("a rewrite may not append to the log")).into(),
            );
        }
        self.commit_ops(batch.ops)?;
        self.persist(PersistMode::SyncData)?;
        Ok(out)
    }
}
