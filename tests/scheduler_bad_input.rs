//! The scheduler survives bad input, with real processes and a real etcd:
//! - corrupt values (garbage bytes, JSON of the wrong shape) under its
//!   prefix at every kind of key it reads: each is skipped and reported
//!   (a `bad_key` event; a corrupt command is rejected with a
//!   `command_rejected` event and deleted), and the good DAG keeps running;
//! - a DAG whose handler no executor offers: its job waits with a
//!   `no_executor` alert, fails at its timeout, and other DAGs keep running.

mod scheduler_harness;

use anyhow::Result;
use nightshift_coord::Coordinator;
use nightshift_core::ids::{DagName, ExecutorId, JobName, RunId};
use nightshift_core::keyspace::{self, CommandId};
use nightshift_core::state::{AlertRule, JobState, RunState};
use nightshift_store::{AlertFilter, EventFilter};
use nightshift_testkit::wait::{wait_for, wait_for_value};
use scheduler_harness::{check_exactly_once, Cluster, Db, PREFIX};
use std::collections::BTreeSet;
use std::time::Duration;

/// Fires every 2 s; each run is quick.
const GOOD: &str = r#"
schedule = "*/2 * * * * *"
concurrency = "allow"

[jobs.quick]
handler = "noop"
shards = 4
"#;

/// Long enough to corrupt one of its result keys while it runs.
const LONG: &str = r#"
[jobs.work]
handler = "sleep"
shards = 4
params = { millis = 2500 }
"#;

const GARBAGE: &[u8] = b"\x00\xffnot json at all{";
const WRONG_SHAPE: &[u8] = br#"{"v":1,"issued_by":"mallory","hello":["world"]}"#;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn put(cluster: &Cluster, key: &str, value: &[u8]) -> Result<()> {
    cluster.coord.put(key, value.to_vec(), None).await?;
    Ok(())
}

