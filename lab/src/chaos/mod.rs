//! `nightshift chaos`: runs the finance demo on a real etcd (one member, or
//! a 3-member cluster with `--etcd-members 3`) and PostgreSQL with two
//! schedulers and several executor processes, injects faults for a bounded
//! time (SIGKILL and SIGSTOP of executors, SIGKILL of the leader, an etcd
//! restart — or, with a cluster, a follower member killed, the raft leader
//! member killed, a member partitioned, a member restarted — a database cut
//! and dropped connections, an executor cut off from etcd, etcd answers
//! swallowed then connections reset), heals everything, lets the work
//! finish, and then checks the history: every run and item terminal, no
//! overlapping attempts, every succeeded item recorded once, the ledger
//! reconciled, no alert open without a cause, and the steps of stubborn
//! items (which ignore cancellation) never interleaving between two owners.
//! Exit 0 when all hold; 3 with the evidence when not.
//!
//! The schedulers run with a small number of ops per etcd txn (the
//! test-only `NIGHTSHIFT_TEST_MAX_TXN_OPS`), so job starts and passes need
//! several txns and a fault can cut between them or leave one ambiguous.
//!
//! The fault plan comes from `--seed`, printed at the start, so a failing
//! run can be replayed.

mod check;
mod cluster;
mod plan;
pub mod proxy;
mod report;
mod workload;

use anyhow::Context as _;
use cluster::{Cluster, PgUrl, Shape};
use nightshift_core::duration::parse_duration;
use plan::{FaultKind, Step};
use report::{FaultRecord, Report};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Flags of `nightshift chaos`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long faults are injected.
    #[arg(long, default_value = "2m", value_parser = duration, value_name = "DURATION")]
    pub duration: Duration,
    /// PostgreSQL URL able to CREATE DATABASE; the run creates a fresh
    /// database there and drops it at the end (unless --keep). Default: the
    /// test suite's admin URL, $NIGHTSHIFT_TEST_PG_ADMIN_URL, else
    /// postgres://postgres@127.0.0.1:5432/postgres (what scripts/test and
    /// scripts/ensure-services set up).
    #[arg(long, env = "NIGHTSHIFT_CHAOS_PG_ADMIN_URL", value_name = "URL")]
    pub pg_admin_url: Option<String>,
    /// Executor processes.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub executors: usize,
    /// Lease TTL of executors and schedulers.
    #[arg(long, default_value = "2s", value_parser = duration, value_name = "DURATION")]
    pub lease_ttl: Duration,
    /// Seed of the fault plan (default: random, printed).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Demo accounts.
    #[arg(long, default_value_t = 2_000, value_name = "N")]
    pub accounts: i64,
    /// How long the work may take to finish once faults stop.
    #[arg(long, default_value = "3m", value_parser = duration, value_name = "DURATION")]
    pub settle: Duration,
    /// Keep the work dir (logs) and the database afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Also print the result as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
    /// etcd members: 1, or 3 or 5 for a cluster, each member behind its
    /// own proxy, which adds the member faults.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub etcd_members: usize,
    /// Keep injecting faults past --duration, a whole new round of the
    /// plan at a time, until at least N runs have succeeded while faults
    /// were injected (checked before each fault); fewer by
    /// --max-duration fails the run. So a slow machine gets more time
    /// instead of a thinner test.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub min_runs: usize,
    /// With --min-runs: no fault starts later than this after the first
    /// (default: three times --duration).
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub max_duration: Option<Duration>,
}

/// What a scheduler logs when a commit of a run failed or went unanswered
/// (it then reloads the run from etcd): counted in the report, as the
/// evidence that swallowed answers made commits ambiguous.
const UNANSWERED_COMMIT: &str = "a commit of the run failed or went unanswered";

/// Ops per etcd txn of the chaos schedulers: small, so that job starts and
/// passes take several txns.
const MAX_TXN_OPS: usize = 4;

