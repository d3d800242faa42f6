//! [`ItemSet`]: a set of shard item indices stored as sorted, disjoint,
//! half-open ranges.
//!
//! Assignments and cancel lists name thousands of items; written one number
//! each they would dominate the size of an etcd value. Items are assigned in
//! runs of consecutive indices (sharding hands out contiguous blocks, failover
//! moves what is left of them), so ranges keep a record small: `0..10000` is
//! `[[0,10000]]` on the wire.
//!
//! Invariant (kept by every constructor and operation, checked on decode):
//! ranges are sorted, non-empty, and neither overlap nor touch — so two equal
//! sets always have the same representation.
//!
//! # Wire forms
//!
//! Scattered items (every tenth item retried) make one range per item, ~16
//! bytes each: 100,000 of them are 1.6 MB, past etcd's request limit. Such a
//! set is written as a bitmap over its span instead, `{"from":F,"bits":B64}`
//! (bit `i` of the base64 bytes, least significant first, is item `F + i`),
//! at most span/6 bytes. [`ItemSet`] writes whichever form is smaller (the
//! choice depends only on the set, so equal sets encode equally) and reads
//! both.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A set of item indices as sorted, disjoint, non-adjacent half-open ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ItemSet {
    ranges: Vec<(u32, u32)>,
}

/// A wire item set whose ranges are not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid item range [{start}, {end}): ranges are half-open with start < end")]
pub struct ItemSetError {
    /// First index of the bad range.
    pub start: u32,
    /// End (exclusive) of the bad range.
    pub end: u32,
}

