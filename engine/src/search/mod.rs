//! Full-text search (tantivy) over posts, users and chat messages, maintained from the log:
//! the index and its checkpoint in `index.rs`, the thread that feeds it in `indexer.rs`, the
//! reads that resolve its hits in `reads.rs`.
//!
//! One indexer thread tails the durable log like the dataflow does and keeps a tantivy index:
//! a post, message or user is a document keyed by the seq of the event that created it (which
//! also names its kind and id, so the index stores nothing but terms, that seq and a hash of
//! the text); edits replace it, deletes remove it, profile changes re-read the user's record.
//! The live index is on disk (`<data>/search/`) and each commit carries a checkpoint: the seq
//! it covers and the digest of its documents, written atomically with it by tantivy. At start
//! the indexer resumes after that seq, so start-up does not re-index the history; a commit
//! torn by a crash is not there, and the log after the checkpoint is indexed again (nothing is
//! lost or indexed twice). An index that cannot be used as it is (another format, a
//! checkpoint or segment that cannot be read, or ahead of the log: a `buffered` log that lost
//! its tail in an OS crash) is dropped and rebuilt; one that fails to open for a reason that
//! may pass (an I/O error) fails the start instead. When indexing or a commit fails for a
//! reason that may pass (storage, tantivy), the indexer goes back to the last commit and
//! indexes again from there after a pause; an event it cannot index (a corrupt record) is
//! skipped, as replay skips it, and so is one that failed five times in a row. A clean stop commits. `girok replay` builds an index in memory
//! from seq 1. The index has a watermark like every view; a search with `after: seq` waits for
//! it. The indexer polls the log once caught up; commits (which make documents searchable)
//! happen every [`COMMIT_EVERY`] while documents change, caught up or not, and never more
//! often (each is a new segment and a dozen fsyncs); after a long commit (a busy machine) the
//! next waits 20 times as long, up to a second ([`COMMITS`]); when no document
//! changed the watermark just moves, and the checkpoint follows within seconds.
//!
//! The indexer and tantivy's threads run at the lowest scheduling priority: on a busy machine
//! they yield to the log writer and the live deliveries, and search freshness takes the delay.
//!
//! Authorization happens in the query: messages match only in rooms the searcher is a member
//! of now (from the memberships view); posts and users are public.

mod index;
mod indexer;
mod reads;

pub use index::{SearchIndex, WRITER_BYTES};
pub use indexer::Indexer;
pub use reads::{SearchPage, SearchQuery, SearchResult};

use crate::background::Pace;
use crate::error::Error;
use girok_schemas::Seq;
use std::time::Duration;

/// Time between commits while documents change: the shortest between two, and (while the
/// indexer keeps up with the log, and its commits are quick) about the longest a new document
/// waits to be searchable.
pub const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// The pace of commits while documents change: after a commit, the next waits 20 times as
/// long as it took, at least [`COMMIT_EVERY`] and at most a second (a busy machine's
/// freshness).
pub const COMMITS: Pace = Pace {
    share: 20,
    min: COMMIT_EVERY,
    max: Duration::from_secs(1),
};

/// Where the live index is kept, inside the data directory.
pub const SEARCH_DIR: &str = "search";

/// What a search looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SearchKind {
    Post,
    User,
    Message,
}

impl SearchKind {
    fn name(self) -> &'static str {
        match self {
            SearchKind::Post => "post",
            SearchKind::User => "user",
            SearchKind::Message => "message",
        }
    }
}

/// One match: the seq of the event that created what matched (a post, a message, a user's
/// registration), which names its kind and id.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchHit {
    pub seq: Seq,
    pub score: f32,
}

fn search_error(e: tantivy::TantivyError) -> Error {
    Error::Internal(format!("search index: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_spaced_by_their_length_within_bounds() {
        assert_eq!(COMMITS.gap(Duration::ZERO), COMMIT_EVERY);
        assert_eq!(COMMITS.gap(Duration::from_millis(5)), COMMIT_EVERY);
        assert_eq!(
            COMMITS.gap(Duration::from_millis(30)),
            Duration::from_millis(600)
        );
        assert_eq!(
            COMMITS.gap(Duration::from_millis(80)),
            Duration::from_secs(1)
        );
    }
}
