//! [`ItemMap`]: a value per item for some of a job's items, stored as
//! value → [`ItemSet`].
//!
//! The job record keeps per-item detail — attempt numbers, failure counts,
//! retry due times, the executor an item was moved from — for the items
//! that have any. Kept as item → value (one JSON entry of ~10–35 bytes per
//! item) it grows with every moved or retried item until the record passes
//! etcd's request limit. Few distinct values are shared by many items
//! (attempt 2, failure 1, the due time of one pass's failures, a lost
//! executor's items), and those items come in runs (failover moves what is
//! left of an executor's contiguous block), so value → ranges stays small:
//! 100,000 items moved off a block-assigned executor are one range.

use nightshift_core::keyspace::ItemSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Items with a value each, as value → the set of items holding it.
///
/// Invariant (kept by every operation): no set is empty and no item is in
/// two sets, so equal maps have one representation (and one encoding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    transparent,
    bound(
        serialize = "V: Serialize + Ord",
        deserialize = "V: Deserialize<'de> + Ord"
    )
)]
pub struct ItemMap<V: Ord> {
    by_value: BTreeMap<V, ItemSet>,
}

impl<V: Ord> Default for ItemMap<V> {
    fn default() -> Self {
        ItemMap {
            by_value: BTreeMap::new(),
        }
    }
}

impl<V: Ord + Clone> ItemMap<V> {
    /// The empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `item`, if it has one.
    pub fn get(&self, item: u32) -> Option<&V> {
        self.by_value
            .iter()
            .find(|(_, items)| items.contains(item))
            .map(|(v, _)| v)
    }

    /// Whether `item` has a value.
    pub fn contains(&self, item: u32) -> bool {
        self.get(item).is_some()
    }

    /// Gives `item` the value `value`; returns the one it had.
    pub fn insert(&mut self, item: u32, value: V) -> Option<V> {
        let old = self.remove(item);
        self.by_value.entry(value).or_default().insert(item);
        old
    }

    /// Gives every item of `items` the value `value`.
    pub fn insert_all(&mut self, items: &ItemSet, value: V) {
        if items.is_empty() {
            return;
        }
        self.remove_all(items);
        let set = self.by_value.entry(value).or_default();
        *set = set.union(items);
    }

    /// Removes `item`'s value; returns it.
    pub fn remove(&mut self, item: u32) -> Option<V> {
        let value = self.get(item)?.clone();
        if let Some(set) = self.by_value.get_mut(&value) {
            set.remove(item);
            if set.is_empty() {
                self.by_value.remove(&value);
            }
        }
        Some(value)
    }

    /// Removes the values of every item of `items`.
    pub fn remove_all(&mut self, items: &ItemSet) {
        self.by_value.retain(|_, set| {
            // Most sets are disjoint from `items` (a failover's items are
            // in no other executor's moved-from set): leave them as they are.
            if set.intersects(items) {
                *set = set.difference(items);
            }
            !set.is_empty()
        });
    }

    /// Removes and returns every item whose value is at most `bound`
    /// (for due times: the items due by then).
    pub fn take_up_to(&mut self, bound: &V) -> ItemSet {
        let later = match self
            .by_value
            .range((std::ops::Bound::Excluded(bound), std::ops::Bound::Unbounded))
            .next()
        {
            Some((first_later, _)) => {
                let first_later = first_later.clone();
                self.by_value.split_off(&first_later)
            }
            None => BTreeMap::new(),
        };
        let due = std::mem::replace(&mut self.by_value, later);
        due.into_values()
            .fold(ItemSet::new(), |acc, set| acc.union(&set))
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        self.by_value.clear();
    }

    /// Whether no item has a value.
    pub fn is_empty(&self) -> bool {
        self.by_value.is_empty()
    }

    /// How many items have a value.
    pub fn len(&self) -> u64 {
        self.by_value.values().map(ItemSet::len).sum()
    }

