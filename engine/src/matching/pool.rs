//! The queue as the matcher sees it: the open tickets with their preferences, oldest first,
//! and the rules that say which two may be paired at a given commit time. Pure: the stage
//! keeps one on the writer thread, in step with the write model, and decides with it.
//!
//! Preferences relax as a ticket waits (a pair counts the longer wait of its two tickets):
//! before half of `relax_after` both the language (when both gave one) and at least one
//! shared tag (when both gave tags) are required; from half of it the language only; from
//! `relax_after` on anyone will do. Among the partners allowed, the one with the most shared
//! tags (a shared language counts as one more) wins, and among equals the one that waited
//! longest.

use girok_schemas::{Seq, UserId};
use std::collections::{BTreeSet, HashMap};

/// How waiting changes what a ticket accepts, and how long it may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchRules {
    /// From this wait on any partner will do (half of it: tags no longer required).
    pub relax_after_ms: i64,
    /// A ticket open this long is closed as expired.
    pub ticket_ttl_ms: i64,
}

/// How much a pair has relaxed: 0 strict, 1 language only, 2 anyone.
type Level = u8;

impl MatchRules {
    fn level(&self, waited_ms: i64) -> Level {
        if waited_ms >= self.relax_after_ms {
            2
        } else if waited_ms >= self.relax_after_ms / 2 {
            1
        } else {
            0
        }
    }

    /// When a ticket opened at `opened_ms` next needs the matcher: its next relaxation, or its
    /// expiry.
    fn next_due(&self, opened_ms: i64, level: Level) -> i64 {
        // Saturating: the configuration may say "never" with a huge number.
        match level {
            0 => opened_ms.saturating_add(self.relax_after_ms / 2),
            1 => opened_ms.saturating_add(self.relax_after_ms),
            _ => opened_ms.saturating_add(self.ticket_ttl_ms),
        }
    }
}

/// One open ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Waiting {
    pub user: UserId,
    pub seq: Seq,
    pub opened_ms: i64,
    pub tags: Vec<String>,
    pub language: Option<String>,
    /// The level at which the matcher last looked for a partner for it.
    checked: Level,
    /// When to look again whatever the level: a partner it was kept from becomes allowed
    /// (a skip's exclusion ends, a block is taken back).
    recheck_ms: Option<i64>,
}

impl Waiting {
    pub fn new(
        user: UserId,
        seq: Seq,
        opened_ms: i64,
        tags: Vec<String>,
        language: Option<String>,
    ) -> Self {
        Self {
            user,
            seq,
            opened_ms,
            tags,
            language,
            checked: 0,
            recheck_ms: None,
        }
    }

    fn shared<'a>(&'a self, other: &'a Waiting) -> impl Iterator<Item = &'a String> {
        self.tags.iter().filter(|tag| other.tags.contains(tag))
    }

    pub fn shared_tags(&self, other: &Waiting) -> Vec<String> {
        self.shared(other).cloned().collect()
    }

    fn same_language(&self, other: &Waiting) -> Option<bool> {
        Some(self.language.as_ref()? == other.language.as_ref()?)
    }

    /// Whether the two may be paired at `level`, and how well they fit.
    fn fit(&self, other: &Waiting, level: Level) -> Option<usize> {
        let shared = self.shared(other).count();
        let language = self.same_language(other);
        let tags_required = level == 0 && !self.tags.is_empty() && !other.tags.is_empty();
        if (level < 2 && language == Some(false)) || (tags_required && shared == 0) {
            return None;
        }
        Some(shared + usize::from(language == Some(true)))
    }
}

/// The open tickets.
#[derive(Default)]
pub(crate) struct Pool {
    by_user: HashMap<UserId, Waiting>,
    /// `(opened ms, ticket seq, user)`: the longest waiting first.
    order: BTreeSet<(i64, Seq, UserId)>,
    /// Changes made so far (a command that fails after one must not leave it behind).
    changes: u64,
}

