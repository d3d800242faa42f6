//! `bench failover`: an executor *process* holding items is SIGKILLed, then
//! (in a second run) another is SIGTERMed; the time from the signal until
//! every item it held is assigned to the surviving executor, and until the
//! survivor has started them. Items are `sleep` items of 10 minutes, so
//! nothing finishes during the measurement and every held item must move.

use super::fleet::Fleet;
use super::process::NightshiftChild;
use super::report::{round3, Report};
use super::rig::{Deadline, Rig};
use anyhow::{bail, Context as _};
use nightshift_core::duration::parse_duration;
use nightshift_core::ids::{ExecutorId, RunId};
use nightshift_core::keyspace::{self, decode, AssignmentRecord, ItemSet};
use std::time::{Duration, Instant};

/// Flags of `bench failover`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lease TTL of the executor that gets killed.
    #[arg(long, default_value = "2s", value_parser = duration, value_name = "DURATION")]
    pub lease_ttl: Duration,
    /// Items of the job (split between the victim and the survivor).
    #[arg(long, default_value_t = 8)]
    pub items: u32,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// One measured move.
struct Moved {
    items: u64,
    reassigned: Duration,
    started: Duration,
}

/// Runs the scenario.
pub async fn run(rig: &Rig, args: &Args, raw_window: Duration) -> anyhow::Result<Report> {
    if args.items < 2 {
        bail!("need --items ≥ 2 (the victim and the survivor each get some)");
    }
    let raw = rig.raw_put_rate(raw_window).await?;
    let mut scheduler = rig.scheduler().await?;
    let survivor = Fleet::start(rig, "survivor", 1, Some(args.items * 2)).await?;
    let kill = one_round(rig, args, &survivor, "kill", libc::SIGKILL).await?;
    scheduler.ensure_running()?;
    let term = one_round(rig, args, &survivor, "term", libc::SIGTERM).await?;
    survivor.stop().await?;

    let ttl = args.lease_ttl.as_secs_f64();
    let mut r = Report::new("failover");
    r.figure("lease_ttl_s", round3(ttl), "s");
    r.figure(
        "raw_etcd_puts_per_s",
        round3(raw),
        "puts/s (sequential, same etcd)",
    );
    r.figure("sigkill_items_moved", kill.items, "");
    r.figure(
        "sigkill_reassigned_s",
        round3(kill.reassigned.as_secs_f64()),
        "s (SIGKILL → survivor owns every item)",
    );
    r.figure(
        "sigkill_started_s",
        round3(kill.started.as_secs_f64()),
        "s (SIGKILL → survivor started them)",
    );
    r.figure("sigterm_items_moved", term.items, "");
    r.figure(
        "sigterm_reassigned_s",
        round3(term.reassigned.as_secs_f64()),
        "s (SIGTERM → survivor owns every item)",
    );
    r.figure(
        "sigterm_started_s",
        round3(term.started.as_secs_f64()),
        "s (SIGTERM → survivor started them)",
    );
    let k = kill.started.as_secs_f64();
    let t = term.started.as_secs_f64();
    r.target(
        "SIGKILL → running elsewhere",
        format!("≤ TTL + 0.5 s = {:.1} s", ttl + 0.5),
        format!("{k:.2} s"),
        k <= ttl + 0.5,
    );
    r.target(
        "SIGTERM → running elsewhere",
        "≤ 0.5 s",
        format!("{t:.2} s"),
        t <= 0.5,
    );
    Ok(r)
}

/// Applies a DAG for this round, starts the victim process, runs the DAG,
/// signals the victim once it holds items and times the move.
async fn one_round(
    rig: &Rig,
    args: &Args,
    survivor: &Fleet,
    name: &str,
    signal: libc::c_int,
) -> anyhow::Result<Moved> {
    let dag = format!("bench-failover-{name}");
    let toml = format!(
        "description = \"nightshift bench failover\"\ntimezone = \"UTC\"\n\n[jobs.work]\nhandler = \"sleep\"\nshards = {}\nparams = {{ millis = 600000 }}\n",
        args.items
    );
    rig.apply(&dag, &toml)?;
    let victim_id = format!("victim-{name}");
    let mut argv = vec!["executor".to_owned()];
    argv.extend(rig.etcd_args());
    let ttl = format!("{}ms", args.lease_ttl.as_millis());
    let capacity = (args.items * 2).to_string();
    for a in [
        "--handlers",
        "sleep",
        "--id",
        &victim_id,
        "--lease-ttl",
        &ttl,
        "--capacity",
        &capacity,
        "--drain-grace",
        "0s",
    ] {
        argv.push(a.to_owned());
    }
    let mut victim = NightshiftChild::spawn(
        "executor",
        &argv,
        &rig.dir.path().join(format!("{victim_id}.log")),
    )?;
    let victim_key = keyspace::executor_key(&rig.prefix, &ExecutorId::new(victim_id.as_str()));
    let deadline = Deadline::new("the victim to register", Duration::from_secs(30));
    loop {
        victim.ensure_running()?;
        if rig.coord.get(&victim_key).await?.is_some() {
            break;
        }
        deadline.tick().await?;
    }

    let base = survivor.items_started();
    let run = rig.trigger(&dag).await?;
    let deadline = Deadline::new("the victim to hold items", Duration::from_secs(60));
    let held = loop {
        let owners = assignments(rig, &run).await?;
        let total: u64 = owners.iter().map(|(_, s)| s.len()).sum();
        let held = owners
            .into_iter()
            .find(|(id, _)| *id == victim_id)
            .map(|(_, s)| s)
            .unwrap_or_default();
        if total == u64::from(args.items) && !held.is_empty() {
            break held;
        }
        deadline
            .tick()
            .await
            .with_context(|| format!("round {name}"))?;
    };
    // The victim's own start count is not visible from here: wait until
    // the survivor has started its share (same watch path) instead.
    let share = u64::from(args.items) - held.len();
    let deadline = Deadline::new("the survivor to start its share", Duration::from_secs(30));
    while survivor.items_started() < base + share {
        deadline.tick().await?;
    }
    let started_before = survivor.items_started();

    let t0 = Instant::now();
    victim.signal(signal)?;
    let mut reassigned = None;
    let deadline = Deadline::new("the victim's items to move", Duration::from_secs(120));
    loop {
        if reassigned.is_none() {
            let owners = assignments(rig, &run).await?;
            let survivor_set = owners
                .iter()
                .find(|(id, _)| id.starts_with("survivor-"))
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            if held.difference(&survivor_set).is_empty() {
                reassigned = Some(t0.elapsed());
            }
        }
        if reassigned.is_some() && survivor.items_started() >= started_before + held.len() {
            break;
        }
        deadline.tick().await?;
    }
    let started = t0.elapsed();
    Ok(Moved {
        items: held.len(),
        reassigned: reassigned.unwrap_or(started),
        started,
    })
}

/// Every executor's assigned items of the run's `work` job.
async fn assignments(rig: &Rig, run: &RunId) -> anyhow::Result<Vec<(String, ItemSet)>> {
    let (kvs, _) = rig
        .coord
        .get_prefix(&keyspace::owners_prefix(&rig.prefix))
        .await?;
    let mut out = Vec::new();
    for kv in kvs {
        let Some((r, job, exec)) = keyspace::parse_assign_key(&rig.prefix, &kv.key) else {
            continue;
        };
        if &r == run && job.as_str() == "work" {
            out.push((
                exec.to_string(),
                decode::<AssignmentRecord>(&kv.value)?.items,
            ));
        }
    }
    Ok(out)
}
