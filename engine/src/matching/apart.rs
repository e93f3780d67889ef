//! The pairs a skip keeps apart, as the matching stage checks them before pairing two users:
//! every exclusion not yet ended, in memory, with the time it ends. Loaded with the skip
//! exclusions' rows (`skips.rs`) and forgotten with them; every skip the stage appends adds
//! its pair, and what ended is dropped, so no candidate costs a read of storage. Its size is
//! the number of exclusions not yet ended (one per pair skipped in the last
//! `skip_exclusion_ms`, about 120 bytes each; ended ones until the next wave or skip drops
//! them), as the baseline's sorted sets keep them in memory too.

use girok_schemas::UserId;
use std::collections::{BTreeSet, HashMap};

/// The two users of a pair, the smaller id first (as `records::pair_key` orders them).
type Pair = (UserId, UserId);

fn pair(a: UserId, b: UserId) -> Pair {
    if a <= b { (a, b) } else { (b, a) }
}

#[derive(Default)]
pub(crate) struct Apart {
    until: HashMap<Pair, i64>,
    /// `(end, pair)`: what ends first, first.
    by_end: BTreeSet<(i64, Pair)>,
    /// Changes made so far (a command that fails after one must not leave it behind).
    changes: u64,
}

impl Apart {
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Until when `a` and `b` are kept apart, if that is after `now`.
    pub fn until(&self, a: UserId, b: UserId, now: i64) -> Option<i64> {
        self.until
            .get(&pair(a, b))
            .copied()
            .filter(|until| *until > now)
    }

    /// Keeps `a` and `b` apart until `until`, unless an exclusion of theirs ends later: a
    /// pair is apart until the last of its exclusions ends, whatever order they are read in.
    pub fn set(&mut self, a: UserId, b: UserId, until: i64) {
        let pair = pair(a, b);
        self.changes += 1;
        match self.until.get(&pair) {
            Some(&later) if later >= until => return,
            Some(&earlier) => {
                self.by_end.remove(&(earlier, pair));
            }
            None => {}
        }
        self.until.insert(pair, until);
        self.by_end.insert((until, pair));
    }

    /// Forgets the exclusions that ended by `now` (they keep nobody apart).
    pub fn drop_ended(&mut self, now: i64) {
        while let Some(&(until, pair)) = self.by_end.first()
            && until <= now
        {
            self.by_end.pop_first();
            self.until.remove(&pair);
            self.changes += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.until.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u128) -> UserId {
        UserId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_pair_is_apart_in_either_order_until_its_exclusion_ends() {
        let mut apart = Apart::default();
        apart.set(user(2), user(1), 100);
        assert_eq!(apart.until(user(1), user(2), 50), Some(100));
        assert_eq!(apart.until(user(2), user(1), 99), Some(100));
        assert_eq!(apart.until(user(1), user(2), 100), None);
        assert_eq!(apart.until(user(1), user(3), 0), None);

        // A later end of the same pair replaces the exclusion, and its index entry; an
        // earlier one changes nothing.
        apart.set(user(1), user(2), 300);
        apart.set(user(2), user(1), 120);
        apart.set(user(1), user(3), 200);
        apart.drop_ended(250);
        assert_eq!(apart.len(), 1);
        assert_eq!(apart.until(user(2), user(1), 250), Some(300));
        apart.drop_ended(300);
        assert_eq!(apart.len(), 0);
        assert!(apart.by_end.is_empty());
    }
}
