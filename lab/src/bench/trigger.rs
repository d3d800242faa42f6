//! `bench trigger`: `--dags` DAGs scheduled every second (one no-op item
//! each) until `--fires` scheduled runs have ended; for each run, the delay
//! from its schedule instant to its first item's start as the executor
//! recorded it (attempt `started_at_ms` in SQL), p50 / p99 / max.

use super::fleet::Fleet;
use super::report::{round3, Report};
use super::rig::{ended_runs, Deadline, Rig};
use anyhow::bail;
use nightshift_core::ids::JobName;
use std::time::Duration;

/// Flags of `bench trigger`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scheduled runs to measure.
    #[arg(long, default_value_t = 200)]
    pub fires: u32,
    /// DAGs firing every second (fires/dags seconds of measurement).
    #[arg(long, default_value_t = 5)]
    pub dags: u32,
}

/// Runs the scenario.
pub async fn run(rig: &Rig, args: &Args, raw_window: Duration) -> anyhow::Result<Report> {
    if args.fires == 0 || args.dags == 0 {
        bail!("need --fires ≥ 1 and --dags ≥ 1");
    }
    let raw = rig.raw_put_rate(raw_window).await?;
    let mut scheduler = rig.scheduler().await?;
    let fleet = Fleet::start(rig, "bench", 2, None).await?;
    let store = rig.store().await?;
    // Instants before this are ignored (start-up, misfire handling).
    let from_ms = chrono::Utc::now().timestamp_millis() + 1000;
    for d in 0..args.dags {
        let toml = "description = \"nightshift bench trigger\"\nschedule = \"* * * * * *\"\ntimezone = \"UTC\"\n\n[jobs.work]\nhandler = \"noop\"\nshards = 1\n";
        rig.apply(&format!("bench-tick-{d}"), toml)?;
    }
    let limit = Duration::from_secs(u64::from(args.fires / args.dags) + 60);
    let mut delays: Vec<i64> = Vec::new();
    let work = JobName::new("work");
    let deadline = Deadline::new("enough scheduled runs", limit);
    loop {
        scheduler.ensure_running()?;
        let mut count = 0;
        for d in 0..args.dags {
            count += ended_runs(&store, &format!("bench-tick-{d}"))
                .await?
                .iter()
                .filter(|r| r.scheduled_for_ms.is_some_and(|s| s >= from_ms))
                .count();
        }
        if count >= args.fires as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        deadline.tick().await?;
    }
    for d in 0..args.dags {
        for run in ended_runs(&store, &format!("bench-tick-{d}")).await? {
            let Some(scheduled) = run.scheduled_for_ms.filter(|s| *s >= from_ms) else {
                continue;
            };
            let attempts = store.attempts(&run.run_id, &work, None).await?;
            if let Some(first) = attempts.iter().map(|a| a.started_at_ms).min() {
                delays.push(first - scheduled);
            }
        }
    }
    fleet.stop().await?;
    delays.sort_unstable();
    if delays.is_empty() {
        bail!("no scheduled run had a started item");
    }
    let pct = |p: f64| delays[((delays.len() as f64 - 1.0) * p).round() as usize];
    let (p50, p99, max) = (pct(0.5), pct(0.99), delays[delays.len() - 1]);
    let mut r = Report::new("trigger");
    r.figure("dags", args.dags, "");
    r.figure("fires_measured", delays.len(), "");
    r.figure(
        "raw_etcd_puts_per_s",
        round3(raw),
        "puts/s (sequential, same etcd)",
    );
    r.figure("fire_to_first_item_p50_ms", p50, "ms");
    r.figure("fire_to_first_item_p99_ms", p99, "ms");
    r.figure("fire_to_first_item_max_ms", max, "ms");
    r.target(
        "schedule instant → first item started, p99",
        "≤ 50 ms",
        format!("{p99} ms"),
        p99 <= 50,
    );
    Ok(r)
}
