//! Each user's open ticket (`userid_ticket`) and current match (`userid_match`), and the skip
//! exclusions (`untilms_skips`, `skips.rs`), written behind. Every join, match and skip
//! changes them, and writing them through to fjall with every event cost the log writer a
//! third of its time and fed most of fjall's flushes and compactions (README, Benchmarks →
//! Random matching, stops 58 and 59). So the matching stage keeps them in memory
//! ([`MatchRows`]) and writes only the rows that changed, at a checkpoint: at most every
//! [`CHECKPOINT_EVERY_MS`] of commit time after the last (the matcher submits one when no
//! command comes to write it), and at shutdown. While the stored rows are behind,
//! `matching_checkpoint` holds the seq they are current through, written with the first
//! change after a checkpoint and removed by the next, each in its command's own batch; a load
//! takes the stored rows and applies the log's matching events after that seq, so nothing
//! acknowledged is lost with a crash, and the log to apply stays a checkpoint's interval long.
//! What an event does to the rows is said once, in [`apply_event`]: the stage applies it to
//! memory, `girok replay`'s rebuild to the write model, event by event.

use super::apart::Apart;
pub(crate) use super::skips::SkipRows;
use crate::error::{Error, Result};
use crate::records::record;
use girok_schemas::proto::{MatchRecord, TicketRecord};
use girok_schemas::{Event, Payload, Seq, UserId};
use girok_storage::{Table, Txn};
use prost::Message;
use std::collections::{HashMap, HashSet};

/// Longest a changed row waits in memory (commit time) before a checkpoint writes it; with the
/// matcher's look (`matching.wave_interval_ms`), it bounds the log a load applies to the
/// stored rows.
pub(crate) const CHECKPOINT_EVERY_MS: i64 = 250;

/// The key of `matching_checkpoint`'s one row.
const CHECKPOINT_KEY: &[u8] = b"seq";

/// Log entries read at a time when catching up with the log after a checkpoint.
const CATCH_UP_CHUNK: usize = 4096;

/// Where an event's effect on the rows goes: the write model itself (a rebuild) or memory.
pub(crate) trait Rows {
    fn ticket(&self, user: UserId) -> Result<Option<TicketRecord>>;
    fn set_ticket(&mut self, user: UserId, ticket: Option<TicketRecord>);
    fn set_match(&mut self, user: UserId, current: Option<MatchRecord>);
    /// Keeps `a` and `b` apart until `until_ms` (`skips.rs`).
    fn add_skip(&mut self, a: UserId, b: UserId, until_ms: i64) -> Result<()>;
    /// Removes skip exclusions that ended by `now` (`skips.rs`).
    fn remove_ended_skips(&mut self, now: i64) -> Result<()>;
}

