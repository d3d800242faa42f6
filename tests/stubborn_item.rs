//! Issue 13, "Done when" (first part): a stubborn item — a `sleep` that
//! ignores cancellation and journals every step — moves to a second
//! executor when its executor process is SIGSTOPped past its lease TTL, or
//! cut off from etcd (a TCP proxy between them is cut) for as long. When the
//! first executor is resumed (SIGCONT, or the proxy restored) it must not
//! take another step. The journal (one line per step, appended by both
//! processes) shows that the steps of the two owners never interleave in
//! time and that the old owner wrote nothing after its lease deadline.

mod scheduler_harness;

use anyhow::{Context as _, Result};
use nightshift_core::state::{AttemptOutcome, RunState};
use nightshift_executor::builtin::journal::{self, JournalStep};
use nightshift_lab::chaos::proxy::Proxy;
use nightshift_testkit::wait::wait_for;
use scheduler_harness::{Cluster, Db, Proc, PREFIX};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The executors' lease TTL, in ms (the harness default).
const TTL_MS: i64 = 2_000;

const DAG: &str = r#"
description = "one stubborn journaling item"

[jobs.stubborn]
handler = "sleep"
shards = 1
params = { millis = 6000, steps = 60, ignore_cancel = true, journal = "steps.log" }
"#;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Every step journaled so far.
fn read_journal(path: &Path) -> Vec<JournalStep> {
    journal::read(path).unwrap_or_default()
}

fn steps_of<'a>(journal: &'a [JournalStep], executor: &str) -> Vec<&'a JournalStep> {
    journal.iter().filter(|s| s.executor == executor).collect()
}

/// `nightshift executor` serving `sleep` with journals allowed in `dir`,
/// reaching etcd at `etcd`.
fn executor(cluster: &Cluster, id: &str, dir: &Path, etcd: &str) -> Result<Proc> {
    let args: Vec<String> = [
        "executor",
        "--etcd",
        etcd,
        "--id",
        id,
        "--lease-ttl",
        "2s",
        "--prefix",
        PREFIX,
        "--handlers",
        "sleep",
        "--capacity",
        "2",
        "--drain-grace",
        "1s",
        "--sleep-journal-dir",
        dir.to_str().context("utf-8 path")?,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    cluster.spawn(&format!("executor-{id}"), &args)
}

/// How the first owner is taken away from etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGSTOP, then SIGCONT.
    Freeze,
    /// Its etcd connections are cut, then let through again.
    Partition,
}

async fn stubborn_item_moves_without_interleaving(fault: Fault) -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let dir = cluster.dir.path().join("journals");
    std::fs::create_dir_all(&dir)?;
    let journal = dir.join("steps.log");
    let endpoint = cluster.etcd.endpoint();
    let upstream = endpoint
        .trim_start_matches("http://")
        .parse()
        .context("etcd endpoint address")?;
    let link = Proxy::start(upstream).await?;
    let _scheduler = cluster.scheduler("s1")?;
    let e1 = match fault {
        Fault::Freeze => executor(&cluster, "e1", &dir, &endpoint)?,
        Fault::Partition => executor(&cluster, "e1", &dir, &format!("http://{}", link.addr()))?,
    };
    cluster.apply("stubborn", DAG)?;
    cluster.trigger("stubborn")?;
    let run = cluster
        .nth_run("stubborn", 0, Duration::from_secs(15))
        .await?;
    wait_for(Duration::from_secs(20), "e1 to take steps", || async {
        steps_of(&read_journal(&journal), "e1").len() >= 3
    })
    .await?;
    let _e2 = executor(&cluster, "e2", &dir, &endpoint)?;
    wait_for(Duration::from_secs(10), "e2 to register", || async {
        cluster.executor_ids().await.contains(&"e2".to_owned())
    })
    .await?;

    match fault {
        Fault::Freeze => e1.signal(libc::SIGSTOP)?,
        Fault::Partition => link.cut(),
    }
    let cut_ms = now_ms();
    wait_for(
        Duration::from_secs(30),
        "e2 to take over the item",
        || async { steps_of(&read_journal(&journal), "e2").len() >= 3 },
    )
    .await?;
    match fault {
        Fault::Freeze => e1.signal(libc::SIGCONT)?,
        Fault::Partition => link.restore(),
    }
    let resumed_ms = now_ms();
    // Give the resumed e1 every chance to misbehave: e2 keeps stepping.
    wait_for(
        Duration::from_secs(20),
        "e2 to step on after e1 resumed",
        || async {
            steps_of(&read_journal(&journal), "e2")
                .iter()
                .filter(|s| s.at_ms > resumed_ms + 500)
                .count()
                >= 5
        },
    )
    .await?;
    let end = cluster.wait_run_end(&run, Duration::from_secs(30)).await?;
    assert_eq!(end.state, RunState::Succeeded, "{end:?}");

    let steps = read_journal(&journal);
    let old = steps_of(&steps, "e1");
    let new = steps_of(&steps, "e2");
    assert!(old.iter().all(|s| s.attempt == 1), "{old:?}");
    assert!(new.iter().all(|s| s.attempt == 2), "{new:?}");
    assert_eq!(
        new.iter().map(|s| s.step).collect::<Vec<_>>(),
        (1..=60).collect::<Vec<_>>(),
        "the new owner ran the whole item"
    );
    let old_last = old.iter().map(|s| s.at_ms).max().context("e1 took steps")?;
    let interleaved = journal::interleavings(&steps);
    assert!(interleaved.is_empty(), "steps interleave: {interleaved:?}");
    assert_eq!(journal::items_with_several_owners(&steps), 1);
    // e1's lease was last confirmed before the fault, so it ends at the
    // latest a TTL after it; e1 took no step after that, nor once resumed.
    assert!(
        old_last < cut_ms + TTL_MS,
        "e1 stepped at {old_last}, after its lease deadline (fault at {cut_ms})"
    );
    assert!(old.iter().all(|s| s.at_ms < resumed_ms), "{old:?}");
    // The history agrees: the first attempt was lost, the second succeeded.
    let attempts = cluster.attempts(&run, "stubborn").await?;
    let outcome = |n: u32| {
        attempts
            .iter()
            .find(|a| a.attempt == n)
            .and_then(|a| a.outcome)
    };
    assert_eq!(outcome(1), Some(AttemptOutcome::Lost), "{attempts:?}");
    assert_eq!(outcome(2), Some(AttemptOutcome::Succeeded), "{attempts:?}");
    // The stubborn handler was dropped by its executor, not left running.
    assert!(
        e1.logs().contains("item handler dropped by the executor"),
        "e1 never dropped its handler"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_a_frozen_stubborn_item_never_interleaves_with_its_next_owner() -> Result<()> {
    stubborn_item_moves_without_interleaving(Fault::Freeze).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_a_partitioned_stubborn_item_never_interleaves_with_its_next_owner() -> Result<()> {
    stubborn_item_moves_without_interleaving(Fault::Partition).await
}