/// The test suite's admin URL variable (testkit's `PG_ADMIN_URL_ENV`; the
/// CLI does not depend on the testkit).
const TEST_PG_ADMIN_URL_ENV: &str = "NIGHTSHIFT_TEST_PG_ADMIN_URL";
/// What scripts/ensure-services makes answer.
const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// Runs the chaos suite; Ctrl-C or SIGTERM stops it and everything it started.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !matches!(args.etcd_members, 1 | 3 | 5) {
        return Err(crate::BadInput(
            "--etcd-members must be 1, 3 or 5 (a cluster keeps a quorum with one member lost)"
                .to_owned(),
        )
        .into());
    }
    if args.executors < 2 {
        return Err(crate::BadInput(
            "--executors must be at least 2: failover needs somewhere to go".to_owned(),
        )
        .into());
    }
    let admin_url = args.pg_admin_url.clone().unwrap_or_else(|| {
        std::env::var(TEST_PG_ADMIN_URL_ENV).unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_owned())
    });
    let admin =
        PgUrl::parse(&admin_url).map_err(|e| crate::BadInput(format!("--pg-admin-url: {e}")))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let seed = args.seed.unwrap_or_else(rand::random);
        let dir = tempfile::Builder::new()
            .prefix("nightshift-chaos-")
            .tempdir()
            .context("creating the work dir")?;
        println!(
            "chaos: seed {seed}, {} of faults, {} executors, {} etcd member(s), logs in {}",
            humane(args.duration),
            args.executors,
            args.etcd_members,
            dir.path().display()
        );
        let shape = Shape {
            executors: args.executors,
            lease_ttl: args.lease_ttl,
            capacity: 4,
            etcd_members: args.etcd_members,
            max_txn_ops: MAX_TXN_OPS,
        };
        let mut cluster = Cluster::prepare(dir.path(), admin, &shape).await?;
        let outcome = tokio::select! {
            r = chaos(&mut cluster, &args, seed, dir.path()) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
            _ = term.recv() => Err(anyhow::anyhow!("terminated")),
        };
        // Stop every process before the database goes.
        for m in cluster.members() {
            m.kill();
        }
        let keep = args.keep || !matches!(&outcome, Ok(r) if r.passed());
        if keep {
            let kept = dir.keep();
            eprintln!(
                "chaos: kept logs in {} and database {}",
                kept.display(),
                cluster.db.direct.database()
            );
        } else if let Err(e) = cluster.db.drop_database().await {
            eprintln!(
                "chaos: could not drop database {}: {e:#}",
                cluster.db.direct.database()
            );
        }
        let report = outcome?;
        print!("{}", report.table());
        if args.json {
            println!("{}", report.to_json());
        }
        Ok(if report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        })
    })
}

fn humane(d: Duration) -> String {
    nightshift_core::duration::format_duration(d)
}

