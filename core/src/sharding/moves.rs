//! Comparing two assignments of the same job: how many items change owner.
//!
//! Used by `nightshift plan` to show what a reshard would do, and by tests to
//! check that the sticky strategy moves no more than it must.

use super::assignment::{index_map, Assignment, UNOWNED};
use crate::ids::ExecutorId;

/// What a reshard does to one executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorMoves {
    /// The executor.
    pub executor: ExecutorId,
    /// Items it owned before.
    pub before: usize,
    /// Items it owns after.
    pub after: usize,
    /// Items it owned before and still owns.
    pub kept: usize,
    /// Items it gains that another executor owned before.
    pub moved_in: usize,
    /// Items it owned before that another executor (or nobody) owns after.
    pub moved_out: usize,
}

/// Number of items that had an owner in `prev` and have a different one (or
/// none) in `next`. Items present in only one of the two (the job's item count
/// changed) are not moves.
pub fn moved_items(prev: &Assignment, next: &Assignment) -> usize {
    let map = index_map(prev.executors(), next.executors());
    prev.owners()
        .iter()
        .zip(next.owners())
        .filter(|&(&p, &q)| p != UNOWNED && map[p as usize] != q)
        .count()
}

/// Per-executor move counts for every executor in either assignment, sorted
/// by id.
pub fn moves_by_executor(prev: &Assignment, next: &Assignment) -> Vec<ExecutorMoves> {
    let mut ids: Vec<ExecutorId> = prev
        .executors()
        .iter()
        .chain(next.executors())
        .cloned()
        .collect();
    ids.sort();
    ids.dedup();
    let prev_map = index_map(prev.executors(), &ids);
    let next_map = index_map(next.executors(), &ids);
    let mut rows: Vec<ExecutorMoves> = ids
        .into_iter()
        .map(|executor| ExecutorMoves {
            executor,
            before: 0,
            after: 0,
            kept: 0,
            moved_in: 0,
            moved_out: 0,
        })
        .collect();
    let to_union =
        |map: &[u32], owner: u32| (owner != UNOWNED).then(|| map[owner as usize] as usize);
    for &p in prev.owners() {
        if let Some(u) = to_union(&prev_map, p) {
            rows[u].before += 1;
        }
    }
    for &q in next.owners() {
        if let Some(u) = to_union(&next_map, q) {
            rows[u].after += 1;
        }
    }
    for (&p, &q) in prev.owners().iter().zip(next.owners()) {
        match (to_union(&prev_map, p), to_union(&next_map, q)) {
            (Some(a), Some(b)) if a == b => rows[a].kept += 1,
            (Some(a), b) => {
                rows[a].moved_out += 1;
                if let Some(b) = b {
                    rows[b].moved_in += 1;
                }
            }
            (None, _) => {}
        }
    }
    rows
}
