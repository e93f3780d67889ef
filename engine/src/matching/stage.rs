//! Matching's write-time rules and its decisions, run by the sequencer on the writer thread.
//! One open ticket per user and none while matched; a ticket is matched at once when a
//! compatible partner waits, otherwise by a later wave (`Wave`, which the matcher submits when
//! the pool says something is due). A pair is decided here, against the write model as this
//! batch leaves it, and committed as one atomic batch: the match room's creation, both joins
//! and `matching.matched`, which closes both tickets. So both tickets are open when they are
//! paired, nobody is in two matches, and replay reproduces every match from the log without
//! deciding anew. Time enters only as the batch's commit time.

use super::blocks::Blocks;
use super::command::MatchingCommand;
use super::pool::{MatchRules, Pool, Waiting};
use super::state::{MatchedWith, MatchingState};
use crate::ack::Ack;
use crate::error::{Error, Result};
use crate::staging::{append, append_event};
use girok_schemas::{EventId, Payload, RoomId, Seq, UserId};
use girok_storage::{Durability, Table, Txn};
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Why a ticket closed, as `matching.ticket.closed` says it (a match closes its two tickets
/// without it; logs written before said so with the reason `matched`).
pub(crate) mod reason {
    pub const LEFT: &str = "left";
    pub const MATCHED: &str = "matched";
    pub const EXPIRED: &str = "expired";
    pub const DISCONNECTED: &str = "disconnected";
}

/// Settings of the matcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchingConfig {
    pub rules: MatchRules,
    /// How long a skipped pair is kept apart.
    pub skip_exclusion_ms: i64,
    /// How often the matcher looks whether a wave is due.
    pub wave_interval: std::time::Duration,
    /// How durable the queue's commands are before they are answered
    /// ([`super::MatchingCommand::moves_the_queue`]): `Buffered` (the default) answers once
    /// their batch reached the OS, which survives `kill -9` of girok but not a power loss
    /// before the next fsync of the log (docs/architecture.md, "Durability modes").
    pub durability: Durability,
}

impl Default for MatchingConfig {
    fn default() -> Self {
        Self {
            rules: MatchRules {
                relax_after_ms: 10_000,
                ticket_ttl_ms: 300_000,
            },
            skip_exclusion_ms: 24 * 3600 * 1000,
            wave_interval: std::time::Duration::from_millis(100),
            durability: Durability::Buffered,
        }
    }
}

/// What the matcher and the status reads see of the pool, published by the writer thread.
#[derive(Default)]
pub(crate) struct PoolGauge {
    /// Open tickets.
    pub waiting: AtomicU64,
    /// The commit time from which a wave has something to do; `i64::MAX`: nothing.
    pub next_due_ms: AtomicI64,
    /// The commit time from which the rows' next checkpoint is due (`rows.rs`); `i64::MAX`:
    /// nothing changed.
    pub checkpoint_due_ms: AtomicI64,
    /// Skip exclusions held in memory (ended ones until the next wave or skip drops them):
    /// `girok_matching_pairs_apart`.
    pub pairs_apart: Gauge<u64, AtomicU64>,
    /// Matched users held in memory: `girok_matching_matched_users`.
    pub matched_users: Gauge<u64, AtomicU64>,
    /// Each user's ticket and match as the stage's rows hold them (`rows.rs`), for status
    /// reads: the stored rows may be behind.
    pub rows: super::rows::Published,
}

pub(crate) struct MatchingStage {
    /// The open tickets, current matches and pairs apart; `None` until loaded from the write
    /// model (and after a refused command or a batch that did not commit, whose changes it
    /// may hold).
    state: Option<MatchingState>,
    config: MatchingConfig,
    gauge: Arc<PoolGauge>,
}

impl MatchingStage {
    pub fn new(config: MatchingConfig, gauge: Arc<PoolGauge>) -> Self {
        gauge.next_due_ms.store(i64::MAX, Ordering::Relaxed);
        gauge.checkpoint_due_ms.store(i64::MAX, Ordering::Relaxed);
        Self {
            state: None,
            config,
            gauge,
        }
    }

    pub fn reset(&mut self) {
        self.forget_state();
    }

    /// Drops the state (it may hold changes that did not happen) and asks the matcher for a
    /// wave at once, which loads it again and publishes its true figures (expiries then do
    /// not wait for the next join).
    fn forget_state(&mut self) {
        self.state = None;
        self.gauge.rows.clear();
        self.gauge.next_due_ms.store(0, Ordering::Relaxed);
        self.gauge.waiting.fetch_max(1, Ordering::Relaxed);
    }

