//! Issue 4, "Done when" 5: DAGs scheduled every 2 s fire on time, across a
//! scheduler restart: with `misfire = "skip"` the instants missed while no
//! scheduler ran never fire; with `misfire = "fire_once"` exactly one
//! catch-up run fires, for the latest missed instant; with
//! `concurrency = "forbid"` two runs of a DAG never overlap.

mod scheduler_harness;

use anyhow::Result;
use nightshift_core::state::TriggerSource;
use nightshift_store::Run;
use nightshift_testkit::wait::wait_for;
use scheduler_harness::{Cluster, Db};
use std::time::Duration;

const SKIP: &str = r#"
schedule = "*/2 * * * * *"
misfire = "skip"
concurrency = "forbid"

[jobs.slow]
handler = "sleep"
params = { millis = 3000 }
"#;

const ONCE: &str = r#"
schedule = "*/2 * * * * *"
misfire = "fire_once"
concurrency = "allow"

[jobs.quick]
handler = "noop"
"#;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn instant(run: &Run) -> i64 {
    run.scheduled_for_ms.expect("scheduled run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cron_fires_on_time_across_a_restart_with_misfire_and_forbid() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _e1 = cluster.executor("e1", 4)?;
    let mut s1 = cluster.scheduler("s1")?;
    cluster.apply("skipper", SKIP)?;
    cluster.apply("once", ONCE)?;
    wait_for(Duration::from_secs(15), "two runs of each dag", || async {
        cluster.runs("skipper").await.len() >= 2 && cluster.runs("once").await.len() >= 2
    })
    .await?;
    s1.terminate().await?;
    let stopped = now_ms();
    // Deliberate downtime (not synchronisation): schedule instants pass
    // while no scheduler runs.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let restarted = now_ms();
    let _s2 = cluster.scheduler("s2")?;
    wait_for(
        Duration::from_secs(20),
        "on-time runs after the restart",
        || async {
            cluster
                .runs("once")
                .await
                .iter()
                .any(|r| r.trigger_source == TriggerSource::Schedule && instant(r) > restarted)
                && cluster
                    .runs("skipper")
                    .await
                    .iter()
                    .any(|r| instant(r) > restarted)
        },
    )
    .await?;
    wait_for(Duration::from_secs(15), "skipper's runs to end", || async {
        let runs = cluster.runs("skipper").await;
        // The newest may still run; every other must have ended.
        runs.iter().skip(1).all(|r| r.state.is_terminal())
    })
    .await?;

    // Missed instants: strictly after the last instant the old leader could
    // have handled, older than the misfire grace (1.5 s) when the new one starts.
    let gap = |r: &Run| instant(r) > stopped && instant(r) < restarted - 1500;
    let mut skipper = cluster.runs("skipper").await;
    skipper.sort_by_key(instant);
    assert!(
        skipper
            .iter()
            .all(|r| r.trigger_source == TriggerSource::Schedule),
        "{skipper:?}"
    );
    assert!(
        !skipper.iter().any(gap),
        "skip fired a missed instant: {skipper:?}"
    );
    let mut once = cluster.runs("once").await;
    once.sort_by_key(instant);
    let catch_up: Vec<&Run> = once
        .iter()
        .filter(|r| r.trigger_source == TriggerSource::CatchUp)
        .collect();
    assert_eq!(
        catch_up.len(),
        1,
        "fire_once must start exactly one catch-up run: {once:?}"
    );
    let latest_missed = (stopped / 2000 + 1..=restarted / 2000)
        .map(|k| k * 2000)
        .filter(|&i| i < restarted)
        .max()
        .expect("instants were missed");
    assert!(
        instant(catch_up[0]) >= latest_missed - 2000
            && instant(catch_up[0]) <= latest_missed + 2000,
        "catch-up for {} not the latest missed {latest_missed}",
        instant(catch_up[0])
    );

    for runs in [&skipper, &once] {
        // Each instant at most once, on the 2 s grid.
        let instants: Vec<i64> = runs.iter().map(instant).collect();
        assert!(instants.windows(2).all(|w| w[0] < w[1]), "{instants:?}");
        assert!(instants.iter().all(|i| i % 2000 == 0), "{instants:?}");
        // On time: scheduled runs are created within the misfire grace.
        for r in runs
            .iter()
            .filter(|r| r.trigger_source == TriggerSource::Schedule)
        {
            let late = r.created_at_ms - instant(r);
            assert!(
                (0..1500).contains(&late),
                "run {} created {late} ms after its instant",
                r.run_id
            );
        }
    }
    // forbid: runs of skipper never overlap (a run ends before the next starts).
    for pair in skipper.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let Some(a_end) = a.ended_at_ms else {
            panic!(
                "run {} has not ended but {} exists: {skipper:?}",
                a.run_id, b.run_id
            )
        };
        assert!(
            a_end <= b.created_at_ms,
            "runs {} and {} overlap",
            a.run_id,
            b.run_id
        );
    }
    // With a 3 s job every 2 s, forbid must have skipped instants.
    let span = instant(skipper.last().expect("runs")) - instant(&skipper[0]);
    assert!(
        (skipper.len() as i64 - 1) * 2000 < span,
        "forbid skipped nothing: {skipper:?}"
    );
    Ok(())
}

const EVERY_2S: &str = r#"
schedule = "*/2 * * * * *"
misfire = "skip"

[jobs.quick]
handler = "noop"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_paused_dag_does_not_fire_until_resumed() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _e1 = cluster.executor("e1", 2)?;
    let _s1 = cluster.scheduler("s1")?;
    cluster.apply("pausable", EVERY_2S)?;
    wait_for(Duration::from_secs(10), "a scheduled run", || async {
        !cluster.runs("pausable").await.is_empty()
    })
    .await?;
    cluster.cli_with(&["pause", "pausable"], false)?;
    wait_for(Duration::from_secs(10), "the dag to be paused", || async {
        cluster
            .store
            .get_dag(&nightshift_core::ids::DagName::new("pausable"))
            .await
            .ok()
            .flatten()
            .is_some_and(|d| d.paused)
    })
    .await?;
    let paused_at = now_ms();
    let before = cluster.runs("pausable").await.len();
    // Deliberate observation window (not synchronisation): two schedule
    // instants pass while the DAG is paused.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let during: Vec<Run> = cluster
        .runs("pausable")
        .await
        .into_iter()
        .filter(|r| r.created_at_ms > paused_at)
        .collect();
    assert!(during.is_empty(), "a paused dag fired: {during:?}");
    assert_eq!(cluster.runs("pausable").await.len(), before);
    cluster.cli_with(&["resume", "pausable"], false)?;
    let resumed = now_ms();
    wait_for(Duration::from_secs(10), "a run after resuming", || async {
        cluster
            .runs("pausable")
            .await
            .iter()
            .any(|r| r.created_at_ms > resumed && r.trigger_source == TriggerSource::Schedule)
    })
    .await?;
    Ok(())
}
