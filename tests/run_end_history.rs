//! An ended run's history — its end event and the resolution of the
//! alerts that end with it — is in SQL before its keys leave etcd, and is
//! written once even when two leaders finish the run.
//!
//! A 10-minute chaos soak found a leader SIGKILLed right after removing a
//! finished run's keys, with the run's alert resolutions still in its
//! in-memory outbox: its successor no longer knew the run, and the alerts
//! stayed open. Real processes here: a scheduler exits at a test hook just
//! after (or just before) the commit removing the run's keys.

mod scheduler_harness;

use anyhow::Result;
use nightshift_coord::Coordinator as _;
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::keyspace;
use nightshift_core::state::{AlertRule, AlertSeverity, AlertState, RunState};
use nightshift_store::{EventFilter, NewAlert};
use nightshift_testkit::wait::wait_for;
use scheduler_harness::{Cluster, Db, Proc, PREFIX};
use std::time::Duration;

const DAG: &str = "[jobs.work]\nhandler = \"sleep\"\nshards = 2\nparams = { millis = 20 }\n";

/// Triggers a run of `nightly` under `scheduler`, plants an
/// `executor_lost` alert of it (as a leader does when an owner's lease
/// ends) while it waits for an executor, then starts one; returns the run
/// once `scheduler` exited with `code` at its hook.
async fn run_until_hook(
    cluster: &Cluster,
    scheduler: &mut Proc,
    code: i32,
) -> Result<(RunId, Proc)> {
    cluster.apply("nightly", DAG)?;
    cluster.trigger("nightly")?;
    let run = cluster
        .nth_run("nightly", 0, Duration::from_secs(20))
        .await?;
    cluster
        .store
        .open_alert(&NewAlert {
            rule: AlertRule::ExecutorLost,
            dedupe_key: format!("executor_lost:gone:{run}"),
            severity: AlertSeverity::Critical,
            dag: Some(DagName::new("nightly")),
            run_id: Some(run.clone()),
            job: None,
            item: None,
            executor: None,
            message: "executor gone was lost holding 1 item(s) of work".to_owned(),
            at_ms: 1,
        })
        .await?;
    let executor = cluster.executor("e1", 4)?;
    scheduler.expect_exit(code, Duration::from_secs(30)).await?;
    Ok((run, executor))
}

async fn end_events(cluster: &Cluster, run: &RunId) -> Result<usize> {
    Ok(cluster
        .store
        .events(&EventFilter {
            run_id: Some(run.clone()),
            kind: Some("run_succeeded".to_owned()),
            ..EventFilter::default()
        })
        .await?
        .len())
}

async fn planted_alert(cluster: &Cluster, run: &RunId) -> Option<AlertState> {
    cluster
        .alert_state(&format!("executor_lost:gone:{run}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_right_after_removing_an_ended_run_has_stored_its_history() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let mut s1 =
        cluster.scheduler_env("s1", &[("NIGHTSHIFT_TEST_EXIT_AFTER_RUN_REMOVED", "72")])?;
    let (run, _executor) = run_until_hook(&cluster, &mut s1, 72).await?;
    assert!(
        cluster
            .coord
            .get(&keyspace::run_state_key(PREFIX, &run))
            .await?
            .is_none(),
        "the hook runs after the run's keys are removed"
    );
    // No scheduler runs now: what is stored was stored by s1 before.
    let row = cluster.store.get_run(&run).await?;
    assert_eq!(row.map(|r| r.state), Some(RunState::Succeeded));
    assert_eq!(end_events(&cluster, &run).await?, 1, "the run's end event");
    assert_eq!(
        planted_alert(&cluster, &run).await,
        Some(AlertState::Resolved),
        "the alerts that end with the run"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_finished_by_two_leaders_records_its_end_once() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let mut s1 =
        cluster.scheduler_env("s1", &[("NIGHTSHIFT_TEST_EXIT_BEFORE_RUN_REMOVED", "73")])?;
    let (run, _executor) = run_until_hook(&cluster, &mut s1, 73).await?;
    let state_key = keyspace::run_state_key(PREFIX, &run);
    assert!(
        cluster.coord.get(&state_key).await?.is_some(),
        "the hook runs before the run's keys are removed"
    );
    assert_eq!(end_events(&cluster, &run).await?, 1, "stored before");
    assert_eq!(
        planted_alert(&cluster, &run).await,
        Some(AlertState::Resolved)
    );

    // s2 finds the ended run and finishes it again.
    let _s2 = cluster.scheduler("s2")?;
    wait_for(
        Duration::from_secs(30),
        "s2 to remove the run's keys",
        || async { matches!(cluster.coord.get(&state_key).await, Ok(None)) },
    )
    .await?;
    assert_eq!(
        end_events(&cluster, &run).await?,
        1,
        "finishing the run again records no second end"
    );
    Ok(())
}
