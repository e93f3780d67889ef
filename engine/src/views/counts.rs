//! One key's values with their counts, in order. Nearly every value of the in-memory indexes
//! is there once (a post in its author's timeline, a member in a room, a like on a post), so
//! the usual form is a sorted vector of the values alone ([`Counts::Once`]): 8 bytes for a
//! post's seq where a B-tree of counts took about 30 (a heap profile of a post-heavy growth
//! phase put the profile timelines' B-trees at 30 bytes per post). Appends in order, the way a
//! timeline grows, stay in it at any size. Other counts (a retraction applied ahead of its
//! insertion, a value twice) go to a sorted vector of counts while few, and past [`FEW`]
//! values to a B-tree, as does a vector past [`FEW`] values that would otherwise be changed in
//! its middle (a popular post's likers arrive in no order): inserting or removing there costs
//! a copy of the rest.

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::ops::{Bound, RangeBounds};

/// Most values kept in a vector that changes anywhere but its end.
const FEW: usize = 32;

/// The count of every value of [`Counts::Once`].
const ONE: isize = 1;

/// Values and their counts (a count is never zero: a value whose count reaches zero is gone).
pub(crate) enum Counts<V> {
    /// Each value counted once, in order.
    Once(Vec<V>),
    /// Values and counts in order, at most [`FEW`] of them.
    Few(Vec<(V, isize)>),
    Many(BTreeMap<V, isize>),
}

impl<V> Default for Counts<V> {
    fn default() -> Self {
        Counts::Once(Vec::new())
    }
}

impl<V: Ord + Copy> Counts<V> {
    /// From values in order, each once, none with a zero count. The vectors kept are new ones
    /// of the exact size (a start restores millions of entries this way): collecting `net` in
    /// place would keep its buffer, twice the size for the values alone, and `shrink_to_fit`
    /// does not shrink a block at least half used under mimalloc.
    pub(crate) fn from_sorted(net: Vec<(V, isize)>) -> Self {
        if net.iter().all(|(_, count)| *count == ONE) {
            let mut values = Vec::with_capacity(net.len());
            values.extend(net.iter().map(|(value, _)| *value));
            Counts::Once(values)
        } else if net.len() <= FEW {
            Counts::Few(net.to_vec())
        } else {
            Counts::Many(net.into_iter().collect())
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Counts::Once(values) => values.is_empty(),
            Counts::Few(values) => values.is_empty(),
            Counts::Many(values) => values.is_empty(),
        }
    }

    /// The count of `value` (zero when absent).
    pub(crate) fn get(&self, value: &V) -> isize {
        match self {
            Counts::Once(values) => values.binary_search(value).map_or(0, |_| ONE),
            Counts::Few(values) => values
                .binary_search_by(|(v, _)| v.cmp(value))
                .map_or(0, |at| values[at].1),
            Counts::Many(values) => values.get(value).copied().unwrap_or(0),
        }
    }

    /// Adds `diff` to the count of `value`, dropping it at zero; the count before.
    pub(crate) fn add(&mut self, value: V, diff: isize) -> isize {
        match self {
            Counts::Once(values) => {
                let found = values.binary_search(&value);
                let at = found.unwrap_or_else(|at| at);
                let before = if found.is_ok() { ONE } else { 0 };
                if diff == 0 {
                    return before;
                }
                // At the end, or anywhere among a few values, a change costs no large copy.
                let in_place = at + 1 >= values.len() || values.len() <= FEW;
                if in_place && before == ONE && diff == -ONE {
                    values.remove(at);
                    return before;
                }
                if in_place && before == 0 && diff == ONE {
                    values.insert(at, value);
                    return before;
                }
                *self = Self::counted(std::mem::take(values));
                self.add(value, diff)
            }
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

    /// The same values, each counted once, in the form for counts other than one.
    fn counted(values: Vec<V>) -> Self {
        let few = values.len() <= FEW;
        let net = values.into_iter().map(|value| (value, ONE));
        if few {
            Counts::Few(net.collect())
        } else {
            Counts::Many(net.collect())
        }
    }

    /// The values within `range` and their counts, in order (either way).
    pub(crate) fn range(&self, range: impl RangeBounds<V>) -> Range<'_, V> {
        match self {
            Counts::Once(values) => Range::Once(values[within(values, |v| v, &range)].iter()),
            Counts::Few(values) => Range::Few(values[within(values, |(v, _)| v, &range)].iter()),
            Counts::Many(values) => Range::Many(values.range(range)),
        }
    }

    /// Every value and its count, in order.
    pub(crate) fn iter(&self) -> Range<'_, V> {
        self.range(..)
    }
}