/// Applies `event`'s effect on the tickets, matches and skip exclusions, if it is one of
/// matching's.
pub(crate) fn apply_event(rows: &mut impl Rows, event: &Event) -> Result<()> {
    match &event.payload {
        Payload::TicketOpened { tags, language } => {
            if let Some(user) = event.actor {
                let ticket = TicketRecord {
                    ticket_id: event.id.as_bytes().to_vec(),
                    seq: event.seq,
                    opened_ms: event.commit_time_ms,
                    tags: tags.clone(),
                    language: language.clone().unwrap_or_default(),
                };
                rows.set_ticket(user, Some(ticket));
            }
        }
        Payload::TicketClosed { user, .. } => rows.set_ticket(*user, None),
        Payload::Matched {
            room,
            user_a,
            user_b,
            ..
        } => {
            for (user, partner) in [(user_a, user_b), (user_b, user_a)] {
                // The match closes the ticket (its preferences stay with the match).
                let ticket = rows.ticket(*user)?.unwrap_or_default();
                rows.set_ticket(*user, None);
                let current = MatchRecord {
                    room_id: room.as_bytes().to_vec(),
                    partner: partner.as_bytes().to_vec(),
                    seq: event.seq,
                    matched_ms: event.commit_time_ms,
                    tags: ticket.tags,
                    language: ticket.language,
                };
                rows.set_match(*user, Some(current));
            }
        }
        Payload::MatchSkipped {
            partner, until_ms, ..
        } => {
            if let Some(skipper) = event.actor {
                rows.set_match(skipper, None);
                rows.set_match(*partner, None);
                rows.remove_ended_skips(event.commit_time_ms)?;
                rows.add_skip(skipper, *partner, *until_ms)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The rows in the write model, as `girok replay` rebuilds it. The skip exclusions go to
/// `skips`, the spans as the rebuild makes them, in memory, which it writes after each chunk of
/// the log (a span's row read and rewritten at every skip instead: `girok replay` after 10 s at
/// 10,000 joins/s, 256,860 events, took 11.3 s that way, 4.1 s this way, and 7.9 s before the
/// spans).
pub(crate) struct Written<'t, 'a> {
    pub txn: &'t mut Txn<'a>,
    pub skips: &'t mut SkipRows,
}

impl Rows for Written<'_, '_> {
    fn ticket(&self, user: UserId) -> Result<Option<TicketRecord>> {
        record(
            self.txn.get(Table::UseridTicket, user.as_bytes())?,
            "ticket",
        )
    }

    fn set_ticket(&mut self, user: UserId, ticket: Option<TicketRecord>) {
        put_or_delete(self.txn, Table::UseridTicket, user, ticket);
    }

    fn set_match(&mut self, user: UserId, current: Option<MatchRecord>) {
        put_or_delete(self.txn, Table::UseridMatch, user, current);
    }

    fn add_skip(&mut self, a: UserId, b: UserId, until_ms: i64) -> Result<()> {
        self.skips.add(a, b, until_ms);
        Ok(())
    }

    fn remove_ended_skips(&mut self, now: i64) -> Result<()> {
        self.skips.remove_ended(now);
        Ok(())
    }
}

fn put_or_delete(txn: &mut Txn<'_>, table: Table, user: UserId, row: Option<impl Message>) {
    let key = user.as_bytes().to_vec();
    match row {
        Some(row) => txn.put(table, key, row.encode_to_vec()),
        None => txn.delete(table, key),
    }
}

/// The rows as the stage keeps them: all tickets and matches and which users' changed since
/// the last checkpoint, the skip exclusions' changes, and the pairs apart they make.
#[derive(Default)]
pub(crate) struct MatchRows {
    pub tickets: HashMap<UserId, TicketRecord>,
    pub matches: HashMap<UserId, MatchRecord>,
    pub apart: Apart,
    skips: SkipRows,
    changed: HashSet<UserId>,
    /// Users changed since the stage last published them ([`Published::update`]).
    unpublished: Vec<UserId>,
    /// The seq before the first change since the last checkpoint (what the stored rows are
    /// current through), until `matching_checkpoint` holds it.
    behind_through: Option<Seq>,
    /// Whether `matching_checkpoint` holds a seq (as this batch leaves it).
    marker_stored: bool,
    /// Commit time of the last checkpoint (or of the load).
    checkpointed_ms: i64,
    /// Changes made so far (a command that fails after one must not leave it behind).
    changes: u64,
}

impl Rows for MatchRows {
    fn ticket(&self, user: UserId) -> Result<Option<TicketRecord>> {
        Ok(self.tickets.get(&user).cloned())
    }

    fn set_ticket(&mut self, user: UserId, ticket: Option<TicketRecord>) {
        match ticket {
            Some(ticket) => self.tickets.insert(user, ticket),
            None => self.tickets.remove(&user),
        };
        self.changed(user);
    }

    fn set_match(&mut self, user: UserId, current: Option<MatchRecord>) {
        match current {
            Some(current) => self.matches.insert(user, current),
            None => self.matches.remove(&user),
        };
        self.changed(user);
    }

    fn add_skip(&mut self, a: UserId, b: UserId, until_ms: i64) -> Result<()> {
        self.changes += 1;
        self.apart.set(a, b, until_ms);
        self.skips.add(a, b, until_ms);
        Ok(())
    }

    fn remove_ended_skips(&mut self, now: i64) -> Result<()> {
        self.changes += 1;
        self.apart.drop_ended(now);
        self.skips.remove_ended(now);
        Ok(())
    }
}

fn user_of(key: &[u8]) -> Result<UserId> {
    UserId::from_slice(key).ok_or_else(|| Error::Internal("corrupt matching key".into()))
}

impl MatchRows {
    /// The stored rows, brought up to the log (as this batch leaves it) with the matching
    /// events after their checkpoint.
    pub fn load(txn: &Txn<'_>) -> Result<Self> {
        let mut rows = MatchRows {
            checkpointed_ms: txn.commit_time_ms(),
            ..MatchRows::default()
        };
        for (key, value) in txn.scan_prefix(Table::UseridTicket, &[])? {
            let ticket: TicketRecord = crate::records::decode(Some(value), "ticket")?;
            rows.tickets.insert(user_of(&key)?, ticket);
        }
        for (key, value) in txn.scan_prefix(Table::UseridMatch, &[])? {
            // A corrupt row costs its user's match, not everyone's matching.
            match user_of(&key).and_then(|user| Ok((user, record(Some(value), "match")?))) {
                Ok((user, Some(current))) => {
                    rows.matches.insert(user, current);
                }
                Ok((_, None)) => {}
                Err(error) => tracing::error!(%error, "matching skips a corrupt match row"),
            }
        }
        rows.skips = SkipRows::load(txn, &mut rows.apart)?;
        let marker = txn.get(Table::MatchingCheckpoint, CHECKPOINT_KEY)?;
        if let Some(through) = marker
            .map(|seq| seq_of(&seq, "matching checkpoint"))
            .transpose()?
        {
            rows.marker_stored = true;
            let mut from = through.saturating_add(1);
            loop {
                let entries = txn.scan_range(
                    Table::SeqEvent,
                    &from.to_be_bytes(),
                    &Seq::MAX.to_be_bytes(),
                    CATCH_UP_CHUNK,
                )?;
                let Some((last, _)) = entries.last() else {
                    break;
                };
                from = seq_of(last, "log key")?.saturating_add(1);
                for (key, bytes) in &entries {
                    let event = decode(seq_of(key, "log key")?, bytes)?;
                    apply_event(&mut rows, &event)?;
                }
            }
        }
        rows.unpublished.clear();
        Ok(rows)
    }

    /// How many changes were made to them (compared before and after a command).
    pub fn changes(&self) -> u64 {
        self.changes + self.apart.changes()
    }

    /// Whether there are changes a checkpoint has not written.
    fn is_dirty(&self) -> bool {
        !self.changed.is_empty() || self.skips.is_dirty()
    }

    fn changed(&mut self, user: UserId) {
        self.changes += 1;
        self.changed.insert(user);
        self.unpublished.push(user);
    }

    /// Notes that the event at `seq` is about to change the rows: the first such event since
    /// the last checkpoint makes the stored rows behind from it on.
    pub fn note_event(&mut self, seq: Seq) {
        if !self.marker_stored && self.behind_through.is_none() {
            self.behind_through = Some(seq.saturating_sub(1));
        }
    }

    /// When the next checkpoint is due (commit time); `i64::MAX`: nothing to write.
    pub fn checkpoint_due_ms(&self) -> i64 {
        if self.is_dirty() {
            self.checkpointed_ms.saturating_add(CHECKPOINT_EVERY_MS)
        } else if self.marker_stored {
            i64::MIN
        } else {
            i64::MAX
        }
    }

    /// After a command: writes the changed rows into `txn` when a checkpoint is due (or
    /// `now`), and removes the seq they were behind at; otherwise stores that seq if the rows
    /// just fell behind. An error (a span row not read) leaves `txn` half written: the
    /// command must then be refused.
    pub fn settle(&mut self, txn: &mut Txn<'_>, now: bool) -> Result<()> {
        let time = txn.commit_time_ms();
        if now || time >= self.checkpoint_due_ms() {
            for user in std::mem::take(&mut self.changed) {
                let ticket = self.tickets.get(&user).cloned();
                put_or_delete(txn, Table::UseridTicket, user, ticket);
                let current = self.matches.get(&user).cloned();
                put_or_delete(txn, Table::UseridMatch, user, current);
            }
            self.skips.write(txn)?;
            if self.marker_stored {
                txn.delete(Table::MatchingCheckpoint, CHECKPOINT_KEY.to_vec());
                self.marker_stored = false;
            }
            self.behind_through = None;
            self.checkpointed_ms = time;
        } else if let Some(through) = self.behind_through.take()
            && !self.marker_stored
        {
            txn.put(
                Table::MatchingCheckpoint,
                CHECKPOINT_KEY.to_vec(),
                through.to_be_bytes().to_vec(),
            );
            self.marker_stored = true;
        }
        Ok(())
    }
}

/// A stored big-endian seq (`what` names it if it is not one).
fn seq_of(bytes: &[u8], what: &str) -> Result<Seq> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| Error::Internal(format!("corrupt {what}")))
}

fn decode(seq: Seq, bytes: &[u8]) -> Result<Event> {
    girok_schemas::decode_event(bytes).map_err(|source| Error::Decode { seq, source })
}

/// Each user's ticket and match as the stage holds them, shared with status reads (the stored
/// rows may be behind). Updated after every command the stage runs, like the rows a commit
/// makes readable before its fsync; emptied when the stage forgets its state, and filled again
/// at its next load (a reader that finds it empty has a wave submitted, which loads it).
#[derive(Default)]
pub(crate) struct Published {
    rows: parking_lot::RwLock<Option<HashMap<UserId, UserRows>>>,
}

/// One user's ticket and match.
pub(crate) type UserRows = (Option<TicketRecord>, Option<MatchRecord>);

impl Published {
    pub fn clear(&self) {
        *self.rows.write() = None;
    }

    pub fn fill(&self, rows: &MatchRows) {
        let mut all: HashMap<UserId, UserRows> = HashMap::new();
        for (user, ticket) in &rows.tickets {
            all.entry(*user).or_default().0 = Some(ticket.clone());
        }
        for (user, current) in &rows.matches {
            all.entry(*user).or_default().1 = Some(current.clone());
        }
        *self.rows.write() = Some(all);
    }

    pub fn update(&self, rows: &mut MatchRows) {
        if rows.unpublished.is_empty() {
            return;
        }
        let mut published = self.rows.write();
        let Some(all) = published.as_mut() else {
            rows.unpublished.clear();
            return;
        };
        for user in rows.unpublished.drain(..) {
            let ticket = rows.tickets.get(&user).cloned();
            let current = rows.matches.get(&user).cloned();
            if ticket.is_none() && current.is_none() {
                all.remove(&user);
            } else {
                all.insert(user, (ticket, current));
            }
        }
    }

    /// `user`'s rows, if the stage has published its state.
    pub fn get(&self, user: UserId) -> Option<UserRows> {
        self.rows
            .read()
            .as_ref()
            .map(|all| all.get(&user).cloned().unwrap_or_default())
    }
}
