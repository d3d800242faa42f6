//! Issue 14, item 5 ("operator verbs through the console's API with a
//! token") with real processes: a real etcd and PostgreSQL, a `nightshift
//! scheduler`, a `nightshift executor` and a `nightshift console` with an
//! operator and a viewer token. Every `nightshift` call below runs with
//! `--server URL` and the token in `NIGHTSHIFT_TOKEN` (or `--token-file`)
//! and NO etcd or database flags (their environment variables removed):
//! `trigger --wait` exits 0 with the run id (3 for a failing DAG), a
//! rejected command exits 4 with the reason, `runs clear`, `logs`,
//! `pause`/`resume`, `executors`, `status`, `dags list` and `alerts` work, a viewer's action
//! is refused with the console's 403 message, and the token is never
//! printed.

mod scheduler_harness;

use anyhow::{Context as _, Result};
use nightshift_core::ids::{ItemIndex, JobName, RunId};
use nightshift_core::state::RunState;
use nightshift_testkit::wait::wait_for_value;
use scheduler_harness::{Cluster, Db, Proc, PREFIX};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const OPERATOR_TOKEN: &str = "server-test-operator-0123456789abcdef";
const VIEWER_TOKEN: &str = "server-test-viewer-0123456789abcdef00";

const GOOD: &str = r#"
[jobs.work]
handler = "sleep"
shards = 3
params = { millis = 20 }
"#;

const BAD: &str = r#"
[jobs.work]
handler = "sleep"
shards = 2
params = { millis = 20, fail_items = [1] }
"#;

/// `nightshift console` with an operator and a viewer token file.
async fn console(cluster: &Cluster) -> Result<(Proc, String)> {
    let dir = cluster.dir.path();
    let operator = dir.join("operator-tokens");
    std::fs::write(&operator, format!("{OPERATOR_TOKEN}\n"))?;
    let viewer = dir.join("viewer-tokens");
    std::fs::write(&viewer, format!("{VIEWER_TOKEN}\n"))?;
    let state_dir = dir.join("console-state");
    let path = |p: &Path| p.to_str().map(str::to_owned).context("utf-8 path");
    let args: Vec<String> = vec![
        "console".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--operator-token-file".into(),
        path(&operator)?,
        "--viewer-token-file".into(),
        path(&viewer)?,
        "--state-dir".into(),
        path(&state_dir)?,
        "--etcd".into(),
        cluster.etcd.endpoint(),
        "--prefix".into(),
        PREFIX.into(),
        "--database".into(),
        cluster.db_url.clone(),
    ];
    let proc = cluster.spawn("console", &args)?;
    let addr = wait_for_value(Duration::from_secs(30), "the console address", || async {
        proc.logs().lines().find_map(|l| {
            let (_, rest) = l.split_once("console on http://")?;
            Some(rest.split('/').next()?.to_owned())
        })
    })
    .await?;
    Ok((proc, format!("http://{addr}")))
}