/// Sets up the work, injects the plan, heals, settles and checks.
async fn chaos(
    cluster: &mut Cluster,
    args: &Args,
    seed: u64,
    dir: &std::path::Path,
) -> anyhow::Result<Report> {
    let store = nightshift_store::Store::connect(&cluster.db.direct.secret_url())
        .await
        .context("opening the chaos database")?;
    let demo = nightshift_demo::DemoDb::connect(&cluster.db.direct.secret_url())
        .await
        .context("opening the demo ledger")?;
    nightshift_demo::seed(&demo, args.accounts)
        .await
        .context("seeding the demo ledger")?;
    let dag_file = dir.join(format!("{}.toml", workload::DAG));
    std::fs::write(&dag_file, workload::DAG_TOML).context("writing the chaos DAG")?;
    let validated = nightshift_core::dag::load_dags(std::slice::from_ref(&dag_file));
    if validated.has_errors() {
        let rendered: Vec<String> = validated.diagnostics.iter().map(|d| d.render()).collect();
        anyhow::bail!("the chaos DAG does not validate:\n{}", rendered.join("\n"));
    }
    apply_dag(cluster, &dag_file, dir).await?;
    for m in cluster.members() {
        m.start()?;
    }
    wait_for(
        "executors to register and a scheduler to lead",
        Duration::from_secs(60),
        || async {
            Ok(cluster.registered_executors().await? == args.executors
                && cluster.leader().await?.is_some())
        },
    )
    .await?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (succeeded_tx, succeeded) = tokio::sync::watch::channel(0usize);
    let work = tokio::spawn(workload::drive(
        cluster.coord.clone(),
        store.clone(),
        cluster.prefix.clone(),
        stop_rx,
        succeeded_tx,
    ));
    let target = plan::Target {
        executors: args.executors,
        members: args.etcd_members,
        lease_ttl: args.lease_ttl,
    };
    let last_start = args.max_duration.unwrap_or(args.duration * 3);
    let enough = || *succeeded.borrow() >= args.min_runs;
    let started = Instant::now();
    let mut faults = Vec::new();
    let mut crashes = Crashes::default();
    // Round 0 is the plan of --duration, always injected whole; later
    // rounds only while --min-runs is not reached, each fault checked
    // before it starts.
    let mut round = 0;
    'rounds: loop {
        for step in plan::round(seed, round, args.duration, target) {
            if round > 0 && (enough() || step.at > last_start) {
                break 'rounds;
            }
            watch_until(cluster, started + step.at, &mut crashes).await?;
            let (record, healing) = inject(cluster, &step, started).await;
            println!(
                "chaos: {:>7.1}s  {:<22} {}",
                record.at_ms as f64 / 1000.0,
                record.kind,
                record.detail
            );
            faults.push(record);
            watch_until(cluster, Instant::now() + step.hold, &mut crashes).await?;
            if let Some(healing) = healing {
                heal(cluster, healing).await?;
            }
        }
        if round == 0 {
            watch_until(cluster, started + args.duration, &mut crashes).await?;
        }
        if enough() || args.duration * (round + 1) >= last_start || args.duration.is_zero() {
            break;
        }
        round += 1;
        println!(
            "chaos: {} of {} runs succeeded so far; another round of faults",
            *succeeded.borrow(),
            args.min_runs
        );
    }
    let fault_time = started.elapsed();
    let under_fire = *succeeded.borrow();
    println!(
        "chaos: faults over after {:.1}s ({under_fire} runs succeeded under fire); letting the work finish",
        fault_time.as_secs_f64()
    );

    stop_tx.send_replace(true);
    let triggered = match tokio::time::timeout(args.settle, work).await {
        Ok(joined) => joined.context("the workload task failed")?,
        Err(_) => anyhow::bail!(
            "the last run did not end within --settle {}",
            humane(args.settle)
        ),
    };
    // A run stuck in etcd is reported by the checks below (not terminal),
    // with the rest of the evidence, rather than ending the suite here.
    if let Err(e) = wait_for(
        "the live run keys to be cleared from etcd",
        Duration::from_secs(60),
        || async { Ok(cluster.live_run_keys().await? == 0) },
    )
    .await
    {
        println!("chaos: {e:#}");
    }
    // Run history is final once the runs' keys are gone (it is stored
    // first); alerts resolve through the leader's outbox just after, so
    // only they are read again while they settle.
    let histories = report::read_histories(&store).await?;
    let mut alerts = report::read_alerts(&store).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check::no_alert_without_cause(&alerts, &histories).is_empty()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
        alerts = report::read_alerts(&store).await?;
    }
    let journal = dir
        .join(cluster::JOURNAL_DIR)
        .join(workload::STUBBORN_JOURNAL);
    let steps = nightshift_executor::builtin::journal::read(&journal)
        .with_context(|| format!("reading {}", journal.display()))?;
    let mut report = Report::gather(
        &demo,
        histories,
        &alerts,
        &triggered,
        faults,
        crashes.evidence(),
        &steps,
        seed,
        fault_time,
    )
    .await?;
    report.require_runs_under_fire(args.min_runs, under_fire);
    report.restarts = cluster
        .members()
        .map(|m| (m.name.clone(), m.restarts()))
        .collect();
    report.unanswered_commits = cluster
        .schedulers
        .iter()
        .map(|m| m.log_lines_with(UNANSWERED_COMMIT))
        .sum();
    Ok(report)
}

/// Processes that exited without being told to: how often, and the
/// evidence of the first time (later exits usually repeat it).
#[derive(Default)]
struct Crashes(std::collections::BTreeMap<String, (u32, String)>);

