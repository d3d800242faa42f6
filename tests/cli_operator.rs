//! Operator verbs against a real etcd, scheduler and executor process:
//! `trigger --wait` prints the run id, follows it and exits 0 when it
//! succeeded, 3 when it failed, 4 (with the leader's reason) when the
//! leader rejected the trigger; `runs skip|retry|cancel|mark-succeeded`
//! report the leader's outcome, and a rejected one exits 4; a retry run
//! and the run it retries link both ways.

mod scheduler_harness;

use anyhow::Result;
use nightshift_core::ids::{JobName, RunId};
use nightshift_core::state::{JobState, RunState};
use scheduler_harness::{Cluster, Db, PREFIX};
use std::process::{Command, Output};
use std::time::Duration;

const GOOD: &str = r#"
[jobs.work]
handler = "sleep"
shards = 4
params = { millis = 20 }
"#;

const BAD: &str = r#"
[jobs.work]
handler = "sleep"
shards = 4
params = { millis = 20, fail_items = [2] }

[jobs.after]
handler = "noop"
depends_on = ["work"]
"#;

/// `nightshift ARGS --etcd .. --prefix .. --database ..`.
fn nightshift(cluster: &Cluster, args: &[&str]) -> Output {
    nightshift_with(cluster, args, true, true)
}

/// `nightshift ARGS` with the etcd and/or database flags.
fn nightshift_with(cluster: &Cluster, args: &[&str], etcd: bool, database: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nightshift"));
    cmd.args(args);
    if etcd {
        cmd.args(["--etcd", &cluster.etcd.endpoint(), "--prefix", PREFIX]);
    }
    if database {
        cmd.args(["--database", &cluster.db_url]);
    }
    cmd.env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("NIGHTSHIFT_ETCD")
        .env_remove("NIGHTSHIFT_DATABASE_URL")
        .output()
        .expect("running nightshift")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_trigger_wait_and_run_verbs_report_what_the_leader_did() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _scheduler = cluster.scheduler("s1")?;
    let _executor = cluster.executor("e1", 4)?;
    cluster.apply("good", GOOD)?;
    cluster.apply("bad", BAD)?;

    // Succeeded: exit 0, stdout is the run id, progress on stderr.
    let out = nightshift(
        &cluster,
        &["trigger", "good", "--business-date", "2026-03-05", "--wait"],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let run = RunId::new(stdout.trim());
    let row = cluster
        .store
        .get_run(&run)
        .await?
        .expect("the printed run id exists");
    assert_eq!(row.state, RunState::Succeeded);
    assert!(stderr.contains("job work succeeded"), "{stderr}");

    // The same settled date without --rerun: rejected, exit 4 with the reason.
    let out = nightshift(
        &cluster,
        &["trigger", "good", "--business-date", "2026-03-05", "--wait"],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(stderr.contains("already succeeded"), "{stderr}");

    // Failed: exit 3.
    let out = nightshift(&cluster, &["trigger", "bad", "--wait"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    let failed = RunId::new(stdout.trim());
    assert_eq!(
        cluster.store.get_run(&failed).await?.map(|r| r.state),
        Some(RunState::Failed)
    );
    assert!(stderr.contains("job work failed"), "{stderr}");

    // Skipping a job of a finished run is rejected: exit 4, nothing changes.
    let out = nightshift(
        &cluster,
        &["runs", "skip", failed.as_str(), "--job", "after"],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(stderr.contains("rejected"), "{stderr}");

    // Cancelling a run that does not exist is rejected too.
    let out = nightshift(&cluster, &["runs", "cancel", "no-such-run"]);
    assert_eq!(out.status.code(), Some(4), "{:?}", text(&out));

    // Retrying the failed run is applied: exit 0 with the leader's outcome,
    // and the retry run it names exists.
    let out = nightshift(&cluster, &["runs", "retry", failed.as_str()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        !stdout.trim().is_empty() && !stdout.contains("rejected"),
        "{stdout}"
    );
    // The retry run and its origin link both ways.
    let retry = RunId::new(
        stdout
            .trim()
            .strip_prefix("retried as run ")
            .unwrap_or_else(|| panic!("the outcome names the retry run: {stdout}")),
    );
    assert_eq!(cluster.store.retry_of(&retry).await?, Some(failed.clone()));
    assert_eq!(
        cluster.store.retries_of(&failed).await?,
        vec![retry.clone()]
    );

    // A bad id is bad input (exit 1) and writes nothing.
    let out = nightshift(
        &cluster,
        &[
            "runs",
            "mark-succeeded",
            "a/b",
            "--job",
            "work",
            "--item",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));

    // Marking an item of a live run succeeded is applied and recorded.
    cluster.apply(
        "slow",
        "[jobs.work]\nhandler = \"sleep\"\nshards = 2\nparams = { millis = 60000 }\n",
    )?;
    let out = nightshift(&cluster, &["trigger", "slow"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let slow = RunId::new(text(&out).0.trim());
    let job = JobName::new("work");
    nightshift_testkit::wait::wait_for(Duration::from_secs(20), "the slow job to run", || async {
        matches!(
            cluster.store.job_run(&slow, &job).await,
            Ok(Some(j)) if j.state == JobState::Running
        )
    })
    .await?;
    let out = nightshift(
        &cluster,
        &[
            "runs",
            "mark-succeeded",
            slow.as_str(),
            "--job",
            "work",
            "--item",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(text(&out).0.trim(), "marked succeeded");
    let out = nightshift(
        &cluster,
        &[
            "runs",
            "mark-succeeded",
            slow.as_str(),
            "--job",
            "work",
            "--item",
            "7",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(4),
        "item out of range: {:?}",
        text(&out)
    );
    let out = nightshift(&cluster, &["runs", "cancel", slow.as_str()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(text(&out).0.trim(), "cancelled");
    let end = cluster.wait_run_end(&slow, Duration::from_secs(20)).await?;
    assert_eq!(end.state, RunState::Cancelled);
    let work = cluster.store.job_run(&slow, &job).await?.expect("job row");
    assert_eq!(
        work.succeeded, 1,
        "the marked item counts as succeeded: {work:?}"
    );
    Ok(())
}
