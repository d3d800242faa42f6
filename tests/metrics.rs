//! Prometheus metrics from real processes while a run is in flight: a
//! `nightshift scheduler` and a `nightshift executor` started with
//! `--metrics-listen` are scraped again and again until the run ends.
//! Every counter and histogram series only goes up from one scrape to the
//! next; the executor reports items started before the run ends; at the end
//! both count each item's success exactly once.

mod scheduler_harness;

use anyhow::{Context as _, Result};
use nightshift_core::state::RunState;
use nightshift_testkit::wait::wait_for_value;
use scheduler_harness::{Cluster, Db};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Six items of 1.5 s on an executor running two at a time: the run is in
/// flight for about 4.5 s.
const DAG: &str = r#"
[jobs.work]
handler = "sleep"
shards = 6
params = { millis = 1500 }
"#;

fn free_addr() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// One scrape: every sample as `name{labels}` → value.
async fn scrape(addr: SocketAddr) -> Result<BTreeMap<String, f64>> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").context("no HTTP body")?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    let mut samples = BTreeMap::new();
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (name, value) = line.rsplit_once(' ').context("sample without value")?;
        samples.insert(
            name.to_owned(),
            value.parse::<f64>().with_context(|| line.to_owned())?,
        );
    }
    Ok(samples)
}

/// Series that must never go down: counters and histogram parts.
fn monotonic(name: &str) -> bool {
    let base = name.split('{').next().unwrap_or(name);
    base.ends_with("_total")
        || base.ends_with("_bucket")
        || base.ends_with("_count")
        || base.ends_with("_sum")
}

fn never_falls(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, who: &str) {
    for (name, old) in before.iter().filter(|(n, _)| monotonic(n)) {
        let new = after.get(name).copied();
        assert!(
            new.is_some_and(|new| new >= *old),
            "{who}: {name} went from {old} to {new:?}"
        );
    }
}

fn value(samples: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(name) && labels.iter().all(|l| k.contains(l)))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn scheduler_and_executor_metrics_rise_during_a_run_and_never_fall() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let (sched_addr, exec_addr) = (free_addr()?, free_addr()?);
    let _scheduler = cluster.scheduler_with("a", &["--metrics-listen", &sched_addr.to_string()])?;
    let _executor = cluster.executor_with(
        "e1",
        2,
        &[
            "--handlers",
            "sleep",
            "--metrics-listen",
            &exec_addr.to_string(),
        ],
    )?;
    cluster.apply("metered", DAG)?;
    let first_sched = wait_for_value(
        Duration::from_secs(20),
        "the scheduler's metrics",
        || async { scrape(sched_addr).await.ok() },
    )
    .await?;
    // Each process serves its metrics once it has started: wait for both.
    let first_exec = wait_for_value(
        Duration::from_secs(20),
        "the executor's metrics",
        || async { scrape(exec_addr).await.ok() },
    )
    .await?;
    let mut last = (first_sched.clone(), first_exec);
    cluster.trigger("metered")?;
    let run = cluster
        .nth_run("metered", 0, Duration::from_secs(20))
        .await?;

    let mut seen_in_flight = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the run did not end"
        );
        let ended = cluster
            .runs("metered")
            .await
            .iter()
            .any(|r| r.run_id == run && r.state.is_terminal());
        let now = (scrape(sched_addr).await?, scrape(exec_addr).await?);
        never_falls(&last.0, &now.0, "scheduler");
        never_falls(&last.1, &now.1, "executor");
        let started = value(
            &now.1,
            "nightshift_executor_items_started_total",
            &["dag=\"metered\""],
        );
        if !ended && started >= 1.0 {
            seen_in_flight = true;
        }
        last = now;
        if ended {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen_in_flight,
        "items started were reported while the run was in flight"
    );
    let done = cluster.wait_run_end(&run, Duration::from_secs(10)).await?;
    assert_eq!(done.state, RunState::Succeeded);
    // Attempts are counted when their results are applied, once each.
    let (sched, exec) = wait_for_value(Duration::from_secs(10), "final counts", || async {
        let s = scrape(sched_addr).await.ok()?;
        let e = scrape(exec_addr).await.ok()?;
        let applied = value(
            &s,
            "nightshift_scheduler_attempts_total",
            &["outcome=\"succeeded\""],
        );
        (applied >= 6.0).then_some((s, e))
    })
    .await?;
    let sel = ["dag=\"metered\"", "job=\"work\"", "outcome=\"succeeded\""];
    assert_eq!(
        value(&sched, "nightshift_scheduler_attempts_total", &sel),
        6.0
    );
    assert_eq!(
        value(
            &sched,
            "nightshift_scheduler_attempt_duration_seconds_count",
            &sel
        ),
        6.0
    );
    assert_eq!(
        value(&exec, "nightshift_executor_items_finished_total", &sel),
        6.0
    );
    assert_eq!(
        value(
            &sched,
            "nightshift_scheduler_items_assigned_total",
            &["dag=\"metered\""]
        ),
        6.0
    );
    assert_eq!(
        value(
            &sched,
            "nightshift_scheduler_runs_finished_total",
            &["state=\"succeeded\""]
        ),
        1.0
    );
    assert_eq!(value(&sched, "nightshift_scheduler_leading", &[]), 1.0);
    // The run's records were put by the leader: the largest is at least
    // a run record's size, and far under etcd's request limit.
    let largest = value(&sched, "nightshift_scheduler_largest_value_bytes", &[]);
    assert!(
        largest > 100.0 && largest < 1_500_000.0,
        "largest value written: {largest}"
    );
    assert!(
        value(&sched, "nightshift_scheduler_passes_total", &[])
            > value(&first_sched, "nightshift_scheduler_passes_total", &[]),
        "leader passes rose during the run"
    );
    assert!(value(&exec, "nightshift_lease_renew_seconds_count", &[]) >= 1.0);
    Ok(())
}