impl Pool {
    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    /// How many changes the pool has seen.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    pub fn insert(&mut self, waiting: Waiting) {
        self.changes += 1;
        if let Some(old) = self.by_user.remove(&waiting.user) {
            self.order.remove(&(old.opened_ms, old.seq, old.user));
        }
        self.order
            .insert((waiting.opened_ms, waiting.seq, waiting.user));
        self.by_user.insert(waiting.user, waiting);
    }

    pub fn remove(&mut self, user: UserId) -> Option<Waiting> {
        let waiting = self.by_user.remove(&user)?;
        self.changes += 1;
        self.order
            .remove(&(waiting.opened_ms, waiting.seq, waiting.user));
        Some(waiting)
    }

    pub fn get(&self, user: UserId) -> Option<&Waiting> {
        self.by_user.get(&user)
    }

    /// Asks the matcher to look for a partner for `user` again at `at_ms` (or earlier if it
    /// was due earlier anyway).
    pub fn recheck(&mut self, user: UserId, at_ms: i64) {
        if let Some(waiting) = self.by_user.get_mut(&user) {
            waiting.recheck_ms = Some(waiting.recheck_ms.map_or(at_ms, |due| due.min(at_ms)));
            self.changes += 1;
        }
    }

    /// The best partner for `user` at `now_ms` that `allowed` accepts (skips and blocks), or
    /// `None`. Expired tickets are nobody's partner.
    pub fn best_partner<E>(
        &self,
        user: UserId,
        now_ms: i64,
        rules: &MatchRules,
        mut allowed: impl FnMut(UserId, UserId) -> Result<bool, E>,
    ) -> Result<Option<UserId>, E> {
        let Some(me) = self.by_user.get(&user) else {
            return Ok(None);
        };
        // No partner fits better than sharing every tag and the language: the longest waiting
        // allowed one that does is the answer without looking further (with no preferences,
        // the first allowed one), so a join does not walk the whole queue.
        let best_possible = me.tags.len() + usize::from(me.language.is_some());
        // Oldest first, so a stable sort by fit keeps the longest waiting first among equals.
        let mut candidates: Vec<(usize, UserId)> = Vec::new();
        for &(opened_ms, _, other) in &self.order {
            if other == user || now_ms - opened_ms >= rules.ticket_ttl_ms {
                continue;
            }
            let Some(them) = self.by_user.get(&other) else {
                continue;
            };
            let level = rules.level(now_ms - opened_ms.min(me.opened_ms));
            let Some(fit) = me.fit(them, level) else {
                continue;
            };
            if fit < best_possible {
                candidates.push((fit, other));
            } else if allowed(user, other)? {
                return Ok(Some(other));
            }
        }
        candidates.sort_by_key(|(fit, _)| std::cmp::Reverse(*fit));
        for (_, other) in candidates {
            if allowed(user, other)? {
                return Ok(Some(other));
            }
        }
        Ok(None)
    }

    /// What a wave at `now_ms` has to do: the tickets past their time, and those whose
    /// preferences relaxed since the matcher last looked or whose recheck is due (each oldest
    /// first; marked looked at now).
    pub fn due(&mut self, now_ms: i64, rules: &MatchRules) -> (Vec<UserId>, Vec<UserId>) {
        let mut expired = Vec::new();
        let mut relaxed = Vec::new();
        for &(opened_ms, _, user) in &self.order {
            let waited = now_ms - opened_ms;
            if waited >= rules.ticket_ttl_ms {
                expired.push(user);
            } else if let Some(waiting) = self.by_user.get_mut(&user) {
                let level = rules.level(waited);
                let recheck = waiting.recheck_ms.is_some_and(|at| at <= now_ms);
                if level > waiting.checked || recheck {
                    self.changes += 1;
                    waiting.checked = level;
                    waiting.recheck_ms = None;
                    relaxed.push(user);
                }
            }
        }
        (expired, relaxed)
    }

    /// The earliest commit time at which a wave has something to do (`None`: nobody waits).
    pub fn next_due(&self, rules: &MatchRules) -> Option<i64> {
        self.by_user
            .values()
            .map(|w| {
                let due = rules.next_due(w.opened_ms, w.checked);
                w.recheck_ms.map_or(due, |at| at.min(due))
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: MatchRules = MatchRules {
        relax_after_ms: 10_000,
        ticket_ttl_ms: 300_000,
    };

    fn waiting(opened_ms: i64, tags: &[&str], language: Option<&str>) -> Waiting {
        Waiting::new(
            UserId::new_v7(),
            opened_ms as u64 + 1,
            opened_ms,
            tags.iter().map(|t| t.to_string()).collect(),
            language.map(Into::into),
        )
    }

    fn best(pool: &Pool, user: UserId, now_ms: i64) -> Option<UserId> {
        pool.best_partner(user, now_ms, &RULES, |_, _| Ok::<_, ()>(true))
            .unwrap()
    }

    #[test]
    fn strict_at_first_then_relaxed_as_tickets_wait() {
        let mut pool = Pool::default();
        let ko = waiting(0, &["music"], Some("ko"));
        let en = waiting(100, &["chess"], Some("en"));
        let (ko_user, en_user) = (ko.user, en.user);
        pool.insert(ko);
        pool.insert(en);
        // Different languages and no shared tag: nobody, until ten seconds of waiting.
        assert_eq!(best(&pool, en_user, 200), None);
        assert_eq!(best(&pool, en_user, 5_000), None, "language still required");
        assert_eq!(best(&pool, en_user, 10_000), Some(ko_user));
        // Same language, no shared tag: from five seconds on.
        let mut pool = Pool::default();
        let a = waiting(0, &["music"], Some("en"));
        let b = waiting(100, &["chess"], Some("en"));
        let (a_user, b_user) = (a.user, b.user);
        pool.insert(a);
        pool.insert(b);
        assert_eq!(best(&pool, b_user, 4_999), None);
        assert_eq!(best(&pool, b_user, 5_000), Some(a_user));
    }

    #[test]
    fn more_shared_tags_win_then_the_longest_wait() {
        let mut pool = Pool::default();
        let one = waiting(0, &["music", "go"], None);
        let two_late = waiting(50, &["music", "chess"], None);
        let two_early = waiting(20, &["music", "chess"], None);
        let me = waiting(100, &["music", "chess"], None);
        let (two_early_user, me_user) = (two_early.user, me.user);
        for w in [one, two_late, two_early, me] {
            pool.insert(w);
        }
        assert_eq!(best(&pool, me_user, 100), Some(two_early_user));
        // A refused pair (a skip, a block) falls to the next best.
        let next = pool
            .best_partner(me_user, 100, &RULES, |_, other| {
                Ok::<_, ()>(other != two_early_user)
            })
            .unwrap();
        assert_ne!(next, Some(two_early_user));
        assert!(next.is_some());
    }

    #[test]
    fn the_best_possible_fit_ends_the_search_and_refusals_fall_through() {
        let mut pool = Pool::default();
        let partial = waiting(0, &["music"], Some("en"));
        let full_early = waiting(10, &["music", "chess"], Some("en"));
        let full_late = waiting(20, &["music", "chess"], Some("en"));
        let me = waiting(30, &["music", "chess"], Some("en"));
        let users = [partial.user, full_early.user, full_late.user, me.user];
        for w in [partial, full_early, full_late, me] {
            pool.insert(w);
        }
        let mut asked = Vec::new();
        let found = pool
            .best_partner(users[3], 30, &RULES, |_, other| {
                asked.push(other);
                Ok::<_, ()>(true)
            })
            .unwrap();
        assert_eq!(
            found,
            Some(users[1]),
            "the longest waiting of the best fits"
        );
        assert_eq!(asked, [users[1]], "nobody else looked at");
        // Both best fits refused: the next best, the partial fit.
        let found = pool
            .best_partner(users[3], 30, &RULES, |_, other| {
                Ok::<_, ()>(other == users[0])
            })
            .unwrap();
        assert_eq!(found, Some(users[0]));
        // Without preferences, anyone fits best: the longest waiting allowed one.
        let mut pool = Pool::default();
        let (first, second, newcomer) = (
            waiting(0, &[], None),
            waiting(5, &[], None),
            waiting(9, &[], None),
        );
        let (first_user, second_user, newcomer_user) = (first.user, second.user, newcomer.user);
        for w in [first, second, newcomer] {
            pool.insert(w);
        }
        assert_eq!(best(&pool, newcomer_user, 9), Some(first_user));
        let found = pool
            .best_partner(newcomer_user, 9, &RULES, |_, other| {
                Ok::<_, ()>(other != first_user)
            })
            .unwrap();
        assert_eq!(found, Some(second_user));
    }

    #[test]
    fn expired_tickets_are_due_and_nobodys_partner() {
        let mut pool = Pool::default();
        let old = waiting(0, &[], None);
        let new = waiting(299_000, &[], None);
        let (old_user, new_user) = (old.user, new.user);
        pool.insert(old);
        pool.insert(new);
        assert_eq!(best(&pool, new_user, 299_500), Some(old_user));
        assert_eq!(best(&pool, new_user, 300_000), None);
        let (expired, relaxed) = pool.due(300_000, &RULES);
        assert_eq!(expired, vec![old_user]);
        assert_eq!(relaxed, Vec::<UserId>::new());
        pool.remove(old_user);
        assert_eq!(pool.next_due(&RULES), Some(299_000 + 5_000));
    }

    #[test]
    fn due_reports_each_relaxation_once() {
        let mut pool = Pool::default();
        let a = waiting(0, &[], None);
        let user = a.user;
        pool.insert(a);
        assert_eq!(pool.next_due(&RULES), Some(5_000));
        assert_eq!(pool.due(5_000, &RULES), (vec![], vec![user]));
        assert_eq!(pool.due(6_000, &RULES), (vec![], vec![]));
        assert_eq!(pool.next_due(&RULES), Some(10_000));
        assert_eq!(pool.due(10_000, &RULES), (vec![], vec![user]));
        assert_eq!(pool.next_due(&RULES), Some(300_000));
        // A partner allowed again later: a recheck then, once.
        pool.recheck(user, 20_000);
        pool.recheck(user, 30_000);
        assert_eq!(pool.next_due(&RULES), Some(20_000));
        assert_eq!(pool.due(19_999, &RULES), (vec![], vec![]));
        assert_eq!(pool.due(20_000, &RULES), (vec![], vec![user]));
        assert_eq!(pool.next_due(&RULES), Some(300_000));
    }
}