impl Crashes {
    fn record(&mut self, process: &str, evidence: impl FnOnce() -> String) {
        let entry = self
            .0
            .entry(process.to_owned())
            .or_insert_with(|| (0, evidence()));
        entry.0 += 1;
    }

    fn evidence(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(process, (n, first))| {
                format!("{process} exited on its own {n} time(s); the first: {first}")
            })
            .collect()
    }
}

/// Waits until `until`, restarting (and recording) any process that exited
/// without being told to: that is a violation, and the run goes on.
async fn watch_until(
    cluster: &mut Cluster,
    until: Instant,
    crashes: &mut Crashes,
) -> anyhow::Result<()> {
    loop {
        for m in cluster.members() {
            if let Some(status) = m.exited_on_its_own() {
                crashes.record(&m.name, || {
                    format!("{status}; its last log lines:\n{}", m.log_tail(12))
                });
                m.start()?;
            }
        }
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        tokio::time::sleep((until - now).min(Duration::from_millis(100))).await;
    }
}

/// How to undo an injected fault.
enum Healing {
    /// Start executor *i* again.
    StartExecutor(usize),
    /// SIGCONT executor *i*.
    ContinueExecutor(usize),
    /// Let executor *i*'s etcd traffic through again.
    ReconnectExecutor(usize),
    /// Start every scheduler that is down.
    StartSchedulers,
    /// Reset the named processes' etcd connections (their swallowed
    /// requests end in an error), then let their traffic through again.
    ResetLinks(Vec<String>),
    /// Start etcd member *i* again on its data.
    RestartMember(usize),
    /// Let clients reach etcd member *i* again.
    RestoreMember(usize),
    /// Let the database connections through again.
    RestoreDatabase,
}

