//! The two stateless spreading strategies taken from ElasticJob: `average`
//! (contiguous blocks) and `round_robin` (interleaved, rotated per job).
//!
//! Both ignore executor weights and the previous assignment, like their
//! ElasticJob originals: they are predictable layouts, not load balancers.
//! Each returns one dense owner index per item, executors in id order.

use super::stable_hash::{fnv1a, mix64};

/// ElasticJob's `AverageAllocationJobShardingStrategy`: executor `e` (in id
/// order) gets a contiguous block of `items / n` items, and the first
/// `items % n` executors one more each.
pub(crate) fn average(items: u32, n: u32) -> Vec<u32> {
    let base = items / n;
    let extra = items % n;
    let mut owners = Vec::with_capacity(items as usize);
    for e in 0..n {
        let size = base + u32::from(e < extra);
        owners.extend(std::iter::repeat_n(e, size as usize));
    }
    debug_assert_eq!(owners.len(), items as usize);
    owners
}

/// ElasticJob's `RotateServerByNameJobShardingStrategy` idea: rotate the
/// executor list by a stable hash of the job name, then deal items out one
/// each in turn (item `i` → rotated executor `i mod n`). Unlike ElasticJob,
/// which hands the rotated list to `average`, items are interleaved; either
/// way a one-item job lands on a different executor for different jobs.
pub(crate) fn round_robin(job: &str, items: u32, n: u32) -> Vec<u32> {
    let offset = (mix64(fnv1a(job.as_bytes())) % u64::from(n)) as u32;
    let mut owners = Vec::with_capacity(items as usize);
    let mut e = offset;
    for _ in 0..items {
        owners.push(e);
        e += 1;
        if e == n {
            e = 0;
        }
    }
    owners
}