impl ItemSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every item of `[start, end)`.
    pub fn range(start: u32, end: u32) -> Self {
        let mut set = Self::new();
        set.insert_range(start, end);
        set
    }

    /// The ranges, sorted and disjoint, each `[start, end)`.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges
    }

    /// Whether the set holds no item.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of items.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|&(s, e)| u64::from(e - s)).sum()
    }

    /// Whether `item` is in the set.
    pub fn contains(&self, item: u32) -> bool {
        // Index of the first range that ends after `item`.
        let i = self.ranges.partition_point(|&(_, e)| e <= item);
        self.ranges.get(i).is_some_and(|&(s, _)| s <= item)
    }

    /// Adds one item.
    pub fn insert(&mut self, item: u32) {
        if let Some(end) = item.checked_add(1) {
            self.insert_range(item, end);
        }
    }

    /// Adds every item of `[start, end)`; an empty range changes nothing.
    pub fn insert_range(&mut self, start: u32, end: u32) {
        if start >= end {
            return;
        }
        // Ranges that overlap or touch [start, end) are merged into it.
        let first = self.ranges.partition_point(|&(_, e)| e < start);
        let last = self.ranges.partition_point(|&(s, _)| s <= end);
        let (mut s, mut e) = (start, end);
        if first < last {
            s = s.min(self.ranges[first].0);
            e = e.max(self.ranges[last - 1].1);
        }
        self.ranges.splice(first..last, [(s, e)]);
    }

    /// Removes one item; returns whether it was present.
    pub fn remove(&mut self, item: u32) -> bool {
        if !self.contains(item) {
            return false;
        }
        self.remove_range(item, item + 1);
        true
    }

    /// Removes every item of `[start, end)`.
    pub fn remove_range(&mut self, start: u32, end: u32) {
        if start >= end {
            return;
        }
        let first = self.ranges.partition_point(|&(_, e)| e <= start);
        let last = self.ranges.partition_point(|&(s, _)| s < end);
        if first >= last {
            return;
        }
        let mut kept = Vec::with_capacity(2);
        let (fs, _) = self.ranges[first];
        let (_, le) = self.ranges[last - 1];
        if fs < start {
            kept.push((fs, start));
        }
        if end < le {
            kept.push((end, le));
        }
        self.ranges.splice(first..last, kept);
    }

    /// Removes and returns the smallest item.
    pub fn pop_first(&mut self) -> Option<u32> {
        let (s, e) = *self.ranges.first()?;
        if s + 1 == e {
            self.ranges.remove(0);
        } else {
            self.ranges[0].0 = s + 1;
        }
        Some(s)
    }

    /// Items in `self` or `other`. One merge of the two range lists,
    /// O(n + m): sets of 100,000 scattered items are common (a job's
    /// retried items), and inserting range by range would be quadratic.
    pub fn union(&self, other: &ItemSet) -> ItemSet {
        // A few ranges into a large set: insert them one by one (a binary
        // search and a move each) rather than sweep the large one.
        let (large, small) = if self.ranges.len() >= other.ranges.len() {
            (self, other)
        } else {
            (other, self)
        };
        if small.ranges.len().saturating_mul(SMALL_SIDE) < large.ranges.len() {
            let mut out = large.clone();
            for &(s, e) in &small.ranges {
                out.insert_range(s, e);
            }
            return out;
        }
        let mut ranges: Vec<(u32, u32)> =
            Vec::with_capacity(self.ranges.len() + other.ranges.len());
        let (mut a, mut b) = (
            self.ranges.iter().peekable(),
            other.ranges.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) => {
                    if x.0 <= y.0 {
                        a.next();
                        x
                    } else {
                        b.next();
                        y
                    }
                }
                (Some(&&x), None) => {
                    a.next();
                    x
                }
                (None, Some(&&y)) => {
                    b.next();
                    y
                }
                (None, None) => break,
            };
            match ranges.last_mut() {
                // Overlapping or touching: one range.
                Some(last) if next.0 <= last.1 => last.1 = last.1.max(next.1),
                _ => ranges.push(next),
            }
        }
        ItemSet { ranges }
    }

    /// Items in `self` but not in `other`, in one sweep, O(n + m).
    pub fn difference(&self, other: &ItemSet) -> ItemSet {
        if other.ranges.len().saturating_mul(SMALL_SIDE) < self.ranges.len() {
            let mut out = self.clone();
            for &(s, e) in &other.ranges {
                out.remove_range(s, e);
            }
            return out;
        }
        let mut ranges = Vec::with_capacity(self.ranges.len());
        let mut j = 0;
        for &(start, end) in &self.ranges {
            let mut s = start;
            // Skip the ranges of `other` that end before this one starts.
            while j < other.ranges.len() && other.ranges[j].1 <= s {
                j += 1;
            }
            let mut k = j;
            while k < other.ranges.len() && other.ranges[k].0 < end {
                let (os, oe) = other.ranges[k];
                if os > s {
                    ranges.push((s, os));
                }
                s = s.max(oe);
                if s >= end {
                    break;
                }
                k += 1;
            }
            if s < end {
                ranges.push((s, end));
            }
        }
        ItemSet { ranges }
    }

    /// Items in both `self` and `other`: each range of the smaller set
    /// looked up in the larger, O(small · log large + output).
    pub fn intersection(&self, other: &ItemSet) -> ItemSet {
        let (small, large) = if self.ranges.len() <= other.ranges.len() {
            (self, other)
        } else {
            (other, self)
        };
        let mut ranges = Vec::new();
        for &(s, e) in &small.ranges {
            let first = large.ranges.partition_point(|&(_, le)| le <= s);
            for &(ls, le) in large.ranges[first..].iter().take_while(|&&(ls, _)| ls < e) {
                ranges.push((ls.max(s), le.min(e)));
            }
        }
        ItemSet { ranges }
    }

    /// Whether `self` and `other` share an item: each range of the
    /// smaller set looked up in the larger, stopping at the first shared.
    pub fn intersects(&self, other: &ItemSet) -> bool {
        let (small, large) = if self.ranges.len() <= other.ranges.len() {
            (self, other)
        } else {
            (other, self)
        };
        match (
            small.ranges.first(),
            small.ranges.last(),
            large.ranges.first(),
            large.ranges.last(),
        ) {
            (Some(&(s0, _)), Some(&(_, s1)), Some(&(l0, _)), Some(&(_, l1)))
                if s0 < l1 && l0 < s1 => {}
            // An empty side, or spans that do not overlap.
            _ => return false,
        }
        if small.ranges.len().saturating_mul(SMALL_SIDE) < large.ranges.len() {
            return small.ranges.iter().any(|&(s, e)| {
                let first = large.ranges.partition_point(|&(_, le)| le <= s);
                large.ranges.get(first).is_some_and(|&(ls, _)| ls < e)
            });
        }
        // Comparable sizes: one merge, stopping at the first overlap.
        let (mut i, mut j) = (0, 0);
        while let (Some(&(a0, a1)), Some(&(b0, b1))) = (small.ranges.get(i), large.ranges.get(j)) {
            if a0 < b1 && b0 < a1 {
                return true;
            }
            if a1 <= b1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }

    /// Every item, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(|&(s, e)| s..e)
    }
}

