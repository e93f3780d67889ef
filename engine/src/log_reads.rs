//! Reads every domain shares: a page size within bounds, an event by its seq from the log.

use crate::error::{Error, Result};
use crate::limits::DEFAULT_PAGE_SIZE;
use girok_schemas::{Event, Seq, decode_event};
use girok_storage::{Store, Table};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) fn page_size(limit: Option<usize>, max: usize) -> Result<usize> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::invalid(
            "first",
            format!("must be between 1 and {max}"),
        ))
    }
}

/// A view named a seq the log does not have.
pub(crate) fn missing_event(seq: Seq) -> Error {
    Error::Internal(format!("a view names seq {seq}, which is not in the log"))
}

/// The event at `seq` among events already read ([`Engine::events_by_seq`]).
pub(crate) fn event_in(events: &HashMap<Seq, Arc<Event>>, seq: Seq) -> Result<&Event> {
    events
        .get(&seq)
        .map(|event| &**event)
        .ok_or_else(|| missing_event(seq))
}

pub(crate) fn read_event(store: &Store, seq: Seq) -> Result<Event> {
    logged_event(store, seq)?.ok_or_else(|| missing_event(seq))
}

/// A point read of the write model or the log: a transaction's view (the sequencer) or the
/// store's (readers).
pub(crate) trait Get {
    fn get(&self, table: Table, key: &[u8]) -> girok_storage::Result<Option<Vec<u8>>>;
}

impl Get for girok_storage::Txn<'_> {
    fn get(&self, table: Table, key: &[u8]) -> girok_storage::Result<Option<Vec<u8>>> {
        girok_storage::Txn::get(self, table, key)
    }
}

impl Get for girok_storage::Store {
    fn get(&self, table: Table, key: &[u8]) -> girok_storage::Result<Option<Vec<u8>>> {
        girok_storage::Store::get(self, table, key)
    }
}

/// The event at `seq` of the log, through a transaction's view or the store's; `None` past
/// the head.
pub(crate) fn logged_event(db: &impl Get, seq: Seq) -> Result<Option<Event>> {
    match db.get(Table::SeqEvent, &seq.to_be_bytes())? {
        Some(bytes) => Ok(Some(
            decode_event(&bytes).map_err(|source| Error::Decode { seq, source })?,
        )),
        None => Ok(None),
    }
}
