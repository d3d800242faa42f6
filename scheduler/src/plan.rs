//! The assignment a job gets when it starts, as a pure function — used by
//! the leader at dispatch and by `nightshift plan` to show the next run's
//! assignment without running anything, so both always agree.

use crate::record::LastAssignment;
use nightshift_core::dag::JobSpec;
use nightshift_core::ids::{DagName, ItemIndex};
use nightshift_core::keyspace::ExecutorInfo;
use nightshift_core::sharding::{assign, Assignment, ExecutorSlot, ShardingError};

/// Whether `executor` may run `job`'s items: it registered the job's
/// handler and carries every label of the job's `executor_labels`.
pub fn eligible(job: &JobSpec, executor: &ExecutorInfo) -> bool {
    executor.handlers.iter().any(|h| h == &job.handler) && job.accepts_labels(&executor.labels)
}

/// Live executors eligible for `job` (see [`eligible`]), weighted by the
/// capacity they have for its handler.
pub fn slots_for<'a>(
    job: &JobSpec,
    executors: impl IntoIterator<Item = &'a ExecutorInfo>,
) -> Vec<ExecutorSlot> {
    executors
        .into_iter()
        .filter(|e| eligible(job, e))
        .map(|e| ExecutorSlot::new(e.id.clone(), e.capacity_for(&job.handler)))
        .collect()
}

/// The previous start's assignment as the sharding input (items beyond the
/// job's current item count are dropped); `None` when it holds no items
/// (only a sticky job's is stored with them).
pub fn previous_assignment(job: &JobSpec, last: Option<&LastAssignment>) -> Option<Assignment> {
    let last = last.filter(|l| !l.executors.is_empty())?;
    let parts = last.executors.iter().map(|(e, set)| {
        (
            e.clone(),
            set.iter()
                .filter(|&i| i < job.shards)
                .map(ItemIndex)
                .collect::<Vec<_>>(),
        )
    });
    Assignment::from_parts(job.shards, parts).ok()
}