impl FromIterator<u32> for ItemSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        let mut items: Vec<u32> = iter.into_iter().collect();
        items.sort_unstable();
        items.dedup();
        let mut set = ItemSet::new();
        // Sorted input: extend the last range or open a new one, O(n).
        for item in items {
            match set.ranges.last_mut() {
                Some((_, e)) if *e == item => *e = item + 1,
                _ if item == u32::MAX => {} // cannot be represented half-open
                _ => set.ranges.push((item, item + 1)),
            }
        }
        set
    }
}

/// A set with this many times fewer ranges than the other side of a union
/// or difference is applied range by range instead of merged in one sweep.
const SMALL_SIDE: usize = 64;

/// Bytes of `{"from":F,"bits":""}` around the base64 of a bitmap.
const BITMAP_OVERHEAD: usize = 19;

fn digits(n: u32) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

impl ItemSet {
    /// Bytes of the range-list form on the wire, `[[s,e],...]`.
    pub fn ranges_wire_len(&self) -> usize {
        let inner: usize = self
            .ranges
            .iter()
            .map(|&(s, e)| digits(s) + digits(e) + 3)
            .sum();
        2 + inner + self.ranges.len().saturating_sub(1)
    }

    /// Bytes of the bitmap form on the wire (`None` for the empty set,
    /// which is always `[]`).
    pub fn bitmap_wire_len(&self) -> Option<usize> {
        let (first, _) = *self.ranges.first()?;
        let (_, last) = *self.ranges.last()?;
        let bytes = (last - first).div_ceil(8) as usize;
        Some(BITMAP_OVERHEAD + digits(first) + bytes.div_ceil(3) * 4)
    }

    fn bitmap(&self) -> (u32, Vec<u8>) {
        let first = self.ranges.first().map_or(0, |r| r.0);
        let last = self.ranges.last().map_or(0, |r| r.1);
        let mut bits = vec![0u8; (last - first).div_ceil(8) as usize];
        for &(s, e) in &self.ranges {
            for i in (s - first)..(e - first) {
                bits[(i / 8) as usize] |= 1 << (i % 8);
            }
        }
        (first, bits)
    }

    fn from_bitmap(from: u32, bits: &[u8]) -> Result<Self, ItemSetError> {
        let mut set = ItemSet::new();
        for (byte_at, &byte) in bits.iter().enumerate() {
            if byte == 0 {
                continue;
            }
            for bit in 0..8u32 {
                if byte & (1 << bit) == 0 {
                    continue;
                }
                let item = u32::try_from(byte_at)
                    .ok()
                    .and_then(|b| b.checked_mul(8))
                    .and_then(|b| b.checked_add(bit))
                    .and_then(|i| i.checked_add(from))
                    .filter(|&i| i < u32::MAX)
                    .ok_or(ItemSetError {
                        start: from,
                        end: u32::MAX,
                    })?;
                match set.ranges.last_mut() {
                    Some((_, e)) if *e == item => *e = item + 1,
                    _ => set.ranges.push((item, item + 1)),
                }
            }
        }
        Ok(set)
    }
}

