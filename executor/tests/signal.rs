//! `Executor::run_until_signal` in a real process against a real etcd: a
//! SIGTERM (or SIGINT) mid-run drains (the running items finish and are
//! recorded, the rest is released at once), and once the released items run
//! elsewhere no item has run twice. The child process is this test binary, re-run with
//! `CHILD_ENV` set so that its ignored `child_executor` test becomes an
//! executor service; the test plays the scheduler leader.

mod support;

use anyhow::{Context as _, Result};
use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_executor::{job_fn_with, Executor, ItemContext, ItemOutcome};
use nightshift_protocol::keyspace::{ItemSet, ResultOutcome};
use nightshift_testkit::etcd::EtcdServer;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support::{start, Leader, PREFIX, WAIT};

const CHILD_ENV: &str = "NIGHTSHIFT_SIGNAL_TEST_ETCD";
const RUNS_ENV: &str = "NIGHTSHIFT_SIGNAL_TEST_RUNS";
const ITEMS: u32 = 20;

/// The handler both executors run: appends `"{executor} {item}"` to the
/// runs file when an item starts, then works for 300 ms.
fn recording_job(runs: PathBuf) -> impl nightshift_executor::Job {
    job_fn_with(
        Arc::new(runs),
        |runs: Arc<PathBuf>, ctx: ItemContext| async move {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(runs.as_path())?;
            // One write of one short line with O_APPEND: lines never interleave.
            file.write_all(format!("{} {}\n", ctx.executor_id(), ctx.item()).as_bytes())?;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(300)) => Ok(ItemOutcome::Succeeded),
                _ = ctx.cancelled() => Ok(ItemOutcome::Cancelled),
            }
        },
    )
}

/// Not a test of its own: the executor service of the child process.
#[test]
#[ignore = "the child process of the signal tests below"]
fn child_executor() -> Result<()> {
    let (Ok(etcd), Ok(runs)) = (std::env::var(CHILD_ENV), std::env::var(RUNS_ENV)) else {
        anyhow::bail!("run only as the child process of the signal tests");
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter("nightshift_executor=debug")
        .with_writer(std::io::stderr)
        .try_init();
    let executor = Executor::builder()
        .etcd([etcd])
        .prefix(PREFIX)
        .id("child")
        .capacity(2)
        .lease_ttl(Duration::from_secs(2))
        .handler("record", recording_job(runs.into()))
        .build()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(executor.run_until_signal())?;
    Ok(())
}

/// Who started which item, from the runs file.
fn runs_by_item(path: &Path) -> Result<BTreeMap<u32, Vec<String>>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut runs: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let (executor, item) = line.split_once(' ').context("malformed runs line")?;
        runs.entry(item.parse()?)
            .or_default()
            .push(executor.to_owned());
    }
    Ok(runs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_drains_and_no_item_runs_twice() -> Result<()> {
    drains_on(libc::SIGTERM, "SIGTERM").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigint_drains_and_no_item_runs_twice() -> Result<()> {
    drains_on(libc::SIGINT, "SIGINT").await
}

/// Sends `signal` to an executor process mid-run, then lets another
/// executor take what it released.
async fn drains_on(signal: libc::c_int, name: &str) -> Result<()> {
    let etcd = EtcdServer::start().await?;
    let coord = EtcdCoordinator::connect(EtcdConfig {
        endpoints: etcd.endpoints(),
        ..Default::default()
    })
    .await?;
    let leader = Leader::with(Arc::new(coord));
    let dir = tempfile::tempdir()?;
    let runs = dir.path().join("runs");
    let log = dir.path().join("child.log");
    let mut child = Command::new(std::env::current_exe()?)
        .args(["child_executor", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, etcd.endpoint())
        .env(RUNS_ENV, &runs)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("spawning the child executor")?;
    let pid = libc::pid_t::try_from(child.id())?;
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    // 20 items of 300 ms at capacity 2: a 3 s backlog.
    let info = leader.executor("child", None).await?;
    leader
        .spec("r1", "accrue", "record", ITEMS, serde_json::json!({}))
        .await?;
    leader
        .assign_items("r1", "accrue", &info, ItemSet::range(0, ITEMS))
        .await?;
    leader.wait_results("r1", "accrue", 1).await?;

    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
    // own child, not yet reaped (we wait for it below), so it names no other process.
    let rc = unsafe { libc::kill(pid, signal) };
    anyhow::ensure!(rc == 0, "kill: {}", std::io::Error::last_os_error());
    let status = tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .with_context(|| format!("child did not exit after {name}:\n{}", logs()))???;
    assert!(status.success(), "child exited with {status}:\n{}", logs());
    assert!(
        logs().contains(&format!("{name} received: draining")),
        "{}",
        logs()
    );
    // The drain released the assignment (the lease was revoked, not left to expire).
    assert!(!leader.assignment_exists("r1", "accrue", "child").await);

    let started = runs_by_item(&runs)?;
    let recorded = leader.results("r1", "accrue").await?;
    assert!(
        (1..ITEMS as usize).contains(&started.len()),
        "{name} came mid-run: {} items started",
        started.len()
    );
    // Every item the child started finished and was recorded during the drain.
    assert_eq!(
        started.keys().collect::<Vec<_>>(),
        recorded.keys().collect::<Vec<_>>(),
        "started vs recorded:\n{}",
        logs()
    );

    // The scheduler gives the rest to another executor; each item runs once.
    let second = leader
        .builder("second")
        .capacity(4)
        .handler("record", recording_job(runs.clone()))
        .build()?;
    let second = start(second);
    let info = leader.executor("second", None).await?;
    let rest: ItemSet = (0..ITEMS).filter(|i| !recorded.contains_key(i)).collect();
    leader.assign_items("r1", "accrue", &info, rest).await?;
    let recorded = leader.wait_results("r1", "accrue", ITEMS as usize).await?;
    second.shutdown().await?;

    let started = runs_by_item(&runs)?;
    assert_eq!(started.len(), ITEMS as usize);
    for (item, owners) in &started {
        assert_eq!(owners.len(), 1, "item {item} ran {owners:?}");
    }
    for (item, results) in &recorded {
        assert_eq!(results.len(), 1, "item {item} recorded {results:?}");
        assert_eq!(results[0].outcome, ResultOutcome::Succeeded);
    }
    Ok(())
}