/// The full reshard of `job` of `dag` over `executors`, starting from the
/// last assignment (the job's strategy decides how much that matters).
/// `Err(NoExecutors)` when nobody serves the handler.
pub fn plan_job<'a>(
    dag: &DagName,
    job: &JobSpec,
    executors: impl IntoIterator<Item = &'a ExecutorInfo>,
    last: Option<&LastAssignment>,
) -> Result<Assignment, ShardingError> {
    let slots = slots_for(job, executors);
    let previous = previous_assignment(job, last);
    assign(
        job.strategy,
        &format!("{dag}/{}", job.name),
        job.shards,
        &slots,
        previous.as_ref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift_core::dag::Strategy;
    use nightshift_core::ids::{ExecutorId, HandlerName};
    use nightshift_core::keyspace::ItemSet;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn exec(id: &str, handlers: &[&str], capacity: u32) -> ExecutorInfo {
        ExecutorInfo {
            id: ExecutorId::new(id),
            lease: 1,
            handlers: handlers.iter().map(|h| HandlerName::new(*h)).collect(),
            capacity,
            labels: BTreeMap::new(),
            host: "h".into(),
            pid: 1,
            version: "t".into(),
            started_at_ms: 0,
            handler_capacity: BTreeMap::new(),
            params_schemas: BTreeMap::new(),
        }
    }

    fn last_of(a: &Assignment, shards: u32) -> LastAssignment {
        LastAssignment {
            shards,
            executors: a
                .iter()
                .map(|(e, items)| (e.clone(), items.iter().map(|i| i.0).collect::<ItemSet>()))
                .collect(),
            run: None,
            ..LastAssignment::default()
        }
    }

    #[test]
    fn only_executors_serving_the_handler_get_items() {
        let mut job = JobSpec::new("j");
        job.handler = HandlerName::new("sleep");
        job.shards = 10;
        let execs = [exec("a", &["sleep"], 1), exec("b", &["noop"], 1)];
        let plan = plan_job(&DagName::new("d"), &job, &execs, None).unwrap();
        assert_eq!(plan.items_of(&ExecutorId::new("a")).len(), 10);
        assert!(plan_job(&DagName::new("d"), &job, &execs[1..], None).is_err());
    }

    #[test]
    fn only_executors_carrying_every_label_get_items() {
        let mut job = JobSpec::new("j");
        job.handler = HandlerName::new("sleep");
        job.shards = 12;
        job.executor_labels = [("zone".to_owned(), "a".to_owned())].into();
        let mut a = exec("a", &["sleep"], 1);
        a.labels.insert("zone".into(), "a".into());
        a.labels.insert("tier".into(), "batch".into());
        let mut b = exec("b", &["sleep"], 1);
        b.labels.insert("zone".into(), "b".into());
        let c = exec("c", &["sleep"], 1);
        let mut d = exec("d", &["noop"], 1);
        d.labels.insert("zone".into(), "a".into());
        let execs = [a, b, c, d];
        let plan = plan_job(&DagName::new("d"), &job, &execs, None).unwrap();
        assert_eq!(plan.items_of(&ExecutorId::new("a")).len(), 12);
        assert!(plan_job(&DagName::new("d"), &job, &execs[1..], None).is_err());
    }

    proptest! {
        /// The planner gives items only to eligible executors, and to some
        /// executor whenever one is eligible.
        #[test]
        fn plans_follow_the_label_filter(
            shards in 1u32..50,
            zones in proptest::collection::vec(0u8..3, 1..6),
            wanted in proptest::option::of(0u8..3),
        ) {
            let mut job = JobSpec::new("j");
            job.shards = shards;
            if let Some(w) = wanted {
                job.executor_labels.insert("zone".into(), format!("z{w}"));
            }
            let execs: Vec<ExecutorInfo> = zones.iter().enumerate().map(|(i, z)| {
                let mut e = exec(&format!("e{i}"), &["j"], 1 + (i as u32 % 3));
                e.labels.insert("zone".into(), format!("z{z}"));
                e
            }).collect();
            let matching: Vec<&ExecutorInfo> = execs.iter().filter(|e| wanted.is_none_or(|w| e.labels["zone"] == format!("z{w}"))).collect();
            match plan_job(&DagName::new("d"), &job, &execs, None) {
                Ok(plan) => {
                    prop_assert!(!matching.is_empty());
                    for (owner, items) in plan.iter() {
                        prop_assert!(items.is_empty() || matching.iter().any(|e| &e.id == owner), "{} is not eligible", owner);
                    }
                }
                Err(_) => prop_assert!(matching.is_empty()),
            }
        }

        /// Reshard before the next run, sticky: with the same members the
        /// plan is stable; when one leaves and another joins, the items of
        /// the ones that stayed do not move.
        #[test]
        fn sticky_reshard_keeps_survivors_items(shards in 1u32..300, n in 2usize..6, gone in 0usize..6) {
            let mut job = JobSpec::new("j");
            job.strategy = Strategy::Sticky;
            job.shards = shards;
            let dag = DagName::new("d");
            let before: Vec<ExecutorInfo> = (0..n).map(|i| exec(&format!("e{i}"), &["j"], 1)).collect();
            let first = plan_job(&dag, &job, &before, None).unwrap();
            let last = last_of(&first, shards);
            let again = plan_job(&dag, &job, &before, Some(&last)).unwrap();
            prop_assert_eq!(last_of(&again, shards), last.clone());
            let gone = gone % n;
            let mut after: Vec<ExecutorInfo> = before.iter().enumerate().filter(|(i, _)| *i != gone).map(|(_, e)| e.clone()).collect();
            after.push(exec("new", &["j"], 1));
            let second = plan_job(&dag, &job, &after, Some(&last)).unwrap();
            let departed = ExecutorId::new(format!("e{gone}"));
            prop_assert!(second.items_of(&departed).is_empty());
            for (i, e) in before.iter().enumerate() {
                if i == gone { continue; }
                let kept = first.items_of(&e.id).iter().all(|item| second.owner_of(*item) == Some(&e.id));
                prop_assert!(kept, "{} lost items it had", e.id);
            }
        }
    }
}
