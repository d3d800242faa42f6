//! Sharding strategies: which live executor runs which shard item of a job.
//!
//! Every strategy is a pure function of *(strategy, job key, item count, live
//! executors with capacity weights, previous assignment)* → [`Assignment`]. No
//! clock, no randomness, no I/O: whichever scheduler is leader computes the
//! same answer, and `nightshift plan` can show it before it happens.
//!
//! Executors are put in id order first, so the result never depends on the
//! order they were listed in. Then:
//!
//! | strategy | layout | weights | previous |
//! |---|---|---|---|
//! | [`Strategy::Sticky`] (default) | exact weighted shares, minimal movement (see `sticky.rs`) | used | used |
//! | [`Strategy::Average`] | contiguous blocks, ElasticJob's average allocation | ignored | ignored |
//! | [`Strategy::RoundRobin`] | item `i` → executor `i mod n` of a list rotated per job | ignored | ignored |
//! | [`Strategy::Hash`] | consistent hashing: an item moves only if its owner leaves or a joiner takes it | used | ignored |
//!
//! The scale target is 1,000,000 items × 10,000 executors in well under a
//! second (see BENCHMARKS.md): every strategy is `O(items + executors log
//! executors)`, the hash strategy `O(items + ring points log ring points)`.
//!
//! This module decides a layout only: the scheduler uses it when a job starts
//! (a full reshard); within a run, a dead executor's unfinished items are
//! handed out by the scheduler's failover, which must not reshuffle the rest.

mod assignment;
mod hash_ring;
mod moves;
mod spread;
mod stable_hash;
mod sticky;

pub use assignment::Assignment;
pub use moves::{moved_items, moves_by_executor, ExecutorMoves};

pub use crate::dag::Strategy;
use crate::ids::ExecutorId;

/// A live executor offered to a job, with its capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorSlot {
    /// The executor.
    pub id: ExecutorId,
    /// Relative capacity, at least 1 (strategies that ignore weights say so).
    pub weight: u32,
}

impl ExecutorSlot {
    /// An executor slot with the given weight.
    pub fn new(id: impl Into<ExecutorId>, weight: u32) -> Self {
        ExecutorSlot {
            id: id.into(),
            weight,
        }
    }
}

/// Why an assignment cannot be made or rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardingError {
    /// There is no live executor to assign items to.
    #[error("no live executors to assign items to")]
    NoExecutors,
    /// The same executor id appears twice.
    #[error("executor {0} is listed twice")]
    DuplicateExecutor(ExecutorId),
    /// An executor has weight 0.
    #[error("executor {0} has weight 0 (capacity must be at least 1)")]
    ZeroWeight(ExecutorId),
    /// More executors than an assignment can index.
    #[error("too many executors ({0})")]
    TooManyExecutors(usize),
    /// An item number outside `0..items`.
    #[error("item {item} is out of range 0..{items}")]
    ItemOutOfRange {
        /// The item.
        item: u32,
        /// The job's item count.
        items: u32,
    },
    /// The same item is assigned to two executors.
    #[error("item {0} is assigned twice")]
    DuplicateItem(u32),
}

/// Assigns items `0..items` of job `job` to `executors` with strategy `kind`.
///
/// `job` keys the rotation (`round_robin`) and the hashes (`hash`); use the
/// same key every run (e.g. `dag/job`). `previous` is used by `sticky` only;
/// it may cover a different item count or executor set. Zero items gives an
/// empty assignment; no executors is an error.
///
/// ```
/// use nightshift_core::ids::{ExecutorId, ItemIndex};
/// use nightshift_core::sharding::{assign, ExecutorSlot, Strategy};
/// let execs = [ExecutorSlot::new("b", 1), ExecutorSlot::new("a", 1)];
/// let a = assign(Strategy::Average, "nightly/accrue", 5, &execs, None).unwrap();
/// assert_eq!(a.items_of(&ExecutorId::new("a")), &[ItemIndex(0), ItemIndex(1), ItemIndex(2)]);
/// assert_eq!(a.owner_of(ItemIndex(4)), Some(&ExecutorId::new("b")));
/// ```
pub fn assign(
    kind: Strategy,
    job: &str,
    items: u32,
    executors: &[ExecutorSlot],
    previous: Option<&Assignment>,
) -> Result<Assignment, ShardingError> {
    let (ids, weights) = sorted_executors(executors)?;
    let n = ids.len() as u32;
    let owners = match kind {
        Strategy::Sticky => sticky::solve(items, &ids, &weights, previous),
        Strategy::Average => spread::average(items, n),
        Strategy::RoundRobin => spread::round_robin(job, items, n),
        Strategy::Hash => hash_ring::solve(job, items, &ids, &weights),
    };
    Ok(Assignment::from_dense(ids, owners))
}

/// Executors in id order as parallel id and weight lists, validated.
fn sorted_executors(
    executors: &[ExecutorSlot],
) -> Result<(Vec<ExecutorId>, Vec<u32>), ShardingError> {
    if executors.is_empty() {
        return Err(ShardingError::NoExecutors);
    }
    if u32::try_from(executors.len()).map_or(true, |n| n == u32::MAX) {
        return Err(ShardingError::TooManyExecutors(executors.len()));
    }
    let mut sorted: Vec<&ExecutorSlot> = executors.iter().collect();
    sorted.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = sorted.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(ShardingError::DuplicateExecutor(w[0].id.clone()));
    }
    if let Some(s) = sorted.iter().find(|s| s.weight == 0) {
        return Err(ShardingError::ZeroWeight(s.id.clone()));
    }
    Ok(sorted.iter().map(|s| (s.id.clone(), s.weight)).unzip())
}
