//! The skip exclusions' rows (`untilms_skips`): one row per [`SPAN_MS`] of exclusion ends,
//! holding every skip whose exclusion ends in that span (its pair and its end), in log order.
//! A row per skip, with its index row by end, cost the log writer two inserts and a lookup at
//! each of the bench's 5,000 skips a second, and fed fjall's flushes and compactions (README,
//! Benchmarks → Random matching, stop 59); a span's row is written at one or two of the stage's
//! checkpoints (`rows.rs`). Every skip also removes up to [`ENDED_SPANS_REMOVED_PER_SKIP`]
//! spans that ended by its commit time, from a cursor, so that removal never reads the removed
//! rows' tombstones and keeps pace with the spans skips add (each adds at most one). What a
//! skip does to the rows is a function of the log, so `girok replay` rebuilds them byte for
//! byte: [`SkipRows`] keeps the changes in memory, between the stage's checkpoints or through
//! a rebuild's chunk of the log, as adding to and removing from the table skip by skip would
//! leave it (the tests hold both side by side). A load also moves the rows of the tables
//! builds before kept (`userpair_skip`, `untilms_userpair`) into spans, once.

use super::apart::Apart;
use crate::error::Result;
use crate::records::{pair_key, time_value, users_of_key};
use girok_schemas::UserId;
use girok_storage::{Table, Txn};
use std::collections::{BTreeMap, BTreeSet};

/// The span of exclusion ends one row holds.
pub(crate) const SPAN_MS: i64 = 100;

/// Ended spans a skip removes, at most: no skip pays for a long quiet time's backlog at once.
const ENDED_SPANS_REMOVED_PER_SKIP: usize = 8;

/// An entry: the pair's key (32) and the exclusion's end (i64 BE).
const ENTRY_BYTES: usize = 40;

/// The row holding where the spans still there start: past every span's key (ends are
/// positive, so their first byte is below 0x80).
const CURSOR: &[u8] = &[0xff];

/// The first ms of the span `until_ms` falls in.
fn span_of(until_ms: i64) -> i64 {
    until_ms - until_ms.rem_euclid(SPAN_MS)
}

fn entry(a: UserId, b: UserId, until_ms: i64) -> Vec<u8> {
    let mut entry = pair_key(a, b);
    entry.extend_from_slice(&until_ms.to_be_bytes());
    entry
}

/// A span row's entries: `(a, b, until ms)` (a corrupt one costs its pair's exclusion, not
/// everyone's matching).
fn entries(row: &[u8]) -> impl Iterator<Item = (UserId, UserId, i64)> + '_ {
    row.chunks(ENTRY_BYTES).filter_map(|entry| {
        let parsed = entry.split_at_checked(32).and_then(|(pair, until)| {
            let (a, b) = users_of_key(pair)?;
            Some((a, b, time_value(Some(until.to_vec()))?))
        });
        if parsed.is_none() {
            tracing::error!(?entry, "matching skips a corrupt skip exclusion");
        }
        parsed
    })
}

/// The span a stored key names (`None`: the cursor, or a corrupt key).
fn span_of_key(key: &[u8]) -> Option<i64> {
    time_value(Some(key.to_vec()))
}

/// A span's change since the stage's last checkpoint.
enum Change {
    /// Entries to append to its row.
    Append(Vec<u8>),
    Remove,
    /// Removed, then given these entries (as an add after a removal leaves the table).
    Replace(Vec<u8>),
}

/// The spans as the stage keeps them between checkpoints: which exist, and what changed.
#[derive(Default)]
pub(crate) struct SkipRows {
    /// Every span the table holds once the changes are written.
    spans: BTreeSet<i64>,
    changed: BTreeMap<i64, Change>,
    /// The cursor to write, when it moved.
    cursor: Option<i64>,
    /// Rows of the tables builds before kept, to delete (they are in `changed` now).
    legacy: Vec<(Table, Vec<u8>)>,
}

