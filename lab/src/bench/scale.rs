//! `bench scale`: `--executors` executors registered (registration keys
//! with real leases, written by the bench — no SDK runtime behind them, so
//! nothing runs) and `--items` items: the time from the trigger until every
//! executor's assignment is written, the etcd keys, bytes and write
//! requests this took, and the scheduler's CPU and peak memory.
//!
//! A DAG job has at most `MAX_SHARDS` (1,000,000) items; more items are
//! split over parallel jobs of one DAG, all started (resharded) at once.

use super::report::{round3, Report};
use super::rig::{Deadline, Rig};
use anyhow::{bail, Context as _};
use nightshift_coord::LeaseId;
use nightshift_core::dag::MAX_SHARDS;
use nightshift_core::ids::{ExecutorId, HandlerName};
use nightshift_core::keyspace::{self, encode, ExecutorInfo};
use std::time::{Duration, Instant};

/// Flags of `bench scale`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Registered executors.
    #[arg(long, default_value_t = 1000)]
    pub executors: u32,
    /// Items in total (one job, or parallel jobs of at most 1,000,000).
    #[arg(long, default_value_t = 1_000_000)]
    pub items: u32,
    /// Give up when the assignment is not written after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

/// Runs the scenario.
pub async fn run(rig: &Rig, args: &Args, raw_window: Duration) -> anyhow::Result<Report> {
    if args.executors == 0 || args.items == 0 {
        bail!("need --executors ≥ 1 and --items ≥ 1");
    }
    let raw = rig.raw_put_rate(raw_window).await?;
    let registered = Instant::now();
    register(rig, args.executors).await?;
    let register_s = registered.elapsed().as_secs_f64();
    let jobs = args.items.div_ceil(MAX_SHARDS);
    let mut toml = String::from("description = \"nightshift bench scale\"\ntimezone = \"UTC\"\n");
    for j in 0..jobs {
        let share = args.items / jobs + u32::from(j < args.items % jobs);
        toml.push_str(&format!(
            "\n[jobs.work-{j}]\nhandler = \"noop\"\nshards = {share}\n"
        ));
    }
    rig.apply("bench-scale", &toml)?;
    let mut scheduler = rig.scheduler().await?;

    let rev_before = rig.coord.current_revision().await?;
    let cpu_before = scheduler.cpu_seconds()?;
    let t0 = Instant::now();
    let run = rig.trigger("bench-scale").await?;
    let owners = keyspace::owners_prefix(&rig.prefix);
    let want = (args.executors.min(args.items / jobs) * jobs) as usize;
    let is_assign =
        |key: &str| keyspace::parse_assign_key(&rig.prefix, key).is_some_and(|(r, _, _)| r == run);
    let deadline = Deadline::new(
        "every assignment to be written",
        Duration::from_secs(args.timeout_secs),
    );
    loop {
        scheduler.ensure_running()?;
        if rig
            .coord
            .get_prefix(&owners)
            .await?
            .0
            .iter()
            .filter(|kv| is_assign(&kv.key))
            .count()
            >= want
        {
            break;
        }
        deadline.tick().await?;
    }
    let reshard = t0.elapsed().as_secs_f64();
    let cpu = scheduler.cpu_seconds()? - cpu_before;
    let rss = scheduler.peak_rss_mib()?;
    let revisions = rig.coord.current_revision().await? - rev_before;
    let (keys, bytes) = footprint(
        rig,
        &[
            keyspace::runs_prefix(&rig.prefix),
            keyspace::owners_prefix(&rig.prefix),
            keyspace::last_assignments_prefix(&rig.prefix),
        ],
        |_| true,
    )
    .await?;
    let (assign_keys, assign_bytes) = footprint(rig, &[owners], is_assign).await?;

    let mut r = Report::new("scale");
    r.figure("executors", args.executors, "");
    r.figure("items", args.items, "");
    r.figure("jobs", jobs, "(parallel, ≤ 1,000,000 items each)");
    r.figure(
        "raw_etcd_puts_per_s",
        round3(raw),
        "puts/s (sequential, same etcd)",
    );
    r.figure(
        "register_s",
        round3(register_s),
        "s (bench writing leases + executor keys)",
    );
    r.figure(
        "reshard_s",
        round3(reshard),
        "s (trigger written → every assignment in etcd)",
    );
    r.figure("etcd_revisions", revisions, "write requests");
    r.figure("run_keys", keys, "keys (runs/ + owners/ + assignments/)");
    r.figure("run_bytes", bytes, "bytes (keys + values)");
    r.figure("assignment_keys", assign_keys, "keys");
    r.figure("assignment_bytes", assign_bytes, "bytes (keys + values)");
    r.figure(
        "scheduler_cpu_s",
        round3(cpu),
        "s (child process, user+sys)",
    );
    r.figure("scheduler_peak_rss_mib", round3(rss), "MiB (VmHWM)");
    r.target(
        "scheduler RSS",
        "≤ 150 MiB",
        format!("{rss:.0} MiB"),
        rss <= 150.0,
    );
    Ok(r)
}

/// Writes `count` executor registrations, each on its own lease, from 16
/// concurrent tasks.
async fn register(rig: &Rig, count: u32) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..16u32 {
        let (coord, prefix) = (rig.coord.clone(), rig.prefix.clone());
        tasks.spawn(async move {
            for n in (worker..count).step_by(16) {
                let lease = coord.grant_lease(Duration::from_secs(300)).await?;
                let id = ExecutorId::new(format!("scale-{n:05}"));
                let info = ExecutorInfo {
                    id: id.clone(),
                    lease: lease.0,
                    handlers: vec![HandlerName::new("noop")],
                    capacity: 1,
                    labels: Default::default(),
                    host: "bench".into(),
                    pid: std::process::id(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    started_at_ms: chrono::Utc::now().timestamp_millis(),
                    handler_capacity: Default::default(),
                    params_schemas: Default::default(),
                };
                coord
                    .put(
                        &keyspace::executor_key(&prefix, &id),
                        encode(&info)?,
                        Some(LeaseId(lease.0)),
                    )
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a registration task panicked")??;
    }
    Ok(())
}

/// Keys and bytes (key + value) under `prefixes` whose key passes `keep`.
async fn footprint(
    rig: &Rig,
    prefixes: &[String],
    keep: impl Fn(&str) -> bool,
) -> anyhow::Result<(usize, usize)> {
    let (mut keys, mut bytes) = (0, 0);
    for p in prefixes {
        let (kvs, _) = rig.coord.get_prefix(p).await?;
        let kvs: Vec<_> = kvs.into_iter().filter(|kv| keep(&kv.key)).collect();
        keys += kvs.len();
        bytes += kvs
            .iter()
            .map(|kv| kv.key.len() + kv.value.len())
            .sum::<usize>();
    }
    Ok((keys, bytes))
}
