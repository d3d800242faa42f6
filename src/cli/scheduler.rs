//! `nightshift scheduler`: one scheduler replica. Run several against the
//! same etcd and database; exactly one leads (etcd election) and the others
//! stand by to take over within the lease TTL of the leader's death.
//! SIGTERM and Ctrl-C resign leadership (a standby takes over at once) and
//! revoke the lease before exiting.

use super::conn::{until_reachable, DatabaseArgs, EtcdArgs};
use anyhow::Context as _;
use nightshift_core::duration::parse_duration;
use nightshift_scheduler::{run_scheduler, SchedulerConfig, SystemClock};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Flags of `nightshift scheduler`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Replica id, recorded as the actor of its events (default: {hostname}-{pid}).
    #[arg(long, env = "NIGHTSHIFT_SCHEDULER_ID", value_name = "ID")]
    pub id: Option<String>,
    /// Leadership lease TTL: how long after a leader's crash a standby takes over.
    #[arg(long, default_value = "10s", value_parser = duration, value_name = "DURATION")]
    pub lease_ttl: Duration,
    /// Longest time between two reconciliation passes when nothing changes.
    #[arg(long, default_value = "500ms", value_parser = duration, value_name = "DURATION")]
    pub tick: Duration,
    /// How late a schedule instant may be seen and still fire as on time
    /// (older ones are misfires, handled by the DAG's misfire policy).
    #[arg(long, default_value = "1s", value_parser = duration, value_name = "DURATION")]
    pub misfire_grace: Duration,
    /// How long the `store_unavailable` alert of a database outage stays
    /// open once the database is back (it can only be written then), so
    /// that the console's notifier sends it before it resolves.
    #[arg(long, default_value = "60s", value_parser = duration, value_name = "DURATION")]
    pub store_alert_linger: Duration,
    /// Serve Prometheus metrics (leader passes, commits, commands, attempts
    /// by outcome and duration) on this address, at `/metrics`.
    #[arg(long, env = "NIGHTSHIFT_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// Runs the replica until SIGTERM / Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let prefix = args.etcd.key_prefix()?;
        if let Some(addr) = args.metrics_listen {
            crate::cli::prometheus::serve(addr).await?;
        }
        let coord = until_reachable("etcd", || args.etcd.connect()).await?;
        let store = until_reachable("the database", || args.db.connect()).await?;
        let id = args
            .id
            .unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id()));
        let mut config = SchedulerConfig::new(id.clone(), prefix);
        config.lease_ttl = args.lease_ttl;
        config.tick = args.tick;
        config.misfire_grace = args.misfire_grace;
        config.store_alert_linger = args.store_alert_linger;
        test_settings(&mut config)?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("sigterm received: resigning"),
                _ = tokio::signal::ctrl_c() => tracing::info!("ctrl-c received: resigning"),
            }
            let _ = tx.send(true);
        });
        tracing::info!(id = %id, "scheduler replica starting");
        run_scheduler(coord, store, Arc::new(SystemClock), config, rx)
            .await
            .context("scheduler failed")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Test-only settings from the environment, for real-process tests of the
/// commit path: `NIGHTSHIFT_TEST_MAX_TXN_OPS` (ops per txn, so job starts
/// and passes need several txns) and `NIGHTSHIFT_TEST_EXIT_AFTER_STAGED_TXN`
/// (the process exits with this code after the first staged txn of a run
/// commit — a txn committed before the run record's, such as the first
/// part of a job start too large for one txn — i.e. between a start's
/// txns), `NIGHTSHIFT_TEST_EXIT_AFTER_LOGGED_HEAD` (the process exits
/// with this code right after the txn that commits a logged run commit's
/// head and marker, before its values are written in place), and
/// `NIGHTSHIFT_TEST_EXIT_BEFORE_RUN_REMOVED` / `..._AFTER_RUN_REMOVED`
/// (just before / after the commit removing an ended run's keys, its
/// history stored). All are logged when set.
fn test_settings(config: &mut nightshift_scheduler::leader::SchedulerConfig) -> anyhow::Result<()> {
    if let Ok(text) = std::env::var("NIGHTSHIFT_TEST_MAX_TXN_OPS") {
        let ops: usize = text
            .parse()
            .with_context(|| format!("NIGHTSHIFT_TEST_MAX_TXN_OPS={text}: not a number"))?;
        anyhow::ensure!(
            (2..=nightshift_scheduler::leader::MAX_OPS).contains(&ops),
            "NIGHTSHIFT_TEST_MAX_TXN_OPS={ops}: must be 2..={}",
            nightshift_scheduler::leader::MAX_OPS
        );
        tracing::warn!(ops, "test setting: at most {ops} ops per txn");
        config.max_txn_ops = ops;
    }
    if let Ok(text) = std::env::var("NIGHTSHIFT_TEST_EXIT_AFTER_STAGED_TXN") {
        let code: i32 = text.parse().with_context(|| {
            format!("NIGHTSHIFT_TEST_EXIT_AFTER_STAGED_TXN={text}: not an exit code")
        })?;
        tracing::warn!(
            code,
            "test setting: exiting after the first staged txn of a run commit"
        );
        config.test_hooks.after_staged_txn = Some(Arc::new(move || {
            tracing::warn!(code, "test hook: exiting between the txns of a job start");
            std::process::exit(code);
        }));
    }
    let hooks = &mut config.test_hooks;
    for (var, what, hook) in [
        (
            "NIGHTSHIFT_TEST_EXIT_AFTER_LOGGED_HEAD",
            "with a run commit logged, not yet applied",
            &mut hooks.after_logged_head,
        ),
        (
            "NIGHTSHIFT_TEST_EXIT_BEFORE_RUN_REMOVED",
            "with an ended run's history stored, its keys not yet removed",
            &mut hooks.before_run_removed,
        ),
        (
            "NIGHTSHIFT_TEST_EXIT_AFTER_RUN_REMOVED",
            "right after removing an ended run's keys",
            &mut hooks.after_run_removed,
        ),
    ] {
        if let Ok(text) = std::env::var(var) {
            let code: i32 = text
                .parse()
                .with_context(|| format!("{var}={text}: not an exit code"))?;
            tracing::warn!(code, "test setting: exiting {what}");
            *hook = Some(Arc::new(move || {
                tracing::warn!(code, "test hook: exiting {what}");
                std::process::exit(code);
            }));
        }
    }
    Ok(())
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "scheduler".to_owned())
}