    /// Every item that has a value.
    pub fn items(&self) -> ItemSet {
        self.by_value
            .values()
            .fold(ItemSet::new(), |acc, set| acc.union(set))
    }

    /// Each distinct value with its items, by value.
    pub fn by_value(&self) -> impl Iterator<Item = (&V, &ItemSet)> {
        self.by_value.iter()
    }

    /// Each item with its value, by value then item.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &V)> {
        self.by_value
            .iter()
            .flat_map(|(v, items)| items.iter().map(move |i| (i, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One change to a per-item map, as the leader makes them.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32, u8),
        InsertRange(u32, u32, u8),
        Remove(u32),
        RemoveRange(u32, u32),
        TakeUpTo(u8),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..300u32, 0..6u8).prop_map(|(i, v)| Op::Insert(i, v)),
            2 => (0..300u32, 0..40u32, 0..6u8).prop_map(|(s, n, v)| Op::InsertRange(s, s + n, v)),
            4 => (0..300u32).prop_map(Op::Remove),
            1 => (0..300u32, 0..40u32).prop_map(|(s, n)| Op::RemoveRange(s, s + n)),
            1 => (0..6u8).prop_map(Op::TakeUpTo),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// The compact map answers exactly what the item → value map it
        /// replaces answered, after any sequence of changes, and its
        /// encoding reads back to the same map.
        #[test]
        fn answers_like_the_item_to_value_map(ops in proptest::collection::vec(op(), 0..80)) {
            let mut map: ItemMap<u8> = ItemMap::new();
            let mut model: BTreeMap<u32, u8> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(i, v) => prop_assert_eq!(map.insert(i, v), model.insert(i, v)),
                    Op::InsertRange(s, e, v) => {
                        map.insert_all(&ItemSet::range(s, e), v);
                        model.extend((s..e).map(|i| (i, v)));
                    }
                    Op::Remove(i) => prop_assert_eq!(map.remove(i), model.remove(&i)),
                    Op::RemoveRange(s, e) => {
                        map.remove_all(&ItemSet::range(s, e));
                        model.retain(|i, _| !(s..e).contains(i));
                    }
                    Op::TakeUpTo(bound) => {
                        let taken = map.take_up_to(&bound);
                        let expected: ItemSet = model.iter().filter(|(_, v)| **v <= bound).map(|(i, _)| *i).collect();
                        model.retain(|_, v| *v > bound);
                        prop_assert_eq!(taken, expected);
                    }
                    Op::Clear => { map.clear(); model.clear(); }
                }
                prop_assert!(map.by_value().all(|(_, s)| !s.is_empty()), "an empty set is kept");
            }
            for i in 0..360 {
                prop_assert_eq!(map.get(i), model.get(&i));
                prop_assert_eq!(map.contains(i), model.contains_key(&i));
            }
            prop_assert_eq!(map.len(), model.len() as u64);
            prop_assert_eq!(map.is_empty(), model.is_empty());
            prop_assert_eq!(map.items(), model.keys().copied().collect::<ItemSet>());
            let mut pairs: Vec<(u32, u8)> = map.iter().map(|(i, v)| (i, *v)).collect();
            pairs.sort_unstable();
            prop_assert_eq!(pairs, model.iter().map(|(i, v)| (*i, *v)).collect::<Vec<_>>());
            let json = serde_json::to_string(&map).expect("encodes");
            let back: ItemMap<u8> = serde_json::from_str(&json).expect("decodes");
            prop_assert_eq!(back, map);
        }
    }

    #[test]
    fn a_block_of_moved_items_is_one_range_on_the_wire() {
        let mut map: ItemMap<String> = ItemMap::new();
        for i in 0..100_000 {
            map.insert(i, "executor-7".to_owned());
        }
        let json = serde_json::to_string(&map).expect("encodes");
        assert_eq!(json, r#"{"executor-7":[[0,100000]]}"#);
    }
}
