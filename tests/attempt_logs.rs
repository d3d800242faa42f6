//! Issue 14, item 2 ("per-attempt logs") with real processes: a real etcd,
//! a `nightshift scheduler`, a `nightshift executor` running a `sleep` job
//! with one failing item, and a `nightshift console`. The executor ships
//! each attempt's log with its result, the leader stores it, and then:
//! the API serves it as text, `nightshift logs` prints it (and `--follow`
//! prints every attempt of the failing item), and the job-failed alert and
//! the run's error carry the first error line.

mod scheduler_harness;

use anyhow::{bail, Context as _, Result};
use nightshift_core::ids::{DagName, ItemIndex, JobName};
use nightshift_core::state::{AlertRule, AttemptOutcome, RunState};
use nightshift_store::AlertFilter;
use nightshift_testkit::wait::wait_for_value;
use scheduler_harness::{Cluster, Db, Proc, PREFIX};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "logs-test-token-0123456789abcdef-0123";

const DAG: &str = r#"
[jobs.work]
handler = "sleep"
shards = 2
retries = 1
retry_backoff = "100ms"
params = { millis = 40, fail_items = [1] }
"#;

/// One GET with the operator token: (status, content type, body).
fn get(addr: &str, path: &str) -> Result<(u16, String, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("no header end")?;
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    if header("transfer-encoding").is_some() {
        bail!("unexpected chunked body for {path}");
    }
    Ok((
        status,
        header("content-type").unwrap_or_default(),
        body.to_owned(),
    ))
}

