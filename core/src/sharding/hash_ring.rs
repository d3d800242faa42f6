//! The `hash` strategy: consistent hashing on a ring with weighted virtual
//! nodes, so that an item's owner depends only on the item, the job and the
//! set of executors — never on the previous assignment or the input order.
//!
//! # Why a ring and not rendezvous hashing
//!
//! Rendezvous (highest-random-weight) hashing has the two properties we want —
//! an item moves only when its owner leaves, or to an executor that joins —
//! but it scores every executor for every item: 10¹⁰ hash evaluations at the
//! scale target (10,000 executors × 1,000,000 items), tens of seconds. A ring
//! is rendezvous hashing with a structured score (the clockwise distance from
//! the item's point to an executor's nearest point), which can be searched
//! instead of enumerated, and keeps both properties exactly:
//!
//! - the ring points of an executor depend only on its id and weight, so a
//!   departing executor's points vanish and only the items that landed on
//!   them move (to the next point clockwise);
//! - a joining executor's points only capture items that now land on them.
//!
//! Weights: an executor gets [`VNODES_PER_WEIGHT`] points per unit of weight,
//! weight capped at [`MAX_WEIGHT`] to bound the ring's size. Balance is
//! statistical (about ±1/√points), not exact; use `sticky` for exact shares.
//!
//! Cost: `O(P log P + items)` for `P` ring points; each lookup is `O(1)`
//! expected via a table indexed by the top 16 bits of the hash.

use super::stable_hash::{fnv1a, mix64};
use crate::ids::ExecutorId;

/// Ring points per unit of executor weight.
pub(crate) const VNODES_PER_WEIGHT: u32 = 40;
/// Weights above this count as this many units on the ring.
pub(crate) const MAX_WEIGHT: u32 = 64;

/// Bits of the hash indexing the lookup table.
const TABLE_BITS: u32 = 16;

/// One dense owner index per item for `items` items of `job` over executors
/// `ids` (sorted, unique) with `weights`.
pub(crate) fn solve(job: &str, items: u32, ids: &[ExecutorId], weights: &[u32]) -> Vec<u32> {
    let ring = build_ring(ids, weights);
    let table = bucket_starts(&ring);
    let job_hash = fnv1a(job.as_bytes());
    (0..items)
        .map(|i| {
            let key = item_point(job_hash, i);
            ring[successor(&ring, &table, key)].1
        })
        .collect()
}

/// The ring point of item `i` of the job hashing to `job_hash`.
fn item_point(job_hash: u64, i: u32) -> u64 {
    mix64(job_hash ^ mix64(u64::from(i)))
}

/// Sorted `(point, dense executor index)`. Equal points (vanishingly rare) are
/// ordered by executor id, which does not depend on who else is present.
fn build_ring(ids: &[ExecutorId], weights: &[u32]) -> Vec<(u64, u32)> {
    let total: usize = weights
        .iter()
        .map(|&w| (w.min(MAX_WEIGHT) * VNODES_PER_WEIGHT) as usize)
        .sum();
    let mut ring = Vec::with_capacity(total);
    for ((e, id), &w) in (0u32..).zip(ids).zip(weights) {
        let base = fnv1a(id.as_str().as_bytes());
        for v in 0..w.min(MAX_WEIGHT) * VNODES_PER_WEIGHT {
            ring.push((mix64(base ^ mix64(u64::from(v)).rotate_left(32)), e));
        }
    }
    ring.sort_unstable();
    ring
}

/// `table[b]` = index of the first ring point whose top bits are `>= b`, for
/// `b` in `0..=2^TABLE_BITS`.
fn bucket_starts(ring: &[(u64, u32)]) -> Vec<usize> {
    let buckets = 1usize << TABLE_BITS;
    let mut table = vec![0usize; buckets + 1];
    let mut pos = 0usize;
    for (b, slot) in table.iter_mut().enumerate() {
        while pos < ring.len() && ((ring[pos].0 >> (64 - TABLE_BITS)) as usize) < b {
            pos += 1;
        }
        *slot = pos;
    }
    table
}

/// Index of the first ring point at or after `key`, wrapping to the start.
fn successor(ring: &[(u64, u32)], table: &[usize], key: u64) -> usize {
    let b = (key >> (64 - TABLE_BITS)) as usize;
    let (lo, hi) = (table[b], table[b + 1]);
    // Points in later buckets are all >= key, so the answer is in lo..=hi.
    let pos = lo + ring[lo..hi].partition_point(|&(p, _)| p < key);
    if pos == ring.len() {
        0
    } else {
        pos
    }
}
