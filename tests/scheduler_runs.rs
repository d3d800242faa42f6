//! Issue 4, "Done when" 2 and 4, with real processes:
//! - a failing item (`fail_items`) is retried `retries` times with backoff,
//!   its job fails, downstream jobs end `upstream_failed`, an alert is stored;
//!   retrying the finished run redoes only the failed item;
//! - reshard before the next run: after an executor dies and another joins
//!   between two runs, the second run's assignment includes the newcomer and
//!   not the dead one, and (sticky) the survivors' items did not move.

mod scheduler_harness;

use anyhow::Result;
use nightshift_core::ids::{DagName, JobName};
use nightshift_core::keyspace::{self, Command, CommandId, CommandRecord};
use nightshift_core::state::{AlertRule, AttemptOutcome, JobState, RunState, TriggerSource};
use nightshift_store::AlertFilter;
use nightshift_testkit::wait::wait_for;
use scheduler_harness::{Cluster, Db};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const FAILING: &str = r#"
[jobs.work]
handler = "sleep"
shards = 8
retries = 2
retry_backoff = "200ms"
params = { millis = 20, fail_items = [3] }

[jobs.after]
handler = "noop"
depends_on = ["work"]

[jobs.last]
handler = "noop"
depends_on = ["after"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_failing_item_is_retried_then_fails_the_job_and_downstream() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _scheduler = cluster.scheduler("s1")?;
    let _e1 = cluster.executor("e1", 4)?;
    cluster.apply("failing", FAILING)?;
    cluster.trigger("failing")?;
    let run = cluster
        .nth_run("failing", 0, Duration::from_secs(15))
        .await?;
    let end = cluster.wait_run_end(&run, Duration::from_secs(30)).await?;
    assert_eq!(end.state, RunState::Failed, "{end:?}");

    let jobs: BTreeMap<String, JobState> = cluster
        .store
        .job_runs(&run)
        .await?
        .into_iter()
        .map(|j| (j.job.to_string(), j.state))
        .collect();
    assert_eq!(jobs["work"], JobState::Failed);
    assert_eq!(jobs["after"], JobState::UpstreamFailed);
    assert_eq!(jobs["last"], JobState::UpstreamFailed);
    let work = cluster
        .store
        .job_run(&run, &JobName::new("work"))
        .await?
        .expect("job row");
    assert_eq!((work.succeeded, work.failed), (7, 1), "{work:?}");

    // Item 3: the first try and `retries` = 2 retries, all failed, backed off.
    let attempts = cluster
        .store
        .attempts(
            &run,
            &JobName::new("work"),
            Some(nightshift_core::ids::ItemIndex(3)),
        )
        .await?;
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "{attempts:?}"
    );
    assert!(
        attempts
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::Failed)),
        "{attempts:?}"
    );
    for pair in attempts.windows(2) {
        let gap = pair[1].started_at_ms - pair[0].ended_at_ms.unwrap_or(i64::MAX);
        assert!(
            gap >= 150,
            "retry came {gap} ms after the failure, before its backoff: {attempts:?}"
        );
    }
    // Other items ran once.
    let all = cluster.attempts(&run, "work").await?;
    assert_eq!(all.iter().filter(|a| a.item.0 != 3).count(), 7, "{all:?}");
    // The downstream jobs never ran.
    assert!(cluster.attempts(&run, "after").await?.is_empty());

    wait_for(Duration::from_secs(10), "a failure alert", || async {
        let alerts = cluster
            .store
            .list_alerts(&AlertFilter {
                dag: Some(DagName::new("failing")),
                ..Default::default()
            })
            .await
            .unwrap_or_default();
        alerts.iter().any(|a| {
            a.rule == AlertRule::ItemFailed
                && a.run_id.as_ref() == Some(&run)
                && a.job.as_ref().map(|j| j.as_str()) == Some("work")
        })
    })
    .await?;

    // Retrying the finished run starts a new run that redoes only item 3.
    command(
        &cluster,
        Command::Retry {
            run: run.clone(),
            job: None,
        },
    )
    .await?;
    let retry = cluster
        .nth_run("failing", 1, Duration::from_secs(15))
        .await?;
    let end = cluster
        .wait_run_end(&retry, Duration::from_secs(30))
        .await?;
    assert_eq!(end.trigger_source, TriggerSource::Retry);
    assert_eq!(end.state, RunState::Failed, "item 3 always fails: {end:?}");
    let again = cluster.attempts(&retry, "work").await?;
    assert!(
        again.iter().all(|a| a.item.0 == 3),
        "only the failed item runs again: {again:?}"
    );
    assert_eq!(again.len(), 3, "{again:?}");
    let work = cluster
        .store
        .job_run(&retry, &JobName::new("work"))
        .await?
        .expect("job row");
    assert_eq!((work.succeeded, work.failed), (7, 1), "{work:?}");
    Ok(())
}