/// The positions of the sorted `items` whose value (`value_of`) is within `range`.
fn within<T, V: Ord>(
    items: &[T],
    value_of: impl Fn(&T) -> &V,
    range: &impl RangeBounds<V>,
) -> std::ops::Range<usize> {
    let start = match range.start_bound() {
        Bound::Included(x) => items.partition_point(|item| value_of(item) < x),
        Bound::Excluded(x) => items.partition_point(|item| value_of(item) <= x),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(x) => items.partition_point(|item| value_of(item) <= x),
        Bound::Excluded(x) => items.partition_point(|item| value_of(item) < x),
        Bound::Unbounded => items.len(),
    };
    start.min(end)..end
}

/// Values and counts of a [`Counts`] within a range.
pub(crate) enum Range<'a, V> {
    Once(std::slice::Iter<'a, V>),
    Few(std::slice::Iter<'a, (V, isize)>),
    Many(btree_map::Range<'a, V, isize>),
}

impl<'a, V> Iterator for Range<'a, V> {
    type Item = (&'a V, &'a isize);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Range::Once(values) => values.next().map(|value| (value, &ONE)),
            Range::Few(values) => values.next().map(|(value, count)| (value, count)),
            Range::Many(values) => values.next(),
        }
    }
}

impl<V> DoubleEndedIterator for Range<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Range::Once(values) => values.next_back().map(|value| (value, &ONE)),
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

    /// Values appended in order, each once, stay a vector of values at any size (a timeline);
    /// a change in the middle of many values moves them to a B-tree with the same contents,
    /// and a start's values, each once, come back as a vector.
    #[test]
    fn appends_in_order_stay_a_vector_of_values() {
        let mut counts: Counts<u64> = Counts::default();
        let mut model: BTreeMap<u64, isize> = BTreeMap::new();
        for value in (0..1000).map(|n| n * 3) {
            assert_eq!(counts.add(value, 1), 0);
            super::super::add(&mut model, value, 1);
        }
        // The newest value retracted and put back: still at the end.
        assert_eq!(counts.add(2997, -1), 1);
        assert_eq!(counts.add(2997, 1), 0);
        assert!(matches!(&counts, Counts::Once(values) if values.len() == 1000));
        assert_eq!(pairs(counts.range(30..=60)), pairs(model.range(30..=60)));
        assert_eq!(counts.get(&31), 0);
        assert_eq!(counts.get(&30), 1);

        assert_eq!(counts.add(30, -1), 1);
        super::super::add(&mut model, 30, -1);
        assert!(matches!(&counts, Counts::Many(_)));
        assert_eq!(pairs(counts.iter()), pairs(model.range(..)));

        let sorted: Vec<(u64, isize)> = model.iter().map(|(v, c)| (*v, *c)).collect();
        let restored = Counts::from_sorted(sorted.clone());
        assert!(
            matches!(&restored, Counts::Once(values) if values.len() == 999 && values.capacity() == 999)
        );
        assert_eq!(pairs(restored.iter()), sorted);

        // A value counted twice among few leaves the vector of values for counts.
        let mut few: Counts<u64> = Counts::default();
        few.add(7, 1);
        assert_eq!(few.add(7, 1), 1);
        assert!(matches!(&few, Counts::Few(values) if values == &[(7, 2)]));
    }
}
