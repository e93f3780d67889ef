//! What the matching stage keeps of the write model in memory, in step with it, so that its
//! decisions read no storage: the open tickets (the pool), each user's current match, and the
//! pairs a skip keeps apart. Loaded together from the write model on first use, changed by the
//! stage as it appends, and forgotten together when a refused command changed them or a batch
//! did not commit (the write model is then the truth to load again).

use super::apart::Apart;
use super::pool::{Pool, Waiting};
use super::reads::CurrentMatch;
use super::stage::language_of;
use crate::error::{Error, Result};
use girok_schemas::proto::{MatchRecord, TicketRecord};
use girok_schemas::{RoomId, UserId};
use girok_storage::{Table, Txn};
use std::collections::HashMap;

/// A matched user's match as the stage needs it (the rest of the record, the match's
/// preferences, is read from the write model by the skip that requeues).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MatchedWith {
    pub room: RoomId,
    pub partner: UserId,
}

#[derive(Default)]
pub(crate) struct MatchingState {
    pub pool: Pool,
    pub apart: Apart,
    /// Each matched user's room and partner, as `userid_match` holds them (about 60 bytes a
    /// matched user).
    matches: HashMap<UserId, MatchedWith>,
    match_changes: u64,
}

fn user_of(key: &[u8]) -> Result<UserId> {
    UserId::from_slice(key).ok_or_else(|| Error::Internal("corrupt matching key".into()))
}

impl MatchingState {
    pub fn load(txn: &Txn<'_>) -> Result<Self> {
        let mut pool = Pool::default();
        for (key, value) in txn.scan_prefix(Table::UseridTicket, &[])? {
            let ticket: TicketRecord = crate::records::decode(Some(value), "ticket")?;
            let language = language_of(ticket.language);
            pool.insert(Waiting::new(
                user_of(&key)?,
                ticket.seq,
                ticket.opened_ms,
                ticket.tags,
                language,
            ));
        }
        let mut matches = HashMap::new();
        for (key, value) in txn.scan_prefix(Table::UseridMatch, &[])? {
            // A corrupt row costs its user's match, not everyone's matching.
            match user_of(&key).and_then(|user| Ok((user, matched_with(Some(value))?))) {
                Ok((user, Some(matched))) => {
                    matches.insert(user, matched);
                }
                Ok((_, None)) => {}
                Err(error) => tracing::error!(%error, "matching skips a corrupt match row"),
            }
        }
        Ok(Self {
            pool,
            apart: Apart::load(txn)?,
            matches,
            match_changes: 0,
        })
    }

    /// How many changes were made to it (a refused command that made one must not leave it).
    pub fn changes(&self) -> u64 {
        self.pool.changes() + self.apart.changes() + self.match_changes
    }

    /// `user`'s current match.
    pub fn current_match(&self, user: UserId) -> Option<MatchedWith> {
        self.matches.get(&user).copied()
    }

    /// Matched users.
    pub fn matched_users(&self) -> usize {
        self.matches.len()
    }

    /// Takes `user`'s current match from the write model as this command left it (a read of
    /// the batch's own writes, not of storage).
    pub fn note_match(&mut self, txn: &Txn<'_>, user: UserId) -> Result<()> {
        self.match_changes += 1;
        match matched_with(txn.get(Table::UseridMatch, user.as_bytes())?)? {
            Some(matched) => self.matches.insert(user, matched),
            None => self.matches.remove(&user),
        };
        Ok(())
    }
}

/// The room and partner of a stored match record.
fn matched_with(bytes: Option<Vec<u8>>) -> Result<Option<MatchedWith>> {
    let Some(record) = crate::records::record::<MatchRecord>(bytes, "match")? else {
        return Ok(None);
    };
    let CurrentMatch { room, partner, .. } = CurrentMatch::try_from(&record)?;
    Ok(Some(MatchedWith { room, partner }))
}
