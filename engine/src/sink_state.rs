//! Checkpointed state for a sink that follows the log (the analytics pipeline), so that a start
//! resumes it from its checkpoint instead of feeding it the whole log again. Each sink has a
//! view store of its own in `<data>/sinks/<name>`: rows whose layout the sink defines
//! (`view_sink_state`) and one checkpoint row (the seq the rows reflect and the sink's format
//! number), written in the same batch. Like the views' store it has no journal: what is on
//! disk is always the state after some sealing batch, so a crash costs the sink a replay of
//! the log since that checkpoint, never a torn state.

use crate::error::{Error, Result};
use girok_schemas::Seq;
use girok_storage::{ViewStore, ViewTable, ViewWrite};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where sinks keep their state, under the data directory.
pub const SINKS_DIR: &str = "sinks";

/// Block cache of a sink's store: it is read once, at start.
const CACHE_BYTES: u64 = 4 << 20;

/// The checkpoint row's key.
const CHECKPOINT: &[u8] = b"sink";

/// What a sink's rows reflect: every event up to `seq`, in the layout numbered `format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkCheckpoint {
    pub seq: Seq,
    pub format: u32,
}

/// One sink's checkpointed state.
pub struct SinkState {
    store: ViewStore,
}

impl SinkState {
    /// Opens (or creates) the state of the sink `name` in the data directory `data_dir`.
    /// Names are made of ASCII letters, digits, `-` and `_`.
    pub(crate) fn open(data_dir: &Path, name: &str) -> Result<SinkState> {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::InvalidArgument {
                field: "sink",
                reason: format!("a name of letters, digits, '-' and '_', not {name:?}"),
            });
        }
        let dir = data_dir.join(SINKS_DIR).join(name);
        let open = || {
            ViewStore::open(
                &dir,
                CACHE_BYTES,
                crate::background::lower_priority_somewhat,
            )
        };
        let store = match open() {
            Ok(store) => store,
            // The state is disposable (the sink can always start from the log's start): one
            // that cannot be opened is moved aside, for a look, rather than keeping girok from
            // starting; if even that fails, the open's own error is the answer.
            Err(error) => {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let aside = dir.with_file_name(format!("{name}.broken-{stamp}"));
                remove_broken(&dir, name);
                if std::fs::rename(&dir, &aside).is_err() {
                    return Err(error.into());
                }
                tracing::warn!(%error, moved_to = %aside.display(),
                    "a sink's state cannot be opened: moved aside; the sink starts from the log's start");
                open()?
            }
        };
        Ok(SinkState { store })
    }

    /// The checkpoint the rows on disk reflect (`None`: nothing was ever checkpointed, or the
    /// row cannot be read, which a sink treats the same way: it starts from the log's start).
    pub fn checkpoint(&self) -> Result<Option<SinkCheckpoint>> {
        let row = self.store.get(ViewTable::Checkpoint, CHECKPOINT)?;
        Ok(row.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// Visits the rows whose key starts with `prefix` (all of them with an empty one), in key
    /// order, without copying them.
    pub fn for_each_row(
        &self,
        prefix: &[u8],
        visit: impl FnMut(&[u8], &[u8]) -> girok_storage::Result<()>,
    ) -> Result<()> {
        Ok(self
            .store
            .for_each_with_prefix(ViewTable::SinkState, prefix, visit)?)
    }

    /// The keys of the rows whose key starts with `prefix`, in key order.
    pub fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        self.for_each_row(prefix, |key, _| {
            keys.push(key.to_vec());
            Ok(())
        })?;
        Ok(keys)
    }

    /// The rows whose key starts with `prefix`, in key order.
    #[cfg(test)]
    fn rows(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut rows = Vec::new();
        self.for_each_row(prefix, |key, value| {
            rows.push((key.to_vec(), value.to_vec()));
            Ok(())
        })?;
        Ok(rows)
    }

    /// Applies `changes` (a key and its new value, or `None` to delete it; each key at most
    /// once) with `checkpoint`, as one batch. The memtable is sealed when it is due (every few
    /// seconds or megabytes), so the state on disk trails the last commit by at most that.
    pub fn commit(
        &self,
        changes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
        checkpoint: SinkCheckpoint,
    ) -> Result<()> {
        let mut writes: Vec<ViewWrite> = changes
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => ViewWrite::Put(ViewTable::SinkState, key, value),
                None => ViewWrite::Delete(ViewTable::SinkState, key),
            })
            .collect();
        // A struct of two integers: serializing it cannot fail.
        let row = serde_json::to_vec(&checkpoint).unwrap_or_default();
        writes.push(ViewWrite::Put(
            ViewTable::Checkpoint,
            CHECKPOINT.to_vec(),
            row,
        ));
        let seal = self.store.seal_due();
        Ok(self.store.write(&writes, seal)?)
    }

    /// Drops every row and the checkpoint (the sink starts over from the log's start).
    pub fn clear(&self) -> Result<()> {
        Ok(self.store.clear()?)
    }

    /// Seals what was committed and writes it to disk (a clean stop: the next start resumes
    /// from the last commit).
    pub fn close(&self) -> Result<()> {
        self.store.write(&[], true)?;
        Ok(self.store.flush()?)
    }

    /// Bytes on disk.
    pub fn disk_bytes(&self) -> Result<u64> {
        Ok(self.store.disk_bytes()?)
    }
}

