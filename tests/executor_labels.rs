//! Issue 16, labels and routing, with real processes: executors labelled
//! `zone=a` and `zone=b`; a job requiring `zone=a` runs only on the first,
//! a job requiring `zone=c` waits with a `no_executor` alert naming its
//! labels, and `nightshift plan` shows each job's matching set.

mod scheduler_harness;

use anyhow::Result;
use nightshift_core::ids::{DagName, JobName};
use nightshift_core::state::{AlertRule, AlertState, AttemptOutcome};
use nightshift_store::AlertFilter;
use nightshift_testkit::wait::{wait_for, wait_for_value};
use scheduler_harness::{Cluster, Db};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

const DAG: &str = r#"
[jobs.routed]
handler = "sleep"
shards = 12
params = { millis = 20 }
executor_labels = { zone = "a" }

[jobs.anywhere]
handler = "sleep"
shards = 12
params = { millis = 20 }

[jobs.stranded]
handler = "noop"
shards = 2
executor_labels = { zone = "c", tier = "batch" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_labelled_job_runs_only_on_matching_executors_and_alerts_without_one() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _scheduler = cluster.scheduler("s1")?;
    let _ea = cluster.executor_with(
        "ea",
        4,
        &[
            "--handlers",
            "sleep,noop",
            "--label",
            "zone=a",
            "--label",
            "tier=batch",
        ],
    )?;
    let _eb = cluster.executor_with("eb", 4, &["--handlers", "sleep,noop", "--label", "zone=b"])?;
    wait_for(WAIT, "both executors registered", || async {
        cluster.executor_ids().await.len() == 2
    })
    .await?;
    cluster.apply("zones", DAG)?;

    let plan: serde_json::Value =
        serde_json::from_str(&cluster.cli_with(&["plan", "zones", "--format", "json"], false)?)?;
    let job = |name: &str| {
        plan["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["job"] == name))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        job("routed")["matching_executors"],
        serde_json::json!(["ea"])
    );
    assert_eq!(job("routed")["executor_labels"], "zone=a");
    assert_eq!(
        job("anywhere")["matching_executors"],
        serde_json::json!(["ea", "eb"])
    );
    assert_eq!(job("stranded")["matching_executors"], serde_json::json!([]));
    let text = cluster.cli_with(&["plan", "zones"], false)?;
    assert!(
        text.contains("executor labels zone=a: matching executors ea"),
        "{text}"
    );
    assert!(
        text.contains("no live executor offers handler `noop` with labels tier=batch,zone=c"),
        "{text}"
    );

    cluster.trigger("zones")?;
    let run = cluster.nth_run("zones", 0, WAIT).await?;
    // Both runnable jobs finish; `stranded` waits and alerts.
    let alert = wait_for_value(WAIT, "a no_executor alert for `stranded`", || async {
        let alerts = cluster
            .store
            .list_alerts(&AlertFilter {
                dag: Some(DagName::new("zones")),
                ..Default::default()
            })
            .await
            .unwrap_or_default();
        alerts.into_iter().find(|a| {
            a.rule == AlertRule::NoExecutor
                && a.job.as_ref() == Some(&JobName::new("stranded"))
                && a.state == AlertState::Open
        })
    })
    .await?;
    assert!(
        alert.message.contains("with labels tier=batch,zone=c"),
        "{alert:?}"
    );
    for name in ["routed", "anywhere"] {
        wait_for(WAIT, &format!("all items of {name} succeeded"), || async {
            cluster.attempts(&run, name).await.is_ok_and(|a| {
                a.iter()
                    .filter(|a| a.outcome == Some(AttemptOutcome::Succeeded))
                    .count()
                    == 12
            })
        })
        .await?;
    }
    let routed = cluster.attempts(&run, "routed").await?;
    assert!(
        routed.iter().all(|a| a.executor.as_str() == "ea"),
        "routed items ran outside zone a: {routed:?}"
    );
    let anywhere = cluster.attempts(&run, "anywhere").await?;
    assert!(
        anywhere.iter().any(|a| a.executor.as_str() == "eb")
            && anywhere.iter().any(|a| a.executor.as_str() == "ea"),
        "an unlabelled job uses every executor: {anywhere:?}"
    );
    assert!(cluster.attempts(&run, "stranded").await?.is_empty());
    Ok(())
}
