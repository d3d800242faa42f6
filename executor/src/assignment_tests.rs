//! Tests of [`JobSlot`]'s bookkeeping: examples, then a property test that
//! drives random rewrites and completions and checks the ownership rules.

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};

fn assignment(items: ItemSet, cancel: ItemSet, attempts: &[(u32, u32)]) -> AssignmentRecord {
    AssignmentRecord {
        items,
        cancel,
        attempts: attempts.iter().copied().collect::<BTreeMap<_, _>>(),
        generation: None,
    }
}

fn drain_starts(slot: &mut JobSlot) -> Vec<Start> {
    std::iter::from_fn(|| slot.start_next()).collect()
}

fn ok() -> Finish {
    Finish::Returned(Ok(ItemOutcome::Succeeded))
}

#[test]
fn completed_items_are_not_rerun_when_the_assignment_grows() {
    let mut slot = JobSlot::new(10, assignment(ItemSet::range(0, 3), ItemSet::new(), &[]), 0);
    let starts = drain_starts(&mut slot);
    assert_eq!(
        starts.iter().map(|s| s.item).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(slot.finish(0, 1, 0, 1, ok()));
    assert!(slot.finish(1, 1, 0, 1, ok()));
    // Failover adds items 3..5: a new token; item 2 keeps running.
    assert_eq!(
        slot.apply(11, assignment(ItemSet::range(0, 5), ItemSet::new(), &[]), 2)
            .cancelled,
        0
    );
    assert_eq!(slot.token, 11);
    let again: Vec<u32> = drain_starts(&mut slot).iter().map(|s| s.item).collect();
    assert_eq!(again, vec![3, 4], "items 0 and 1 are done and 2 is running");
    assert!(!starts[2].cancel.is_cancelled());
}

#[test]
fn a_dropped_handler_records_only_a_requested_cancel() {
    let mut slot = JobSlot::new(10, assignment(ItemSet::range(0, 2), ItemSet::new(), &[]), 0);
    drain_starts(&mut slot);
    // Item 1: the leader asks to stop it; its stubborn handler is dropped.
    slot.apply(
        11,
        assignment(ItemSet::range(0, 2), ItemSet::range(1, 2), &[]),
        1,
    );
    assert!(slot.finish(1, 1, 0, 2, Finish::Stopped(StopReason::Grace)));
    // Item 0: dropped at the lease deadline before the session fenced: not
    // recorded, and waiting to run again should the lease be confirmed.
    assert!(!slot.finish(0, 1, 0, 2, Finish::Stopped(StopReason::LeaseDeadline)));
    let (batch, _) = slot.take_batch(100, 1 << 20);
    assert_eq!(batch.len(), 1, "{batch:?}");
    assert_eq!(
        (batch[0].item.0, batch[0].outcome),
        (1, ResultOutcome::Cancelled)
    );
    assert!(batch[0]
        .error
        .as_deref()
        .is_some_and(|e| e.contains("grace")));
    assert_eq!(slot.start_next().map(|s| s.item), Some(0));
}

#[test]
fn a_higher_attempt_reruns_a_completed_item() {
    let mut slot = JobSlot::new(10, assignment(ItemSet::range(0, 1), ItemSet::new(), &[]), 0);
    let s = slot.start_next().unwrap();
    slot.finish(
        s.item,
        s.attempt,
        0,
        1,
        Finish::Returned(Err(JobError::retryable("boom"))),
    );
    slot.apply(
        12,
        assignment(ItemSet::range(0, 1), ItemSet::new(), &[(0, 2)]),
        2,
    );
    let s = slot.start_next().unwrap();
    assert_eq!((s.item, s.attempt), (0, 2));
}

#[test]
fn removed_items_are_cancelled_and_their_outcome_discarded() {
    let mut slot = JobSlot::new(10, assignment(ItemSet::range(0, 2), ItemSet::new(), &[]), 0);
    let starts = drain_starts(&mut slot);
    assert_eq!(
        slot.apply(11, assignment(ItemSet::range(1, 2), ItemSet::new(), &[]), 0)
            .cancelled,
        1
    );
    assert!(starts[0].cancel.is_cancelled());
    assert!(!starts[1].cancel.is_cancelled());
    assert!(!slot.finish(0, 1, 0, 1, ok()));
    assert!(slot.finish(1, 1, 0, 1, ok()));
    let (batch, dropped) = slot.take_batch(100, 1 << 20);
    assert_eq!(batch.iter().map(|r| r.item.0).collect::<Vec<_>>(), vec![1]);
    assert_eq!(dropped, 0);
}

#[test]
fn cancel_requests_report_cancelled_for_running_and_unstarted_items() {
    let mut slot = JobSlot::new(10, assignment(ItemSet::range(0, 3), ItemSet::new(), &[]), 0);
    let s0 = slot.start_next().unwrap();
    let s1 = slot.start_next().unwrap();
    slot.apply(
        11,
        assignment(ItemSet::range(0, 3), ItemSet::range(0, 3), &[]),
        5,
    );
    assert!(s0.cancel.is_cancelled() && s1.cancel.is_cancelled());
    assert!(slot.start_next().is_none(), "cancelled items never start");
    slot.finish(
        0,
        1,
        0,
        6,
        Finish::Returned(Err(JobError::retryable("stopped"))),
    );
    slot.finish(1, 1, 0, 6, ok()); // finished before noticing: its real outcome
    let (batch, _) = slot.take_batch(100, 1 << 20);
    let outcomes: BTreeMap<u32, ResultOutcome> =
        batch.iter().map(|r| (r.item.0, r.outcome)).collect();
    assert_eq!(
        outcomes,
        BTreeMap::from([
            (0, ResultOutcome::Cancelled),
            (1, ResultOutcome::Succeeded),
            (2, ResultOutcome::Cancelled)
        ])
    );
}

#[test]
fn outcomes_map_to_results() {
    let mut slot = JobSlot::new(1, assignment(ItemSet::range(0, 4), ItemSet::new(), &[]), 0);
    drain_starts(&mut slot);
    slot.finish(0, 1, 0, 1, Finish::Panicked("index out of bounds".into()));
    slot.finish(1, 1, 0, 1, Finish::TimedOut { after_ms: 50 });
    slot.finish(
        2,
        1,
        0,
        1,
        Finish::Returned(Ok(ItemOutcome::Skipped("holiday".into()))),
    );
    slot.finish(
        3,
        1,
        0,
        1,
        Finish::Returned(Err(JobError::permanent("x".repeat(10_000)))),
    );
    let (batch, _) = slot.take_batch(100, 1 << 20);
    assert_eq!(batch[0].outcome, ResultOutcome::Failed);
    assert_eq!(
        batch[0].error.as_deref(),
        Some("handler panicked: index out of bounds")
    );
    assert_eq!(
        (batch[1].outcome, batch[1].retryable),
        (ResultOutcome::TimedOut, true)
    );
    assert_eq!(
        (batch[2].outcome, batch[2].error.as_deref()),
        (ResultOutcome::Skipped, Some("holiday"))
    );
    assert!(!batch[3].retryable);
    assert!(
        batch[3].error.as_ref().unwrap().len() < MAX_ERROR_LEN + 32,
        "error messages are truncated"
    );
}

#[test]
fn batches_respect_count_and_size_bounds() {
    let mut slot = JobSlot::new(
        1,
        assignment(ItemSet::range(0, 1000), ItemSet::new(), &[]),
        0,
    );
    for s in drain_starts(&mut slot) {
        slot.finish(s.item, s.attempt, 0, 1, ok());
    }
    let (batch, _) = slot.take_batch(256, 1 << 20);
    assert_eq!(batch.len(), 256);
    let (batch, _) = slot.take_batch(256, 10 * estimated_size(&batch[0]));
    assert_eq!(batch.len(), 10);
    assert_eq!(slot.buffered(), 1000 - 266);
}

#[derive(Debug, Clone)]
enum Step {
    Rewrite {
        items: Vec<u32>,
        cancel: Vec<u32>,
        bump: Vec<u32>,
    },
    Start,
    Finish(usize),
    Flush,
}

fn step() -> impl Strategy<Value = Step> {
    let items = proptest::collection::vec(0u32..12, 0..12);
    prop_oneof![
        (
            items.clone(),
            proptest::collection::vec(0u32..12, 0..3),
            proptest::collection::vec(0u32..12, 0..2)
        )
            .prop_map(|(items, cancel, bump)| Step::Rewrite {
                items,
                cancel,
                bump
            }),
        Just(Step::Start),
        Just(Step::Start),
        (0usize..8).prop_map(Step::Finish),
        Just(Step::Flush),
    ]
}

proptest! {
    /// Whatever the leader does, the slot records only owned items at their
    /// current attempt, each (item, attempt) at most once while it stays
    /// owned, and never runs an item twice at once.
    #[test]
    fn records_only_owned_items_once(steps in proptest::collection::vec(step(), 1..60)) {
        let mut slot = JobSlot::new(1, assignment(ItemSet::range(0, 6), ItemSet::new(), &[]), 0);
        let mut attempts: BTreeMap<u32, u32> = BTreeMap::new();
        let mut running: Vec<Start> = Vec::new();
        let mut recorded: HashSet<(u32, u32)> = HashSet::new();
        let mut token = 1;
        for step in steps {
            match step {
                Step::Rewrite { items, cancel, bump } => {
                    for b in bump { *attempts.entry(b).or_insert(1) += 1; }
                    token += 1;
                    let pairs: Vec<(u32, u32)> = attempts.iter().map(|(&k, &v)| (k, v)).collect();
                    let record = assignment(items.into_iter().collect(), cancel.into_iter().collect(), &pairs);
                    // An outcome may be recorded again only after the item
                    // stopped being ours at that attempt.
                    recorded.retain(|&(item, attempt)| record.items.contains(item) && record.attempt(item) == attempt);
                    slot.apply(token, record, 0);
                }
                Step::Start => {
                    if let Some(s) = slot.start_next() {
                        prop_assert!(!running.iter().any(|r| r.item == s.item), "item {} started twice", s.item);
                        running.push(s);
                    }
                }
                Step::Finish(i) => {
                    if !running.is_empty() {
                        let s = running.remove(i % running.len());
                        slot.finish(s.item, s.attempt, 0, 0, ok());
                    }
                }
                Step::Flush => {
                    let (batch, _) = slot.take_batch(1000, 1 << 20);
                    for r in batch {
                        prop_assert!(slot.owns(&r));
                        prop_assert!(recorded.insert((r.item.0, r.attempt)), "recorded twice: {:?}", r);
                    }
                }
            }
        }
    }
}
