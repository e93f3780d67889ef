//! What `girok log stats` reports: event count, seq range, size on disk, counts per type.

use crate::error::{Error, Result};
use girok_schemas::{Seq, peek_type};
use girok_storage::Store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Entries scanned per read.
const CHUNK: usize = 8192;

/// A summary of the log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogReport {
    pub event_count: u64,
    pub first_seq: Option<Seq>,
    pub last_seq: Option<Seq>,
    pub disk_bytes: u64,
    pub per_type: BTreeMap<String, u64>,
}

/// Scans the whole log (cost: one sequential read of it).
pub fn log_report(store: &Arc<Store>) -> Result<LogReport> {
    let stats = store.stats()?;
    let mut per_type = BTreeMap::new();
    let mut event_count = 0;
    if let (Some(first), Some(last)) = (stats.first_seq, stats.last_seq) {
        let mut tail = store.tail(first);
        loop {
            let chunk = tail.next_chunk(CHUNK, Some(last))?;
            if chunk.is_empty() {
                break;
            }
            for (seq, bytes) in chunk {
                let type_name =
                    peek_type(&bytes).map_err(|source| Error::Decode { seq, source })?;
                *per_type.entry(type_name).or_insert(0) += 1;
                event_count += 1;
            }
        }
    }
    Ok(LogReport {
        event_count,
        first_seq: stats.first_seq,
        last_seq: stats.last_seq,
        disk_bytes: stats.disk_bytes,
        per_type,
    })
}
