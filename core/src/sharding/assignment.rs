//! [`Assignment`]: which executor owns which shard items of one job.
//!
//! Stored compactly for the scale target (10,000 executors × 1,000,000
//! items): one `u32` owner per item plus the items grouped by executor
//! (compressed-sparse-row: one offset per executor), about 8 bytes per item
//! and a few per executor. Built in `O(items + executors)` by counting sort,
//! so each executor's items come out ascending without sorting.

use super::ShardingError;
use crate::ids::{ExecutorId, ItemIndex};
use std::ops::Range;

/// Owner slot of an item nobody owns (only in assignments rebuilt with
/// [`Assignment::from_parts`]).
pub(crate) const UNOWNED: u32 = u32::MAX;

/// Which executor owns each item `0..len` of a job.
///
/// An assignment made by [`super::assign`] gives every item exactly one
/// owner, and lists every executor it was given (some perhaps with no items).
/// One rebuilt with [`Assignment::from_parts`] may leave items unowned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    /// Sorted, unique; the dense index of an executor is its position here.
    executors: Vec<ExecutorId>,
    /// `items[offsets[e]..offsets[e + 1]]` are executor `e`'s items.
    offsets: Vec<u32>,
    /// Items grouped by executor, ascending within a group.
    items: Vec<ItemIndex>,
    /// Dense owner index per item, or [`UNOWNED`].
    owners: Vec<u32>,
}

impl Assignment {
    /// Rebuilds an assignment of items `0..items` from per-executor item
    /// lists, e.g. read back from the coordination store.
    ///
    /// Items not listed stay unowned. Errors on an item out of range, an item
    /// listed twice or an executor listed twice.
    pub fn from_parts(
        items: u32,
        parts: impl IntoIterator<Item = (ExecutorId, Vec<ItemIndex>)>,
    ) -> Result<Assignment, ShardingError> {
        let mut parts: Vec<(ExecutorId, Vec<ItemIndex>)> = parts.into_iter().collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = parts.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(ShardingError::DuplicateExecutor(w[0].0.clone()));
        }
        let count = u32::try_from(parts.len())
            .ok()
            .filter(|&c| c < UNOWNED)
            .ok_or(ShardingError::TooManyExecutors(parts.len()))?;
        let mut owners = vec![UNOWNED; items as usize];
        for (e, (_, list)) in (0..count).zip(&parts) {
            for &ItemIndex(item) in list {
                let slot = owners
                    .get_mut(item as usize)
                    .ok_or(ShardingError::ItemOutOfRange { item, items })?;
                if *slot != UNOWNED {
                    return Err(ShardingError::DuplicateItem(item));
                }
                *slot = e;
            }
        }
        let executors = parts.into_iter().map(|(id, _)| id).collect();
        Ok(Assignment::from_dense(executors, owners))
    }

    /// Builds the grouped form from one owner per item. `executors` must be
    /// sorted and unique, and every owner `< executors.len()` or [`UNOWNED`].
    pub(crate) fn from_dense(executors: Vec<ExecutorId>, owners: Vec<u32>) -> Assignment {
        debug_assert!(executors.windows(2).all(|w| w[0] < w[1]));
        let n = executors.len();
        let mut offsets = vec![0u32; n + 1];
        for &o in &owners {
            if o != UNOWNED {
                offsets[o as usize + 1] += 1;
            }
        }
        for e in 0..n {
            offsets[e + 1] += offsets[e];
        }
        let mut next = offsets.clone();
        let mut items = vec![ItemIndex(0); offsets[n] as usize];
        // Items are visited in ascending order, so each group comes out sorted.
        for (i, &o) in (0u32..).zip(&owners) {
            if o != UNOWNED {
                let slot = &mut next[o as usize];
                items[*slot as usize] = ItemIndex(i);
                *slot += 1;
            }
        }
        Assignment {
            executors,
            offsets,
            items,
            owners,
        }
    }

    /// Number of items covered (`0..len`), owned or not.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether the assignment covers no items.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Number of items that have an owner.
    pub fn owned_count(&self) -> usize {
        self.items.len()
    }

    /// The executors, sorted by id (including those with no items).
    pub fn executors(&self) -> &[ExecutorId] {
        &self.executors
    }

    /// The owner of `item`, if it is in range and owned.
    pub fn owner_of(&self, item: ItemIndex) -> Option<&ExecutorId> {
        let owner = *self.owners.get(item.0 as usize)?;
        self.executors.get(owner as usize)
    }

    /// The items of `executor`, ascending; empty if it owns none or is unknown.
    pub fn items_of(&self, executor: &ExecutorId) -> &[ItemIndex] {
        match self.executors.binary_search(executor) {
            Ok(e) => self.group(e),
            Err(_) => &[],
        }
    }

    /// The items of `executor` as ascending, non-adjacent ranges: the compact
    /// form to write to the coordination store.
    pub fn ranges_of(&self, executor: &ExecutorId) -> Vec<Range<u32>> {
        let mut ranges: Vec<Range<u32>> = Vec::new();
        for &ItemIndex(i) in self.items_of(executor) {
            match ranges.last_mut() {
                Some(r) if r.end == i => r.end = i + 1,
                _ => ranges.push(i..i + 1),
            }
        }
        ranges
    }

    /// Every executor with its items, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&ExecutorId, &[ItemIndex])> + '_ {
        self.executors
            .iter()
            .enumerate()
            .map(move |(e, id)| (id, self.group(e)))
    }

    /// Items of the executor at dense index `e`.
    pub(crate) fn group(&self, e: usize) -> &[ItemIndex] {
        &self.items[self.offsets[e] as usize..self.offsets[e + 1] as usize]
    }

    /// Dense owner index per item ([`UNOWNED`] if none).
    pub(crate) fn owners(&self) -> &[u32] {
        &self.owners
    }
}

/// For each executor of `from` (sorted, unique), its dense index in `to`
/// (sorted, unique), or [`UNOWNED`] if absent. A linear merge.
pub(crate) fn index_map(from: &[ExecutorId], to: &[ExecutorId]) -> Vec<u32> {
    let mut map = vec![UNOWNED; from.len()];
    let (mut i, mut j) = (0, 0);
    while i < from.len() && j < to.len() {
        match from[i].cmp(&to[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                // `to` has fewer than u32::MAX entries: assignments refuse more.
                map[i] = j as u32;
                i += 1;
                j += 1;
            }
        }
    }
    map
}