impl SkipRows {
    /// The stored spans, with every exclusion they hold given to `apart` (and the rows of
    /// the tables builds before kept, moved into spans at the next checkpoint).
    pub fn load(txn: &Txn<'_>, apart: &mut Apart) -> Result<Self> {
        let mut rows = SkipRows::default();
        for (key, row) in txn.scan_prefix(Table::UntilmsSkips, &[])? {
            let Some(span) = span_of_key(&key) else {
                continue; // the cursor
            };
            rows.spans.insert(span);
            for (a, b, until) in entries(&row) {
                apart.set(a, b, until);
            }
        }
        for (key, value) in txn.scan_prefix(Table::UserpairSkip, &[])? {
            match (users_of_key(&key), time_value(Some(value))) {
                (Some((a, b)), Some(until)) => {
                    apart.set(a, b, until);
                    rows.add(a, b, until);
                }
                _ => tracing::error!(?key, "matching skips a corrupt skip exclusion row"),
            }
            rows.legacy.push((Table::UserpairSkip, key));
        }
        for (key, _) in txn.scan_prefix(Table::UntilmsUserpair, &[])? {
            rows.legacy.push((Table::UntilmsUserpair, key));
        }
        Ok(rows)
    }

    /// Whether there is anything to write.
    pub fn is_dirty(&self) -> bool {
        !self.changed.is_empty() || self.cursor.is_some() || !self.legacy.is_empty()
    }

    /// Adds the exclusion of `a` and `b` until `until_ms` to its span.
    pub fn add(&mut self, a: UserId, b: UserId, until_ms: i64) {
        let span = span_of(until_ms);
        self.spans.insert(span);
        let change = self
            .changed
            .entry(span)
            .or_insert_with(|| Change::Append(Vec::new()));
        match change {
            Change::Append(entries) | Change::Replace(entries) => {
                entries.extend_from_slice(&entry(a, b, until_ms));
            }
            // Not expected (an exclusion ends no earlier than its skip's commit time, and
            // commit times never go back along the log), but kept as the table would be.
            Change::Remove => *change = Change::Replace(entry(a, b, until_ms)),
        }
    }

    /// Removes up to [`ENDED_SPANS_REMOVED_PER_SKIP`] spans that ended by `now` (a skip's
    /// commit time), oldest first, and moves the cursor past them.
    pub fn remove_ended(&mut self, now: i64) {
        for _ in 0..ENDED_SPANS_REMOVED_PER_SKIP {
            let Some(&span) = self.spans.first() else {
                break;
            };
            if span.saturating_add(SPAN_MS) > now {
                break;
            }
            self.spans.pop_first();
            self.changed.insert(span, Change::Remove);
            self.cursor = Some(span + SPAN_MS);
        }
    }