/// Removes the states of sink `name` moved aside before (beside `dir`): one is kept for a
/// look, the newest, so that repeated failures do not fill the disk.
fn remove_broken(dir: &Path, name: &str) {
    let (Some(parent), prefix) = (dir.parent(), format!("{name}.broken-")) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix)
            && let Err(error) = std::fs::remove_dir_all(entry.path())
        {
            tracing::warn!(%error, path = %entry.path().display(), "an older broken sink state stays");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(state: &SinkState) -> Vec<(Vec<u8>, Vec<u8>)> {
        state.rows(&[]).unwrap()
    }

    #[test]
    fn a_closed_state_opens_as_of_its_last_commit() {
        let dir = tempfile::tempdir().unwrap();
        let state = SinkState::open(dir.path(), "analytics-x").unwrap();
        assert_eq!(state.checkpoint().unwrap(), None);
        let at = |seq| SinkCheckpoint { seq, format: 1 };
        state
            .commit(
                [
                    (b"a".to_vec(), Some(b"1".to_vec())),
                    (b"b".to_vec(), Some(vec![])),
                ],
                at(5),
            )
            .unwrap();
        state
            .commit(
                [(b"a".to_vec(), None), (b"c".to_vec(), Some(b"3".to_vec()))],
                at(9),
            )
            .unwrap();
        state.close().unwrap();
        drop(state);

        let state = SinkState::open(dir.path(), "analytics-x").unwrap();
        assert_eq!(state.checkpoint().unwrap(), Some(at(9)));
        assert_eq!(
            rows(&state),
            vec![(b"b".to_vec(), vec![]), (b"c".to_vec(), b"3".to_vec())]
        );
        assert_eq!(
            state.rows(b"c").unwrap(),
            vec![(b"c".to_vec(), b"3".to_vec())]
        );
        assert!(state.rows(b"a").unwrap().is_empty());
        state.clear().unwrap();
        assert_eq!(state.checkpoint().unwrap(), None);
        assert!(rows(&state).is_empty());
    }

    #[test]
    fn what_was_never_sealed_is_not_on_disk_and_the_checkpoint_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let state = SinkState::open(dir.path(), "s").unwrap();
        let at = |seq| SinkCheckpoint { seq, format: 1 };
        state
            .commit([(b"a".to_vec(), Some(vec![]))], at(3))
            .unwrap();
        state.close().unwrap();
        // Committed but neither due for a seal nor closed: as after a crash.
        state
            .commit([(b"b".to_vec(), Some(vec![]))], at(4))
            .unwrap();
        assert_eq!(state.checkpoint().unwrap(), Some(at(4)));
        drop(state);

        let state = SinkState::open(dir.path(), "s").unwrap();
        assert_eq!(state.checkpoint().unwrap(), Some(at(3)));
        assert_eq!(rows(&state), vec![(b"a".to_vec(), vec![])]);
    }

    #[test]
    fn a_state_that_cannot_be_opened_is_moved_aside_and_started_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let state = SinkState::open(dir.path(), "s").unwrap();
        let at = SinkCheckpoint { seq: 3, format: 1 };
        state.commit([(b"a".to_vec(), Some(vec![]))], at).unwrap();
        state.close().unwrap();
        drop(state);
        // Every file of the store overwritten with garbage.
        let store = dir.path().join(SINKS_DIR).join("s");
        for entry in walk(&store) {
            std::fs::write(entry, b"garbage").unwrap();
        }
        assert!(ViewStore::open(&store, CACHE_BYTES, |_| {}).is_err());
        let state = SinkState::open(dir.path(), "s").unwrap();
        assert_eq!(state.checkpoint().unwrap(), None);
        assert!(rows(&state).is_empty());
        let names: Vec<String> = std::fs::read_dir(dir.path().join(SINKS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("s.broken-")),
            "{names:?}"
        );
    }

    fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
        files
    }

    #[test]
    fn names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "../x", "a/b", "a b"] {
            assert!(SinkState::open(dir.path(), name).is_err(), "{name:?}");
        }
    }
}
