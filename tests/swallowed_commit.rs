//! Issue 13, "Done when": a commit whose response is swallowed loses no
//! outcome and the run ends.
//!
//! The scheduler reaches etcd through a proxy that, again and again during
//! a run, forwards the scheduler's requests but drops etcd's answers for
//! 300 ms and then resets the connection: whatever txn was in flight
//! committed (or not) and the scheduler saw only an error. The faults
//! repeat (over several runs if need be) until the scheduler's log shows
//! that one of its run commits went unanswered (it then reloads the run
//! from etcd). Every run must succeed with every item succeeded exactly
//! once.
//!
//! Real processes: etcd, one scheduler behind the proxy, three executors
//! connected directly. (`scheduler/tests/ambiguous_commit.rs` is the
//! deterministic version: a decorator fails one chosen txn.)

mod scheduler_harness;

use anyhow::{Context as _, Result};
use nightshift_core::state::RunState;
use nightshift_lab::chaos::proxy::Proxy;
use nightshift_testkit::wait::wait_for;
use scheduler_harness::{check_exactly_once, Cluster, Db};
use std::time::Duration;

const DAG: &str = r#"
description = "three chained jobs of sleep items"

[jobs.a]
handler = "sleep"
shards = 48
params = { millis = 400 }

[jobs.b]
handler = "sleep"
shards = 48
depends_on = ["a"]
params = { millis = 400 }

[jobs.c]
handler = "sleep"
shards = 48
depends_on = ["b"]
params = { millis = 400 }
"#;

/// What the scheduler logs when a run's commit failed or went unanswered.
const UNANSWERED: &str = "a commit of the run failed or went unanswered";

/// Ended attempts of the run so far.
async fn ended(cluster: &Cluster, run: &nightshift_core::ids::RunId) -> usize {
    let mut n = 0;
    for job in ["a", "b", "c"] {
        n += cluster
            .attempts(run, job)
            .await
            .map_or(0, |a| a.iter().filter(|a| a.ended_at_ms.is_some()).count());
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swallowed_commit_loses_no_outcome_and_the_run_ends() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let upstream = cluster
        .etcd
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .context("etcd endpoint address")?;
    let link = Proxy::start(upstream).await?;
    let scheduler = cluster.scheduler_at("s1", &format!("http://{}", link.addr()), &[])?;
    let _executors = ["e1", "e2", "e3"]
        .iter()
        .map(|id| cluster.executor(id, 4))
        .collect::<Result<Vec<_>>>()?;
    cluster.apply("chain", DAG)?;
    // A commit is in flight during a fault only sometimes: runs follow one
    // another, each under repeated faults, until one commit went
    // unanswered; every run must end with every item succeeded once.
    let mut faults = 0;
    for n in 0..4 {
        cluster.trigger("chain")?;
        let run = cluster.nth_run("chain", n, Duration::from_secs(30)).await?;
        loop {
            let done = cluster
                .store
                .get_run(&run)
                .await?
                .is_some_and(|r| r.state.is_terminal());
            if done || scheduler.logs().contains(UNANSWERED) {
                break;
            }
            // Answers are lost for a moment, then the connection resets.
            link.swallow();
            tokio::time::sleep(Duration::from_millis(300)).await;
            link.cut();
            link.restore();
            faults += 1;
            // Next fault once the scheduler made progress again.
            let before = ended(&cluster, &run).await;
            wait_for(
                Duration::from_secs(30),
                "progress after a fault",
                || async {
                    ended(&cluster, &run).await > before
                        || cluster
                            .store
                            .get_run(&run)
                            .await
                            .ok()
                            .flatten()
                            .is_some_and(|r| r.state.is_terminal())
                },
            )
            .await?;
        }
        let end = cluster.wait_run_end(&run, Duration::from_secs(90)).await?;
        assert_eq!(end.state, RunState::Succeeded, "{end:?}");
        for job in ["a", "b", "c"] {
            check_exactly_once(job, 48, &cluster.attempts(&run, job).await?)?;
        }
        if scheduler.logs().contains(UNANSWERED) {
            return Ok(());
        }
    }
    panic!("no run commit of the scheduler went unanswered in {faults} faults over 4 runs");
}