    /// Writes the changes into `txn`.
    pub fn write(&mut self, txn: &mut Txn<'_>) -> Result<()> {
        for (table, key) in self.legacy.drain(..) {
            txn.delete(table, key);
        }
        for (span, change) in std::mem::take(&mut self.changed) {
            let key = span.to_be_bytes();
            match change {
                Change::Append(entries) => {
                    let mut row = txn.get(Table::UntilmsSkips, &key)?.unwrap_or_default();
                    row.extend_from_slice(&entries);
                    txn.put(Table::UntilmsSkips, key.to_vec(), row);
                }
                Change::Remove => txn.delete(Table::UntilmsSkips, key.to_vec()),
                Change::Replace(entries) => txn.put(Table::UntilmsSkips, key.to_vec(), entries),
            }
        }
        if let Some(cursor) = self.cursor.take() {
            txn.put(
                Table::UntilmsSkips,
                CURSOR.to_vec(),
                cursor.to_be_bytes().to_vec(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use girok_storage::{Store, StoreConfig};
    use rand::{Rng, SeedableRng};
    use std::sync::Arc;

    fn user(n: u128) -> UserId {
        UserId(uuid::Uuid::from_u128(n))
    }

    /// What [`SkipRows::add`] does, to the table at once: the model the spans kept in memory
    /// must equal.
    fn add(txn: &mut Txn<'_>, a: UserId, b: UserId, until_ms: i64) -> Result<()> {
        let key = span_of(until_ms).to_be_bytes();
        let mut row = txn.get(Table::UntilmsSkips, &key)?.unwrap_or_default();
        row.extend_from_slice(&entry(a, b, until_ms));
        txn.put(Table::UntilmsSkips, key.to_vec(), row);
        Ok(())
    }

    /// What [`SkipRows::remove_ended`] does, to the table at once.
    fn remove_ended(txn: &mut Txn<'_>, now: i64) -> Result<()> {
        let from = time_value(txn.get(Table::UntilmsSkips, CURSOR)?).unwrap_or(0);
        // A span has ended once all of it is at or before `now`.
        let before = now.saturating_sub(SPAN_MS).saturating_add(1);
        if before <= from {
            return Ok(());
        }
        let ended = txn.scan_range(
            Table::UntilmsSkips,
            &from.to_be_bytes(),
            &before.to_be_bytes(),
            ENDED_SPANS_REMOVED_PER_SKIP,
        )?;
        let mut cursor = None;
        for (key, _) in ended {
            if let Some(span) = span_of_key(&key) {
                cursor = Some(span + SPAN_MS);
            }
            txn.delete(Table::UntilmsSkips, key);
        }
        if let Some(cursor) = cursor {
            txn.put(
                Table::UntilmsSkips,
                CURSOR.to_vec(),
                cursor.to_be_bytes().to_vec(),
            );
        }
        Ok(())
    }

    fn spans_of(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
        store.scan_prefix(Table::UntilmsSkips, &[]).unwrap()
    }

    fn open(dir: &tempfile::TempDir) -> Arc<Store> {
        Store::open(StoreConfig::new(dir.path())).unwrap()
    }

    /// The stage's spans, written at checkpoints, equal the table a rebuild writes skip by
    /// skip: over thousands of skips with short and mixed exclusions (spans that end between
    /// checkpoints, pauses that end more than the eight a skip removes, a span given entries
    /// after it ended).
    #[test]
    fn spans_kept_in_memory_and_written_at_checkpoints_equal_those_written_skip_by_skip() {
        let (rebuilt_dir, live_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (rebuilt, live) = (open(&rebuilt_dir), open(&live_dir));
        let mut apart = Apart::default();
        let mut rows = live.rewrite(|txn| SkipRows::load(txn, &mut apart)).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
        let mut next = move |bound: u64| rng.random_range(0..bound);
        let mut now = 1_000_i64;
        for skip in 0..3_000 {
            // Now and then a pause that ends more spans than one skip removes.
            now += if next(100) == 0 {
                3_000
            } else {
                next(40) as i64
            };
            let (a, b) = (user(u128::from(next(30))), user(100 + u128::from(next(30))));
            let until = now + next(2_000) as i64;
            rebuilt
                .rewrite(|txn| {
                    remove_ended(txn, now)?;
                    add(txn, a, b, until)
                })
                .unwrap();
            rows.remove_ended(now);
            rows.add(a, b, until);
            if next(7) == 0 || skip == 2_999 {
                live.rewrite(|txn| rows.write(txn)).unwrap();
                assert!(!rows.is_dirty());
                assert_eq!(spans_of(&live), spans_of(&rebuilt), "after skip {skip}");
            }
        }
        // The stage does the unexpected the way the table does it too: a span that ended
        // and is given an entry again holds that entry alone.
        let ended = spans_of(&live)[0].0.clone();
        let span = time_value(Some(ended)).unwrap();
        let late = now + 10_000;
        rebuilt
            .rewrite(|txn| {
                remove_ended(txn, late)?;
                add(txn, user(1), user(2), span)
            })
            .unwrap();
        rows.remove_ended(late);
        rows.add(user(1), user(2), span);
        live.rewrite(|txn| rows.write(txn)).unwrap();
        assert_eq!(spans_of(&live), spans_of(&rebuilt));
    }

    #[test]
    fn ends_fall_in_spans_of_their_first_ms() {
        assert_eq!(span_of(0), 0);
        assert_eq!(span_of(99), 0);
        assert_eq!(span_of(100), 100);
        assert_eq!(span_of(1_234_567), 1_234_500);
    }

    #[test]
    fn a_row_gives_its_entries_back() {
        let mut row = entry(user(2), user(1), 150);
        row.extend_from_slice(&entry(user(3), user(4), 199));
        let read: Vec<_> = entries(&row).collect();
        assert_eq!(read, [(user(1), user(2), 150), (user(3), user(4), 199)]);
        // A torn entry is skipped, not read as a pair.
        row.truncate(row.len() - 1);
        assert_eq!(entries(&row).count(), 1);
    }
}
