//! Every executor's lease ends at once (as after an etcd restart longer than
//! the TTL) and each re-registers under its old id with a new lease before
//! the leader's next pass. Each item must get exactly one `lost` attempt, by
//! the executor that really held it under that assignment's token, and then
//! move to a live lease — found by the chaos suite, where items moved to an
//! id whose stale entry was then "lost" again under an attempt that never ran.
//!
//! Run against the in-process backend and a real etcd.

mod support;

use nightshift_coord::{Coordinator, LeaseId};
use nightshift_core::ids::{ExecutorId, JobName};
use nightshift_core::keyspace::Command;
use nightshift_core::state::{AttemptOutcome, TriggerSource};
use std::collections::BTreeMap;
use std::sync::Arc;
use support::Bed;

async fn every_lease_ends_at_once_and_each_item_is_lost_once_by_its_real_owner(
    coord: Arc<dyn Coordinator>,
) {
    let mut bed = Bed::new(
        coord.clone(),
        "[jobs.a]\nhandler = \"noop\"\nshards = 8\nstrategy = \"round_robin\"\n",
    )
    .await;
    let execs: Vec<ExecutorId> = (1..=3).map(|i| ExecutorId::new(format!("e{i}"))).collect();
    let mut leases = Vec::new();
    for e in &execs {
        leases.push(bed.register(e).await);
    }
    let id = bed
        .command(
            7,
            Command::Trigger {
                dag: bed.dag.clone(),
                business_date: None,
                params: None,
                rerun: false,
                source: TriggerSource::Manual,
            },
        )
        .await;
    bed.leader.pass().await.unwrap();
    let run = bed.run_of(&id);
    let job = JobName::new("a");
    // Who holds what, under which token, before the leases end.
    let mut held: BTreeMap<u32, (ExecutorId, i64)> = BTreeMap::new();
    for e in &execs {
        let (record, revision, _) = bed
            .assignment(&run, &job, e)
            .await
            .unwrap_or_else(|| panic!("no assignment for {e}"));
        for item in record.items.iter() {
            held.insert(item, (e.clone(), revision));
        }
    }
    assert_eq!(held.len(), 8, "every item assigned: {held:?}");

    // All leases end; every executor comes back under its id, new lease.
    for lease in leases {
        coord.revoke_lease(lease).await.unwrap();
    }
    let mut new_leases = BTreeMap::new();
    for e in &execs {
        new_leases.insert(e.clone(), bed.register(e).await);
    }
    bed.leader.pass().await.unwrap();

    let attempts = bed.store.attempts(&run, &job, None).await.unwrap();
    let lost: Vec<_> = attempts
        .iter()
        .filter(|a| a.outcome == Some(AttemptOutcome::Lost))
        .collect();
    assert_eq!(lost.len(), 8, "one lost attempt per item: {attempts:#?}");
    for a in lost {
        let (owner, token) = &held[&a.item.0];
        assert_eq!(
            (&a.executor, a.fencing_token.0),
            (owner, *token),
            "item {} was lost by {} (token {}), not by its holder",
            a.item,
            a.executor,
            a.fencing_token.0
        );
    }
    // Every item is assigned again, under the new leases.
    let mut reassigned = 0;
    for e in &execs {
        if let Some((record, _, lease)) = bed.assignment(&run, &job, e).await {
            assert_eq!(
                lease,
                Some(LeaseId(new_leases[e].0)),
                "{e}'s assignment must use its new lease"
            );
            reassigned += record.items.len();
        }
    }
    assert_eq!(reassigned, 8);
}

#[tokio::test]
async fn memory_every_lease_ends_at_once_and_each_item_is_lost_once_by_its_real_owner() {
    every_lease_ends_at_once_and_each_item_is_lost_once_by_its_real_owner(Arc::new(
        nightshift_coord::memory::MemoryCoordinator::new(),
    ))
    .await;
}

#[tokio::test]
async fn etcd_every_lease_ends_at_once_and_each_item_is_lost_once_by_its_real_owner() {
    let (_etcd, coord) = support::etcd().await;
    every_lease_ends_at_once_and_each_item_is_lost_once_by_its_real_owner(coord).await;
}
