//! Issue 4, "Done when" 1: three executor processes and one scheduler run a
//! DAG of 3 jobs × 64 `sleep` items; one executor is SIGKILLed while it holds
//! items of the middle job. The run succeeds, every item succeeded exactly
//! once with no two attempts of an item overlapping in time, and the killed
//! executor's items show a lost attempt followed by one on another executor.
//! Runs against SQLite and PostgreSQL.

mod scheduler_harness;

use anyhow::Result;
use nightshift_core::ids::DagName;
use nightshift_core::state::{AlertRule, AlertState, AttemptOutcome, RunState};
use nightshift_store::AlertFilter;
use nightshift_testkit::wait::wait_for;
use scheduler_harness::{check_exactly_once, Cluster, Db};
use std::time::Duration;

const DAG: &str = r#"
description = "three chained jobs of sleep items"

[jobs.a]
handler = "sleep"
shards = 64
params = { millis = 150 }

[jobs.b]
handler = "sleep"
shards = 64
depends_on = ["a"]
params = { millis = 150 }

[jobs.c]
handler = "sleep"
shards = 64
depends_on = ["b"]
params = { millis = 150 }
"#;

async fn killed_executor_items_fail_over(db: Db) -> Result<()> {
    let cluster = Cluster::start(db).await?;
    let _scheduler = cluster.scheduler("s1")?;
    let _e1 = cluster.executor("e1", 4)?;
    let mut e2 = cluster.executor("e2", 4)?;
    let _e3 = cluster.executor("e3", 4)?;
    cluster.apply("chain", DAG)?;
    cluster.trigger("chain")?;
    let run = cluster.nth_run("chain", 0, Duration::from_secs(15)).await?;
    // Kill e2 as soon as it holds items of the middle job.
    wait_for(Duration::from_secs(20), "e2 to hold items of job b", || {
        cluster.holds(&run, "b", "e2")
    })
    .await?;
    e2.kill();
    let end = cluster.wait_run_end(&run, Duration::from_secs(40)).await?;
    assert_eq!(end.state, RunState::Succeeded, "{end:?}");
    for job in ["a", "b", "c"] {
        check_exactly_once(job, 64, &cluster.attempts(&run, job).await?)?;
    }
    let b = cluster.attempts(&run, "b").await?;
    let lost: Vec<_> = b
        .iter()
        .filter(|a| a.executor.as_str() == "e2" && a.outcome == Some(AttemptOutcome::Lost))
        .collect();
    assert!(
        !lost.is_empty(),
        "e2 held items of b when killed, so some attempts must be lost: {b:?}"
    );
    for l in lost {
        let next = b
            .iter()
            .find(|a| a.item == l.item && a.attempt == l.attempt + 1)
            .unwrap_or_else(|| panic!("no attempt after lost {l:?}"));
        assert_ne!(next.executor.as_str(), "e2", "{next:?}");
        assert_eq!(
            next.moved_from.as_ref().map(|e| e.as_str()),
            Some("e2"),
            "{next:?}"
        );
        assert_eq!(next.outcome, Some(AttemptOutcome::Succeeded), "{next:?}");
    }
    // The loss raised an alert, which resolved itself when the run ended.
    wait_for(
        Duration::from_secs(10),
        "a resolved executor_lost alert for e2",
        || async {
            let alerts = cluster
                .store
                .list_alerts(&AlertFilter {
                    dag: Some(DagName::new("chain")),
                    ..Default::default()
                })
                .await
                .unwrap_or_default();
            alerts.iter().any(|a| {
                a.rule == AlertRule::ExecutorLost
                    && a.executor.as_ref().map(|e| e.as_str()) == Some("e2")
                    && a.state == AlertState::Resolved
            })
        },
    )
    .await?;
    // Job c started after e2 died: nothing of it ran there.
    let c = cluster.attempts(&run, "c").await?;
    assert!(c.iter().all(|a| a.executor.as_str() != "e2"), "{c:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_sqlite_killed_executor_items_fail_over_exactly_once() -> Result<()> {
    killed_executor_items_fail_over(Db::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_postgres_killed_executor_items_fail_over_exactly_once() -> Result<()> {
    killed_executor_items_fail_over(Db::Postgres).await
}
