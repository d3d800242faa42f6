//! Property tests for `nightshift_core::sharding`: every strategy covers each
//! item exactly once with a given executor; the spreading strategies are
//! balanced; `sticky` meets its weighted shares while moving the provable
//! minimum and is idempotent; `hash` is stable under membership changes.

use nightshift_core::ids::{ExecutorId, ItemIndex};
use nightshift_core::sharding::{
    assign, moved_items, moves_by_executor, Assignment, ExecutorSlot, ShardingError,
    Strategy as Sharding,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};

fn eid(k: u32) -> ExecutorId {
    ExecutorId::new(format!("exec-{k:03}"))
}

/// 1–24 executors drawn from a pool of 40 ids (so two draws overlap), with
/// weights 1–5 (or all 1 when `weighted` is false), in shuffled order.
fn executors(weighted: bool) -> impl Strategy<Value = Vec<ExecutorSlot>> {
    let max_w = if weighted { 5 } else { 1 };
    prop::collection::btree_map(0u32..40, 1u32..=max_w, 1..24)
        .prop_map(|m| {
            m.into_iter()
                .map(|(k, w)| ExecutorSlot {
                    id: eid(k),
                    weight: w,
                })
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
}

/// An arbitrary previous state: some executors (maybe gone now), an item
/// count (maybe different), each item owned by one of them or by nobody.
fn previous() -> impl Strategy<Value = Assignment> {
    (prop::collection::btree_set(0u32..40, 1..24), 0u32..300)
        .prop_flat_map(|(ids, items)| {
            let ids: Vec<u32> = ids.into_iter().collect();
            let n = ids.len();
            (
                Just(ids),
                Just(items),
                prop::collection::vec(prop::option::weighted(0.9, 0..n), items as usize),
            )
        })
        .prop_map(|(ids, items, owners)| {
            let mut parts: BTreeMap<ExecutorId, Vec<ItemIndex>> =
                ids.iter().map(|&k| (eid(k), vec![])).collect();
            for (i, o) in owners.into_iter().enumerate() {
                if let Some(o) = o {
                    parts
                        .get_mut(&eid(ids[o]))
                        .unwrap()
                        .push(ItemIndex(i as u32));
                }
            }
            Assignment::from_parts(items, parts).unwrap()
        })
}

fn strategy() -> impl Strategy<Value = Sharding> {
    prop::sample::select(Sharding::VARIANTS.to_vec())
}

/// Checks that `a` gives each of `items` items exactly one owner among
/// `execs`, and that the grouped and per-item views agree.
fn assert_covers(a: &Assignment, items: u32, execs: &[ExecutorSlot]) -> Result<(), TestCaseError> {
    let ids: BTreeSet<&ExecutorId> = execs.iter().map(|s| &s.id).collect();
    prop_assert_eq!(a.len(), items as usize);
    prop_assert_eq!(a.executors().iter().collect::<BTreeSet<_>>(), ids.clone());
    let mut seen = vec![false; items as usize];
    for (id, list) in a.iter() {
        prop_assert!(
            list.windows(2).all(|w| w[0] < w[1]),
            "items of {} not ascending",
            id
        );
        for &item in list {
            prop_assert!(!seen[item.0 as usize], "item {} owned twice", item);
            seen[item.0 as usize] = true;
            prop_assert_eq!(a.owner_of(item), Some(id));
        }
        let from_ranges: Vec<u32> = a.ranges_of(id).into_iter().flatten().collect();
        prop_assert_eq!(from_ranges, list.iter().map(|i| i.0).collect::<Vec<_>>());
    }
    prop_assert!(seen.iter().all(|&s| s), "some item has no owner");
    prop_assert_eq!(a.owner_of(ItemIndex(items)), None);
    Ok(())
}

fn sizes(a: &Assignment) -> Vec<usize> {
    a.iter().map(|(_, l)| l.len()).collect()
}

/// Floor and ceiling of executor `s`'s weighted fair share of `items`.
fn fair_bounds(items: u32, s: &ExecutorSlot, execs: &[ExecutorSlot]) -> (u64, u64) {
    let total: u64 = execs.iter().map(|e| u64::from(e.weight)).sum();
    let exact = u64::from(items) * u64::from(s.weight);
    (exact / total, exact.div_ceil(total))
}

/// Items of `prev` that still exist (< items) and whose owner is still live.
fn kept_counts(prev: &Assignment, items: u32, execs: &[ExecutorSlot]) -> BTreeMap<ExecutorId, u64> {
    execs
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                prev.items_of(&s.id).iter().filter(|i| i.0 < items).count() as u64,
            )
        })
        .collect()
}