    /// Runs one command. A refused command leaves nothing in `txn` (the writer drops it), so
    /// a state it changed on the way (a refusal after a step: rare, a storage error) is
    /// dropped too and loaded again from the write model; the usual refusals come before any
    /// change and keep it.
    pub fn stage(
        &mut self,
        txn: &mut Txn<'_>,
        blocks: &mut Blocks,
        actor: UserId,
        new_id: EventId,
        command: MatchingCommand,
    ) -> Result<Ack> {
        self.load(txn)?;
        let before = self.state.as_ref().map(MatchingState::changes);
        let now = matches!(command, MatchingCommand::Checkpoint);
        let ack = self.run(txn, blocks, actor, new_id, command);
        if ack.is_err() && self.state.as_ref().map(MatchingState::changes) != before {
            self.forget_state();
        } else {
            if ack.is_ok()
                && let Some(state) = &mut self.state
            {
                // The pool's size goes out before the rows: a status read that sees the rows
                // (under their lock) then sees it too, not the size from before the command.
                self.gauge
                    .waiting
                    .store(state.pool.len() as u64, Ordering::Relaxed);
                self.gauge.rows.update(&mut state.rows);
                if let Err(error) = state.rows.settle(txn, now) {
                    // The writer drops the command's writes: what it taught the blocks (a
                    // block or an unblock) goes with them.
                    blocks.reset();
                    self.forget_state();
                    return Err(error);
                }
            }
            self.publish();
        }
        ack
    }

    fn run(
        &mut self,
        txn: &mut Txn<'_>,
        blocks: &mut Blocks,
        actor: UserId,
        new_id: EventId,
        command: MatchingCommand,
    ) -> Result<Ack> {
        match command {
            MatchingCommand::Join { tags, language } => {
                self.join(txn, blocks, actor, new_id, tags, language)
            }
            MatchingCommand::Leave => self.close(txn, actor, new_id, None),
            MatchingCommand::Disconnected { opened_through } => {
                match self.close(txn, actor, new_id, Some(opened_through)) {
                    Err(Error::NotQueued) => Ok(nothing(txn, new_id)),
                    other => other,
                }
            }
            MatchingCommand::Skip { requeue } => {
                let current = self.current_match(actor).ok_or(Error::NotMatched)?;
                // The match's preferences, read before the skip removes its record.
                let requeue_with = match requeue {
                    true => Some(
                        self.state()
                            .match_record(actor)
                            .cloned()
                            .unwrap_or_default(),
                    ),
                    false => None,
                };
                let ended = self.end_match(txn, actor, new_id, current)?;
                match requeue_with {
                    Some(record) => {
                        let language = language_of(record.language);
                        let id = EventId::new_v7();
                        self.join(txn, blocks, actor, id, record.tags, language)
                    }
                    None => Ok(ended),
                }
            }
            MatchingCommand::Block { user } => self.block(txn, blocks, actor, new_id, user),
            MatchingCommand::Unblock { user } => {
                if !blocks.blocks(txn, actor, user)? {
                    return Err(Error::NotBlocked);
                }
                let ack = append(txn, actor, new_id, Payload::UserUnblocked { user })?;
                blocks.set(txn, actor, user, false)?;
                // Both may wait, now allowed to meet: the next wave looks again.
                let now = txn.commit_time_ms();
                for waiting in [actor, user] {
                    self.pool().recheck(waiting, now);
                }
                Ok(ack)
            }
            MatchingCommand::Wave => self.wave(txn, blocks, new_id),
            // `stage` writes it once the command ran.
            MatchingCommand::Checkpoint => Ok(nothing(txn, new_id)),
        }
    }

    /// The room of `user`'s current match (who is in a match room: `chat/membership.rs`).
    pub fn match_room_of(&mut self, txn: &Txn<'_>, user: UserId) -> Result<Option<RoomId>> {
        self.load(txn)?;
        Ok(self.current_match(user).map(|current| current.room))
    }

    fn load(&mut self, txn: &Txn<'_>) -> Result<()> {
        if self.state.is_none() {
            let state = MatchingState::load(txn)?;
            self.gauge.rows.fill(&state.rows);
            self.state = Some(state);
        }
        Ok(())
    }

    fn state(&mut self) -> &mut MatchingState {
        self.state.get_or_insert_with(MatchingState::default)
    }

    fn pool(&mut self) -> &mut Pool {
        &mut self.state().pool
    }

    fn current_match(&mut self, user: UserId) -> Option<MatchedWith> {
        self.state().current_match(user)
    }

