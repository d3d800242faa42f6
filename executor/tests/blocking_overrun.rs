//! Blocking work that outlives its item ends the executor process: a handler
//! whose `ctx.spawn_blocking` work ignores the item's cancellation is
//! dropped after the grace, and the executor then exits with status 70 and
//! a clear message rather than let the thread overlap with a next owner.
//!
//! The executor runs in a child process (this test binary run again, with
//! only the `child_` test selected), since the point is that it exits.

mod support;

use nightshift_executor::{job_fn, ItemContext, ItemOutcome, EXIT_BLOCKING_OVERRUN};
use nightshift_protocol::keyspace::{AssignmentRecord, ItemSet};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{start, until, Leader};

const CHILD_ENV: &str = "NIGHTSHIFT_TEST_OVERRUN_CHILD";

/// In the child: an executor whose item's blocking work never stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_executor_with_blocking_work_that_ignores_cancellation() -> anyhow::Result<()> {
    if std::env::var_os(CHILD_ENV).is_none() {
        return Ok(()); // only meaningful when run by the test below
    }
    let leader = Leader::new();
    let job = job_fn(|ctx: ItemContext| async move {
        ctx.spawn_blocking(|| std::thread::sleep(Duration::from_secs(60)))
            .await?;
        Ok(ItemOutcome::Succeeded)
    });
    let executor = start(leader.builder("e1").handler("stuck", job).build()?);
    let info = leader.executor("e1", None).await?;
    leader.spec("r1", "j", "stuck", 1, json!(null)).await?;
    leader
        .assign_items("r1", "j", &info, ItemSet::range(0, 1))
        .await?;
    until("the item to start", || async {
        executor.stats.snapshot().items_started == 1
    })
    .await?;
    eprintln!("child: item started; cancelling it");
    let cancel = AssignmentRecord {
        items: ItemSet::range(0, 1),
        cancel: ItemSet::range(0, 1),
        ..Default::default()
    };
    leader.assign("r1", "j", &info, &cancel).await?;
    // The process should exit about a grace (TTL/6) from now.
    tokio::time::sleep(Duration::from_secs(30)).await;
    anyhow::bail!("child: still alive 30 s after the cancel")
}

#[test]
fn blocking_work_past_its_items_deadline_exits_the_executor_process() {
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_executor_with_blocking_work_that_ignores_cancellation",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("child: item started"), "{stderr}");
    assert_eq!(
        out.status.code(),
        Some(EXIT_BLOCKING_OVERRUN),
        "{:?}: {stderr}",
        out.status
    );
    assert!(
        stderr.contains("blocking work of item r1/j/0/1 is still running"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(25), "{stderr}");
}
