//! `bench dispatch`: one run of a DAG of `--jobs` jobs in a chain with
//! `--items` no-op items in total, over `--executors` in-process executors
//! and one scheduler child process. Measures the run end to end (trigger
//! command written → run ended, by the scheduler's clock), the scheduler's
//! CPU seconds and peak RSS, etcd revisions (one per write request) per
//! item, and the bytes etcd sent its clients per item (from its `/metrics`).

use super::egress;
use super::fleet::Fleet;
use super::lag::{Lag, LagProbe};
use super::process;
use super::report::{round3, Report};
use super::rig::{ended_runs, Deadline, Rig};
use anyhow::{bail, Context as _};
use nightshift_core::keyspace;
use nightshift_core::state::RunState;
use nightshift_executor::StatsSnapshot;
use nightshift_store::Run;
use std::time::Duration;

const DAG: &str = "bench-dispatch";

/// Flags of `bench dispatch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// In-process executors (each its own etcd client and lease).
    #[arg(long, default_value_t = 50)]
    pub executors: u32,
    /// No-op items in total, split evenly over the jobs.
    #[arg(long, default_value_t = 100_000)]
    pub items: u32,
    /// Jobs in the chain.
    #[arg(long, default_value_t = 3)]
    pub jobs: u32,
    /// Give up when the run has not ended after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

/// The DAG: `jobs` chained jobs sharing `items` no-op items.
pub(super) fn dag_toml(jobs: u32, items: u32) -> String {
    let mut toml =
        String::from("description = \"nightshift bench dispatch\"\ntimezone = \"UTC\"\n");
    for j in 0..jobs {
        let share = items / jobs + u32::from(j < items % jobs);
        toml.push_str(&format!(
            "\n[jobs.step-{j}]\nhandler = \"noop\"\nshards = {share}\n"
        ));
        if j > 0 {
            toml.push_str(&format!("depends_on = [\"step-{}\"]\n", j - 1));
        }
    }
    toml
}

/// What one measured run of a chain DAG observed; shared by `bench
/// dispatch` and `bench fleet`.
pub(super) struct ChainRun {
    /// Raw sequential put rate of the same etcd, puts/s.
    pub raw: f64,
    /// The run's row, ended.
    pub run: Run,
    /// Trigger written → run ended, seconds.
    pub secs: f64,
    /// Run created → run ended, seconds.
    pub run_secs: f64,
    /// Scheduler CPU seconds during the run.
    pub cpu: f64,
    /// CPU seconds of this process (the in-process executors) during the run.
    pub bench_cpu: f64,
    /// etcd's CPU seconds during the run, when its `/metrics` could be read.
    pub etcd_cpu: Option<f64>,
    /// How late this process's runtime woke timers during the run.
    pub lag: Lag,
    /// etcd's own `/metrics` page at the end (first endpoint), when
    /// readable: its disk latency histograms.
    pub etcd_metrics: Option<String>,
    /// Scheduler peak RSS, MiB.
    pub rss: f64,
    /// etcd revisions (write requests) during the run and its clean-up.
    pub revisions: i64,
    /// Bytes etcd sent its clients, when its `/metrics` could be read.
    pub egress: Option<u64>,
    /// Whether the leader removed the run's keys.
    pub cleaned: bool,
    /// Every executor's counters at the end.
    pub stats: Vec<StatsSnapshot>,
    /// The scheduler's `/metrics` page at the end, when it served one.
    pub metrics: Option<String>,
}

