//! Issue 17, item 2: checkpoints, with real processes (etcd, `nightshift
//! scheduler`, `nightshift executor` serving the built-in `sleep` with
//! `checkpoint = true`: it journals each step — the step's effect — then
//! stores the step as the item's checkpoint, and resumes after the last one).
//!
//! - An executor SIGKILLed mid-item: the item's next owner starts at the
//!   step after the last checkpoint, and every step is applied exactly once.
//! - A run cancelled mid-item, then retried (a new run): the retry is seeded
//!   from the checkpoint stored in SQL when the first run ended and resumes;
//!   a redo of the day starts from the first step.

mod scheduler_harness;

use anyhow::{Context as _, Result};
use nightshift_coord::Coordinator;
use nightshift_core::ids::{ItemIndex, JobName, RunId};
use nightshift_core::keyspace::{self, CheckpointRecord};
use nightshift_core::state::{AttemptOutcome, RunState};
use nightshift_testkit::wait::{wait_for, wait_for_value};
use scheduler_harness::{Cluster, Db, Proc, PREFIX};
use std::path::Path;
use std::time::Duration;

const STEPS: u32 = 10;

fn dag(millis: u32) -> String {
    format!(
        r#"
description = "one long checkpointing item"

[jobs.accrue]
handler = "sleep"
shards = 1
params = {{ millis = {millis}, steps = {STEPS}, checkpoint = true, journal = "steps.log" }}
"#
    )
}

/// A journal line: `run job item attempt executor step unix_ms`.
#[derive(Debug, Clone)]
struct Step {
    run: String,
    attempt: u32,
    executor: String,
    step: u32,
}

fn read_journal(path: &Path) -> Vec<Step> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            (f.len() == 7).then_some(())?;
            Some(Step {
                run: f[0].to_owned(),
                attempt: f[3].parse().ok()?,
                executor: f[4].to_owned(),
                step: f[5].parse().ok()?,
            })
        })
        .collect()
}

fn executor(cluster: &Cluster, id: &str, dir: &Path) -> Result<Proc> {
    let dir = dir.to_str().context("utf-8 path")?;
    cluster.executor_with(id, 2, &["--handlers", "sleep", "--sleep-journal-dir", dir])
}

