//! Issue 4, "Done when" 2 and 4, with real processes:
//! - a failing item (`fail_items`) is retried `retries` times with backoff,
//!   its job fails, downstream jobs end `upstream_failed`, an alert is stored;
//! - reshard before the next run: after an executor dies and another joins
//!   between two runs, the second run's assignment includes the newcomer and
//!   not the dead one, and (sticky) the survivors' items did not move.

mod scheduler_harness;

use anyhow::Result;
use nightshift_core::ids::{DagName, JobName};
use nightshift_core::state::{AlertRule, AttemptOutcome, JobState, RunState};
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
    let run = cluster.nth_run("failing", 0, Duration::from_secs(15)).await?;
    let end = cluster.wait_run_end(&run, Duration::from_secs(30)).await?;
    assert_eq!(end.state, RunState::Failed, "{end:?}");

    let jobs: BTreeMap<String, JobState> = cluster.store.job_runs(&run).await?.into_iter().map(|j| (j.job.to_string(), j.state)).collect();
    assert_eq!(jobs["work"], JobState::Failed);
    assert_eq!(jobs["after"], JobState::UpstreamFailed);
    assert_eq!(jobs["last"], JobState::UpstreamFailed);
    let work = cluster.store.job_run(&run, &JobName::new("work")).await?.expect("job row");
    assert_eq!((work.succeeded, work.failed), (7, 1), "{work:?}");

    // Item 3: the first try and `retries` = 2 retries, all failed, backed off.
    let attempts = cluster.store.attempts(&run, &JobName::new("work"), Some(nightshift_core::ids::ItemIndex(3))).await?;
    assert_eq!(attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), vec![1, 2, 3], "{attempts:?}");
    assert!(attempts.iter().all(|a| a.outcome == Some(AttemptOutcome::Failed)), "{attempts:?}");
    for pair in attempts.windows(2) {
        let gap = pair[1].started_at_ms - pair[0].ended_at_ms.unwrap_or(i64::MAX);
        assert!(gap >= 150, "retry came {gap} ms after the failure, before its backoff: {attempts:?}");
    }
    // Other items ran once.
    let all = cluster.attempts(&run, "work").await?;
    assert_eq!(all.iter().filter(|a| a.item.0 != 3).count(), 7, "{all:?}");
    // The downstream jobs never ran.
    assert!(cluster.attempts(&run, "after").await?.is_empty());

    wait_for(Duration::from_secs(10), "a failure alert", || async {
        let alerts = cluster.store.list_alerts(&AlertFilter { dag: Some(DagName::new("failing")), ..Default::default() }).await.unwrap_or_default();
        alerts.iter().any(|a| a.rule == AlertRule::ItemFailed && a.run_id.as_ref() == Some(&run) && a.job.as_ref().map(|j| j.as_str()) == Some("work"))
    })
    .await?;
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
async fn layout(cluster: &Cluster, run: &nightshift_core::ids::RunId) -> Result<BTreeMap<String, BTreeSet<u32>>> {
    let mut out: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for a in cluster.attempts(run, "work").await? {
        if a.outcome == Some(AttemptOutcome::Succeeded) {
            out.entry(a.executor.to_string()).or_default().insert(a.item.0);
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
        let coord = nightshift_coord::etcd::EtcdCoordinator::connect(nightshift_coord::etcd::EtcdConfig::new(cluster.etcd.endpoints())).await;
        match coord {
            Ok(c) => {
                use nightshift_coord::Coordinator;
                c.get_prefix(&format!("{}executors/", scheduler_harness::PREFIX)).await.map(|(kvs, _)| kvs.len() == 3).unwrap_or(false)
            }
            Err(_) => false,
        }
    })
    .await?;
    cluster.trigger("sticky")?;
    let first = cluster.nth_run("sticky", 0, Duration::from_secs(15)).await?;
    assert_eq!(cluster.wait_run_end(&first, Duration::from_secs(30)).await?.state, RunState::Succeeded);
    let before = layout(&cluster, &first).await?;
    assert_eq!(before.keys().cloned().collect::<Vec<_>>(), vec!["e1", "e2", "e3"], "{before:?}");

    // Between runs: e2 dies, e4 joins.
    e2.kill();
    let _e4 = cluster.executor("e4", 2)?;
    wait_for(Duration::from_secs(15), "e2 gone and e4 registered", || async {
        let Ok(c) = nightshift_coord::etcd::EtcdCoordinator::connect(nightshift_coord::etcd::EtcdConfig::new(cluster.etcd.endpoints())).await else { return false };
        use nightshift_coord::Coordinator;
        let Ok((kvs, _)) = c.get_prefix(&format!("{}executors/", scheduler_harness::PREFIX)).await else { return false };
        let ids: BTreeSet<String> = kvs.iter().filter_map(|kv| kv.key.rsplit('/').next().map(str::to_owned)).collect();
        ids == ["e1", "e3", "e4"].iter().map(|s| s.to_string()).collect()
    })
    .await?;
    cluster.trigger("sticky")?;
    let second = cluster.nth_run("sticky", 1, Duration::from_secs(15)).await?;
    assert_eq!(cluster.wait_run_end(&second, Duration::from_secs(30)).await?.state, RunState::Succeeded);
    let after = layout(&cluster, &second).await?;
    assert_eq!(after.keys().cloned().collect::<Vec<_>>(), vec!["e1", "e3", "e4"], "{after:?}");
    for survivor in ["e1", "e3"] {
        assert!(before[survivor].is_subset(&after[survivor]), "{survivor}'s items moved: before {:?}, after {:?}", before[survivor], after[survivor]);
    }
    // The newcomer took exactly the dead executor's share.
    assert_eq!(after["e4"], before["e2"]);
    Ok(())
}
