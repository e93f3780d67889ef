//! Matching reads, each an `Engine` method: a user's status in the queue (their open ticket,
//! how many wait, their current match) and whom they block, from the write model; and the
//! hand-off of a lost connection, which closes an open ticket through the log.

use super::command::MatchingCommand;
use crate::command::Command;
use crate::engine::Engine;
use crate::error::{Error, Result};
use girok_schemas::proto::MatchRecord;
use girok_schemas::{EventId, RoomId, Seq, UserId};
use girok_storage::Table;
use std::sync::atomic::Ordering;

/// A user's open ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedTicket {
    pub ticket: EventId,
    pub seq: Seq,
    pub since_ms: i64,
    pub tags: Vec<String>,
    pub language: Option<String>,
}

/// A user's current match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentMatch {
    pub room: RoomId,
    pub partner: UserId,
    pub seq: Seq,
    pub since_ms: i64,
}

impl CurrentMatch {
    /// The match a join (or a skip that re-queued) made at once, as its acknowledgement says
    /// (exact, where a status read may already show later changes).
    pub fn made_by(ack: &crate::Ack) -> Option<CurrentMatch> {
        ack.matched.map(|(room, partner)| CurrentMatch {
            room,
            partner,
            seq: ack.seq,
            since_ms: ack.commit_time_ms,
        })
    }
}

/// Where a user stands in random matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchingStatus {
    pub queued: Option<QueuedTicket>,
    /// Open tickets, the user's own included.
    pub waiting: u64,
    pub current: Option<CurrentMatch>,
}

fn corrupt(what: &str) -> Error {
    Error::Internal(format!("corrupt {what} record"))
}

impl TryFrom<&MatchRecord> for CurrentMatch {
    type Error = Error;

    fn try_from(m: &MatchRecord) -> Result<Self> {
        Ok(CurrentMatch {
            room: RoomId::from_slice(&m.room_id).ok_or_else(|| corrupt("match"))?,
            partner: UserId::from_slice(&m.partner).ok_or_else(|| corrupt("match"))?,
            seq: m.seq,
            since_ms: m.matched_ms,
        })
    }
}

/// A user's ticket and match as the status shows them.
fn user_status(
    (ticket, current): super::rows::UserRows,
) -> Result<(Option<QueuedTicket>, Option<CurrentMatch>)> {
    let queued = ticket
        .map(|t| {
            Ok::<_, Error>(QueuedTicket {
                ticket: EventId::from_slice(&t.ticket_id).ok_or_else(|| corrupt("ticket"))?,
                seq: t.seq,
                since_ms: t.opened_ms,
                tags: t.tags,
                language: super::stage::language_of(t.language),
            })
        })
        .transpose()?;
    Ok((
        queued,
        current.as_ref().map(CurrentMatch::try_from).transpose()?,
    ))
}

impl Engine {
    /// `user`'s open ticket, how many wait, and their current match.
    pub async fn matching_status(&self, user: UserId) -> Result<MatchingStatus> {
        let (queued, current) = user_status(self.published_rows(user).await?)?;
        Ok(MatchingStatus {
            queued,
            waiting: self.matching_pool.waiting.load(Ordering::Relaxed),
            current,
        })
    }

    /// The users `user` blocks, oldest block first.
    pub async fn blocked_users(&self, user: UserId) -> Result<Vec<UserId>> {
        self.blocking(move |store| {
            let mut blocked: Vec<(Seq, UserId)> = Vec::new();
            for (key, value) in store.scan_prefix(Table::BlockerBlocked, user.as_bytes())? {
                let other = key
                    .get(16..)
                    .and_then(UserId::from_slice)
                    .ok_or_else(|| corrupt("block"))?;
                blocked.push((crate::records::seq_value(Some(value)), other));
            }
            blocked.sort();
            Ok(blocked.into_iter().map(|(_, user)| user).collect())
        })
        .await
    }

    /// `user`'s current match, as the matching stage published it. A corrupt row costs that
    /// match's room, as the stage itself skips it (`state.rs`), not all of the user's reads.
    pub(crate) async fn current_match_of(&self, user: UserId) -> Result<Option<CurrentMatch>> {
        let (_, current) = self.published_rows(user).await?;
        Ok(current.as_ref().and_then(|record| {
            CurrentMatch::try_from(record)
                .inspect_err(|error| tracing::error!(%error, "a corrupt match row is no match"))
                .ok()
        }))
    }

    /// `user`'s ticket and match as the matching stage published them (the stored rows may be
    /// behind: `rows.rs`). Before its first load, or after it forgot its state, a wave (what
    /// the matcher submits anyway) has it loaded and published.
    async fn published_rows(&self, user: UserId) -> Result<super::rows::UserRows> {
        // Twice: a batch that fails between the wave and the read forgets the state again.
        for _ in 0..2 {
            if let Some(rows) = self.matching_pool.rows.get(user) {
                return Ok(rows);
            }
            let wave = Command::Matching(MatchingCommand::Wave);
            self.submit(crate::command::NOBODY, wave).await?;
        }
        self.matching_pool.rows.get(user).ok_or(Error::Unavailable)
    }

    /// `user`'s last live connection went away: their open ticket closes (`disconnected`)
    /// through the log; a ticket opened after this moment (a reconnect that joined again)
    /// stays. Nothing is submitted while nobody waits, nor for a user the stage's published
    /// rows show without a ticket (most connections that end never joined); the stage decides
    /// the rest.
    pub async fn matching_disconnected(&self, user: UserId) -> Result<()> {
        if self.matching_pool.waiting.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        if let Some((None, _)) = self.matching_pool.rows.get(user) {
            return Ok(());
        }
        let command = MatchingCommand::Disconnected {
            opened_through: self.head(),
        };
        self.submit(user, Command::Matching(command)).await?;
        Ok(())
    }
}