async fn inject(
    cluster: &mut Cluster,
    step: &Step,
    started: Instant,
) -> (FaultRecord, Option<Healing>) {
    let at_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut stubborn = false;
    let result: anyhow::Result<(String, Option<Healing>)> = async {
        match step.kind {
            FaultKind::KillExecutor => {
                let i = planned_executor(cluster, step)?;
                let m = &mut cluster.executors[i];
                m.kill();
                Ok((
                    format!("SIGKILL {}; restart in {}", m.name, humane(step.hold)),
                    Some(Healing::StartExecutor(i)),
                ))
            }
            FaultKind::StopExecutor => {
                let (i, caught) = stubborn_target(cluster, step).await?;
                stubborn = caught;
                let m = &mut cluster.executors[i];
                m.pause(true)?;
                Ok((
                    format!(
                        "SIGSTOP {} for {}{}",
                        m.name,
                        humane(step.hold),
                        stubborn_note(caught)
                    ),
                    Some(Healing::ContinueExecutor(i)),
                ))
            }
            FaultKind::PartitionExecutor => {
                let (i, caught) = stubborn_target(cluster, step).await?;
                stubborn = caught;
                let m = &cluster.executors[i];
                m.cut_off();
                Ok((
                    format!(
                        "{} cut off from etcd for {}{}",
                        m.name,
                        humane(step.hold),
                        stubborn_note(caught)
                    ),
                    Some(Healing::ReconnectExecutor(i)),
                ))
            }
            FaultKind::KillLeader => {
                let leader = current_leader(cluster).await?;
                let m = cluster
                    .schedulers
                    .iter_mut()
                    .find(|m| m.name == leader)
                    .with_context(|| format!("leader {leader} is not ours"))?;
                m.kill();
                Ok((
                    format!("SIGKILL leader {leader}; restart in {}", humane(step.hold)),
                    Some(Healing::StartSchedulers),
                ))
            }
            FaultKind::RestartEtcd => {
                cluster.etcd[0].kill();
                Ok((
                    format!("SIGKILL etcd; restart in {}", humane(step.hold)),
                    Some(Healing::RestartMember(0)),
                ))
            }
            FaultKind::CutDatabase => {
                cluster.pg_proxy.cut();
                Ok((
                    format!(
                        "every connection to PostgreSQL dropped and refused for {}",
                        humane(step.hold)
                    ),
                    Some(Healing::RestoreDatabase),
                ))
            }
            FaultKind::DropDbConnections => {
                let n = cluster.db.drop_connections().await?;
                Ok((format!("pg_terminate_backend on {n} connection(s)"), None))
            }
            FaultKind::SwallowResponses => {
                let names: Vec<String> = if step.everyone {
                    cluster.members().map(|m| m.name.clone()).collect()
                } else {
                    vec![current_leader(cluster).await?]
                };
                for m in cluster.members().filter(|m| names.contains(&m.name)) {
                    m.swallow();
                }
                let whom = if step.everyone {
                    "every process".to_owned()
                } else {
                    format!("leader {}", names.join(""))
                };
                Ok((
                    format!(
                        "etcd answers to {whom} swallowed for {}, then connections reset",
                        humane(step.hold)
                    ),
                    Some(Healing::ResetLinks(names)),
                ))
            }
            FaultKind::KillEtcdFollower | FaultKind::KillEtcdLeader => {
                let leader = etcd_leader(cluster).await?;
                let i = if step.kind == FaultKind::KillEtcdLeader {
                    leader
                } else {
                    let followers: Vec<usize> = (0..cluster.etcd.len())
                        .filter(|&i| i != leader && cluster.etcd[i].is_up())
                        .collect();
                    anyhow::ensure!(!followers.is_empty(), "no follower member is up");
                    followers[step.member.unwrap_or(0) % followers.len()]
                };
                let member = &mut cluster.etcd[i];
                member.kill();
                let role = if i == leader {
                    "raft leader"
                } else {
                    "follower"
                };
                Ok((
                    format!(
                        "SIGKILL etcd member {} ({role}); restart on its data in {}",
                        member.name(),
                        humane(step.hold)
                    ),
                    Some(Healing::RestartMember(i)),
                ))
            }
            FaultKind::PartitionEtcdMember => {
                let i = planned_member(cluster, step)?;
                cluster
                    .member_proxies
                    .get(i)
                    .context("the member has no proxy")?
                    .cut();
                Ok((
                    format!(
                        "etcd member {} cut off from every client for {}",
                        cluster.etcd[i].name(),
                        humane(step.hold)
                    ),
                    Some(Healing::RestoreMember(i)),
                ))
            }
            FaultKind::RestartEtcdMember => {
                let i = planned_member(cluster, step)?;
                cluster.etcd[i].kill();
                Ok((
                    format!(
                        "SIGKILL etcd member {}; restart on its data in {}",
                        cluster.etcd[i].name(),
                        humane(step.hold)
                    ),
                    Some(Healing::RestartMember(i)),
                ))
            }
        }
    }
    .await;
    match result {
        Ok((detail, healing)) => (
            FaultRecord {
                at_ms,
                kind: step.kind,
                detail,
                injected: true,
                stubborn,
            },
            healing,
        ),
        Err(e) => (
            FaultRecord {
                at_ms,
                kind: step.kind,
                detail: format!("not injected: {e:#}"),
                injected: false,
                stubborn: false,
            },
            None,
        ),
    }
}

async fn heal(cluster: &mut Cluster, healing: Healing) -> anyhow::Result<()> {
    match healing {
        Healing::StartExecutor(i) => cluster.executors[i].start()?,
        Healing::ContinueExecutor(i) => cluster.executors[i].pause(false)?,
        Healing::ReconnectExecutor(i) => cluster.executors[i].reconnect(),
        Healing::StartSchedulers => {
            for m in cluster.schedulers.iter_mut().filter(|m| !m.is_up()) {
                m.start()?;
            }
        }
        Healing::ResetLinks(names) => {
            for m in cluster.members().filter(|m| names.contains(&m.name)) {
                m.cut_off();
                m.reconnect();
            }
        }
        Healing::RestartMember(i) => cluster.etcd[i].restart().await?,
        Healing::RestoreMember(i) => {
            if let Some(p) = cluster.member_proxies.get(i) {
                p.restore();
            }
        }
        Healing::RestoreDatabase => cluster.pg_proxy.restore(),
    }
    Ok(())
}

