//! Issue 12: a run commit too large for one txn is logged (chunks before
//! the head's txn, a marker in it, values in place after it), and a leader
//! killed between the head and the values leaves a run its successor reads
//! whole.
//!
//! The first scheduler runs with at most 2 ops per txn
//! (`NIGHTSHIFT_TEST_MAX_TXN_OPS`), so its commits of a 12-item job on 3
//! executors overflow the head's txn and are logged, and exits right after
//! the first logged head commits (`NIGHTSHIFT_TEST_EXIT_AFTER_LOGGED_HEAD`):
//! etcd then holds a marker naming chunks whose values are not in place.
//! A second scheduler takes over once the first one's lease ends.
//!
//! Checked with real processes: the first scheduler died with a logged
//! commit not applied (its marker and chunks are in etcd, the chunks hold
//! values); the run ends succeeded under the second; every item succeeded
//! exactly once with attempts that never overlap, and every step an
//! executor took belongs to an attempt the history records (a successor
//! reading half a commit records attempts that never ran, or loses one).

mod scheduler_harness;

use anyhow::{Context as _, Result};
use nightshift_coord::Coordinator as _;
use nightshift_core::keyspace;
use nightshift_executor::builtin::journal;
use nightshift_scheduler::record_values::{WalChunk, WalMarker};
use nightshift_testkit::wait::wait_for;
use scheduler_harness::{check_exactly_once, check_journal, is_succeeded, Cluster, Db, PREFIX};
use std::time::Duration;

const SHARDS: u32 = 12;

const DAG: &str = r#"
description = "one wide job"

[jobs.wide]
handler = "sleep"
shards = 12
params = { millis = 1500, steps = 3, journal = "steps.log" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_between_a_logged_head_and_its_values_leaves_a_run_read_whole() -> Result<()>
{
    let cluster = Cluster::start(Db::Sqlite).await?;
    let dir = cluster.dir.path().join("journals");
    let mut executors = cluster.journal_executors(&["e1", "e2", "e3"], &dir).await?;
    cluster.apply("d", DAG)?;
    let mut first = cluster.scheduler_env(
        "s1",
        &[
            ("NIGHTSHIFT_TEST_MAX_TXN_OPS", "2"),
            ("NIGHTSHIFT_TEST_EXIT_AFTER_LOGGED_HEAD", "71"),
        ],
    )?;
    cluster.trigger("d")?;
    // e3 dies with items running: the failover moving them is the first
    // commit that overflows the head's txn (partial results change one
    // item set; only the end of the job changes more).
    wait_for(Duration::from_secs(30), "e3 to be running items", || {
        let steps = journal::read(&dir.join("steps.log")).unwrap_or_default();
        async move { steps.iter().any(|step| step.executor == "e3") }
    })
    .await?;
    executors[2].kill();
    first
        .expect_exit(71, Duration::from_secs(30))
        .await
        .context("the first scheduler should exit after a logged head")?;
    let run = cluster.nth_run("d", 0, Duration::from_secs(5)).await?;

    // The dead leader's commit is logged and not applied.
    let marker = cluster
        .coord
        .get(&keyspace::run_wal_key(PREFIX, &run))
        .await?
        .context("the run's commit log marker after the kill")?;
    let marker: WalMarker = keyspace::decode(&marker.value)?;
    assert!(marker.chunks > 0, "{marker:?}");
    let mut moved = 0;
    for n in 0..marker.chunks {
        let key = keyspace::run_wal_chunk_key(PREFIX, &run, marker.tag, n);
        let chunk = cluster
            .coord
            .get(&key)
            .await?
            .with_context(|| format!("log chunk {key}"))?;
        let chunk: WalChunk = keyspace::decode(&chunk.value)?;
        moved += chunk
            .ops
            .iter()
            .filter(|(key, value)| key.contains("/owners/e") && value.is_some())
            .count();
    }
    assert!(
        moved > 0,
        "the log the first leader left moves no items to a live owner"
    );

    let _second = cluster.scheduler_env("s2", &[("NIGHTSHIFT_TEST_MAX_TXN_OPS", "2")])?;
    let ended = cluster.wait_run_end(&run, Duration::from_secs(90)).await?;
    assert!(is_succeeded(&ended), "{ended:?}");

    let attempts = cluster.attempts(&run, "wide").await?;
    check_exactly_once("wide", SHARDS, &attempts)?;
    check_journal(
        &journal::read(&dir.join("steps.log"))?,
        &attempts,
        SHARDS,
        3,
    )?;
    Ok(())
}