/// The two wire forms.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Wire {
    Ranges(Vec<(u32, u32)>),
    Bitmap { from: u32, bits: String },
}

impl Serialize for ItemSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bitmap_smaller = self
            .bitmap_wire_len()
            .is_some_and(|b| b < self.ranges_wire_len());
        if bitmap_smaller {
            let (from, bits) = self.bitmap();
            let bits = base64::engine::general_purpose::STANDARD.encode(bits);
            Wire::Bitmap { from, bits }.serialize(serializer)
        } else {
            self.ranges.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for ItemSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Wire::deserialize(deserializer)? {
            Wire::Ranges(ranges) => ItemSet::try_from(ranges).map_err(serde::de::Error::custom),
            Wire::Bitmap { from, bits } => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(bits.as_bytes())
                    .map_err(serde::de::Error::custom)?;
                ItemSet::from_bitmap(from, &bytes).map_err(serde::de::Error::custom)
            }
        }
    }
}

impl TryFrom<Vec<(u32, u32)>> for ItemSet {
    type Error = ItemSetError;

    /// Accepts ranges in any order, overlapping or not; rejects `start >= end`.
    fn try_from(ranges: Vec<(u32, u32)>) -> Result<Self, Self::Error> {
        let mut set = ItemSet::new();
        for (start, end) in ranges {
            if start >= end {
                return Err(ItemSetError { start, end });
            }
            set.insert_range(start, end);
        }
        Ok(set)
    }
}

impl From<ItemSet> for Vec<(u32, u32)> {
    fn from(set: ItemSet) -> Self {
        set.ranges
    }
}

