//! What the matching stage keeps of the write model in memory, in step with it, so that its
//! decisions read no storage: the tickets', matches' and skip exclusions' rows (written
//! behind: `rows.rs`) with the pairs a skip keeps apart, and the open tickets as the pool
//! orders them (each user's current match is read from their row). Loaded together from the
//! write model (and the log after its checkpoint) on first use, changed by the stage as it
//! appends, and forgotten together when a refused command changed them or a batch did not
//! commit (the write model and the log are then the truth to load again).

use super::pool::{Pool, Waiting};
use super::reads::CurrentMatch;
use super::rows::MatchRows;
use super::stage::language_of;
use crate::error::Result;
use girok_schemas::proto::MatchRecord;
use girok_schemas::{Event, RoomId, UserId};
use girok_storage::Txn;

/// A matched user's match as the stage's decisions need it (the rest of the record, the
/// match's preferences, is in the rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MatchedWith {
    pub room: RoomId,
    pub partner: UserId,
}

#[derive(Default)]
pub(crate) struct MatchingState {
    pub pool: Pool,
    pub rows: MatchRows,
}

impl MatchingState {
    pub fn load(txn: &Txn<'_>) -> Result<Self> {
        let rows = MatchRows::load(txn)?;
        let mut pool = Pool::default();
        for (user, ticket) in &rows.tickets {
            let language = language_of(ticket.language.clone());
            pool.insert(Waiting::new(
                *user,
                ticket.seq,
                ticket.opened_ms,
                ticket.tags.clone(),
                language,
            ));
        }
        Ok(Self { pool, rows })
    }

    /// How many changes were made to it (a refused command that made one must not leave it).
    pub fn changes(&self) -> u64 {
        self.pool.changes() + self.rows.changes()
    }

    /// `user`'s current match, from their match row (a corrupt row costs that user's match,
    /// not everyone's matching).
    pub fn current_match(&self, user: UserId) -> Option<MatchedWith> {
        let record = self.rows.matches.get(&user)?;
        let CurrentMatch { room, partner, .. } = CurrentMatch::try_from(record)
            .inspect_err(|error| tracing::error!(%error, "matching skips a corrupt match row"))
            .ok()?;
        Some(MatchedWith { room, partner })
    }

    /// Matched users.
    pub fn matched_users(&self) -> usize {
        self.rows.matches.len()
    }

    /// Applies an event this stage appended to the rows.
    pub fn record(&mut self, event: &Event) -> Result<()> {
        self.rows.note_event(event.seq);
        super::rows::apply_event(&mut self.rows, event)
    }

    /// `user`'s match record, with its preferences.
    pub fn match_record(&self, user: UserId) -> Option<&MatchRecord> {
        self.rows.matches.get(&user)
    }
}