/// Keys named in `bad_key` events.
async fn reported(cluster: &Cluster) -> BTreeSet<String> {
    let filter = EventFilter {
        kind: Some("bad_key".into()),
        limit: Some(1000),
        ..Default::default()
    };
    let events = cluster.store.events(&filter).await.unwrap_or_default();
    events
        .iter()
        .filter_map(|e| e.event.detail["key"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_corrupt_values_are_reported_and_skipped_while_good_dags_run() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    // Read at election: the good DAG's cron progress, a stranger's, run records.
    let cron_good = keyspace::cron_key(PREFIX, &DagName::new("good"));
    let cron_ghost = keyspace::cron_key(PREFIX, &DagName::new("ghost"));
    let run_garbage = keyspace::run_state_key(PREFIX, &RunId::new("ghost-run"));
    let run_shape = keyspace::run_state_key(PREFIX, &RunId::new("shape-run"));
    put(&cluster, &cron_good, GARBAGE).await?;
    put(&cluster, &cron_ghost, WRONG_SHAPE).await?;
    put(&cluster, &run_garbage, GARBAGE).await?;
    put(&cluster, &run_shape, WRONG_SHAPE).await?;

    let _e1 = cluster.executor("e1", 4)?;
    let scheduler = cluster.scheduler("s1")?;
    cluster.apply("long", LONG)?;
    // (Applied first: `nightshift apply` refuses to work while any applied
    // DAG key is unreadable.)
    cluster.apply("good", GOOD)?;
    cluster.trigger("long")?;
    let long = cluster.nth_run("long", 0, Duration::from_secs(15)).await?;
    wait_for(
        Duration::from_secs(15),
        "the long job to be dispatched",
        || cluster.holds(&long, "work", "e1"),
    )
    .await?;

    // Read at every pass: applied DAGs, executors, commands, result batches.
    let dag_garbage = keyspace::dag_key(PREFIX, &DagName::new("broken"));
    let dag_shape = keyspace::dag_key(PREFIX, &DagName::new("wrong"));
    let exec_garbage = keyspace::executor_key(PREFIX, &ExecutorId::new("zombie"));
    let exec_shape = keyspace::executor_key(PREFIX, &ExecutorId::new("shape"));
    let cmd_garbage_id = CommandId::new(now_ms(), 1);
    let cmd_shape_id = CommandId::new(now_ms(), 2);
    let cmd_garbage = keyspace::command_key(PREFIX, &cmd_garbage_id);
    let cmd_shape = keyspace::command_key(PREFIX, &cmd_shape_id);
    let work = JobName::new("work");
    let result_garbage = keyspace::result_key(
        PREFIX,
        &long,
        &work,
        &ExecutorId::new("e1"),
        &keyspace::result_seq(1, 900_001),
    );
    let result_shape = keyspace::result_key(
        PREFIX,
        &long,
        &work,
        &ExecutorId::new("e1"),
        &keyspace::result_seq(1, 900_002),
    );
    let corrupted_at = now_ms();
    for (key, value) in [
        (&dag_garbage, GARBAGE),
        (&dag_shape, WRONG_SHAPE),
        (&exec_garbage, GARBAGE),
        (&exec_shape, WRONG_SHAPE),
        (&cmd_garbage, GARBAGE),
        (&cmd_shape, WRONG_SHAPE),
        (&result_garbage, GARBAGE),
        (&result_shape, WRONG_SHAPE),
    ] {
        put(&cluster, key, value).await?;
    }

    // The long run ends well despite the garbage among its results.
    let end = cluster.wait_run_end(&long, Duration::from_secs(30)).await?;
    assert_eq!(end.state, RunState::Succeeded, "{end:?}");
    check_exactly_once("work", 4, &cluster.attempts(&long, "work").await?)?;

    // The good DAG keeps firing, and its runs succeed.
    let fresh: Vec<RunId> = wait_for_value(
        Duration::from_secs(30),
        "two succeeded runs of the good dag",
        || async {
            let runs = cluster.runs("good").await;
            let ok: Vec<RunId> = runs
                .iter()
                .filter(|r| r.created_at_ms >= corrupted_at && r.state == RunState::Succeeded)
                .map(|r| r.run_id.clone())
                .collect();
            (ok.len() >= 2).then_some(ok)
        },
    )
    .await?;
    for run in &fresh {
        check_exactly_once("quick", 4, &cluster.attempts(run, "quick").await?)?;
    }

    // Each corrupt command was rejected once, with its id, and deleted.
    let filter = EventFilter {
        kind: Some("command_rejected".into()),
        ..Default::default()
    };
    wait_for(
        Duration::from_secs(10),
        "two command rejections",
        || async {
            cluster
                .store
                .events(&filter)
                .await
                .is_ok_and(|e| e.len() == 2)
        },
    )
    .await?;
    let rejected = cluster.store.events(&filter).await?;
    let ids: BTreeSet<&str> = rejected
        .iter()
        .filter_map(|e| e.event.detail["command_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([cmd_garbage_id.as_str(), cmd_shape_id.as_str()]),
        "{rejected:?}"
    );
    assert!(
        rejected.iter().all(|e| e.event.detail["outcome"]
            .as_str()
            .is_some_and(|o| o.starts_with("rejected: unreadable command"))),
        "{rejected:?}"
    );
    assert!(
        rejected.iter().any(|e| e.event.actor == "mallory"),
        "the issuer is kept when it can be read: {rejected:?}"
    );
    for key in [&cmd_garbage, &cmd_shape, &result_garbage, &result_shape] {
        assert!(
            cluster.coord.get(key).await?.is_none(),
            "{key} should be deleted"
        );
    }

    // Every other bad key is reported, once (they stay: not the leader's to delete).
    let expected: BTreeSet<String> = [
        &cron_good,
        &cron_ghost,
        &run_garbage,
        &run_shape,
        &dag_garbage,
        &dag_shape,
        &exec_garbage,
        &exec_shape,
        &result_garbage,
        &result_shape,
    ]
    .into_iter()
    .cloned()
    .collect();
    wait_for(
        Duration::from_secs(10),
        "every bad key reported",
        || async { reported(&cluster).await.is_superset(&expected) },
    )
    .await?;
    let events = cluster
        .store
        .events(&EventFilter {
            kind: Some("bad_key".into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await?;
    assert_eq!(
        events.len(),
        expected.len(),
        "each bad key is reported once, not at every pass: {events:?}"
    );
    assert!(cluster.coord.get(&dag_garbage).await?.is_some());

    // Still the leader, never crashed.
    let leader = cluster
        .coord
        .get_prefix(&keyspace::leader_prefix(PREFIX))
        .await?
        .0;
    assert!(leader.iter().any(|kv| kv.value == b"s1"), "{leader:?}");
    let logs = scheduler.logs();
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(
        logs.contains("unreadable value under the scheduler prefix"),
        "bad keys are logged"
    );
    Ok(())
}

/// Its handler is served by no executor; the job gives up after 6 s.
const UNSERVED: &str = r#"
[jobs.orphan]
handler = "ghost"
shards = 2
timeout = "6s"

[jobs.after]
handler = "noop"
depends_on = ["orphan"]
"#;

const OTHER: &str = r#"
[jobs.quick]
handler = "noop"
shards = 3
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_dag_with_an_unserved_handler_alerts_fails_at_its_timeout_and_others_run() -> Result<()>
{
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _scheduler = cluster.scheduler("s1")?;
    let _e1 = cluster.executor("e1", 4)?;
    cluster.apply("unserved", UNSERVED)?;
    cluster.apply("other", OTHER)?;
    cluster.trigger("unserved")?;
    let run = cluster
        .nth_run("unserved", 0, Duration::from_secs(15))
        .await?;
    let alert = || async {
        let alerts = cluster
            .store
            .list_alerts(&AlertFilter {
                dag: Some(DagName::new("unserved")),
                ..Default::default()
            })
            .await
            .unwrap_or_default();
        alerts
            .into_iter()
            .find(|a| a.rule == AlertRule::NoExecutor && a.run_id.as_ref() == Some(&run))
    };
    wait_for(Duration::from_secs(10), "a no_executor alert", || async {
        alert().await.is_some_and(|a| a.resolved_at_ms.is_none())
    })
    .await?;
    let orphan = cluster
        .store
        .job_run(&run, &JobName::new("orphan"))
        .await?
        .expect("job row");
    assert_eq!(orphan.state, JobState::Waiting, "{orphan:?}");

    // Meanwhile another DAG runs to success.
    cluster.trigger("other")?;
    let other = cluster.nth_run("other", 0, Duration::from_secs(15)).await?;
    assert_eq!(
        cluster
            .wait_run_end(&other, Duration::from_secs(15))
            .await?
            .state,
        RunState::Succeeded
    );
    assert!(
        cluster
            .store
            .get_run(&run)
            .await?
            .is_some_and(|r| !r.state.is_terminal()),
        "the unserved run still waits"
    );

    // At its timeout the waiting job fails; downstream never runs.
    let end = cluster.wait_run_end(&run, Duration::from_secs(20)).await?;
    assert_eq!(end.state, RunState::Failed, "{end:?}");
    let orphan = cluster
        .store
        .job_run(&run, &JobName::new("orphan"))
        .await?
        .expect("job row");
    assert_eq!(
        (orphan.state, orphan.failed),
        (JobState::Failed, 2),
        "{orphan:?}"
    );
    assert!(
        orphan
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no live executor")),
        "{orphan:?}"
    );
    let after = cluster
        .store
        .job_run(&run, &JobName::new("after"))
        .await?
        .expect("job row");
    assert_eq!(after.state, JobState::UpstreamFailed);
    assert!(
        cluster.attempts(&run, "orphan").await?.is_empty(),
        "nothing ever ran the orphan job"
    );
    // The condition is over with the run: its alert resolves.
    wait_for(
        Duration::from_secs(10),
        "the no_executor alert to resolve",
        || async { alert().await.is_some_and(|a| a.resolved_at_ms.is_some()) },
    )
    .await?;
    Ok(())
}