/// `nightshift ARGS --server URL` with `token` in NIGHTSHIFT_TOKEN (if
/// any) and no etcd or database settings at all.
fn via_console(server: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nightshift"));
    cmd.args(args).args(["--server", server]);
    for var in [
        "NIGHTSHIFT_ETCD",
        "NIGHTSHIFT_DATABASE_URL",
        "NIGHTSHIFT_PREFIX",
        "NIGHTSHIFT_SERVER",
        "NIGHTSHIFT_TOKEN",
        "NIGHTSHIFT_TOKEN_FILE",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    if let Some(token) = token {
        cmd.env("NIGHTSHIFT_TOKEN", token);
    }
    cmd.env("NO_COLOR", "1")
        .output()
        .expect("running nightshift")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Exit code, stdout and stderr; fails the test if the token leaked.
fn checked(out: &Output) -> (Option<i32>, String, String) {
    let (stdout, stderr) = text(out);
    for token in [OPERATOR_TOKEN, VIEWER_TOKEN] {
        assert!(
            !stdout.contains(token) && !stderr.contains(token),
            "a token was printed:\n{stdout}\n{stderr}"
        );
    }
    (out.status.code(), stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_operator_verbs_work_through_the_console_with_a_token_only() -> Result<()> {
    let cluster = Cluster::start(Db::Postgres).await?;
    let _scheduler = cluster.scheduler("s1")?;
    let _executor = cluster.executor("e1", 4)?;
    let (_console, server) = console(&cluster).await?;
    cluster.apply("good", GOOD)?;
    cluster.apply("bad", BAD)?;
    let op = Some(OPERATOR_TOKEN);

    // trigger --wait: exit 0, the run id alone on stdout, progress on stderr.
    let (code, stdout, stderr) = checked(&via_console(
        &server,
        op,
        &["trigger", "good", "--business-date", "2026-03-05", "--wait"],
    ));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let good = RunId::new(stdout.trim());
    let row = cluster
        .store
        .get_run(&good)
        .await?
        .context("the printed run id exists")?;
    assert_eq!(row.state, RunState::Succeeded);
    assert!(stderr.contains("job work succeeded"), "{stderr}");
    assert!(
        stderr.contains(&format!("{server}/runs/{good}")),
        "the end line links to the console: {stderr}"
    );

    // The same settled date again: the leader rejects it, exit 4.
    let (code, stdout, stderr) = checked(&via_console(
        &server,
        op,
        &["trigger", "good", "--business-date", "2026-03-05", "--wait"],
    ));
    assert_eq!(code, Some(4), "{stdout}\n{stderr}");
    assert!(stderr.contains("already succeeded"), "{stderr}");

    // A failing run: exit 3.
    let (code, stdout, stderr) = checked(&via_console(&server, op, &["trigger", "bad", "--wait"]));
    assert_eq!(code, Some(3), "{stdout}\n{stderr}");
    let bad = RunId::new(stdout.trim());
    assert_eq!(
        cluster.store.get_run(&bad).await?.map(|r| r.state),
        Some(RunState::Failed)
    );

    // Cancelling the ended run is rejected with the reason: exit 4.
    let (code, stdout, stderr) = checked(&via_console(
        &server,
        op,
        &["runs", "cancel", good.as_str()],
    ));
    assert_eq!(code, Some(4), "{stdout}\n{stderr}");
    assert!(stderr.contains("already succeeded"), "{stderr}");
    // So is an unknown run (the leader rejects it on the direct path too).
    let (code, _, stderr) = checked(&via_console(
        &server,
        op,
        &["runs", "cancel", "no-such-run"],
    ));
    assert_eq!(code, Some(4), "{stderr}");

    // A viewer may read but not act: the console's 403 message, exit 1.
    let (code, stdout, stderr) = checked(&via_console(
        &server,
        Some(VIEWER_TOKEN),
        &["runs", "retry", bad.as_str()],
    ));
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("the operator role is required") && stderr.contains("403"),
        "{stderr}"
    );
    // No token at all: told how to give one, before anything is sent.
    let (code, _, stderr) = checked(&via_console(&server, None, &["executors"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("NIGHTSHIFT_TOKEN"), "{stderr}");
    // A wrong token: the console's 401.
    let (code, _, stderr) = checked(&via_console(
        &server,
        Some("not-a-token-of-this-console-0123456789"),
        &["executors"],
    ));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    // Clear the whole job of the succeeded run: applied, and every item
    // runs again in the same run.
    let (code, stdout, stderr) = checked(&via_console(
        &server,
        op,
        &["runs", "clear", good.as_str(), "--job", "work"],
    ));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        !stdout.trim().is_empty() && !stdout.contains("rejected"),
        "{stdout}"
    );
    let work = JobName::new("work");
    wait_for_value(
        Duration::from_secs(30),
        "the cleared items to run again",
        || async {
            let attempts = cluster.store.attempts(&good, &work, None).await.ok()?;
            let again = attempts
                .iter()
                .filter(|a| a.attempt == 2 && a.ended_at_ms.is_some())
                .count();
            let run = cluster.store.get_run(&good).await.ok()??;
            (again == 3 && run.state == RunState::Succeeded).then_some(())
        },
    )
    .await?;

    // logs: the latest attempt's log, as stored.
    let stored = cluster
        .store
        .attempt_log(&good, &work, ItemIndex(0), 2)
        .await?
        .context("the cleared attempt has a log")?;
    assert!(stored.contains("sleeping 20 ms"), "{stored}");
    let (code, stdout, stderr) = checked(&via_console(
        &server,
        op,
        &["logs", good.as_str(), "--job", "work", "--item", "0"],
    ));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, stored);
    let (code, stdout, stderr) = checked(&via_console(
        &server,
        op,
        &[
            "logs",
            good.as_str(),
            "--job",
            "work",
            "--item",
            "0",
            "--attempt",
            "2",
            "--format",
            "json",
        ],
    ));
    assert_eq!(code, Some(0), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(doc["attempt"], 2, "{stdout}");
    assert_eq!(doc["log"].as_str(), Some(stored.as_str()), "{stdout}");
    let (code, _, stderr) = checked(&via_console(
        &server,
        op,
        &[
            "logs",
            good.as_str(),
            "--job",
            "work",
            "--item",
            "0",
            "--attempt",
            "9",
        ],
    ));
    assert_eq!(code, Some(1), "no such attempt is bad input: {stderr}");

    // executors --format json, with the token from --token-file this time
    // (a viewer token is enough to read).
    let token_file = cluster.dir.path().join("my-token");
    std::fs::write(&token_file, format!("# viewer\n{VIEWER_TOKEN}\n"))?;
    let token_path = token_file.to_str().context("utf-8 path")?;
    let (code, stdout, stderr) = checked(&via_console(
        &server,
        None,
        &["executors", "--format", "json", "--token-file", token_path],
    ));
    assert_eq!(code, Some(0), "{stderr}");
    let executors: serde_json::Value = serde_json::from_str(&stdout)?;
    let ids: Vec<&str> = executors
        .as_array()
        .context("a JSON array")?
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, ["e1"], "{stdout}");
    assert_eq!(executors[0]["capacity"], 4, "{stdout}");

    // pause and resume; an unknown DAG is bad input as on the direct path.
    let (code, stdout, stderr) = checked(&via_console(&server, op, &["pause", "bad"]));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("pause of bad requested"), "{stdout}");
    wait_for_value(Duration::from_secs(20), "the DAG to be paused", || async {
        let dags = cluster.store.list_dags().await.ok()?;
        dags.iter()
            .any(|d| d.dag.as_str() == "bad" && d.paused)
            .then_some(())
    })
    .await?;
    let (code, _, stderr) = checked(&via_console(&server, op, &["resume", "bad"]));
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = checked(&via_console(&server, op, &["pause", "no-such-dag"]));
    assert_eq!(code, Some(1), "{stderr}");

    // status of one run, the DAG list and the alerts, as JSON.
    let (code, stdout, stderr) = checked(&via_console(
        &server,
        op,
        &["status", bad.as_str(), "--format", "json"],
    ));
    assert_eq!(code, Some(0), "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(status["run"]["state"], "failed", "{stdout}");
    assert_eq!(status["jobs"][0]["failed"], 1, "{stdout}");
    assert_eq!(status["jobs"][0]["done"], 1, "{stdout}");
    let (code, stdout, stderr) = checked(&via_console(
        &server,
        op,
        &["dags", "list", "--format", "json"],
    ));
    assert_eq!(code, Some(0), "{stderr}");
    let dags: serde_json::Value = serde_json::from_str(&stdout)?;
    let mut names: Vec<&str> = dags
        .as_array()
        .context("a JSON array")?
        .iter()
        .filter_map(|d| d["dag"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["bad", "good"], "{stdout}");
    let (code, stdout, stderr) =
        checked(&via_console(&server, op, &["alerts", "--format", "json"]));
    assert_eq!(code, Some(0), "{stderr}");
    let alerts: serde_json::Value = serde_json::from_str(&stdout)?;
    assert!(
        alerts
            .as_array()
            .context("a JSON array")?
            .iter()
            .any(|a| a["run_id"] == bad.as_str()),
        "the failed run raised an alert: {stdout}"
    );
    Ok(())
}