    /// Publishes the pool's figures (none while it is unloaded).
    fn publish(&mut self) {
        let rules = self.config.rules;
        let Some(state) = &self.state else {
            return;
        };
        let (pool, apart) = (&state.pool, &state.rows.apart);
        self.gauge.pairs_apart.set(apart.len() as u64);
        self.gauge.matched_users.set(state.matched_users() as u64);
        let (waiting, due) = (pool.len() as u64, pool.next_due(&rules));
        self.gauge.waiting.store(waiting, Ordering::Relaxed);
        self.gauge
            .next_due_ms
            .store(due.unwrap_or(i64::MAX), Ordering::Relaxed);
        self.gauge
            .checkpoint_due_ms
            .store(state.rows.checkpoint_due_ms(), Ordering::Relaxed);
    }

    fn join(
        &mut self,
        txn: &mut Txn<'_>,
        blocks: &mut Blocks,
        actor: UserId,
        new_id: EventId,
        tags: Vec<String>,
        language: Option<String>,
    ) -> Result<Ack> {
        if self.pool().get(actor).is_some() {
            return Err(Error::AlreadyQueued);
        }
        if let Some(current) = self.current_match(actor) {
            return Err(Error::AlreadyMatched(current.room));
        }
        let opened = self.append_recorded(
            txn,
            Some(actor),
            new_id,
            Payload::TicketOpened {
                tags: tags.clone(),
                language: language.clone(),
            },
        )?;
        let now = opened.commit_time_ms;
        self.pool()
            .insert(Waiting::new(actor, opened.seq, now, tags, language));
        match self.partner_of(txn, blocks, actor, now)? {
            Some(partner) => {
                let (matched, room) = self.pair(txn, partner, actor, now, Some(actor))?;
                Ok(Ack {
                    seq: matched.seq,
                    matched: Some((room, partner)),
                    ..opened
                })
            }
            None => Ok(opened),
        }
    }

    fn partner_of(
        &mut self,
        txn: &Txn<'_>,
        blocks: &mut Blocks,
        user: UserId,
        now: i64,
    ) -> Result<Option<UserId>> {
        let rules = self.config.rules;
        let MatchingState { pool, rows, .. } = self.state();
        let apart = &rows.apart;
        // A pair kept apart by a skip may meet once its exclusion ends: look again then.
        let mut apart_until: Option<i64> = None;
        let partner = pool.best_partner(user, now, &rules, |a, b| {
            if blocks.between(txn, a, b)? {
                return Ok::<_, Error>(false);
            }
            match apart.until(a, b, now) {
                Some(until) => {
                    apart_until = Some(apart_until.map_or(until, |at| at.min(until)));
                    Ok(false)
                }
                None => Ok(true),
            }
        })?;
        if let (None, Some(until)) = (partner, apart_until) {
            pool.recheck(user, until);
        }
        Ok(partner)
    }

    /// Pairs the open tickets of `older` and `newer` (the one that waited longer first).
    /// Returns the match's ack and its room. `made_by` is the user whose join (or requeueing
    /// skip) made the match, the actor of `matching.matched`; `None` for a wave's.
    fn pair(
        &mut self,
        txn: &mut Txn<'_>,
        older: UserId,
        newer: UserId,
        now: i64,
        made_by: Option<UserId>,
    ) -> Result<(Ack, RoomId)> {
        let pool = self.pool();
        let (Some(a), Some(b)) = (pool.remove(older), pool.remove(newer)) else {
            return Err(Error::Internal("paired a ticket that is not open".into()));
        };
        let shared_tags = a.shared_tags(&b);
        let room = RoomId(EventId::new_v7().0);
        let title = match shared_tags.as_slice() {
            [] => "Random match".to_owned(),
            tags => format!("Random match: {}", tags.join(", ")),
        };
        let title = crate::text::name("title", &title, crate::limits::MAX_ROOM_TITLE_CHARS)
            .unwrap_or_else(|_| "Random match".to_owned());
        // One event opens the room with both in it and closes both tickets.
        let matched = self.append_recorded(
            txn,
            made_by,
            EventId::new_v7(),
            Payload::Matched {
                room,
                user_a: a.user,
                user_b: b.user,
                ticket_a_seq: a.seq,
                ticket_b_seq: b.seq,
                shared_tags,
                wait_a_ms: now - a.opened_ms,
                wait_b_ms: now - b.opened_ms,
                room_title: Some(title),
            },
        )?;
        // `matching.matched` closes both tickets itself (it names them): no closing events.
        Ok((matched, room))
    }

    /// Closes `actor`'s open ticket: they left (`opened_through: None`), or their last
    /// connection went away once the log was at that seq (a ticket opened after it stays).
    fn close(
        &mut self,
        txn: &mut Txn<'_>,
        actor: UserId,
        new_id: EventId,
        opened_through: Option<Seq>,
    ) -> Result<Ack> {
        let pool = self.pool();
        let open = pool
            .get(actor)
            .is_some_and(|w| opened_through.is_none_or(|seq| w.seq <= seq));
        let waiting = open
            .then(|| pool.remove(actor))
            .flatten()
            .ok_or(Error::NotQueued)?;
        let why = match opened_through {
            None => reason::LEFT,
            Some(_) => reason::DISCONNECTED,
        };
        self.close_ticket(txn, Some(actor), new_id, &waiting, why)
    }

