//! Media commands and their input checks. Clients ask for an upload, complete it and delete
//! their media; girok itself (the processing pool and the sweeper, as the nil user) records a
//! processing outcome, sweeps an upload nothing used and records a purge. Those are refused
//! from anyone else: they enter only through the engine's own submissions.

use super::process::{ACCEPTED_TYPES, accepted_type, normalized_type};
use crate::error::{Error, Result};
use crate::write_kind::WriteKind;
use girok_schemas::EventId;

/// What processing made of an upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessOutcome {
    Ready {
        content_type: String,
        width: u64,
        height: u64,
        placeholder: String,
        /// Each variant's name, hex SHA-256 and size, in the same order (as `media.ready`
        /// records them).
        variant_names: Vec<String>,
        variant_hashes: Vec<String>,
        variant_bytes: Vec<u64>,
    },
    Rejected {
        reason: String,
        detail: String,
    },
}

/// A request to change media.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaCommand {
    /// A new upload of `declared_bytes` of `content_type`; its upload URL works until
    /// `expires_ms`, and it is swept at `unused_until_ms` unless used by then.
    RequestUpload {
        content_type: String,
        declared_bytes: u64,
        expires_ms: i64,
        unused_until_ms: i64,
    },
    /// The upload's bytes are in the object store: process them.
    CompleteUpload { media: EventId, received_bytes: u64 },
    /// Deletes one of your media; its objects go at `purge_after_ms`.
    Delete { media: EventId, purge_after_ms: i64 },
    /// girok's own: processing finished.
    Processed {
        media: EventId,
        outcome: ProcessOutcome,
    },
    /// girok's own: an upload nothing used by its time goes (with `purge_after_ms`).
    Sweep { media: EventId, purge_after_ms: i64 },
    /// girok's own: a deleted media's objects are gone.
    Purged { media: EventId },
}

/// A list of media ids on a post or a message: at most `max`, each once.
pub(crate) fn check_media_list<T: Eq + std::hash::Hash>(
    field: &'static str,
    ids: &[T],
    max: usize,
    on: &str,
) -> Result<()> {
    if ids.len() > max {
        return Err(Error::invalid(
            field,
            format!("at most {max} media per {on}"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if !ids.iter().all(|id| seen.insert(id)) {
        return Err(Error::invalid(field, "an id appears twice"));
    }
    Ok(())
}

impl MediaCommand {
    /// Upload requests spend the `media` budget; the rest spend none.
    pub(crate) fn write_kind(&self) -> Option<WriteKind> {
        matches!(self, MediaCommand::RequestUpload { .. }).then_some(WriteKind::Media)
    }

    /// Checks client input (the configured size limit is checked by the engine, which knows
    /// it); girok's own commands are refused here, since clients' commands come this way.
    pub fn validated(self) -> Result<MediaCommand> {
        match self {
            MediaCommand::RequestUpload {
                content_type,
                declared_bytes,
                expires_ms,
                unused_until_ms,
            } => {
                let content_type = normalized_type(&content_type);
                if !accepted_type(&content_type) {
                    return Err(Error::UnsupportedMediaType {
                        got: content_type.chars().take(100).collect(),
                        allowed: ACCEPTED_TYPES,
                    });
                }
                if declared_bytes == 0 {
                    return Err(Error::invalid("bytes", "must be at least 1"));
                }
                Ok(MediaCommand::RequestUpload {
                    content_type,
                    declared_bytes,
                    expires_ms,
                    unused_until_ms,
                })
            }
            own @ (MediaCommand::CompleteUpload { .. } | MediaCommand::Delete { .. }) => Ok(own),
            MediaCommand::Processed { .. }
            | MediaCommand::Sweep { .. }
            | MediaCommand::Purged { .. } => Err(Error::Internal(
                "girok's own media commands are not accepted from clients".into(),
            )),
        }
    }
}
