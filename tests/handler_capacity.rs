//! Issue 16, capacity per handler, with real processes: an executor with
//! `--capacity 4 --handler-capacity sleep=2` runs a slow `sleep` job and a
//! `noop` job at once. The slow handler never has more than its 2 items
//! running, and the other handler's items keep running beside it (all of
//! them finish while the slow job is still going).

mod scheduler_harness;

use anyhow::{Context as _, Result};
use nightshift_core::keyspace::{self, ExecutorInfo};
use nightshift_core::state::{AttemptOutcome, RunState};
use nightshift_store::Attempt;
use nightshift_testkit::wait::wait_for_value;
use scheduler_harness::{Cluster, Db};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(40);

const DAG: &str = r#"
[jobs.slow]
handler = "sleep"
shards = 8
params = { millis = 400 }

[jobs.fast]
handler = "noop"
shards = 40
"#;

/// The most attempts running at one instant.
fn max_overlap(attempts: &[Attempt]) -> Result<usize> {
    let mut edges = Vec::new();
    for a in attempts {
        edges.push((a.started_at_ms, 1i32));
        edges.push((a.ended_at_ms.context("attempt never ended")?, -1));
    }
    // Ends before starts at the same millisecond: back-to-back is no overlap.
    edges.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    Ok(usize::try_from(max)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_keeps_to_its_slots_while_another_handler_runs() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _scheduler = cluster.scheduler("s1")?;
    let _executor = cluster.executor_with(
        "e1",
        4,
        &["--handlers", "sleep,noop", "--handler-capacity", "sleep=2"],
    )?;
    // The limit is published for the planner.
    let info: ExecutorInfo = wait_for_value(WAIT, "e1 registered", || async {
        use nightshift_coord::Coordinator;
        let key = keyspace::executor_key(
            scheduler_harness::PREFIX,
            &nightshift_core::ids::ExecutorId::new("e1"),
        );
        let kv = cluster.coord.get(&key).await.ok()??;
        keyspace::decode(&kv.value).ok()
    })
    .await?;
    assert_eq!(
        info.capacity_for(&nightshift_core::ids::HandlerName::new("sleep")),
        2
    );
    assert_eq!(
        info.capacity_for(&nightshift_core::ids::HandlerName::new("noop")),
        4
    );

    cluster.apply("mixed", DAG)?;
    cluster.trigger("mixed")?;
    let run = cluster.nth_run("mixed", 0, WAIT).await?;
    let end = cluster.wait_run_end(&run, WAIT).await?;
    assert_eq!(end.state, RunState::Succeeded, "{end:?}");

    let slow = cluster.attempts(&run, "slow").await?;
    let fast = cluster.attempts(&run, "fast").await?;
    assert_eq!(slow.len(), 8, "{slow:?}");
    assert_eq!(fast.len(), 40, "{fast:?}");
    assert!(slow
        .iter()
        .chain(&fast)
        .all(|a| a.outcome == Some(AttemptOutcome::Succeeded)));
    let overlap = max_overlap(&slow)?;
    assert_eq!(
        overlap, 2,
        "the slow handler ran {overlap} items at once (its limit is 2)"
    );
    // 8 items × 400 ms over 2 slots take ≥ 1.6 s; the 40 fast items used
    // the other slots meanwhile instead of waiting behind them.
    let slow_end = slow
        .iter()
        .filter_map(|a| a.ended_at_ms)
        .max()
        .context("end")?;
    let fast_end = fast
        .iter()
        .filter_map(|a| a.ended_at_ms)
        .max()
        .context("end")?;
    let slow_start = slow
        .iter()
        .map(|a| a.started_at_ms)
        .min()
        .context("start")?;
    assert!(slow_end - slow_start >= 1_550, "{}", slow_end - slow_start);
    assert!(
        fast_end < slow_end,
        "fast items waited for the slow handler: fast ended {fast_end}, slow {slow_end}"
    );
    Ok(())
}