fn orphaned(prev: &Assignment, items: u32, execs: &[ExecutorSlot]) -> usize {
    let live: HashSet<&ExecutorId> = execs.iter().map(|s| &s.id).collect();
    (0..items.min(prev.len() as u32))
        .filter(|&i| {
            prev.owner_of(ItemIndex(i))
                .is_some_and(|o| !live.contains(o))
        })
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_item_is_assigned_exactly_once_to_a_given_executor(
        kind in strategy(), execs in executors(true), items in 0u32..400, prev in prop::option::of(previous()), job in "[a-z]{1,8}"
    ) {
        let a = assign(kind, &job, items, &execs, prev.as_ref()).unwrap();
        assert_covers(&a, items, &execs)?;
    }

    #[test]
    fn results_do_not_depend_on_executor_order(
        kind in strategy(), execs in executors(true), items in 0u32..400, prev in prop::option::of(previous())
    ) {
        let mut reversed = execs.clone();
        reversed.reverse();
        let a = assign(kind, "job", items, &execs, prev.as_ref()).unwrap();
        let b = assign(kind, "job", items, &reversed, prev.as_ref()).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn average_round_robin_and_unweighted_sticky_are_balanced(
        kind in prop::sample::select(vec![Sharding::Average, Sharding::RoundRobin, Sharding::Sticky]),
        execs in executors(false), items in 0u32..400, prev in prop::option::of(previous()),
    ) {
        let a = assign(kind, "job", items, &execs, prev.as_ref()).unwrap();
        let s = sizes(&a);
        prop_assert!(s.iter().max().unwrap() - s.iter().min().unwrap() <= 1, "{:?}", s);
    }

    #[test]
    fn average_and_round_robin_ignore_weights(
        kind in prop::sample::select(vec![Sharding::Average, Sharding::RoundRobin]),
        execs in executors(true), items in 0u32..400,
    ) {
        let unweighted: Vec<ExecutorSlot> = execs.iter().map(|s| ExecutorSlot { weight: 1, ..s.clone() }).collect();
        prop_assert_eq!(assign(kind, "job", items, &execs, None).unwrap(), assign(kind, "job", items, &unweighted, None).unwrap());
    }

    #[test]
    fn average_gives_contiguous_blocks_larger_first_in_id_order(execs in executors(false), items in 0u32..400) {
        let a = assign(Sharding::Average, "job", items, &execs, None).unwrap();
        let mut next = 0u32;
        let mut last_size = usize::MAX;
        for (_, list) in a.iter() {
            prop_assert_eq!(list.iter().map(|i| i.0).collect::<Vec<_>>(), (next..next + list.len() as u32).collect::<Vec<_>>());
            prop_assert!(list.len() <= last_size);
            next += list.len() as u32;
            last_size = list.len();
        }
    }

    #[test]
    fn round_robin_deals_items_out_in_id_order(execs in executors(false), items in 2u32..400, job in "[a-z]{1,8}") {
        let a = assign(Sharding::RoundRobin, &job, items, &execs, None).unwrap();
        let ids = a.executors();
        for i in 0..items - 1 {
            let this = ids.iter().position(|e| Some(e) == a.owner_of(ItemIndex(i))).unwrap();
            let next = ids.iter().position(|e| Some(e) == a.owner_of(ItemIndex(i + 1))).unwrap();
            prop_assert_eq!(next, (this + 1) % ids.len());
        }
    }

    #[test]
    fn sticky_meets_weighted_fair_shares(execs in executors(true), items in 0u32..400, prev in prop::option::of(previous())) {
        let a = assign(Sharding::Sticky, "job", items, &execs, prev.as_ref()).unwrap();
        for s in &execs {
            let (lo, hi) = fair_bounds(items, s, &execs);
            let got = a.items_of(&s.id).len() as u64;
            prop_assert!(lo <= got && got <= hi, "{} weight {} got {} not in {}..={}", s.id, s.weight, got, lo, hi);
        }
    }

    #[test]
    fn sticky_moves_the_minimum(execs in executors(true), items in 0u32..400, prev in previous()) {
        let next = assign(Sharding::Sticky, "job", items, &execs, Some(&prev)).unwrap();
        let kept = kept_counts(&prev, items, &execs);
        let orphans = orphaned(&prev, items, &execs);
        // The brief's formula, with the quotas the solver chose.
        let excess: u64 = execs.iter().map(|s| kept[&s.id].saturating_sub(next.items_of(&s.id).len() as u64)).sum();
        prop_assert_eq!(moved_items(&prev, &next) as u64, orphans as u64 + excess);
        // And no valid rounding of the fair shares could do better.
        let mut floors_sum = 0u64;
        let mut base = 0u64;
        let mut eligible = 0u64;
        for s in &execs {
            let (lo, hi) = fair_bounds(items, s, &execs);
            floors_sum += lo;
            base += kept[&s.id].saturating_sub(lo);
            if hi > lo && kept[&s.id] > lo {
                eligible += 1;
            }
        }
        let round_ups = u64::from(items) - floors_sum;
        prop_assert_eq!(moved_items(&prev, &next) as u64, orphans as u64 + base - round_ups.min(eligible));
    }

    #[test]
    fn sticky_stayers_keep_what_their_quota_allows_and_joiners_get_their_share(
        execs in executors(true), items in 0u32..400, prev in previous()
    ) {
        let next = assign(Sharding::Sticky, "job", items, &execs, Some(&prev)).unwrap();
        let kept = kept_counts(&prev, items, &execs);
        let before: HashSet<&ExecutorId> = prev.executors().iter().collect();
        for s in &execs {
            let now: HashSet<ItemIndex> = next.items_of(&s.id).iter().copied().collect();
            let still = prev.items_of(&s.id).iter().filter(|i| now.contains(i)).count() as u64;
            let quota = now.len() as u64;
            prop_assert_eq!(still, kept[&s.id].min(quota), "{}", s.id);
            if !before.contains(&s.id) {
                let (lo, hi) = fair_bounds(items, s, &execs);
                prop_assert!(lo <= quota && quota <= hi);
            }
        }
    }

    #[test]
    fn sticky_solved_twice_changes_nothing(execs in executors(true), items in 0u32..400, prev in prop::option::of(previous())) {
        let first = assign(Sharding::Sticky, "job", items, &execs, prev.as_ref()).unwrap();
        let second = assign(Sharding::Sticky, "job", items, &execs, Some(&first)).unwrap();
        prop_assert_eq!(moved_items(&first, &second), 0);
        prop_assert_eq!(first, second);
    }

    #[test]
    fn sticky_without_previous_lays_out_contiguous_blocks(execs in executors(true), items in 0u32..400) {
        let a = assign(Sharding::Sticky, "job", items, &execs, None).unwrap();
        let mut next = 0u32;
        for (_, list) in a.iter() {
            prop_assert_eq!(list.iter().map(|i| i.0).collect::<Vec<_>>(), (next..next + list.len() as u32).collect::<Vec<_>>());
            next += list.len() as u32;
        }
    }

    #[test]
    fn hash_is_stable_and_moves_only_a_leavers_items(
        execs in executors(true).prop_filter("need two", |e| e.len() >= 2), items in 0u32..400, pick in any::<prop::sample::Index>(), job in "[a-z]{1,8}"
    ) {
        let a = assign(Sharding::Hash, &job, items, &execs, None).unwrap();
        prop_assert_eq!(&a, &assign(Sharding::Hash, &job, items, &execs, Some(&a)).unwrap());
        let leaver = execs[pick.index(execs.len())].id.clone();
        let rest: Vec<ExecutorSlot> = execs.iter().filter(|s| s.id != leaver).cloned().collect();
        let b = assign(Sharding::Hash, &job, items, &rest, None).unwrap();
        for i in 0..items {
            let before = a.owner_of(ItemIndex(i)).unwrap();
            if before != &leaver {
                prop_assert_eq!(b.owner_of(ItemIndex(i)), Some(before));
            }
        }
        prop_assert_eq!(moved_items(&a, &b), a.items_of(&leaver).len());
        // The reverse: when it joins again, only items it takes move.
        let c = assign(Sharding::Hash, &job, items, &execs, None).unwrap();
        for i in 0..items {
            let (was, now) = (b.owner_of(ItemIndex(i)), c.owner_of(ItemIndex(i)));
            prop_assert!(was == now || now == Some(&leaver));
        }
    }

    #[test]
    fn move_summary_agrees_with_moved_items(kind in strategy(), execs in executors(true), items in 0u32..400, prev in previous()) {
        let next = assign(kind, "job", items, &execs, Some(&prev)).unwrap();
        let rows = moves_by_executor(&prev, &next);
        let moved = moved_items(&prev, &next);
        prop_assert_eq!(rows.iter().map(|r| r.moved_out).sum::<usize>(), moved);
        prop_assert_eq!(rows.iter().map(|r| r.moved_in).sum::<usize>(), moved);
        for r in &rows {
            prop_assert_eq!(r.before, prev.items_of(&r.executor).len());
            prop_assert_eq!(r.after, next.items_of(&r.executor).len());
            prop_assert!(r.kept + r.moved_out <= r.before);
            prop_assert!(r.kept + r.moved_in <= r.after);
        }
    }
}

#[test]
fn round_robin_spreads_single_item_jobs_across_executors() {
    let execs: Vec<ExecutorSlot> = (0..10).map(|k| ExecutorSlot::new(eid(k), 1)).collect();
    let owners: HashSet<ExecutorId> = (0..100)
        .map(|j| {
            let a = assign(Sharding::RoundRobin, &format!("job-{j}"), 1, &execs, None).unwrap();
            a.owner_of(ItemIndex(0)).unwrap().clone()
        })
        .collect();
    // 100 uniform picks out of 10 leave an executor unused with probability ~3e-4.
    assert!(owners.len() >= 8, "only {} distinct owners", owners.len());
}

#[test]
fn hash_weights_shift_the_load() {
    let execs = [ExecutorSlot::new("light", 1), ExecutorSlot::new("heavy", 4)];
    let a = assign(Sharding::Hash, "job", 10_000, &execs, None).unwrap();
    let heavy = a.items_of(&ExecutorId::new("heavy")).len();
    // Expected 8,000; 40 and 160 ring points keep it well within ±10 %.
    assert!((7_000..=9_000).contains(&heavy), "heavy got {heavy}");
}

#[test]
fn sticky_reshard_after_a_join_moves_only_the_joiners_share() {
    let three: Vec<ExecutorSlot> = ["a", "b", "c"].map(|k| ExecutorSlot::new(k, 1)).to_vec();
    let before = assign(Sharding::Sticky, "job", 12, &three, None).unwrap();
    let mut four = three.clone();
    four.push(ExecutorSlot::new("d", 1));
    let after = assign(Sharding::Sticky, "job", 12, &four, Some(&before)).unwrap();
    assert_eq!(after.items_of(&ExecutorId::new("d")).len(), 3);
    assert_eq!(moved_items(&before, &after), 3);
}

#[test]
fn errors_are_reported() {
    assert_eq!(
        assign(Sharding::Sticky, "j", 5, &[], None),
        Err(ShardingError::NoExecutors)
    );
    assert_eq!(
        assign(Sharding::Sticky, "j", 0, &[], None),
        Err(ShardingError::NoExecutors)
    );
    let dup = [ExecutorSlot::new("a", 1), ExecutorSlot::new("a", 2)];
    assert_eq!(
        assign(Sharding::Hash, "j", 5, &dup, None),
        Err(ShardingError::DuplicateExecutor("a".into()))
    );
    let zero = [ExecutorSlot::new("a", 0)];
    assert_eq!(
        assign(Sharding::Average, "j", 5, &zero, None),
        Err(ShardingError::ZeroWeight("a".into()))
    );
    let out = Assignment::from_parts(3, [(ExecutorId::new("a"), vec![ItemIndex(3)])]);
    assert_eq!(
        out,
        Err(ShardingError::ItemOutOfRange { item: 3, items: 3 })
    );
    let twice = Assignment::from_parts(
        3,
        [
            (ExecutorId::new("a"), vec![ItemIndex(1)]),
            (ExecutorId::new("b"), vec![ItemIndex(1)]),
        ],
    );
    assert_eq!(twice, Err(ShardingError::DuplicateItem(1)));
    assert_eq!("sticky".parse::<Sharding>(), Ok(Sharding::Sticky));
    assert!("fastest".parse::<Sharding>().is_err());
}

#[test]
fn zero_items_give_an_empty_assignment() {
    let execs = [ExecutorSlot::new("a", 1)];
    for &kind in Sharding::VARIANTS {
        let a = assign(kind, "j", 0, &execs, None).unwrap();
        assert!(a.is_empty());
        assert_eq!(a.items_of(&ExecutorId::new("a")), &[] as &[ItemIndex]);
    }
}
