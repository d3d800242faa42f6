//! Outcome recording through the keyspace protocol, with the in-process
//! backend and a test playing the leader: every item is recorded exactly
//! once, in far fewer writes than items, across assignment rewrites, and a
//! panicking handler becomes a failed item.

mod support;

use nightshift_executor::{builtin::Noop, job_fn, ItemContext, ItemOutcome, JobError};
use nightshift_protocol::keyspace::{AssignmentRecord, ItemSet, ResultOutcome};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use support::{start, Leader};

/// Counts handler invocations per item.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<BTreeMap<u32, u32>>>);

impl Calls {
    fn record(&self, item: u32) {
        *self.0.lock().unwrap().entry(item).or_default() += 1;
    }
    fn get(&self) -> BTreeMap<u32, u32> {
        self.0.lock().unwrap().clone()
    }
}

fn counting(calls: &Calls) -> impl nightshift_executor::Job {
    let calls = calls.clone();
    job_fn(move |ctx: ItemContext| {
        let calls = calls.clone();
        async move {
            calls.record(ctx.item().0);
            Ok(ItemOutcome::Succeeded)
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_is_recorded_exactly_once_in_few_batches() -> anyhow::Result<()> {
    support::init_logs();
    let leader = Leader::new();
    let calls = Calls::default();
    let executor = start(
        leader
            .builder("e1")
            .capacity(8)
            .handler("count", counting(&calls))
            .build()?,
    );
    let info = leader.executor("e1", None).await?;
    leader
        .spec("r1", "j", "count", 1000, serde_json::Value::Null)
        .await?;
    let token = leader
        .assign_items("r1", "j", &info, ItemSet::range(0, 1000))
        .await?;

    let results = leader.wait_results("r1", "j", 1000).await?;
    assert_eq!(results.len(), 1000);
    for (item, rs) in &results {
        assert_eq!(rs.len(), 1, "item {item} recorded {} times", rs.len());
        assert_eq!(rs[0].outcome, ResultOutcome::Succeeded);
        assert_eq!(rs[0].attempt, 1);
    }
    assert!(calls.get().values().all(|&n| n == 1), "an item ran twice");
    let batches = leader.batches("r1", "j").await?;
    assert!(
        batches.len() <= 100,
        "1000 items took {} result writes",
        batches.len()
    );
    assert!(batches
        .iter()
        .all(|(_, b)| b.token.0 == token && b.executor.as_str() == "e1"));
    let stats = executor.stats.snapshot();
    assert_eq!(stats.results_recorded, 1000);
    assert_eq!(stats.batches_written, batches.len() as u64);
    executor.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_assignment_keeps_going_without_rerunning_completed_items() -> anyhow::Result<()>
{
    support::init_logs();
    let leader = Leader::new();
    let calls = Calls::default();
    let executor = start(
        leader
            .builder("e1")
            .capacity(4)
            .handler("count", counting(&calls))
            .build()?,
    );
    let info = leader.executor("e1", None).await?;
    leader
        .spec("r1", "j", "count", 40, serde_json::Value::Null)
        .await?;
    let first = leader
        .assign_items("r1", "j", &info, ItemSet::range(0, 20))
        .await?;
    leader.wait_results("r1", "j", 20).await?;

    // Failover hands over items 20..40: the leader rewrites the assignment.
    let second = leader
        .assign_items("r1", "j", &info, ItemSet::range(0, 40))
        .await?;
    assert!(second > first);
    let results = leader.wait_results("r1", "j", 40).await?;
    assert!(
        results.values().all(|rs| rs.len() == 1),
        "an item was recorded twice"
    );
    assert_eq!(calls.get().len(), 40);
    assert!(
        calls.get().values().all(|&n| n == 1),
        "completed items ran again: {:?}",
        calls.get()
    );
    for (_, batch) in leader.batches("r1", "j").await? {
        let new_items = batch.results.iter().any(|r| r.item.0 >= 20);
        if new_items {
            assert_eq!(
                batch.token.0, second,
                "items 20..40 are recorded under the new token"
            );
        }
    }

    // A retry: the leader raises item 3 to attempt 2; only it runs again.
    let retry = AssignmentRecord {
        items: ItemSet::range(0, 40),
        attempts: BTreeMap::from([(3, 2)]),
        ..Default::default()
    };
    leader.assign("r1", "j", &info, &retry).await?;
    support::until("attempt 2 of item 3 recorded", || async {
        leader
            .results("r1", "j")
            .await
            .is_ok_and(|r| r[&3].iter().any(|x| x.attempt == 2))
    })
    .await?;
    assert_eq!(calls.get()[&3], 2);
    assert_eq!(calls.get().values().sum::<u32>(), 41);
    executor.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_item_and_the_executor_keeps_going() -> anyhow::Result<()> {
    support::init_logs();
    let leader = Leader::new();
    let job = job_fn(|ctx: ItemContext| async move {
        match ctx.item().0 {
            1 => panic!("ledger row {} is corrupt", ctx.item()),
            2 => Err(JobError::permanent("account closed")),
            _ => Ok(ItemOutcome::Succeeded),
        }
    });
    let executor = start(
        leader
            .builder("e1")
            .capacity(1)
            .handler("flaky", job)
            .build()?,
    );
    let info = leader.executor("e1", None).await?;
    leader
        .spec("r1", "j", "flaky", 5, serde_json::Value::Null)
        .await?;
    leader
        .assign_items("r1", "j", &info, ItemSet::range(0, 5))
        .await?;

    let results = leader.wait_results("r1", "j", 5).await?;
    let panicked = &results[&1][0];
    assert_eq!(panicked.outcome, ResultOutcome::Failed);
    assert_eq!(
        panicked.error.as_deref(),
        Some("handler panicked: ledger row 1 is corrupt")
    );
    let failed = &results[&2][0];
    assert_eq!(
        (failed.outcome, failed.retryable, failed.error.as_deref()),
        (ResultOutcome::Failed, false, Some("account closed"))
    );
    for item in [0, 3, 4] {
        assert_eq!(
            results[&item][0].outcome,
            ResultOutcome::Succeeded,
            "item {item}"
        );
    }
    executor.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_of_a_handler_this_executor_lacks_fail_as_retryable() -> anyhow::Result<()> {
    support::init_logs();
    let leader = Leader::new();
    let executor = start(leader.builder("e1").handler("noop", Noop).build()?);
    let info = leader.executor("e1", None).await?;
    leader
        .spec("r1", "j", "missing", 3, serde_json::Value::Null)
        .await?;
    leader
        .assign_items("r1", "j", &info, ItemSet::range(0, 3))
        .await?;
    let results = leader.wait_results("r1", "j", 3).await?;
    for rs in results.values() {
        assert_eq!(
            (rs[0].outcome, rs[0].retryable),
            (ResultOutcome::Failed, true)
        );
        assert_eq!(
            rs[0].error.as_deref(),
            Some("executor e1 has no handler `missing`")
        );
    }
    executor.shutdown().await
}