/// Starts `nightshift console` on a free port; returns it and its address.
async fn console(cluster: &Cluster) -> Result<(Proc, String)> {
    let token_file = cluster.dir.path().join("operator-token");
    std::fs::write(&token_file, format!("{TOKEN}\n"))?;
    let state_dir = cluster.dir.path().join("console-state");
    let args: Vec<String> = [
        "console",
        "--listen",
        "127.0.0.1:0",
        "--operator-token-file",
        token_file.to_str().context("utf-8 path")?,
        "--state-dir",
        state_dir.to_str().context("utf-8 path")?,
        "--etcd",
        &cluster.etcd.endpoint(),
        "--prefix",
        PREFIX,
        "--database",
        &cluster.db_url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let proc = cluster.spawn("console", &args)?;
    let addr = wait_for_value(Duration::from_secs(30), "the console address", || async {
        proc.logs().lines().find_map(|l| {
            let (_, rest) = l.split_once("console on http://")?;
            Some(rest.split('/').next()?.to_owned())
        })
    })
    .await?;
    Ok((proc, addr))
}

/// `nightshift <args> --database URL`; returns (exit code, stdout, stderr).
fn nightshift(cluster: &Cluster, args: &[&str]) -> Result<(i32, String, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .args(args)
        .args(["--database", &cluster.db_url])
        .env("NO_COLOR", "1")
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_attempt_logs_reach_the_api_the_cli_and_the_alert() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _scheduler = cluster.scheduler("s1")?;
    let _executor = cluster.executor("e1", 2)?;
    let (_console, addr) = console(&cluster).await?;
    cluster.apply("logged", DAG)?;
    cluster.trigger("logged")?;
    let run = cluster
        .nth_run("logged", 0, Duration::from_secs(15))
        .await?;

    // Follow the failing item from its first attempt while the run goes on
    // (or, on a fast machine, after it ended: it then prints the same).
    let follower = Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .args(["logs", run.as_str(), "--job", "work", "--item", "1"])
        .args(["--attempt", "1", "--follow", "--database", &cluster.db_url])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;

    let end = cluster.wait_run_end(&run, Duration::from_secs(30)).await?;
    assert_eq!(end.state, RunState::Failed, "{end:?}");

    // The stored logs: the sleep handler's own line, and for the failure
    // the SDK's "item failed" event, which only the ItemLogLayer installed
    // by the executor's logging setup can have captured.
    let work = JobName::new("work");
    let ok_log = cluster
        .store
        .attempt_log(&run, &work, ItemIndex(0), 1)
        .await?
        .context("item 0 has a log")?;
    assert!(ok_log.contains("INFO  sleeping 40 ms\n"), "{ok_log}");
    let failed_log = cluster
        .store
        .attempt_log(&run, &work, ItemIndex(1), 2)
        .await?
        .context("item 1's retry has a log")?;
    assert!(failed_log.contains("sleeping 40 ms"), "{failed_log}");
    assert!(
        failed_log.contains("INFO  item failed error=item 1 is listed in fail_items"),
        "tracing events inside the item span are captured: {failed_log}"
    );

    // The API, as text.
    let (status, content_type, body) = get(
        &addr,
        &format!("/api/v1/runs/{run}/jobs/work/items/0/attempts/1/log"),
    )?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/plain; charset=utf-8");
    assert_eq!(body, ok_log);
    let (status, content_type, body) = get(
        &addr,
        &format!("/api/v1/runs/{run}/jobs/work/items/0/attempts/2/log"),
    )?;
    assert_eq!(status, 404, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert!(body.contains("\"not_found\""), "{body}");

    // `nightshift logs`: the latest ended attempt by default.
    let (code, out, err) = nightshift(
        &cluster,
        &["logs", run.as_str(), "--job", "work", "--item", "0"],
    )?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, ok_log);
    let (code, out, err) = nightshift(
        &cluster,
        &["logs", run.as_str(), "--job", "work", "--item", "1"],
    )?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, failed_log, "item 1's latest attempt is its retry");
    let (code, _, err) = nightshift(
        &cluster,
        &[
            "logs",
            run.as_str(),
            "--job",
            "work",
            "--item",
            "1",
            "--attempt",
            "3",
        ],
    )?;
    assert_eq!(code, 1, "no third attempt: {err}");
    assert!(err.contains("no log for attempt 3"), "{err}");

    // --follow printed both attempts of item 1, then stopped by itself
    // because the job ended.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut follower = follower;
    let status = loop {
        if let Some(status) = follower.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = follower.kill();
            bail!("nightshift logs --follow did not stop after the job ended");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut followed = String::new();
    follower
        .stdout
        .take()
        .context("follower stdout")?
        .read_to_string(&mut followed)?;
    assert!(status.success(), "{followed}");
    let first = followed
        .find("--- attempt 1 on e1: failed ---")
        .context(followed.clone())?;
    let second = followed
        .find("--- attempt 2 on e1: failed ---")
        .context(followed.clone())?;
    assert!(first < second, "{followed}");
    assert_eq!(followed.matches("sleeping 40 ms").count(), 2, "{followed}");

    // The job-failed alert and the run's error carry the first error line.
    let alert = wait_for_value(Duration::from_secs(10), "the job-failed alert", || async {
        cluster
            .store
            .list_alerts(&AlertFilter {
                dag: Some(DagName::new("logged")),
                ..Default::default()
            })
            .await
            .ok()?
            .into_iter()
            .find(|a| a.rule == AlertRule::ItemFailed && a.run_id.as_ref() == Some(&run))
    })
    .await?;
    assert!(
        alert
            .message
            .ends_with("1 item(s) failed; first: item 1: item 1 is listed in fail_items"),
        "{}",
        alert.message
    );
    let error = end.error.unwrap_or_default();
    assert!(
        error.contains("first error: work item 1: item 1 is listed in fail_items"),
        "{error}"
    );
    let (code, out, err) = nightshift(&cluster, &["status", run.as_str()])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("item 1 is listed in fail_items"), "{out}");

    // Both attempts of item 1 are in the history, failed.
    let attempts = cluster
        .store
        .attempts(&run, &work, Some(ItemIndex(1)))
        .await?;
    assert_eq!(
        attempts.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        vec![Some(AttemptOutcome::Failed), Some(AttemptOutcome::Failed)]
    );
    Ok(())
}
