//! The "slower than usual" warning against a real etcd, scheduler and
//! executor process (issue 14 item 6): after three quick succeeded runs of
//! a DAG, a run that takes far longer than 1.5 × their median opens a
//! `run_slow` warning while it runs, and the warning resolves when the run
//! ends. The quick runs themselves raise none.

mod scheduler_harness;

use anyhow::Result;
use nightshift_core::ids::RunId;
use nightshift_core::state::{AlertRule, AlertSeverity, AlertState, RunState};
use nightshift_store::{Alert, AlertFilter};
use scheduler_harness::{Cluster, Db};
use std::time::Duration;

const DAG: &str = r#"
[jobs.work]
handler = "sleep"
shards = 2
params = { millis = 20 }
"#;

async fn slow_alerts(cluster: &Cluster) -> Vec<Alert> {
    cluster
        .store
        .list_alerts(&AlertFilter::default())
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.rule == AlertRule::RunSlow)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_much_slower_than_usual_raises_a_warning_that_resolves() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let scheduler = cluster.scheduler("s1")?;
    let _executor = cluster.executor("e1", 4)?;
    cluster.apply("nightly", DAG)?;

    for n in 0..3 {
        cluster.trigger("nightly")?;
        let run = cluster
            .nth_run("nightly", n, Duration::from_secs(20))
            .await?;
        let end = cluster.wait_run_end(&run, Duration::from_secs(20)).await?;
        assert_eq!(end.state, RunState::Succeeded);
    }
    assert!(slow_alerts(&cluster).await.is_empty());
    let usual: Vec<i64> = cluster
        .store
        .recent_run_durations(&nightshift_core::ids::DagName::new("nightly"), 10)
        .await?;
    let limit = nightshift_scheduler::slow::slow_after_ms(&usual).expect("a baseline");
    // Run params go over the job's: this night's items sleep far longer.
    let millis = (limit * 4).max(1_500);
    cluster.cli_with(
        &[
            "trigger",
            "nightly",
            "--params",
            &format!(r#"{{"millis": {millis}}}"#),
        ],
        false,
    )?;
    let slow: RunId = cluster
        .nth_run("nightly", 3, Duration::from_secs(20))
        .await?;
    nightshift_testkit::wait::wait_for(Duration::from_secs(20), "a run_slow alert", || async {
        slow_alerts(&cluster)
            .await
            .iter()
            .any(|a| a.state == AlertState::Open)
    })
    .await?;
    let open = slow_alerts(&cluster).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].run_id.as_ref(), Some(&slow));
    assert_eq!(open[0].severity, AlertSeverity::Warning);
    assert!(
        cluster
            .store
            .get_run(&slow)
            .await?
            .is_some_and(|r| !r.state.is_terminal()),
        "raised while the run is still going"
    );
    let end = cluster.wait_run_end(&slow, Duration::from_secs(60)).await?;
    assert_eq!(end.state, RunState::Succeeded, "{}", scheduler.logs());
    nightshift_testkit::wait::wait_for(
        Duration::from_secs(10),
        "the run_slow alert to resolve",
        || async {
            slow_alerts(&cluster)
                .await
                .iter()
                .all(|a| a.state == AlertState::Resolved)
        },
    )
    .await?;
    Ok(())
}
