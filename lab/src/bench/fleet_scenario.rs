//! `bench fleet`: the fleet-scale run of issue 12 — a 3-job chain DAG of
//! no-op items over many in-process SDK executors (each its own etcd
//! client, lease and watch), measured like `bench dispatch` (it is
//! [`dispatch::chain_run`]) plus what only shows at fleet size: the
//! largest value the leader wrote and its pass p50/p99 (scraped from the
//! scheduler's `/metrics`), how many executors self-fenced or lost their
//! lease, and whether every item succeeded exactly once (SQL history).

use super::dispatch::{self, chain_run};
use super::report::{round3, Report};
use super::rig::{free_local_addr, Rig};
use super::scrape;
use anyhow::Context as _;
use nightshift_core::state::RunState;
use nightshift_executor::StatsSnapshot;
use std::time::Duration;

const DAG: &str = "bench-fleet";
/// Jobs in the chain (the 3-job DAG).
const JOBS: u32 = 3;
const PASS: &str = "nightshift_scheduler_pass_seconds";
const LARGEST: &str = "nightshift_scheduler_largest_value_bytes";

/// Flags of `bench fleet`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// In-process executors (each its own etcd client, lease and watch).
    #[arg(long, default_value_t = 1000)]
    pub executors: u32,
    /// No-op items in total, split evenly over the 3 jobs.
    #[arg(long, default_value_t = 1_000_000)]
    pub items: u32,
    /// Give up when the run has not ended after this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub timeout_secs: u64,
}

/// Lease renewals over the fleet.
struct Renewals {
    failures: u64,
    round_trip_max_ms: f64,
    round_trip_p99_ms: f64,
    late_max_ms: f64,
}

fn renewal_figures(stats: &[StatsSnapshot]) -> Renewals {
    let mut slowest: Vec<u64> = stats
        .iter()
        .map(|s| s.lease_renew_max_round_trip_us)
        .collect();
    slowest.sort_unstable();
    let p99 = slowest
        .get((slowest.len() * 99).div_ceil(100).saturating_sub(1))
        .copied()
        .unwrap_or(0);
    let ms = |us: u64| us as f64 / 1000.0;
    Renewals {
        failures: stats.iter().map(|s| s.lease_renew_failures).sum(),
        round_trip_max_ms: ms(slowest.last().copied().unwrap_or(0)),
        round_trip_p99_ms: ms(p99),
        late_max_ms: ms(stats
            .iter()
            .map(|s| s.lease_renew_max_late_us)
            .max()
            .unwrap_or(0)),
    }
}