const STICKY: &str = r#"
[jobs.work]
handler = "sleep"
shards = 60
strategy = "sticky"
params = { millis = 10 }
"#;

/// Items per executor of a finished run, from its successful attempts.
async fn layout(
    cluster: &Cluster,
    run: &nightshift_core::ids::RunId,
) -> Result<BTreeMap<String, BTreeSet<u32>>> {
    let mut out: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for a in cluster.attempts(run, "work").await? {
        if a.outcome == Some(AttemptOutcome::Succeeded) {
            out.entry(a.executor.to_string())
                .or_default()
                .insert(a.item.0);
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_membership_change_between_runs_reshards_sticky_at_next_start() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _scheduler = cluster.scheduler("s1")?;
    let _e1 = cluster.executor("e1", 2)?;
    let mut e2 = cluster.executor("e2", 2)?;
    let _e3 = cluster.executor("e3", 2)?;
    cluster.apply("sticky", STICKY)?;
    // Wait for all three to register before the first run.
    wait_for(Duration::from_secs(10), "three executors", || async {
        cluster.executor_ids().await.len() == 3
    })
    .await?;
    cluster.trigger("sticky")?;
    let first = cluster
        .nth_run("sticky", 0, Duration::from_secs(15))
        .await?;
    assert_eq!(
        cluster
            .wait_run_end(&first, Duration::from_secs(30))
            .await?
            .state,
        RunState::Succeeded
    );
    let before = layout(&cluster, &first).await?;
    assert_eq!(
        before.keys().cloned().collect::<Vec<_>>(),
        vec!["e1", "e2", "e3"],
        "{before:?}"
    );

    // Between runs: e2 dies, e4 joins.
    e2.kill();
    let _e4 = cluster.executor("e4", 2)?;
    wait_for(
        Duration::from_secs(15),
        "e2 gone and e4 registered",
        || async { cluster.executor_ids().await == ["e1", "e3", "e4"] },
    )
    .await?;
    cluster.trigger("sticky")?;
    let second = cluster
        .nth_run("sticky", 1, Duration::from_secs(15))
        .await?;
    assert_eq!(
        cluster
            .wait_run_end(&second, Duration::from_secs(30))
            .await?
            .state,
        RunState::Succeeded
    );
    let after = layout(&cluster, &second).await?;
    assert_eq!(
        after.keys().cloned().collect::<Vec<_>>(),
        vec!["e1", "e3", "e4"],
        "{after:?}"
    );
    for survivor in ["e1", "e3"] {
        assert!(
            before[survivor].is_subset(&after[survivor]),
            "{survivor}'s items moved: before {:?}, after {:?}",
            before[survivor],
            after[survivor]
        );
    }
    // The newcomer took exactly the dead executor's share.
    assert_eq!(after["e4"], before["e2"]);
    Ok(())
}

/// Puts an operator command record, as the CLI and the console do.
async fn command(cluster: &Cluster, command: Command) -> Result<()> {
    let id = CommandId::new(chrono::Utc::now().timestamp_millis(), rand_nonce());
    let cmd = CommandRecord {
        id: id.clone(),
        issued_at_ms: 0,
        issued_by: "ops".into(),
        command,
    };
    nightshift_coord::Coordinator::put(
        &cluster.coord,
        &keyspace::command_key(scheduler_harness::PREFIX, &id),
        keyspace::encode(&cmd)?,
        None,
    )
    .await?;
    Ok(())
}

fn rand_nonce() -> u64 {
    u64::from(std::process::id()) << 20 | u64::from(chrono::Utc::now().timestamp_subsec_micros())
}

const WAITING: &str = r#"
[jobs.work]
handler = "sleep"
shards = 4
params = { millis = 10 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_job_waits_for_an_executor_with_its_handler_and_alerts_meanwhile() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _scheduler = cluster.scheduler("s1")?;
    // This executor serves only noop: nobody can run `sleep` yet.
    let args: Vec<String> = [
        "executor",
        "--etcd",
        &cluster.etcd.endpoint(),
        "--id",
        "noop-only",
        "--lease-ttl",
        "2s",
        "--prefix",
        scheduler_harness::PREFIX,
        "--handlers",
        "noop",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _noop = cluster.spawn("executor-noop-only", &args)?;
    cluster.apply("waiting", WAITING)?;
    cluster.trigger("waiting")?;
    let run = cluster
        .nth_run("waiting", 0, Duration::from_secs(15))
        .await?;
    let open_alert = || async {
        let alerts = cluster
            .store
            .list_alerts(&AlertFilter {
                dag: Some(DagName::new("waiting")),
                ..Default::default()
            })
            .await
            .unwrap_or_default();
        alerts
            .into_iter()
            .find(|a| a.rule == AlertRule::NoExecutor && a.run_id.as_ref() == Some(&run))
    };
    wait_for(Duration::from_secs(10), "a no_executor alert", || async {
        open_alert()
            .await
            .is_some_and(|a| a.resolved_at_ms.is_none())
    })
    .await?;
    let job = cluster
        .store
        .job_run(&run, &JobName::new("work"))
        .await?
        .expect("job row");
    assert_eq!(job.state, JobState::Waiting);
    let _e1 = cluster.executor("e1", 2)?;
    assert_eq!(
        cluster
            .wait_run_end(&run, Duration::from_secs(20))
            .await?
            .state,
        RunState::Succeeded
    );
    wait_for(Duration::from_secs(10), "the alert to resolve", || async {
        open_alert()
            .await
            .is_some_and(|a| a.resolved_at_ms.is_some())
    })
    .await?;
    Ok(())
}

const LONG: &str = r#"
[jobs.long]
handler = "sleep"
shards = 4
params = { millis = 60000 }

[jobs.never]
handler = "noop"
depends_on = ["long"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cancel_command_stops_a_running_run() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _scheduler = cluster.scheduler("s1")?;
    let _e1 = cluster.executor("e1", 4)?;
    cluster.apply("long", LONG)?;
    cluster.trigger("long")?;
    let run = cluster.nth_run("long", 0, Duration::from_secs(15)).await?;
    wait_for(
        Duration::from_secs(15),
        "the long job to be dispatched",
        || cluster.holds(&run, "long", "e1"),
    )
    .await?;
    command(&cluster, Command::CancelRun { run: run.clone() }).await?;
    let end = cluster.wait_run_end(&run, Duration::from_secs(15)).await?;
    assert_eq!(end.state, RunState::Cancelled, "{end:?}");
    let jobs: BTreeMap<String, nightshift_store::JobRun> = cluster
        .store
        .job_runs(&run)
        .await?
        .into_iter()
        .map(|j| (j.job.to_string(), j))
        .collect();
    assert_eq!(jobs["long"].state, JobState::Cancelled);
    assert_eq!(jobs["long"].cancelled, 4);
    assert_eq!(jobs["never"].state, JobState::Cancelled);
    // Every item's attempt ended as cancelled.
    let attempts = cluster.attempts(&run, "long").await?;
    assert_eq!(attempts.len(), 4, "{attempts:?}");
    assert!(
        attempts
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::Cancelled)),
        "{attempts:?}"
    );
    // The executor was told to stop: its assignment is gone.
    assert!(!cluster.holds(&run, "long", "e1").await);
    // (Events are written after the run row, at the end of the pass.)
    let filter = nightshift_store::EventFilter {
        run_id: Some(run.clone()),
        kind: Some("command_cancel_run".into()),
        ..Default::default()
    };
    wait_for(
        Duration::from_secs(10),
        "the cancel command's event",
        || async {
            cluster
                .store
                .events(&filter)
                .await
                .is_ok_and(|e| !e.is_empty())
        },
    )
    .await?;
    let events = cluster.store.events(&filter).await?;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event.actor, "ops");
    Ok(())
}

