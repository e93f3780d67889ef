//! Reads every domain shares: a page size within bounds, an event by its seq from the log.

use crate::error::{Error, Result};
use crate::limits::DEFAULT_PAGE_SIZE;
use girok_schemas::{Event, Seq, decode_event};
use girok_storage::Store;
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
    let bytes = store.event(seq)?.ok_or_else(|| missing_event(seq))?;
    decode_event(&bytes).map_err(|source| Error::Decode { seq, source })
}