/// One measured run of `dag_toml(jobs, items)` named `dag` over
/// `executors` in-process executors and a scheduler child; with `metrics`
/// the scheduler serves `/metrics` there (`--metrics-listen`) and the page
/// is scraped at the end, before the scheduler stops.
pub(super) async fn chain_run(
    rig: &Rig,
    dag: &str,
    args: &Args,
    raw_window: Duration,
    metrics: Option<std::net::SocketAddr>,
) -> anyhow::Result<ChainRun> {
    if args.jobs == 0 || args.items < args.jobs || args.executors == 0 {
        bail!("need --jobs ≥ 1, --items ≥ --jobs and --executors ≥ 1");
    }
    let raw = rig.raw_put_rate(raw_window).await?;
    rig.apply(dag, &dag_toml(args.jobs, args.items))?;
    let flags: Vec<String> = metrics
        .map(|a| vec!["--metrics-listen".to_owned(), a.to_string()])
        .unwrap_or_default();
    let mut scheduler = rig.scheduler_with(&flags).await?;
    let fleet = Fleet::start(rig, "bench", args.executors, None).await?;
    let store = rig.store().await?;

    let rev_before = rig.coord.current_revision().await?;
    let sent_before = egress::sent_bytes(&rig.etcd).await?;
    let cpu_before = scheduler.cpu_seconds()?;
    let bench_cpu_before = process::cpu_seconds("self")?;
    let etcd_cpu_before = egress::cpu_seconds(&rig.etcd).await?;
    let probe = LagProbe::start();
    let triggered_ms = chrono::Utc::now().timestamp_millis();
    rig.trigger(dag).await?;
    let deadline = Deadline::new("the run to end", Duration::from_secs(args.timeout_secs));
    let run = loop {
        scheduler.ensure_running()?;
        if let Some(run) = ended_runs(&store, dag).await?.into_iter().next() {
            break run;
        }
        // The end time comes from the run row, so polling slowly loses no
        // precision and keeps this reader from contending with the
        // scheduler's SQLite writes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        deadline.tick().await?;
    };
    let end_ms = run
        .ended_at_ms
        .context("an ended run without an end time")?;
    let cpu = scheduler.cpu_seconds()? - cpu_before;
    let bench_cpu = process::cpu_seconds("self")? - bench_cpu_before;
    let etcd_cpu = match (etcd_cpu_before, egress::cpu_seconds(&rig.etcd).await?) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    let lag = probe.finish();
    let etcd_metrics = match rig.etcd.first().and_then(|e| e.strip_prefix("http://")) {
        Some(authority) => egress::get_metrics(authority.trim_end_matches('/'))
            .await
            .ok(),
        None => None,
    };
    // The leader deletes a persisted run's keys: count those writes too.
    let live = [
        keyspace::runs_prefix(&rig.prefix),
        keyspace::owners_prefix(&rig.prefix),
        keyspace::all_results_prefix(&rig.prefix),
    ];
    let deadline = Deadline::new("the run's keys to be removed", Duration::from_secs(30));
    let cleaned = loop {
        let mut empty = true;
        for prefix in &live {
            empty &= rig.coord.get_prefix(prefix).await?.0.is_empty();
        }
        if empty {
            break true;
        }
        if deadline.tick().await.is_err() {
            break false;
        }
    };
    let revisions = rig.coord.current_revision().await? - rev_before;
    let sent_after = egress::sent_bytes(&rig.etcd).await?;
    let rss = scheduler.peak_rss_mib()?;
    let metrics = match metrics {
        Some(addr) => Some(egress::get_metrics(&addr.to_string()).await?),
        None => None,
    };
    let stats = fleet.stats.iter().map(|s| s.snapshot()).collect();
    fleet.stop().await?;
    Ok(ChainRun {
        raw,
        secs: (end_ms - triggered_ms) as f64 / 1000.0,
        run_secs: (end_ms - run.created_at_ms) as f64 / 1000.0,
        run,
        cpu,
        bench_cpu,
        etcd_cpu,
        lag,
        etcd_metrics,
        rss,
        revisions,
        egress: match (sent_before, sent_after) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b)),
            _ => None,
        },
        cleaned,
        stats,
        metrics,
    })
}

/// Runs the scenario.
pub async fn run(rig: &Rig, args: &Args, raw_window: Duration) -> anyhow::Result<Report> {
    let c = chain_run(rig, DAG, args, raw_window, None).await?;
    let (raw, run, secs, run_secs, cpu, rss, revisions, cleaned) = (
        c.raw,
        &c.run,
        c.secs,
        c.run_secs,
        c.cpu,
        c.rss,
        c.revisions,
        c.cleaned,
    );
    let started: u64 = c.stats.iter().map(|s| s.items_started).sum();
    let items = f64::from(args.items);
    let per_item = revisions as f64 / items;
    let mut r = Report::new("dispatch");
    r.figure("executors", args.executors, "");
    r.figure("items", args.items, "");
    r.figure("jobs", args.jobs, "");
    r.figure("run_state", run.state.to_string(), "");
    r.figure(
        "raw_etcd_puts_per_s",
        round3(raw),
        "puts/s (sequential, same etcd)",
    );
    r.figure(
        "end_to_end_s",
        round3(secs),
        "s (trigger written → run ended)",
    );
    r.figure("run_s", round3(run_secs), "s (run created → ended)");
    r.figure("items_per_s", round3(items / secs), "items/s");
    r.figure(
        "items_per_s_over_raw_put_rate",
        round3(items / secs / raw),
        "x",
    );
    r.figure("item_attempts_started", started, "");
    r.figure(
        "scheduler_cpu_s",
        round3(cpu),
        "s (child process, user+sys)",
    );
    r.figure(
        "scheduler_cpu_us_per_item",
        round3(cpu * 1e6 / items),
        "µs/item",
    );
    r.figure("scheduler_peak_rss_mib", round3(rss), "MiB (VmHWM)");
    r.figure("etcd_revisions", revisions, "write requests");
    r.figure("etcd_writes_per_item", round3(per_item), "");
    // Everything etcd sent its clients during the run: watch events,
    // reads, txn answers and keep-alives of every executor and the leader.
    if let Some(bytes) = c.egress {
        r.figure(
            "etcd_egress_bytes",
            bytes,
            "bytes (etcd_network_client_grpc_sent_bytes_total)",
        );
        r.figure(
            "etcd_egress_bytes_per_item",
            round3(bytes as f64 / items),
            "bytes/item",
        );
    }
    r.figure("run_keys_removed", cleaned, "");
    r.target(
        "run succeeded",
        "succeeded",
        run.state.to_string(),
        run.state == RunState::Succeeded,
    );
    let rate = items / secs;
    r.target(
        "throughput",
        "≥ 20,000 items/s (100,000 items over 50 executors in ≤ 5 s)",
        format!("{rate:.0} items/s"),
        rate >= 20_000.0,
    );
    r.target(
        "etcd writes per item",
        "≤ 0.1",
        format!("{per_item:.3}"),
        per_item <= 0.1,
    );
    r.target(
        "scheduler RSS",
        "≤ 150 MiB",
        format!("{rss:.0} MiB"),
        rss <= 150.0,
    );
    Ok(r)
}