/// The item's checkpoint in etcd (the step), if any.
async fn checkpoint(cluster: &Cluster, run: &RunId) -> Option<(u32, String)> {
    let key = keyspace::checkpoint_key(PREFIX, run, &JobName::new("accrue"), ItemIndex(0));
    let kv = cluster.coord.get(&key).await.ok()??;
    let rec: CheckpointRecord = keyspace::decode(&kv.value).ok()?;
    Some((
        u32::try_from(rec.value.as_u64()?).ok()?,
        rec.executor.to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_a_sigkilled_owners_successor_resumes_from_its_last_checkpoint() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let dir = cluster.dir.path().join("journals");
    std::fs::create_dir_all(&dir)?;
    let journal = dir.join("steps.log");
    let _scheduler = cluster.scheduler("s1")?;
    let mut e1 = executor(&cluster, "e1", &dir)?;
    cluster.apply("accrual", &dag(STEPS * 700))?;
    cluster.trigger("accrual")?;
    let run = cluster
        .nth_run("accrual", 0, Duration::from_secs(15))
        .await?;
    wait_for(
        Duration::from_secs(20),
        "e1 to checkpoint step 2",
        || async {
            checkpoint(&cluster, &run)
                .await
                .is_some_and(|(s, _)| s >= 2)
        },
    )
    .await?;
    let _e2 = executor(&cluster, "e2", &dir)?;
    wait_for(Duration::from_secs(10), "e2 to register", || async {
        cluster.executor_ids().await.contains(&"e2".to_owned())
    })
    .await?;
    // Kill e1 just after a fresh checkpoint, at the start of a step's
    // sleep, so that it dies between two steps rather than within the few
    // milliseconds between a step's journal line and its checkpoint.
    let seen = checkpoint(&cluster, &run).await.map_or(0, |c| c.0);
    wait_for(Duration::from_secs(10), "a fresh checkpoint", || async {
        checkpoint(&cluster, &run)
            .await
            .is_some_and(|(s, _)| s > seen)
    })
    .await?;
    e1.kill();
    let (resume_after, by) = checkpoint(&cluster, &run)
        .await
        .context("e1 left a checkpoint")?;
    assert_eq!(by, "e1");
    assert!(resume_after < STEPS, "e1 finished before it was killed");

    let end = cluster.wait_run_end(&run, Duration::from_secs(40)).await?;
    assert_eq!(end.state, RunState::Succeeded, "{end:?}");
    let steps = read_journal(&journal);
    let old: Vec<u32> = steps
        .iter()
        .filter(|s| s.executor == "e1")
        .map(|s| s.step)
        .collect();
    let new: Vec<u32> = steps
        .iter()
        .filter(|s| s.executor == "e2")
        .map(|s| s.step)
        .collect();
    assert_eq!(old, (1..=resume_after).collect::<Vec<_>>(), "{steps:?}");
    assert_eq!(
        new,
        (resume_after + 1..=STEPS).collect::<Vec<_>>(),
        "the new owner resumed after the last checkpoint: {steps:?}"
    );
    assert!(steps
        .iter()
        .all(|s| (s.executor == "e1") == (s.attempt == 1)));
    // e1's attempt was lost; the item ended with a success on e2 (attempt
    // 2, or later if e2 itself lost its lease under load: each later
    // attempt resumes from the checkpoint too, as the journal shows).
    let attempts = cluster.attempts(&run, "accrue").await?;
    let first = attempts
        .iter()
        .find(|a| a.attempt == 1)
        .context("attempt 1")?;
    assert_eq!(
        (first.executor.as_str(), first.outcome),
        ("e1", Some(AttemptOutcome::Lost)),
        "{attempts:?}"
    );
    let last = attempts
        .iter()
        .max_by_key(|a| a.attempt)
        .context("attempts")?;
    assert_eq!(
        (last.executor.as_str(), last.outcome),
        ("e2", Some(AttemptOutcome::Succeeded)),
        "{attempts:?}"
    );

    // The run's end moved the checkpoint to SQL (history, not resumable:
    // the item succeeded) and removed it from etcd.
    let stored = wait_for_value(Duration::from_secs(10), "the stored checkpoint", || async {
        cluster
            .store
            .item_checkpoint(&run, &JobName::new("accrue"), ItemIndex(0))
            .await
            .ok()
            .flatten()
    })
    .await?;
    assert_eq!(stored.value, serde_json::json!(STEPS));
    assert_eq!(
        (stored.attempt, stored.executor.as_str()),
        (last.attempt, "e2")
    );
    assert!(!stored.resumable);
    wait_for(
        Duration::from_secs(10),
        "the etcd checkpoints removed",
        || async {
            cluster
                .coord
                .get_prefix(&keyspace::run_checkpoints_prefix(PREFIX, &run))
                .await
                .is_ok_and(|(kvs, _)| kvs.is_empty())
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_a_retried_run_resumes_from_the_stored_checkpoint_and_a_redo_starts_fresh(
) -> Result<()> {
    let cluster = Cluster::start(Db::Postgres).await?;
    let dir = cluster.dir.path().join("journals");
    std::fs::create_dir_all(&dir)?;
    let journal = dir.join("steps.log");
    let _scheduler = cluster.scheduler("s1")?;
    let _e1 = executor(&cluster, "e1", &dir)?;
    cluster.apply("accrual", &dag(STEPS * 300))?;
    let day = "2024-03-29";
    cluster.cli_with(&["trigger", "accrual", "--business-date", day], false)?;
    let first = cluster
        .nth_run("accrual", 0, Duration::from_secs(15))
        .await?;
    wait_for(
        Duration::from_secs(20),
        "a checkpoint at step 3",
        || async {
            checkpoint(&cluster, &first)
                .await
                .is_some_and(|(s, _)| s >= 3)
        },
    )
    .await?;
    cluster.cli(&["runs", "cancel", first.as_str()])?;
    let end = cluster
        .wait_run_end(&first, Duration::from_secs(20))
        .await?;
    assert_eq!(end.state, RunState::Cancelled, "{end:?}");
    let stored = cluster
        .store
        .item_checkpoint(&first, &JobName::new("accrue"), ItemIndex(0))
        .await?
        .context("the cancelled run's checkpoint is in SQL")?;
    assert!(stored.resumable);
    let stopped_at = u32::try_from(stored.value.as_u64().context("a step")?)?;
    assert!((3..STEPS).contains(&stopped_at), "{stored:?}");

    // The retry is a new run of the same work: seeded, it resumes.
    cluster.cli(&["runs", "retry", first.as_str()])?;
    let retry = cluster
        .nth_run("accrual", 1, Duration::from_secs(15))
        .await?;
    let end = cluster
        .wait_run_end(&retry, Duration::from_secs(30))
        .await?;
    assert_eq!(end.state, RunState::Succeeded, "{end:?}");
    let steps_of = |run: &RunId| -> Vec<u32> {
        read_journal(&journal)
            .iter()
            .filter(|s| s.run == run.as_str())
            .map(|s| s.step)
            .collect()
    };
    let done_first = steps_of(&first);
    assert_eq!(
        done_first.last().copied(),
        Some(stopped_at),
        "{done_first:?}"
    );
    assert_eq!(
        steps_of(&retry),
        (stopped_at + 1..=STEPS).collect::<Vec<_>>(),
        "the retry resumed after the stored checkpoint"
    );

    // A redo of the day starts from the first step: no checkpoint carries over.
    cluster.cli_with(
        &["trigger", "accrual", "--business-date", day, "--redo"],
        false,
    )?;
    let redo = cluster
        .nth_run("accrual", 2, Duration::from_secs(15))
        .await?;
    let end = cluster.wait_run_end(&redo, Duration::from_secs(30)).await?;
    assert_eq!(end.state, RunState::Succeeded, "{end:?}");
    assert_eq!(steps_of(&redo), (1..=STEPS).collect::<Vec<_>>());
    Ok(())
}