impl fmt::Display for ItemSet {
    /// `0-9,20,30-31`: inclusive ranges, as an operator would write them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(s, e)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if e - s == 1 {
                write!(f, "{s}")?;
            } else {
                write!(f, "{s}-{}", e - 1)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn well_formed(set: &ItemSet) -> bool {
        set.ranges.iter().all(|&(s, e)| s < e) && set.ranges.windows(2).all(|w| w[0].1 < w[1].0)
    }

    fn small_items() -> impl Strategy<Value = Vec<u32>> {
        proptest::collection::vec(0u32..200, 0..80)
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreeset(a in small_items(), b in small_items(), ops in proptest::collection::vec((any::<bool>(), 0u32..200, 0u32..20), 0..40)) {
            let mut set: ItemSet = a.iter().copied().collect();
            let mut model: BTreeSet<u32> = a.iter().copied().collect();
            for (insert, start, len) in ops {
                if insert {
                    set.insert_range(start, start + len);
                    model.extend(start..start + len);
                } else {
                    set.remove_range(start, start + len);
                    for i in start..start + len { model.remove(&i); }
                }
                prop_assert!(well_formed(&set));
            }
            prop_assert_eq!(set.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(set.len(), model.len() as u64);
            for i in 0..220 { prop_assert_eq!(set.contains(i), model.contains(&i)); }

            let other: ItemSet = b.iter().copied().collect();
            let other_model: BTreeSet<u32> = b.iter().copied().collect();
            let union = set.union(&other);
            let diff = set.difference(&other);
            let inter = set.intersection(&other);
            prop_assert!(well_formed(&union) && well_formed(&diff) && well_formed(&inter));
            prop_assert_eq!(union.iter().collect::<BTreeSet<_>>(), model.union(&other_model).copied().collect());
            prop_assert_eq!(diff.iter().collect::<BTreeSet<_>>(), model.difference(&other_model).copied().collect());
            prop_assert_eq!(inter.iter().collect::<BTreeSet<_>>(), model.intersection(&other_model).copied().collect());
            prop_assert_eq!(set.intersects(&other), model.intersection(&other_model).next().is_some());
        }

        #[test]
        fn json_round_trip_is_canonical(a in small_items()) {
            let set: ItemSet = a.into_iter().collect();
            let json = serde_json::to_string(&set).unwrap();
            let back: ItemSet = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&back, &set);
            prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
        }

        #[test]
        fn pop_first_yields_items_in_order(a in small_items()) {
            let mut set: ItemSet = a.iter().copied().collect();
            let mut popped = Vec::new();
            while let Some(i) = set.pop_first() { popped.push(i); }
            let model: Vec<u32> = a.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
            prop_assert_eq!(popped, model);
        }
    }

    fn spread_items() -> impl Strategy<Value = Vec<u32>> {
        // Dense, sparse and clustered sets over spans up to 5,000.
        (1u32..50, proptest::collection::vec(0u32..5_000, 0..400))
            .prop_map(|(step, v)| v.into_iter().map(|i| i - i % step).collect())
    }

    proptest! {
        /// Either wire form reads back to the same set, and re-encodes to
        /// the same bytes.
        #[test]
        fn adaptive_encoding_round_trips(a in spread_items(), shift in 0u32..4_000_000_000) {
            let set: ItemSet = a.into_iter().map(|i| i + shift).collect();
            let json = serde_json::to_string(&set).unwrap();
            let back: ItemSet = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&back, &set);
            prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
        }

        /// A set of items within a span of s items never encodes to more
        /// than the smaller of its range list and a bitmap of the span:
        /// s/8 bytes, 4/3 of that in base64, plus a fixed overhead.
        #[test]
        fn never_larger_than_ranges_or_the_span_bitmap(a in spread_items()) {
            let set: ItemSet = a.into_iter().collect();
            let json = serde_json::to_vec(&set).unwrap();
            let ranges = serde_json::to_vec(set.ranges()).unwrap().len();
            prop_assert_eq!(set.ranges_wire_len(), ranges);
            if let (Some(&(first, _)), Some(&(_, end))) = (set.ranges().first(), set.ranges().last()) {
                let span = (end - first) as usize;
                let bitmap = span.div_ceil(8).div_ceil(3) * 4 + BITMAP_OVERHEAD + 10;
                prop_assert!(json.len() <= ranges.min(bitmap), "{} > min({ranges}, {bitmap})", json.len());
            } else {
                prop_assert_eq!(json, b"[]".to_vec());
            }
        }
    }

    #[test]
    fn scattered_items_are_a_bitmap_and_blocks_stay_ranges() {
        let every_tenth: ItemSet = (0..1_000_000).step_by(10).collect();
        let json = serde_json::to_string(&every_tenth).unwrap();
        assert!(json.starts_with(r#"{"from":0,"bits":""#), "{}", &json[..40]);
        assert!(json.len() < 170_000, "{}", json.len());
        assert_eq!(serde_json::from_str::<ItemSet>(&json).unwrap(), every_tenth);
        let block = ItemSet::range(0, 100_000);
        assert_eq!(serde_json::to_string(&block).unwrap(), "[[0,100000]]");
        // A bitmap with a bit past u32::MAX is refused, not wrapped.
        let err = serde_json::from_str::<ItemSet>(r#"{"from":4294967295,"bits":"AQ=="}"#);
        assert!(err.is_err());
    }

    #[test]
    fn decode_merges_unsorted_ranges_and_rejects_empty_ones() {
        let set: ItemSet = serde_json::from_str("[[10,20],[0,5],[5,8]]").unwrap();
        assert_eq!(set.ranges(), &[(0, 8), (10, 20)]);
        let err = serde_json::from_str::<ItemSet>("[[5,5]]").unwrap_err();
        assert!(err.to_string().contains("start < end"), "{err}");
    }

    #[test]
    fn displays_inclusive_ranges() {
        let set: ItemSet = [0, 1, 2, 7, 9, 10].into_iter().collect();
        assert_eq!(set.to_string(), "0-2,7,9-10");
        assert_eq!(ItemSet::range(0, 10_000).ranges(), &[(0, 10_000)]);
    }
}
