//! The `sticky` strategy (the default): exact capacity-weighted shares, moving
//! as few items as possible from the previous assignment.
//!
//! # Goals, in order
//!
//! 1. Every item has exactly one owner, a live executor.
//! 2. Each executor's share is within one item of its capacity-weighted fair
//!    share `items × weight / total_weight` (its *quota*).
//! 3. Move as few items as possible: an item stays where it was unless its
//!    executor left, or its executor holds more than its quota. The number
//!    moved is exactly `orphaned + Σ max(0, kept_e − quota_e)`, and quotas are
//!    rounded so as to make that sum as small as goal 2 allows.
//! 4. Deterministic: the result depends on the inputs, not their order.
//!
//! # Phases (after quickwit's control-plane solver)
//!
//! Executors are dense indices `0..n` in id order; the previous assignment is
//! translated to those indices first.
//!
//! 1. **Count kept** — for each surviving executor, how many of its previous
//!    items still exist (`kept_e`). Items of departed executors are orphaned.
//! 2. **Quotas** — largest-remainder rounding of the weighted fair shares,
//!    except that the rounded-up slots go first to executors that would
//!    otherwise have to give an item away (`kept_e > floor_e`), so that no
//!    choice of rounding could move fewer items. *Post-condition:* quotas sum
//!    to `items`, each is the floor or ceiling of the fair share.
//! 3. **Keep** — each surviving executor keeps its `min(kept_e, quota_e)`
//!    lowest-numbered previous items; the highest-numbered excess is released.
//!    *Post-condition:* nobody holds more than its quota.
//! 4. **Fill** — unowned items (orphaned, released or new), ascending, go to
//!    executors below quota, in id order, each filling its deficit before the
//!    next. *Post-condition:* every item owned, every executor at its quota.
//!
//! With no previous assignment phases 1 and 3 do nothing and phase 4 lays out
//! contiguous weighted blocks in id order. Solving again with the result as
//! the previous assignment changes nothing (every executor is at its quota and
//! phase 2 picks the same roundings). Cost: `O(items + n log n)`.

use super::assignment::{index_map, Assignment, UNOWNED};
use crate::ids::ExecutorId;

/// One dense owner index per item: `items` items over executors `ids` (sorted,
/// unique) with `weights` (each ≥ 1), starting from `previous`.
pub(crate) fn solve(
    items: u32,
    ids: &[ExecutorId],
    weights: &[u32],
    previous: Option<&Assignment>,
) -> Vec<u32> {
    let n = ids.len();
    let mut owners = vec![UNOWNED; items as usize];

    // Phase 1: count kept. Each previous group is ascending, so the items
    // that still exist (< items) are a prefix of it.
    let mut kept = vec![0u32; n];
    let mut survivors: Vec<(usize, u32)> = Vec::new();
    if let Some(prev) = previous {
        let map = index_map(prev.executors(), ids);
        for (pe, &e) in map.iter().enumerate() {
            if e != UNOWNED {
                let group = prev.group(pe);
                kept[e as usize] = group.partition_point(|item| item.0 < items) as u32;
                survivors.push((pe, e));
            }
        }
    }

    // Phase 2: quotas.
    let quota = quotas(items, weights, &kept);
    debug_assert_eq!(
        quota.iter().map(|&q| u64::from(q)).sum::<u64>(),
        u64::from(items)
    );

    // Phase 3: keep up to quota, lowest item numbers first.
    let mut held = vec![0u32; n];
    if let Some(prev) = previous {
        for &(pe, e) in &survivors {
            let e_idx = e as usize;
            let keep = kept[e_idx].min(quota[e_idx]);
            for item in &prev.group(pe)[..keep as usize] {
                owners[item.0 as usize] = e;
            }
            held[e_idx] = keep;
        }
    }
    debug_assert!(held.iter().zip(&quota).all(|(h, q)| h <= q));

    // Phase 4: fill deficits in id order with unowned items, ascending.
    let mut e = 0usize;
    for owner in owners.iter_mut().filter(|o| **o == UNOWNED) {
        while held[e] == quota[e] {
            e += 1;
        }
        *owner = e as u32;
        held[e] += 1;
    }
    debug_assert!(held == quota);
    debug_assert!(owners.iter().all(|&o| o != UNOWNED));
    owners
}

/// Weighted quotas summing exactly to `items`, each the floor or ceiling of
/// `items × w_e / W`.
///
/// The `items − Σ floor` rounded-up slots go to executors with a non-zero
/// remainder, preferring (1) those holding more than their floor, whose extra
/// item then need not move, (2) larger remainders (largest-remainder method),
/// (3) lower id.
pub(crate) fn quotas(items: u32, weights: &[u32], kept: &[u32]) -> Vec<u32> {
    let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let mut quota = Vec::with_capacity(weights.len());
    let mut remainders = Vec::new();
    let mut assigned: u64 = 0;
    for (e, &w) in weights.iter().enumerate() {
        let exact = u128::from(items) * u128::from(w);
        // floor ≤ items, so it fits in u32.
        let floor = (exact / total) as u32;
        let rem = exact % total;
        quota.push(floor);
        assigned += u64::from(floor);
        if rem > 0 {
            remainders.push((kept[e] > floor, rem, e));
        }
    }
    let round_ups = (u64::from(items) - assigned) as usize;
    debug_assert!(round_ups <= remainders.len());
    remainders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    for &(_, _, e) in remainders.iter().take(round_ups) {
        quota[e] += 1;
    }
    quota
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_use_largest_remainder_when_nothing_is_kept() {
        // 10 items, weights 1:2:3 → 1.67, 3.33, 5 → 2, 3, 5.
        assert_eq!(quotas(10, &[1, 2, 3], &[0, 0, 0]), vec![2, 3, 5]);
        // Equal weights: the extra items go to the first executors.
        assert_eq!(quotas(11, &[1, 1, 1], &[0, 0, 0]), vec![4, 4, 3]);
    }

    #[test]
    fn quotas_round_up_where_an_item_would_otherwise_move() {
        // 11 items over 3: one executor gets 4. The third already holds 4.
        assert_eq!(quotas(11, &[1, 1, 1], &[3, 3, 4]), vec![4, 3, 4]);
    }
}
