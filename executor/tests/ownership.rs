//! Ownership rules through the keyspace protocol, with the in-process
//! backend: items cancelled or moved away stop; an executor whose lease is
//! revoked cancels its items and records nothing under the stale lease —
//! even for a handler that ignores cancellation, which it drops after the
//! grace — then registers again; a drained executor finishes what runs,
//! records it, and releases the rest.

mod support;

use nightshift_coord::LeaseId;
use nightshift_executor::builtin::Sleep;
use nightshift_executor::{job_fn, ItemContext, ItemOutcome, JobError};
use nightshift_protocol::ids::{ExecutorId, JobName, RunId};
use nightshift_protocol::keyspace::{
    self, AssignmentRecord, ItemSet, ProgressRecord, ResultOutcome,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{start, stays, until, Leader, PREFIX};
use tokio::sync::Semaphore;

/// Items whose handler saw its cancellation.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<BTreeSet<u32>>>);

impl Seen {
    fn add(&self, item: u32) {
        self.0.lock().unwrap().insert(item);
    }
    fn has(&self, item: u32) -> bool {
        self.0.lock().unwrap().contains(&item)
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Sleeps until cancelled; notes who started and who saw the cancellation.
fn until_cancelled(started: &Seen, cancelled: &Seen) -> impl nightshift_executor::Job {
    let (started, cancelled) = (started.clone(), cancelled.clone());
    job_fn(move |ctx: ItemContext| {
        let (started, cancelled) = (started.clone(), cancelled.clone());
        async move {
            started.add(ctx.item().0);
            ctx.cancelled().await;
            cancelled.add(ctx.item().0);
            Err(JobError::retryable("stopped"))
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_and_cancelled_items_are_stopped() -> anyhow::Result<()> {
    support::init_logs();
    let leader = Leader::new();
    let (started, cancelled) = (Seen::default(), Seen::default());
    // Items 1 and 2 run until cancelled: a short grace ends the test.
    let builder = leader
        .builder("e1")
        .capacity(4)
        .drain_grace(Duration::from_millis(100));
    let executor = start(
        builder
            .handler("wait", until_cancelled(&started, &cancelled))
            .build()?,
    );
    let info = leader.executor("e1", None).await?;
    leader.spec("r1", "j", "wait", 6, json!(null)).await?;
    leader
        .assign_items("r1", "j", &info, ItemSet::range(0, 4))
        .await?;
    until("4 items running", || async { started.len() == 4 }).await?;

    // Item 3 moves away; item 0 is cancelled by an operator; item 5 arrives
    // already cancelled.
    let record = AssignmentRecord {
        items: [0, 1, 2, 5].into_iter().collect(),
        cancel: [0, 5].into_iter().collect(),
        ..Default::default()
    };
    leader.assign("r1", "j", &info, &record).await?;
    until("items 0 and 3 see their cancellation", || async {
        cancelled.has(0) && cancelled.has(3)
    })
    .await?;
    let results = leader.wait_results("r1", "j", 2).await?;
    assert_eq!(results.keys().copied().collect::<Vec<_>>(), vec![0, 5]);
    assert_eq!(results[&0][0].outcome, ResultOutcome::Cancelled);
    assert_eq!(results[&5][0].outcome, ResultOutcome::Cancelled);
    assert!(
        !cancelled.has(1) && !cancelled.has(2),
        "owned items keep running"
    );
    assert!(
        !started.has(5),
        "an item cancelled before it started never starts"
    );
    stays(
        Duration::from_millis(200),
        "item 3 (moved away) is not recorded",
        || async {
            leader
                .results("r1", "j")
                .await
                .is_ok_and(|r| !r.contains_key(&3))
        },
    )
    .await?;
    executor.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_lease_cancels_everything_and_nothing_is_recorded_under_it() -> anyhow::Result<()>
{
    support::init_logs();
    let leader = Leader::new();
    // A stubborn handler: it would notice cancellation but only returns
    // (with success!) when the test lets it.
    let gate = Arc::new(Semaphore::new(0));
    let (started, saw_cancel) = (Seen::default(), Seen::default());
    let job = {
        let (gate, started, saw_cancel) = (gate.clone(), started.clone(), saw_cancel.clone());
        job_fn(move |ctx: ItemContext| {
            let (gate, started, saw_cancel) = (gate.clone(), started.clone(), saw_cancel.clone());
            async move {
                started.add(ctx.item().0);
                let _permit = gate.acquire().await;
                if ctx.is_cancelled() {
                    saw_cancel.add(ctx.item().0);
                }
                Ok(ItemOutcome::Succeeded)
            }
        })
    };
    let executor = start(
        leader
            .builder("e1")
            .capacity(2)
            .handler("stubborn", job)
            .build()?,
    );
    let info = leader.executor("e1", None).await?;
    leader.spec("r1", "j", "stubborn", 2, json!(null)).await?;
    leader
        .assign_items("r1", "j", &info, ItemSet::range(0, 2))
        .await?;
    until("both items running", || async { started.len() == 2 }).await?;

    leader.coord.revoke_lease(LeaseId(info.lease)).await?;
    let again = leader.executor("e1", Some(info.lease)).await?;
    assert_ne!(again.lease, info.lease, "registered again with a new lease");
    assert!(
        !leader.assignment_exists("r1", "j", "e1").await,
        "the revoked lease took the assignment with it"
    );

    // The handlers ignore their cancellation: the executor drops them after
    // the grace, without them ever getting past their gate.
    until("both handlers dropped", || async {
        executor.stats.snapshot().items_finished == 2
    })
    .await?;
    gate.add_permits(2);
    assert_eq!(saw_cancel.len(), 0, "a dropped handler runs no further");
    stays(
        Duration::from_millis(300),
        "nothing recorded for the stale lease",
        || async { leader.batches("r1", "j").await.is_ok_and(|b| b.is_empty()) },
    )
    .await?;
    let stats = executor.stats.snapshot();
    assert_eq!((stats.results_recorded, stats.registrations), (0, 2));
    assert!(stats.self_fences >= 1);
    executor.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_finishes_running_items_records_them_and_releases_the_rest() -> anyhow::Result<()> {
    support::init_logs();
    let leader = Leader::new();
    let executor = start(
        leader
            .builder("e1")
            .capacity(2)
            .drain_grace(Duration::from_secs(10))
            .handler("sleep", Sleep)
            .build()?,
    );
    let info = leader.executor("e1", None).await?;
    leader
        .spec("r1", "j", "sleep", 4, json!({"millis": 400}))
        .await?;
    leader
        .assign_items("r1", "j", &info, ItemSet::range(0, 4))
        .await?;
    until("two items running", || async {
        executor.stats.snapshot().items_started == 2
    })
    .await?;

    executor.shutdown().await?;
    let results = leader.results("r1", "j").await?;
    assert_eq!(
        results.keys().copied().collect::<Vec<_>>(),
        vec![0, 1],
        "the running items finished and were recorded"
    );
    assert!(results
        .values()
        .all(|r| r[0].outcome == ResultOutcome::Succeeded));
    assert!(
        !leader.assignment_exists("r1", "j", "e1").await,
        "the assignment is released at once"
    );
    let key = keyspace::executor_key(PREFIX, &ExecutorId::new("e1"));
    assert!(
        leader.coord.get(&key).await?.is_none(),
        "the registration is gone"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_still_running_after_the_drain_grace_are_cancelled_and_not_recorded(
) -> anyhow::Result<()> {
    support::init_logs();
    let leader = Leader::new();
    let (started, cancelled) = (Seen::default(), Seen::default());
    let job = until_cancelled(&started, &cancelled);
    let executor = start(
        leader
            .builder("e1")
            .drain_grace(Duration::from_millis(200))
            .handler("wait", job)
            .build()?,
    );
    let info = leader.executor("e1", None).await?;
    leader.spec("r1", "j", "wait", 1, json!(null)).await?;
    leader
        .assign_items("r1", "j", &info, ItemSet::range(0, 1))
        .await?;
    until("the item runs", || async { started.len() == 1 }).await?;
    executor.shutdown().await?;
    until(
        "the handler is cancelled at the end of the grace",
        || async { cancelled.has(0) },
    )
    .await?;
    assert!(
        leader.batches("r1", "j").await?.is_empty(),
        "its outcome was not recorded"
    );
    assert!(!leader.assignment_exists("r1", "j", "e1").await);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_published_with_the_lease_and_removed_when_items_finish() -> anyhow::Result<()>
{
    support::init_logs();
    let leader = Leader::new();
    let gate = Arc::new(Semaphore::new(0));
    let job = {
        let gate = gate.clone();
        job_fn(move |ctx: ItemContext| {
            let gate = gate.clone();
            async move {
                for done in 0..=500 {
                    ctx.progress(done, 500, format!("row {done}"));
                }
                let _permit = gate.acquire().await;
                Ok(ItemOutcome::Succeeded)
            }
        })
    };
    let executor = start(leader.builder("e1").handler("report", job).build()?);
    let info = leader.executor("e1", None).await?;
    leader.spec("r1", "j", "report", 1, json!(null)).await?;
    leader
        .assign_items("r1", "j", &info, ItemSet::range(0, 1))
        .await?;

    let key = keyspace::progress_key(
        PREFIX,
        &RunId::new("r1"),
        &JobName::new("j"),
        &ExecutorId::new("e1"),
    );
    let kv =
        nightshift_testkit::wait::wait_for_value(support::WAIT, "progress published", || async {
            let kv = leader.coord.get(&key).await.ok()??;
            let record: ProgressRecord = keyspace::decode(&kv.value).ok()?;
            (record.items.get(&0)?.done == 500).then_some(kv)
        })
        .await?;
    assert_eq!(kv.lease, Some(LeaseId(info.lease)));
    assert!(
        kv.version <= 2,
        "500 reports were coalesced into {} writes",
        kv.version
    );
    gate.add_permits(1);
    until("progress removed after the item finished", || async {
        matches!(leader.coord.get(&key).await, Ok(None))
    })
    .await?;
    executor.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_lease_voids_outcomes_even_while_etcd_would_still_accept_them(
) -> anyhow::Result<()> {
    support::init_logs();
    let coord = support::Partitionable::new();
    let leader = Leader::with(coord.clone());
    // A long TTL leaves a wide window between self-fencing (no renewal for
    // 2/3 of the TTL) and the lease actually expiring in the store.
    let ttl = Duration::from_secs(9);
    let gate = Arc::new(Semaphore::new(0));
    let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let job = {
        let (gate, runs) = (gate.clone(), runs.clone());
        job_fn(move |_ctx: ItemContext| {
            let (gate, runs) = (gate.clone(), runs.clone());
            async move {
                runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Stubborn: ignores cancellation, returns success when let go.
                let _permit = gate.acquire().await;
                Ok(ItemOutcome::Succeeded)
            }
        })
    };
    let executor = start(
        leader
            .builder("e1")
            .lease_ttl(ttl)
            .handler("stubborn", job)
            .build()?,
    );
    let info = leader.executor("e1", None).await?;
    leader.spec("r1", "j", "stubborn", 1, json!(null)).await?;
    leader
        .assign_items("r1", "j", &info, ItemSet::range(0, 1))
        .await?;
    until("the item runs", || async {
        runs.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await?;

    coord.set_cut(true);
    until("the executor self-fences", || async {
        executor.stats.snapshot().self_fences == 1
    })
    .await?;
    gate.add_permits(1);
    until("the stubborn handler returned", || async {
        executor.stats.snapshot().items_finished == 1
    })
    .await?;
    // The lease, and so the assignment, still exist: a write under the old
    // token would pass etcd's guard. Only the self-fence stops it.
    assert!(leader.assignment_exists("r1", "j", "e1").await);
    stays(
        Duration::from_millis(100),
        "the voided outcome is not recorded",
        || async { leader.batches("r1", "j").await.is_ok_and(|b| b.is_empty()) },
    )
    .await?;

    // Renewals go through again before the lease expired: the executor
    // resumes and runs the still-owned item afresh.
    coord.set_cut(false);
    gate.add_permits(1);
    let results = leader.wait_results("r1", "j", 1).await?;
    assert_eq!(results[&0].len(), 1);
    assert_eq!(results[&0][0].outcome, ResultOutcome::Succeeded);
    assert_eq!(
        runs.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the voided run was redone"
    );
    assert_eq!(
        executor.stats.snapshot().registrations,
        1,
        "same registration throughout"
    );
    executor.shutdown().await
}