const TIMEOUT: &str = r#"
[jobs.slow]
handler = "sleep"
shards = 3
timeout = "1s"
params = { millis = 60000 }

[jobs.after]
handler = "noop"
depends_on = ["slow"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_job_past_its_timeout_fails_and_its_items_are_stopped() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _scheduler = cluster.scheduler("s1")?;
    let _e1 = cluster.executor("e1", 4)?;
    cluster.apply("timeout", TIMEOUT)?;
    cluster.trigger("timeout")?;
    let run = cluster
        .nth_run("timeout", 0, Duration::from_secs(15))
        .await?;
    let end = cluster.wait_run_end(&run, Duration::from_secs(15)).await?;
    assert_eq!(end.state, RunState::Failed, "{end:?}");
    let slow = cluster
        .store
        .job_run(&run, &JobName::new("slow"))
        .await?
        .expect("job row");
    assert_eq!(
        (slow.state, slow.cancelled),
        (JobState::Failed, 3),
        "{slow:?}"
    );
    assert!(
        slow.error
            .as_deref()
            .is_some_and(|e| e.contains("timed out")),
        "{slow:?}"
    );
    let ran_for = slow.ended_at_ms.unwrap_or(0) - slow.started_at_ms.unwrap_or(0);
    assert!(
        (1000..5000).contains(&ran_for),
        "job ran {ran_for} ms with a 1 s timeout"
    );
    let after = cluster
        .store
        .job_run(&run, &JobName::new("after"))
        .await?
        .expect("job row");
    assert_eq!(after.state, JobState::UpstreamFailed);
    assert!(!cluster.holds(&run, "slow", "e1").await);
    Ok(())
}