/// The leading scheduler's id. Right after another fault (an etcd
/// restart) the schedulers may still be campaigning, and right after a
/// member restart this run's own etcd client may fail a read on its way
/// back to that member: waits (up to 20 s) for a read that names a leader.
async fn current_leader(cluster: &Cluster) -> anyhow::Result<String> {
    let limit = Duration::from_secs(20);
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    loop {
        match cluster.leader().await {
            Ok(Some(leader)) => return Ok(leader),
            Ok(None) => {}
            Err(e) => last = format!(" (last error: {e:#})"),
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "timed out after {} waiting for a scheduler to lead{last}",
                humane(limit)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The etcd member that is the raft leader, waiting for an election.
async fn etcd_leader(cluster: &Cluster) -> anyhow::Result<usize> {
    wait_for(
        "an etcd member to lead",
        Duration::from_secs(20),
        || async { Ok(cluster.etcd_leader().await.is_some()) },
    )
    .await?;
    cluster.etcd_leader().await.context("no etcd member leads")
}

fn planned_executor(cluster: &Cluster, step: &Step) -> anyhow::Result<usize> {
    let i = step.executor.context("executor fault without a target")?;
    anyhow::ensure!(i < cluster.executors.len(), "no executor {i}");
    Ok(i)
}

fn planned_member(cluster: &Cluster, step: &Step) -> anyhow::Result<usize> {
    let i = step.member.context("member fault without a target")?;
    anyhow::ensure!(i < cluster.etcd.len(), "no etcd member {i}");
    Ok(i)
}

/// The executor a SIGSTOP or a partition hits: the planned one if it runs
/// a stubborn item, else one that does (chosen by the plan's index), else
/// the planned one; and whether it runs a stubborn item.
async fn stubborn_target(cluster: &Cluster, step: &Step) -> anyhow::Result<(usize, bool)> {
    let planned = planned_executor(cluster, step)?;
    // Stubborn items run most of the time (every run starts with them);
    // between two runs, wait a little for the next run's. An unreadable
    // etcd (another fault just healed) only loses the preference: the
    // planned executor is hit anyway.
    let deadline = Instant::now() + STUBBORN_WAIT;
    let holders = loop {
        let holders = cluster
            .stubborn_holders(workload::STUBBORN_JOB)
            .await
            .unwrap_or_default();
        if !holders.is_empty() || Instant::now() >= deadline {
            break holders;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let holding: Vec<usize> = cluster
        .executors
        .iter()
        .enumerate()
        .filter(|(_, m)| holders.contains(&m.name))
        .map(|(i, _)| i)
        .collect();
    Ok(if holding.contains(&planned) {
        (planned, true)
    } else if holding.is_empty() {
        (planned, false)
    } else {
        (holding[planned % holding.len()], true)
    })
}

/// How long a SIGSTOP or a partition waits for an executor to run a
/// stubborn item before it hits the planned one anyway.
const STUBBORN_WAIT: Duration = Duration::from_secs(3);

fn stubborn_note(caught: bool) -> &'static str {
    if caught {
        " (it runs stubborn items)"
    } else {
        ""
    }
}

/// Polls `ready` until it says yes (errors count as "not yet"), or fails
/// after `limit` naming what it waited for.
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut ready: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    loop {
        match ready().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last = format!(" (last error: {e:#})"),
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {} waiting for {what}{last}", humane(limit));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Applies the chaos DAG as an operator would: `nightshift apply`, a child
/// of this same binary, so the lab needs nothing of the CLI's internals.
async fn apply_dag(
    cluster: &Cluster,
    dag_file: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the nightshift binary")?;
    let log = dir.join("apply.log");
    let stderr =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let status = tokio::process::Command::new(exe)
        .arg("apply")
        .arg("--etcd")
        .arg(cluster.endpoints())
        .arg("--prefix")
        .arg(&cluster.prefix)
        .arg(dag_file)
        // Kept off the command line like any database URL.
        .env("NIGHTSHIFT_DATABASE_URL", cluster.db.direct.secret_url())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(stderr))
        .status()
        .await
        .context("running nightshift apply")?;
    if !status.success() {
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        anyhow::bail!("nightshift apply of the chaos DAG failed ({status}):\n{output}");
    }
    Ok(())
}
