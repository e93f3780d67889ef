//! What the matching stage keeps of the write model in memory, in step with it, so that its
//! decisions read no storage: the open tickets (the pool), each user's current match, and the
//! pairs a skip keeps apart. Loaded together from the write model on first use, changed by the
//! stage as it appends, and forgotten together when a refused command changed them or a batch
//! did not commit (the write model is then the truth to load again).

use super::apart::Apart;
use super::pool::{Pool, Waiting};
use super::stage::language_of;
use crate::error::{Error, Result};
use girok_schemas::UserId;
use girok_schemas::proto::{MatchRecord, TicketRecord};
use girok_storage::{Table, Txn};
use std::collections::HashMap;

#[derive(Default)]
pub(crate) struct MatchingState {
    pub pool: Pool,
    pub apart: Apart,
    /// Each matched user's match, as `userid_match` holds it.
    matches: HashMap<UserId, MatchRecord>,
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
            matches.insert(
                user_of(&key)?,
                crate::records::decode(Some(value), "match")?,
            );
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
    pub fn current_match(&self, user: UserId) -> Option<&MatchRecord> {
        self.matches.get(&user)
    }

    /// Takes `user`'s current match from the write model as this command left it (a read of
    /// the batch's own writes, not of storage).
    pub fn note_match(&mut self, txn: &Txn<'_>, user: UserId) -> Result<()> {
        self.match_changes += 1;
        match crate::records::record(txn.get(Table::UseridMatch, user.as_bytes())?, "match")? {
            Some(record) => self.matches.insert(user, record),
            None => self.matches.remove(&user),
        };
        Ok(())
    }
}
