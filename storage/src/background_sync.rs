//! The log's background sync: batches whose commands asked for no fsync
//! ([`crate::Stager::durability`]) are written to the OS and answered at once; this thread
//! fsyncs the journal behind them every `interval` while the head is past what an fsync covered,
//! so that a power loss takes back at most about `interval` of them. It syncs the journal file
//! from a descriptor of its own rather than through fjall, which holds its journal's lock
//! through an fsync: no commit ever waits for this one.
//!
//! Why a file of its own covers the batches: each was flushed to the OS before the head moved
//! over it, and an fsync of a file makes every write to it durable, whichever descriptor wrote
//! it. The head is read before the journal files are listed, so the batches it covers are in
//! the newest file or in an older one, and fjall syncs a journal file before it starts the next.

use crate::store::Store;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// Runs until `stop`'s sender is dropped (the log writer stops).
pub(crate) fn run(store: Arc<Store>, interval: Duration, stop: Receiver<()>) {
    let mut journal: Option<(PathBuf, File)> = None;
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let head = store.head().get();
        if head <= store.synced_through() || store.state() != crate::StorageState::Ok {
            continue;
        }
        match sync_newest_journal(store.path(), &mut journal) {
            Ok(()) => {
                store.synced(head);
                store.metrics().background_syncs.inc();
            }
            // fjall's next fsync of the journal meets the same error and degrades the store.
            Err(error) => {
                journal = None;
                tracing::warn!(%error, "cannot sync the log's journal in the background");
            }
        }
    }
}

/// fdatasyncs the journal file with the highest number in `dir`, opening it unless `journal`
/// already holds it.
fn sync_newest_journal(dir: &Path, journal: &mut Option<(PathBuf, File)>) -> std::io::Result<()> {
    let newest = newest_journal(dir)?.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no journal file in the data directory",
        )
    })?;
    let file = match journal.take() {
        Some((path, file)) if path == newest => file,
        _ => File::open(&newest)?,
    };
    file.sync_data()?;
    *journal = Some((newest, file));
    Ok(())
}

/// fjall's active journal: `<n>.jnl` with the highest `n`.
fn newest_journal(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let mut newest: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let number = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".jnl"))
            .and_then(|stem| stem.parse::<u64>().ok());
        if let Some(number) = number
            && newest.as_ref().is_none_or(|(highest, _)| number > *highest)
        {
            newest = Some((number, path));
        }
    }
    Ok(newest.map(|(_, path)| path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::newest_journal;

    #[test]
    fn the_newest_journal_is_the_highest_number_not_the_last_name() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["9.jnl", "10.jnl", "11.jnl.tmp", "x.jnl", "12"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(
            newest_journal(dir.path()).unwrap(),
            Some(dir.path().join("10.jnl"))
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(newest_journal(empty.path()).unwrap(), None);
    }
}
