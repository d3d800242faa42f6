//! Issue 13, item 4: losing one etcd member, the leader member included,
//! delays a run by at most a few seconds beyond the fault-free run.
//!
//! Real processes: a 3-member etcd cluster (etcd's default raft timing: a
//! killed leader is replaced after its followers' election timeout, about
//! 1–2 s), two scheduler and three executor processes, all given the three
//! endpoints. The same DAG (two chained jobs of short `sleep` items) runs
//! several times in one test, so the machine's speed cancels out:
//!
//! 1. fault-free, as the baseline;
//! 2. with the etcd leader member SIGKILLed mid-run (once a quarter of the
//!    first job's items ended), restarted after the run;
//! 3. with a follower member SIGKILLed the same way.
//!
//! Every run must succeed with every item succeeded exactly once, and a run
//! with a member killed may take at most [`ALLOWED_DELAY`] longer than the
//! baseline. The measured durations are printed (`--nocapture`).
//!
//! [`measure`] is the whole measurement (one run, an optional member kill
//! at a progress mark, the run's duration from the store), so a benchmark
//! scenario can reuse its shape.

mod scheduler_harness;

use anyhow::{Context as _, Result};
use nightshift_core::ids::RunId;
use nightshift_core::state::RunState;
use nightshift_testkit::wait::wait_for;
use scheduler_harness::{check_exactly_once, Cluster, Db};
use std::time::Duration;

/// Items per job; each sleeps [`ITEM_MILLIS`].
const SHARDS: u32 = 48;
const ITEM_MILLIS: u64 = 500;
const JOBS: [&str; 2] = ["a", "b"];

/// How much longer than the baseline a run with one member killed may take.
const ALLOWED_DELAY: Duration = Duration::from_secs(3);

/// The lease TTL of the schedulers and executors (the CLI's default).
const LEASE_TTL: &str = "10s";

fn dag() -> String {
    format!(
        r#"
description = "two chained jobs of short sleep items"

[jobs.a]
handler = "sleep"
shards = {SHARDS}
params = {{ millis = {ITEM_MILLIS} }}

[jobs.b]
handler = "sleep"
shards = {SHARDS}
depends_on = ["a"]
params = {{ millis = {ITEM_MILLIS} }}
"#
    )
}

/// Which etcd member a measured run loses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// No fault: the baseline.
    None,
    /// SIGKILL the member that is raft leader at the mark.
    KillLeader,
    /// SIGKILL a member that is a follower at the mark.
    KillFollower,
}

/// What one measured run gave.
#[derive(Debug)]
struct Measured {
    /// From the run's creation to its end, as the scheduler recorded them.
    duration: Duration,
    /// The member killed, if any (still dead when this returns).
    killed: Option<usize>,
}

/// Ended attempts of `job` in `run`.
async fn ended(cluster: &Cluster, run: &RunId, job: &str) -> usize {
    cluster
        .attempts(run, job)
        .await
        .map_or(0, |a| a.iter().filter(|a| a.ended_at_ms.is_some()).count())
}

/// Triggers run number `n` of the DAG, applies `fault` once a quarter of
/// the first job's items ended, waits for the run to end and checks it:
/// succeeded, every item succeeded exactly once.
async fn measure(cluster: &Cluster, n: usize, fault: Fault) -> Result<Measured> {
    let members = cluster.etcd.members().context("a multi-member etcd")?;
    cluster.trigger("loss")?;
    let run = cluster.nth_run("loss", n, Duration::from_secs(30)).await?;
    let mark = SHARDS as usize / 4;
    wait_for(
        Duration::from_secs(60),
        "a quarter of job a's items ended",
        || async { ended(cluster, &run, "a").await >= mark },
    )
    .await?;
    let killed = match fault {
        Fault::None => None,
        Fault::KillLeader => Some(members.wait_leader(Duration::from_secs(10)).await?),
        Fault::KillFollower => Some(
            *members
                .followers()
                .await
                .first()
                .context("no follower to kill")?,
        ),
    };
    if let Some(member) = killed {
        members.kill(member);
    }
    let end = cluster.wait_run_end(&run, Duration::from_secs(120)).await?;
    anyhow::ensure!(end.state == RunState::Succeeded, "run {n}: {end:?}");
    for job in JOBS {
        check_exactly_once(job, SHARDS, &cluster.attempts(&run, job).await?)?;
    }
    let ended_at = end.ended_at_ms.context("an ended run has an end")?;
    let millis =
        u64::try_from(ended_at - end.created_at_ms).context("run ended before it began")?;
    Ok(Measured {
        duration: Duration::from_millis(millis),
        killed,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_one_etcd_member_delays_a_run_by_seconds_at_most() -> Result<()> {
    let mut cluster = Cluster::start_members(Db::Sqlite, 3).await?;
    cluster.lease_ttl = LEASE_TTL.to_owned();
    let _schedulers = ["s1", "s2"]
        .iter()
        .map(|id| cluster.scheduler(id))
        .collect::<Result<Vec<_>>>()?;
    let _executors = ["e1", "e2", "e3"]
        .iter()
        .map(|id| cluster.executor(id, 4))
        .collect::<Result<Vec<_>>>()?;
    cluster.apply("loss", &dag())?;
    let members = cluster.etcd.members().context("a multi-member etcd")?;

    let baseline = measure(&cluster, 0, Fault::None).await?.duration;
    eprintln!("fault-free run: {baseline:?}");
    for (n, fault) in [(1, Fault::KillLeader), (2, Fault::KillFollower)] {
        let measured = measure(&cluster, n, fault).await?;
        let delay = measured.duration.saturating_sub(baseline);
        let member = measured
            .killed
            .map_or("none".to_owned(), |m| format!("m{m}"));
        eprintln!(
            "{fault:?} (member {member}): run took {:?}, {delay:?} beyond the fault-free run",
            measured.duration
        );
        assert!(
            delay <= ALLOWED_DELAY,
            "{fault:?}: the run took {:?}, {delay:?} longer than the fault-free run \
             ({baseline:?}); allowed: {ALLOWED_DELAY:?}",
            measured.duration
        );
        if let Some(member) = measured.killed {
            members.restart(member).await?;
        }
    }
    Ok(())
}
