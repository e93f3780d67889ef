//! One key's values with their counts, in order: a sorted vector while they are few, a B-tree
//! once they are many. Most keys of the in-memory indexes hold a handful of values (a user's
//! rooms, a post's likers and comments, a reader's likes), and a B-tree allocates a node of
//! eleven slots for even one (about 450 bytes for a membership): a heap profile of a start on
//! the issue-scale data put a third of the heap there. Past [`FEW`] values, inserting into the
//! middle of a vector would cost a copy of the rest, so a popular post's likers go to a
//! B-tree.

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::ops::{Bound, RangeBounds};

/// Most values kept in a sorted vector.
const FEW: usize = 32;

/// Values and their counts (a count is never zero: a value whose count reaches zero is gone).
pub(crate) enum Counts<V> {
    Few(Vec<(V, isize)>),
    Many(BTreeMap<V, isize>),
}

impl<V> Default for Counts<V> {
    fn default() -> Self {
        Counts::Few(Vec::new())
    }
}

impl<V: Ord + Copy> Counts<V> {
    /// From values in order, each once, none with a zero count.
    pub(crate) fn from_sorted(mut net: Vec<(V, isize)>) -> Self {
        if net.len() <= FEW {
            net.shrink_to_fit();
            Counts::Few(net)
        } else {
            Counts::Many(net.into_iter().collect())
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Counts::Few(values) => values.is_empty(),
            Counts::Many(values) => values.is_empty(),
        }
    }

    /// The count of `value` (zero when absent).
    pub(crate) fn get(&self, value: &V) -> isize {
        match self {
            Counts::Few(values) => values
                .binary_search_by(|(v, _)| v.cmp(value))
                .map_or(0, |at| values[at].1),
            Counts::Many(values) => values.get(value).copied().unwrap_or(0),
        }
    }

    /// Adds `diff` to the count of `value`, dropping it at zero; the count before.
    pub(crate) fn add(&mut self, value: V, diff: isize) -> isize {
        match self {
            Counts::Few(values) => {
                let before = match values.binary_search_by(|(v, _)| v.cmp(&value)) {
                    Ok(at) => {
                        let before = values[at].1;
                        values[at].1 += diff;
                        if values[at].1 == 0 {
                            values.remove(at);
                        }
                        before
                    }
                    Err(at) => {
                        if diff != 0 {
                            values.insert(at, (value, diff));
                        }
                        0
                    }
                };
                if values.len() > FEW {
                    *self = Counts::Many(std::mem::take(values).into_iter().collect());
                }
                before
            }
            Counts::Many(values) => super::add(values, value, diff),
        }
    }

    /// The values within `range` and their counts, in order (either way).
    pub(crate) fn range(&self, range: impl RangeBounds<V>) -> Range<'_, V> {
        match self {
            Counts::Few(values) => {
                let start = match range.start_bound() {
                    Bound::Included(x) => values.partition_point(|(v, _)| v < x),
                    Bound::Excluded(x) => values.partition_point(|(v, _)| v <= x),
                    Bound::Unbounded => 0,
                };
                let end = match range.end_bound() {
                    Bound::Included(x) => values.partition_point(|(v, _)| v <= x),
                    Bound::Excluded(x) => values.partition_point(|(v, _)| v < x),
                    Bound::Unbounded => values.len(),
                };
                Range::Few(values[start.min(end)..end].iter())
            }
            Counts::Many(values) => Range::Many(values.range(range)),
        }
    }

    /// Every value and its count, in order.
    pub(crate) fn iter(&self) -> Range<'_, V> {
        self.range(..)
    }
}

/// Values and counts of a [`Counts`] within a range.
pub(crate) enum Range<'a, V> {
    Few(std::slice::Iter<'a, (V, isize)>),
    Many(btree_map::Range<'a, V, isize>),
}

impl<'a, V> Iterator for Range<'a, V> {
    type Item = (&'a V, &'a isize);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Range::Few(values) => values.next().map(|(value, count)| (value, count)),
            Range::Many(values) => values.next(),
        }
    }
}

impl<V> DoubleEndedIterator for Range<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Range::Few(values) => values.next_back().map(|(value, count)| (value, count)),
            Range::Many(values) => values.next_back(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs<'a>(values: impl Iterator<Item = (&'a u64, &'a isize)>) -> Vec<(u64, isize)> {
        values.map(|(value, count)| (*value, *count)).collect()
    }

    /// Counts behave as a B-tree of counts, few or many, through inserts, retractions before
    /// insertions, removals at zero, and ranges of every kind of bound in both directions.
    #[test]
    fn counts_equal_a_btree_of_counts_whatever_their_size() {
        let mut state = 11u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        for spread in [5u64, 40, 200] {
            let mut counts: Counts<u64> = Counts::default();
            let mut model: BTreeMap<u64, isize> = BTreeMap::new();
            for _ in 0..2000 {
                let value = next() % spread;
                let diff = [1, 1, 1, -1, 2][(next() % 5) as usize];
                assert_eq!(
                    counts.add(value, diff),
                    super::super::add(&mut model, value, diff)
                );
                assert_eq!(counts.get(&value), model.get(&value).copied().unwrap_or(0));
                assert_eq!(counts.is_empty(), model.is_empty());
                let (a, b) = (next() % (spread + 2), next() % (spread + 2));
                let (low, high) = (a.min(b), a.max(b));
                assert_eq!(
                    pairs(counts.range(low..high)),
                    pairs(model.range(low..high))
                );
                assert_eq!(
                    pairs(counts.range(low..=high)),
                    pairs(model.range(low..=high))
                );
                assert_eq!(
                    pairs(counts.range(..high).rev()),
                    pairs(model.range(..high).rev())
                );
                let after = (Bound::Excluded(low), Bound::Unbounded);
                assert_eq!(pairs(counts.range(after)), pairs(model.range(after)));
                assert_eq!(pairs(counts.iter()), pairs(model.range(..)));
            }
            let sorted: Vec<(u64, isize)> = model.iter().map(|(v, c)| (*v, *c)).collect();
            let rebuilt = Counts::from_sorted(sorted.clone());
            assert_eq!(pairs(rebuilt.iter()), sorted);
        }
    }
}
