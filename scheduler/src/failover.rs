//! In-run failover, pure: when an executor's assignment of a running job
//! vanishes (its lease ended), its unfinished items go to live executors —
//! and nothing else moves (invariant 4; a full reshard waits for the job's
//! next start).
//!
//! [`spread`] hands a set of items to executors in proportion to their
//! capacity, counting what each already holds, as contiguous blocks so that
//! the rewritten assignments stay a few ranges. [`fail_over`] applies that to
//! a [`JobRecord`]: the departed owner is removed, its unfinished items get
//! their next attempt (a move is a new attempt in the history, but not a
//! failure: no retry is used) and are added to the receivers.

use crate::record::{JobRecord, Owner};
use nightshift_core::ids::ExecutorId;
use nightshift_core::keyspace::ItemSet;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

/// A live executor that can take items: its lease, capacity and current load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    /// The executor.
    pub id: ExecutorId,
    /// Its lease (assignments are attached to it).
    pub lease: i64,
    /// Capacity weight, at least 1.
    pub weight: u32,
    /// Unfinished items it already holds in this job.
    pub load: u64,
}

/// Min-heap entry: the executor whose load per weight after one more item
/// is smallest comes first (ties by id, for determinism).
struct Slot {
    next: u64,
    weight: u64,
    index: usize,
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Slot {}
impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Slot {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap. Compare next/weight by cross
        // multiplication (u128: no overflow, no rounding).
        let a = u128::from(self.next) * u128::from(other.weight);
        let b = u128::from(other.next) * u128::from(self.weight);
        b.cmp(&a).then_with(|| other.index.cmp(&self.index))
    }
}

/// How many of `count` items each receiver gets: greedily to whoever has the
/// lowest `(load + 1) / weight`, so after the call no receiver could give an
/// item to another and lower the maximum.
pub fn shares(count: u64, receivers: &[Receiver]) -> Vec<u64> {
    let mut out = vec![0u64; receivers.len()];
    if receivers.is_empty() {
        return out;
    }
    let mut heap: BinaryHeap<Slot> = receivers
        .iter()
        .enumerate()
        .map(|(index, r)| Slot {
            next: r.load + 1,
            weight: u64::from(r.weight.max(1)),
            index,
        })
        .collect();
    for _ in 0..count {
        let Some(mut slot) = heap.pop() else { break };
        out[slot.index] += 1;
        slot.next += 1;
        heap.push(slot);
    }
    out
}

/// Splits `items` among `receivers` by [`shares`], each receiver getting a
/// contiguous run of the items in order. Empty when there is no receiver.
pub fn spread(items: &ItemSet, receivers: &[Receiver]) -> BTreeMap<ExecutorId, ItemSet> {
    spread_by_index(items, receivers)
        .into_iter()
        .map(|(i, part)| (receivers[i].id.clone(), part))
        .collect()
}

/// [`spread`], each part with its receiver's index in `receivers`.
fn spread_by_index(items: &ItemSet, receivers: &[Receiver]) -> Vec<(usize, ItemSet)> {
    let counts = shares(items.len(), receivers);
    let mut out = Vec::new();
    let mut iter = items.iter();
    for (i, &n) in counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let part: ItemSet = iter
            .by_ref()
            .take(usize::try_from(n).unwrap_or(usize::MAX))
            .collect();
        out.push((i, part));
    }
    out
}

/// What [`fail_over`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    /// Items moved, with the executor each went to.
    pub to: BTreeMap<ExecutorId, ItemSet>,
    /// Items left without an owner (no receiver): they wait in `unowned`.
    pub unowned: ItemSet,
    /// The departed owner's items that were already finished.
    pub finished: ItemSet,
}

