//! What the matching stage keeps of the write model in memory, in step with it, so that its
//! decisions read no storage: the tickets' and matches' rows (written behind: `rows.rs`), the
//! open tickets as the pool orders them, each user's current match, and the pairs a skip
//! keeps apart. Loaded together from the write model (and the log after its checkpoint) on
//! first use, changed by the stage as it appends, and forgotten together when a refused
//! command changed them or a batch did not commit (the write model and the log are then the
//! truth to load again).

use super::apart::Apart;
use super::pool::{Pool, Waiting};
use super::reads::CurrentMatch;
use super::rows::MatchRows;
use super::stage::language_of;
use crate::error::Result;
use girok_schemas::proto::MatchRecord;
use girok_schemas::{Event, RoomId, UserId};
use girok_storage::Txn;
use std::collections::HashMap;

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
    pub apart: Apart,
    pub rows: MatchRows,
    /// Each matched user's room and partner, as the rows hold them (about 60 bytes a matched
    /// user).
    matches: HashMap<UserId, MatchedWith>,
    match_changes: u64,
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
        let mut matches = HashMap::new();
        for (user, record) in &rows.matches {
            // A corrupt row costs its user's match, not everyone's matching.
            match matched_with(record) {
                Ok(matched) => {
                    matches.insert(*user, matched);
                }
                Err(error) => tracing::error!(%error, "matching skips a corrupt match row"),
            }
        }
        Ok(Self {
            pool,
            apart: Apart::load(txn)?,
            rows,
            matches,
            match_changes: 0,
        })
    }

    /// How many changes were made to it (a refused command that made one must not leave it).
    pub fn changes(&self) -> u64 {
        self.pool.changes() + self.apart.changes() + self.rows.changes() + self.match_changes
    }

    /// `user`'s current match.
    pub fn current_match(&self, user: UserId) -> Option<MatchedWith> {
        self.matches.get(&user).copied()
    }

    /// Matched users.
    pub fn matched_users(&self) -> usize {
        self.matches.len()
    }

    /// Applies an event this stage appended to the rows, and takes the current match of
    /// `users` from them.
    pub fn record(&mut self, event: &Event, users: &[UserId]) -> Result<()> {
        self.rows.note_event(event.seq);
        super::rows::apply_event(&mut self.rows, event)?;
        for user in users {
            self.match_changes += 1;
            match self.rows.matches.get(user).map(matched_with).transpose()? {
                Some(matched) => self.matches.insert(*user, matched),
                None => self.matches.remove(user),
            };
        }
        Ok(())
    }

    /// `user`'s match record, with its preferences.
    pub fn match_record(&self, user: UserId) -> Option<&MatchRecord> {
        self.rows.matches.get(&user)
    }
}

/// The room and partner of a match record.
fn matched_with(record: &MatchRecord) -> Result<MatchedWith> {
    let CurrentMatch { room, partner, .. } = CurrentMatch::try_from(record)?;
    Ok(MatchedWith { room, partner })
}
