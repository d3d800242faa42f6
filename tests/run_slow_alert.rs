//! The "slower than usual" warning against a real etcd, scheduler and
//! executor process (issue 14 item 6): after three quick succeeded runs of
//! a DAG, a run that takes far longer than 1.5 × their median opens a
//! `run_slow` warning while it runs, and the warning resolves when the run
//! ends. The quick runs themselves raise none.
//!
//! Also: the alerts that describe a live run end with it even when this
//! leader never learnt their keys (a predecessor opened them and was
//! killed before committing why), while an `item_failed` alert stays; and
//! those opened after the run ended (a deposed leader's late write) are
//! resolved by the leader's sweep.

mod scheduler_harness;

use anyhow::Result;
use nightshift_core::ids::RunId;
use nightshift_core::state::{AlertRule, AlertSeverity, AlertState, RunState};
use nightshift_store::{Alert, AlertFilter, NewAlert};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_alerts_whose_keys_the_leader_never_learnt_end_with_the_run() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let scheduler = cluster.scheduler("s1")?;
    // No executor yet: the run waits for one, so it is surely live while
    // the alerts are planted.
    cluster.apply(
        "nightly",
        "[jobs.work]\nhandler = \"sleep\"\nshards = 2\nparams = { millis = 20 }\n",
    )?;
    cluster.trigger("nightly")?;
    let run = cluster
        .nth_run("nightly", 0, Duration::from_secs(20))
        .await?;
    // What a leader killed between opening the alert and committing the
    // lost executor leaves behind: keys no live record names.
    let left = |rule: AlertRule, key: &str| NewAlert {
        rule,
        dedupe_key: key.to_owned(),
        severity: AlertSeverity::Critical,
        dag: Some(nightshift_core::ids::DagName::new("nightly")),
        run_id: Some(run.clone()),
        job: None,
        item: None,
        executor: None,
        message: format!("{key} (left by a predecessor)"),
        at_ms: 1,
    };
    cluster
        .store
        .open_alert(&left(AlertRule::ExecutorLost, "executor_lost:gone:x"))
        .await?;
    cluster
        .store
        .open_alert(&left(AlertRule::ItemFailed, "item_failed:x"))
        .await?;
    assert!(
        cluster
            .store
            .get_run(&run)
            .await?
            .is_some_and(|r| !r.state.is_terminal()),
        "planted while the run is live"
    );
    let _executor = cluster.executor("e1", 4)?;
    let end = cluster.wait_run_end(&run, Duration::from_secs(30)).await?;
    assert_eq!(end.state, RunState::Succeeded, "{}", scheduler.logs());
    nightshift_testkit::wait::wait_for(
        Duration::from_secs(10),
        "the predecessor's executor_lost alert to resolve",
        || async {
            cluster.alert_state("executor_lost:gone:x").await == Some(AlertState::Resolved)
        },
    )
    .await?;
    assert_eq!(
        cluster.alert_state("item_failed:x").await,
        Some(AlertState::Open),
        "an item_failed alert waits for a retry, not for the run's end"
    );

    // A deposed leader's late write: opened after the run ended (alerts
    // carry no term, so SQL takes it). The leader's sweep closes it.
    cluster
        .store
        .open_alert(&left(AlertRule::ExecutorLost, "executor_lost:late:x"))
        .await?;
    cluster
        .store
        .open_alert(&left(AlertRule::RunSlow, "run_slow:late"))
        .await?;
    nightshift_testkit::wait::wait_for(
        Duration::from_secs(40),
        "the alerts opened after the run ended to resolve",
        || async {
            cluster.alert_state("executor_lost:late:x").await == Some(AlertState::Resolved)
                && cluster.alert_state("run_slow:late").await == Some(AlertState::Resolved)
        },
    )
    .await?;
    assert_eq!(
        cluster.alert_state("item_failed:x").await,
        Some(AlertState::Open),
        "the sweep leaves item_failed alone"
    );
    Ok(())
}