/// Removes `departed` from the job's owners and moves its unfinished items
/// (plus any items already waiting in `unowned`) to `receivers`. Other
/// owners keep every item they had. Receivers that are not owners yet
/// become owners with the given lease (token 0 until written).
pub fn fail_over(
    job: &mut JobRecord,
    departed: Option<&ExecutorId>,
    receivers: &[Receiver],
    now_ms: i64,
) -> Moved {
    let done = job.done();
    let mut open = std::mem::take(&mut job.unowned);
    let mut finished = ItemSet::new();
    if let Some(gone) = departed {
        if let Some(owner) = job.owners.remove(gone) {
            let unfinished = owner.items.difference(&done);
            finished = owner.items.intersection(&done);
            // A pending retry is superseded by the move's new attempt.
            // Whole sets at once: a lost executor may hold 100,000 items.
            job.retry_at.remove_all(&unfinished);
            job.timed_out = job.timed_out.difference(&unfinished);
            job.next_attempts(&unfinished);
            job.moved_from.insert_all(&unfinished, gone.clone());
            open = open.union(&unfinished);
        }
    }
    // The departed executor is normally not among the live receivers:
    // no copy of thousands of receivers then.
    let receivers: std::borrow::Cow<'_, [Receiver]> =
        if receivers.iter().any(|r| Some(&r.id) == departed) {
            receivers
                .iter()
                .filter(|r| Some(&r.id) != departed)
                .cloned()
                .collect::<Vec<_>>()
                .into()
        } else {
            receivers.into()
        };
    let mut to = BTreeMap::new();
    let mut placed = ItemSet::new();
    for (i, items) in spread_by_index(&open, &receivers) {
        let r = &receivers[i];
        let owner = job.owners.entry(r.id.clone()).or_insert_with(|| Owner {
            lease: r.lease,
            assigned_at_ms: now_ms,
            ..Owner::default()
        });
        owner.items = owner.items.union(&items);
        placed = placed.union(&items);
        to.insert(r.id.clone(), items);
    }
    job.unowned = open.difference(&placed);
    Moved {
        to,
        unowned: job.unowned.clone(),
        finished,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn receivers() -> impl Strategy<Value = Vec<Receiver>> {
        proptest::collection::vec((1u32..5, 0u64..20), 0..5).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (weight, load))| Receiver {
                    id: ExecutorId::new(format!("e{i}")),
                    lease: i as i64 + 10,
                    weight,
                    load,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn spread_partitions_items_and_balances_by_weight(items in proptest::collection::vec(0u32..300, 0..120), recv in receivers()) {
            let set: ItemSet = items.into_iter().collect();
            let out = spread(&set, &recv);
            let mut union = ItemSet::new();
            for part in out.values() {
                prop_assert!(union.intersection(part).is_empty(), "an item went to two executors");
                union = union.union(part);
            }
            if recv.is_empty() {
                prop_assert!(out.is_empty());
            } else {
                prop_assert_eq!(&union, &set);
            }
            // Balance: whoever got an item had, before its last one, no more
            // load per weight than anyone else will have with one more item.
            let counts: Vec<u64> = recv.iter().map(|r| out.get(&r.id).map_or(0, ItemSet::len)).collect();
            for (i, ri) in recv.iter().enumerate() {
                if counts[i] == 0 { continue; }
                for (j, rj) in recv.iter().enumerate() {
                    let lhs = u128::from(ri.load + counts[i]) * u128::from(rj.weight);
                    let rhs = u128::from(rj.load + counts[j] + 1) * u128::from(ri.weight);
                    prop_assert!(lhs <= rhs, "{:?} got too much compared with {:?}", ri, rj);
                }
            }
        }

        /// Invariant 4 as a pure property: failover moves only the departed
        /// executor's unfinished items; everyone else keeps what they had.
        #[test]
        fn fail_over_moves_only_the_departed_owners_unfinished_items(
            owners in proptest::collection::vec(0usize..4, 1..80),
            done in proptest::collection::vec(any::<bool>(), 80),
            departed in 0usize..4,
            live in proptest::collection::vec(any::<bool>(), 4),
        ) {
            let shards = owners.len() as u32;
            let mut job = JobRecord::pending(shards);
            for (item, &o) in owners.iter().enumerate() {
                let owner = job.owners.entry(ExecutorId::new(format!("e{o}"))).or_insert_with(|| Owner { lease: o as i64, ..Owner::default() });
                owner.items.insert(item as u32);
                if done[item] { job.succeeded.insert(item as u32); }
            }
            let before = job.clone();
            let gone = ExecutorId::new(format!("e{departed}"));
            let recv: Vec<Receiver> = (0..4).filter(|&i| live[i] && i != departed).map(|i| Receiver { id: ExecutorId::new(format!("e{i}")), lease: i as i64, weight: 1, load: 0 }).collect();
            let moved = fail_over(&mut job, Some(&gone), &recv, 5);
            let lost = before.owners.get(&gone).map(|o| o.items.difference(&before.done())).unwrap_or_default();
            let mut moved_items = moved.unowned.clone();
            for part in moved.to.values() { moved_items = moved_items.union(part); }
            prop_assert_eq!(&moved_items, &lost);
            prop_assert!(!job.owners.contains_key(&gone));
            for (id, owner) in &before.owners {
                if id == &gone { continue; }
                let now = &job.owners[id];
                prop_assert_eq!(now.items.difference(&owner.items), moved.to.get(id).cloned().unwrap_or_default());
                prop_assert!(owner.items.difference(&now.items).is_empty(), "{} lost items it still owned", id);
            }
            for item in lost.iter() {
                prop_assert_eq!(job.attempt(item), before.attempt(item) + 1);
                prop_assert_eq!(job.moved_from.get(item), Some(&gone));
            }
            prop_assert_eq!(job.done(), before.done());
            // Every unfinished item has exactly one owner or waits unowned.
            for item in 0..shards {
                if job.done().contains(item) { continue; }
                let holders = job.owners.values().filter(|o| o.items.contains(item)).count() + usize::from(job.unowned.contains(item));
                prop_assert_eq!(holders, 1, "item {} has {} holders", item, holders);
            }
        }
    }
}