/// Runs the scenario.
pub async fn run(rig: &Rig, args: &Args, raw_window: Duration) -> anyhow::Result<Report> {
    let chain = dispatch::Args {
        executors: args.executors,
        items: args.items,
        jobs: JOBS,
        timeout_secs: args.timeout_secs,
    };
    let addr = free_local_addr()?;
    let c = chain_run(rig, DAG, &chain, raw_window, Some(addr)).await?;
    let page = c
        .metrics
        .as_deref()
        .context("the scheduler served no metrics")?;

    // Counted by the database: a million-item run's attempt rows are
    // never loaded here.
    let counts = rig.store().await?.succeeded_counts(&c.run.run_id).await?;
    let (once, twice) = (counts.once, counts.more);
    let self_fenced = c.stats.iter().filter(|s| s.self_fences > 0).count();
    let leases_lost = c.stats.iter().filter(|s| s.registrations > 1).count();
    let started: u64 = c.stats.iter().map(|s| s.items_started).sum();
    let largest = scrape::gauge(page, LARGEST).unwrap_or(0.0);
    let p50 = scrape::histogram_quantile(page, PASS, 0.5).unwrap_or(0.0) * 1000.0;
    let p99 = scrape::histogram_quantile(page, PASS, 0.99).unwrap_or(0.0) * 1000.0;

    let items = f64::from(args.items);
    let rate = items / c.secs;
    let mut r = Report::new("fleet");
    r.figure("executors", args.executors, "");
    r.figure("items", args.items, "");
    r.figure("jobs", JOBS, "");
    r.figure("run_state", c.run.state.to_string(), "");
    r.figure(
        "raw_etcd_puts_per_s",
        round3(c.raw),
        "puts/s (sequential, same etcd)",
    );
    r.figure(
        "end_to_end_s",
        round3(c.secs),
        "s (trigger written → run ended)",
    );
    r.figure("run_s", round3(c.run_secs), "s (run created → ended)");
    r.figure("items_per_s", round3(rate), "items/s");
    r.figure("item_attempts_started", started, "");
    r.figure(
        "items_succeeded_once",
        once,
        "items with exactly one succeeded attempt",
    );
    r.figure("items_succeeded_twice_or_more", twice, "items");
    r.figure(
        "self_fenced",
        self_fenced as u64,
        "executors (self_fences > 0)",
    );
    r.figure(
        "leases_lost",
        leases_lost as u64,
        "executors (registrations > 1)",
    );
    r.figure(
        "largest_value_bytes",
        largest as u64,
        "bytes (nightshift_scheduler_largest_value_bytes)",
    );
    r.figure(
        "leader_pass_p50_ms",
        round3(p50),
        "ms (pass histogram buckets)",
    );
    r.figure(
        "leader_pass_p99_ms",
        round3(p99),
        "ms (pass histogram buckets)",
    );
    r.figure(
        "scheduler_cpu_s",
        round3(c.cpu),
        "s (child process, user+sys)",
    );
    r.figure("scheduler_peak_rss_mib", round3(c.rss), "MiB (VmHWM)");
    r.figure(
        "executors_cpu_s",
        round3(c.bench_cpu),
        "s (this process: the in-process executors)",
    );
    if let Some(etcd_cpu) = c.etcd_cpu {
        r.figure(
            "etcd_cpu_s",
            round3(etcd_cpu),
            "s (etcd's process_cpu_seconds_total)",
        );
    }
    r.figure(
        "runtime_lag_p99_ms",
        round3(c.lag.p99_ms),
        "ms (executors' runtime waking a timer late)",
    );
    r.figure("runtime_lag_max_ms", round3(c.lag.max_ms), "ms");
    if let Some(page) = c.etcd_metrics.as_deref() {
        // Since etcd started (the raw put window included): a slow disk
        // stalls etcd's apply loop, and lease renewals wait for it.
        for (name, metric) in [
            (
                "etcd_wal_fsync_p99_ms",
                "etcd_disk_wal_fsync_duration_seconds",
            ),
            (
                "etcd_backend_commit_p99_ms",
                "etcd_disk_backend_commit_duration_seconds",
            ),
        ] {
            let p99 = scrape::histogram_quantile(page, metric, 0.99).unwrap_or(0.0);
            r.figure(name, round3(p99 * 1000.0), "ms (etcd's histogram buckets)");
        }
    }
    let renew = renewal_figures(&c.stats);
    r.figure(
        "lease_renew_failures",
        renew.failures,
        "renewal calls failed, all executors",
    );
    r.figure(
        "lease_renew_round_trip_max_ms",
        round3(renew.round_trip_max_ms),
        "ms (slowest renewal, sent → confirmed)",
    );
    r.figure(
        "lease_renew_round_trip_p99_ms",
        round3(renew.round_trip_p99_ms),
        "ms (p99 over executors of each one's slowest renewal)",
    );
    r.figure(
        "lease_renew_late_max_ms",
        round3(renew.late_max_ms),
        "ms (renewal sent after it was due)",
    );
    r.figure("etcd_revisions", c.revisions, "write requests");
    r.figure(
        "etcd_writes_per_item",
        round3(c.revisions as f64 / items),
        "",
    );
    let egress_per_item = c.egress.map(|b| b as f64 / items);
    if let (Some(bytes), Some(per)) = (c.egress, egress_per_item) {
        r.figure(
            "etcd_egress_bytes",
            bytes,
            "bytes (etcd_network_client_grpc_sent_bytes_total)",
        );
        r.figure("etcd_egress_bytes_per_item", round3(per), "bytes/item");
    }
    r.figure("run_keys_removed", c.cleaned, "");

    // The targets of issue 12 (1,000 executors × 1,000,000 items).
    r.target(
        "run succeeded",
        "succeeded",
        c.run.state.to_string(),
        c.run.state == RunState::Succeeded,
    );
    r.target(
        "every item succeeded exactly once",
        format!("{} items once, none twice", args.items),
        format!("{once} once, {twice} more than once"),
        once == u64::from(args.items) && twice == 0,
    );
    r.target(
        "no executor self-fenced or lost its lease",
        "0 and 0",
        format!("{self_fenced} and {leases_lost}"),
        self_fenced == 0 && leases_lost == 0,
    );
    r.target(
        "etcd egress per item",
        "≤ 2 KiB",
        egress_per_item.map_or("unmeasured".to_owned(), |b| format!("{b:.0} B")),
        egress_per_item.is_some_and(|b| b <= 2048.0),
    );
    r.target(
        "throughput",
        "≥ 20,000 items/s",
        format!("{rate:.0} items/s"),
        rate >= 20_000.0,
    );
    r.target(
        "scheduler RSS",
        "≤ 300 MiB",
        format!("{:.0} MiB", c.rss),
        c.rss <= 300.0,
    );
    r.target(
        "largest value written",
        "< 256 KiB",
        format!("{largest:.0} B"),
        largest < 256.0 * 1024.0,
    );
    Ok(r)
}
