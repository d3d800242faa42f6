//! Re-running work of a run that ended, against a real etcd, scheduler and
//! executor process (issue 14 item 4):
//!
//! - `runs clear RUN --job J --downstream` on a SUCCEEDED run: the cleared
//!   job's items run again at new attempts in the same run, the downstream
//!   job runs again after it, and the run ends succeeded again;
//! - `runs mark-succeeded` on the failed item of a FAILED job: the job
//!   succeeds, its `upstream_failed` downstream job runs, the run ends
//!   succeeded and the job's failure alert is resolved;
//! - a clear naming an unknown job is rejected (exit 4), nothing changes.

mod scheduler_harness;

use anyhow::Result;
use nightshift_core::ids::{JobName, RunId};
use nightshift_core::state::{AlertState, AttemptOutcome, JobState, RunState};
use nightshift_store::AlertFilter;
use scheduler_harness::{Cluster, Db, PREFIX};
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

const CHAIN: &str = r#"
[jobs.extract]
handler = "sleep"
shards = 3
params = { millis = 20 }

[jobs.load]
handler = "noop"
shards = 2
depends_on = ["extract"]

[jobs.report]
handler = "noop"
shards = 1
"#;

const FAILING: &str = r#"
[jobs.work]
handler = "sleep"
shards = 4
params = { millis = 20, fail_items = [2] }

[jobs.after]
handler = "noop"
shards = 2
depends_on = ["work"]
"#;