    /// Ends `actor`'s match `current`: the skip (which keeps the pair apart for a while) is
    /// also both leaving the match room, which is closed from then on.
    fn end_match(
        &mut self,
        txn: &mut Txn<'_>,
        actor: UserId,
        new_id: EventId,
        MatchedWith { room, partner }: MatchedWith,
    ) -> Result<Ack> {
        let until_ms = txn
            .commit_time_ms()
            .saturating_add(self.config.skip_exclusion_ms.max(0));
        // One event is the skip and both leaving the room.
        // Recording it keeps the pair apart (`rows.rs`).
        let skipped = self.append_recorded(
            txn,
            Some(actor),
            new_id,
            Payload::MatchSkipped {
                room,
                partner,
                until_ms,
                members_left: true,
            },
        )?;
        Ok(skipped)
    }

    fn block(
        &mut self,
        txn: &mut Txn<'_>,
        blocks: &mut Blocks,
        actor: UserId,
        new_id: EventId,
        user: UserId,
    ) -> Result<Ack> {
        if user == actor {
            return Err(Error::invalid("userId", "you cannot block yourself"));
        }
        if !txn.contains(Table::UseridUser, user.as_bytes())? {
            return Err(Error::UserNotFound);
        }
        if blocks.blocks(txn, actor, user)? {
            return Err(Error::AlreadyBlocked);
        }
        if let Some(current) = self.current_match(actor)
            && current.partner == user
        {
            self.end_match(txn, actor, EventId::new_v7(), current)?;
        }
        let ack = append(txn, actor, new_id, Payload::UserBlocked { user })?;
        blocks.set(txn, actor, user, true)?;
        Ok(ack)
    }

    /// Expires what waited too long, then looks again for partners of the tickets whose
    /// preferences relaxed, longest waiting first.
    fn wave(&mut self, txn: &mut Txn<'_>, blocks: &mut Blocks, new_id: EventId) -> Result<Ack> {
        let now = txn.commit_time_ms();
        let rules = self.config.rules;
        self.state().rows.apart.drop_ended(now);
        let (expired, relaxed) = self.pool().due(now, &rules);
        for user in expired {
            if let Some(waiting) = self.pool().remove(user) {
                self.close_ticket(txn, None, EventId::new_v7(), &waiting, reason::EXPIRED)?;
            }
        }
        for user in relaxed {
            if self.pool().get(user).is_none() {
                continue; // paired earlier in this wave
            }
            if let Some(partner) = self.partner_of(txn, blocks, user, now)? {
                let (older, newer) = self.by_age(user, partner);
                self.pair(txn, older, newer, now, None)?;
            }
        }
        Ok(nothing(txn, new_id))
    }

    /// Appends one of matching's events and applies it to the rows in memory.
    fn append_recorded(
        &mut self,
        txn: &mut Txn<'_>,
        actor: Option<UserId>,
        id: EventId,
        payload: Payload,
    ) -> Result<Ack> {
        let event = append_event(txn, actor, id, payload)?;
        self.state().record(&event)?;
        Ok(Ack::of(&event))
    }

    /// Appends the closing of `waiting`'s ticket for `why`, by `actor` (`None`: girok's
    /// decision).
    fn close_ticket(
        &mut self,
        txn: &mut Txn<'_>,
        actor: Option<UserId>,
        id: EventId,
        waiting: &Waiting,
        why: &str,
    ) -> Result<Ack> {
        let closed = Payload::TicketClosed {
            user: waiting.user,
            ticket_seq: waiting.seq,
            reason: why.to_owned(),
            waited_ms: txn.commit_time_ms() - waiting.opened_ms,
        };
        self.append_recorded(txn, actor, id, closed)
    }

    fn by_age(&mut self, a: UserId, b: UserId) -> (UserId, UserId) {
        let pool = self.pool();
        let key = |u: UserId| pool.get(u).map(|w| (w.opened_ms, w.seq));
        if key(a) <= key(b) { (a, b) } else { (b, a) }
    }
}

/// The ack of a command that appended nothing (or only what girok decided on its own).
fn nothing(txn: &Txn<'_>, new_id: EventId) -> Ack {
    Ack::new(txn.next_seq() - 1, new_id, txn.commit_time_ms())
}

/// A stored language (empty: none).
pub(crate) fn language_of(stored: String) -> Option<String> {
    Some(stored).filter(|language| !language.is_empty())
}