fn nightshift(cluster: &Cluster, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .args(args)
        .args(["--etcd", &cluster.etcd.endpoint(), "--prefix", PREFIX])
        .args(["--database", &cluster.db_url])
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("NIGHTSHIFT_ETCD")
        .env_remove("NIGHTSHIFT_DATABASE_URL")
        .output()
        .expect("running nightshift")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Triggers `dag` and waits for its run to end; returns the run id.
async fn run_to_end(cluster: &Cluster, dag: &str) -> Result<RunId> {
    let out = nightshift(cluster, &["trigger", dag, "--wait"]);
    let run = RunId::new(String::from_utf8_lossy(&out.stdout).trim());
    cluster.wait_run_end(&run, Duration::from_secs(30)).await?;
    Ok(run)
}

/// Item → attempt numbers with their outcome, of one job.
async fn attempts_by_item(
    cluster: &Cluster,
    run: &RunId,
    job: &str,
) -> Result<BTreeMap<u32, Vec<(u32, Option<AttemptOutcome>)>>> {
    let mut out: BTreeMap<u32, Vec<_>> = BTreeMap::new();
    for a in cluster.attempts(run, job).await? {
        out.entry(a.item.0)
            .or_default()
            .push((a.attempt, a.outcome));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_with_downstream_reruns_a_succeeded_run_in_place() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _scheduler = cluster.scheduler("s1")?;
    let _executor = cluster.executor("e1", 4)?;
    cluster.apply("chain", CHAIN)?;

    let run = run_to_end(&cluster, "chain").await?;
    let first = cluster.store.get_run(&run).await?.expect("run row");
    assert_eq!(first.state, RunState::Succeeded);
    for job in ["extract", "load", "report"] {
        for (item, tries) in attempts_by_item(&cluster, &run, job).await? {
            assert_eq!(tries.len(), 1, "{job} item {item}: {tries:?}");
        }
    }

    // An unknown job: rejected by the leader, exit 4, the run untouched.
    let out = nightshift(&cluster, &["runs", "clear", run.as_str(), "--job", "nope"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("no job nope"), "{}", text(&out));
    assert_eq!(
        cluster.store.get_run(&run).await?.map(|r| r.state),
        Some(RunState::Succeeded)
    );

    let out = nightshift(
        &cluster,
        &[
            "runs",
            "clear",
            run.as_str(),
            "--job",
            "extract",
            "--downstream",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cleared 5 item(s)") && stdout.contains("extract, load"),
        "{stdout}"
    );
    // The run was re-opened (the outcome is recorded after the pass that
    // wrote it) and ends again.
    let end = cluster.wait_run_end(&run, Duration::from_secs(30)).await?;
    assert_eq!(end.state, RunState::Succeeded, "{}", _scheduler.logs());

    // Same run; extract and load ran again at attempt 2 and succeeded,
    // load's second attempts after extract's; report was not touched.
    let extract = attempts_by_item(&cluster, &run, "extract").await?;
    let load = attempts_by_item(&cluster, &run, "load").await?;
    for (job, items, shards) in [("extract", &extract, 3), ("load", &load, 2)] {
        assert_eq!(items.len(), shards, "{job}: {items:?}");
        for (item, tries) in items {
            assert_eq!(
                tries,
                &vec![
                    (1, Some(AttemptOutcome::Succeeded)),
                    (2, Some(AttemptOutcome::Succeeded))
                ],
                "{job} item {item}"
            );
        }
    }
    let report = attempts_by_item(&cluster, &run, "report").await?;
    assert!(report.values().all(|t| t.len() == 1), "{report:?}");
    // (first start, last end) of a job's second attempts.
    let second = |all: Vec<nightshift_store::Attempt>| {
        all.iter()
            .filter(|a| a.attempt == 2)
            .fold((i64::MAX, i64::MIN), |(lo, hi), a| {
                (
                    lo.min(a.started_at_ms),
                    hi.max(a.ended_at_ms.unwrap_or(i64::MAX)),
                )
            })
    };
    let (_, extract_end) = second(cluster.attempts(&run, "extract").await?);
    let (load_start, _) = second(cluster.attempts(&run, "load").await?);
    assert!(
        load_start >= extract_end,
        "load re-ran at {load_start}, before extract's re-run ended at {extract_end}"
    );
    for job in ["extract", "load"] {
        let row = cluster
            .store
            .job_run(&run, &JobName::new(job))
            .await?
            .expect("job row");
        assert_eq!(row.state, JobState::Succeeded, "{row:?}");
    }
    let ended = cluster.store.get_run(&run).await?.expect("run row");
    assert!(ended.ended_at_ms >= first.ended_at_ms, "{ended:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_succeeded_on_a_failed_job_runs_its_downstream() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let scheduler = cluster.scheduler("s1")?;
    let _executor = cluster.executor("e1", 4)?;
    cluster.apply("failing", FAILING)?;

    let run = run_to_end(&cluster, "failing").await?;
    assert_eq!(
        cluster.store.get_run(&run).await?.map(|r| r.state),
        Some(RunState::Failed)
    );
    let after = JobName::new("after");
    let work = JobName::new("work");
    assert_eq!(
        cluster.store.job_run(&run, &after).await?.map(|j| j.state),
        Some(JobState::UpstreamFailed)
    );
    let alert_key = format!("job_failed:{run}:work");
    let open = |alerts: &[nightshift_store::Alert]| {
        alerts
            .iter()
            .filter(|a| a.dedupe_key == alert_key)
            .map(|a| a.state)
            .collect::<Vec<_>>()
    };
    nightshift_testkit::wait::wait_for(Duration::from_secs(10), "the job_failed alert", || async {
        let all = cluster
            .store
            .list_alerts(&AlertFilter::default())
            .await
            .unwrap_or_default();
        open(&all) == vec![AlertState::Open]
    })
    .await?;

    // An item that did not fail cannot be marked again.
    let out = nightshift(
        &cluster,
        &[
            "runs",
            "mark-succeeded",
            run.as_str(),
            "--job",
            "work",
            "--item",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));

    let out = nightshift(
        &cluster,
        &[
            "runs",
            "mark-succeeded",
            run.as_str(),
            "--job",
            "work",
            "--item",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "marked succeeded"
    );

    let end = cluster.wait_run_end(&run, Duration::from_secs(30)).await?;
    assert_eq!(end.state, RunState::Succeeded, "{}", scheduler.logs());
    let work_row = cluster.store.job_run(&run, &work).await?.expect("work row");
    assert_eq!(work_row.state, JobState::Succeeded, "{work_row:?}");
    assert_eq!(work_row.succeeded, 4);
    let after_row = cluster
        .store
        .job_run(&run, &after)
        .await?
        .expect("after row");
    assert_eq!(after_row.state, JobState::Succeeded, "{after_row:?}");
    // The downstream job really ran: one succeeded attempt per item.
    let ran = attempts_by_item(&cluster, &run, "after").await?;
    assert_eq!(ran.len(), 2, "{ran:?}");
    assert!(ran
        .values()
        .all(|t| t == &vec![(1, Some(AttemptOutcome::Succeeded))]));
    // Item 2 was not run again: it is marked, its one attempt failed.
    let work_items = attempts_by_item(&cluster, &run, "work").await?;
    assert_eq!(work_items[&2], vec![(1, Some(AttemptOutcome::Failed))]);
    nightshift_testkit::wait::wait_for(
        Duration::from_secs(10),
        "the job_failed alert to resolve",
        || async {
            let all = cluster
                .store
                .list_alerts(&AlertFilter::default())
                .await
                .unwrap_or_default();
            open(&all) == vec![AlertState::Resolved]
        },
    )
    .await?;
    Ok(())
}
