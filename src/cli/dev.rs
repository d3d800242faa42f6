//! `nightshift dev`: everything in one process, nothing to install — the
//! in-process coordination backend (or a real etcd with `--etcd`), an SQLite
//! file in `./.nightshift/` (or `--database`), the scheduler, the console,
//! and `--executors` embedded executors serving the finance demo's handlers
//! plus the built-in `noop` and `sleep`.
//!
//! At start it applies `--dags`, seeds the demo ledger when it is empty,
//! prints the console URL and an operator token, and with `--run-now DAG`
//! triggers a run. It re-applies the DAG folder when a file changes (mtimes
//! polled every second). Ctrl-C / SIGTERM stop the executors, the scheduler
//! and the console; after a crash the next start resumes from the snapshot
//! written after every coordination write (see [`snapshot`]).
//!
//! It is a development tool: one SQLite writer, one token printed on the
//! terminal. Production runs the pieces separately (see the README).

mod snapshot;

use crate::cli::apply::apply_one;
use crate::cli::conn::{DatabaseArgs, EtcdArgs};
use crate::cli::follow::{follow_run, RunEnd};
use crate::cli::issue::issue;
use crate::cli::logging::{self, DevLog};
use anyhow::Context as _;
use nightshift_console::{AppState, AuthConfig};
use nightshift_coord::memory::MemoryCoordinator;
use nightshift_coord::Coordinator;
use nightshift_core::dag::load_dags;
use nightshift_core::ids::DagName;
use nightshift_core::keyspace::commands::trigger_run_id;
use nightshift_core::keyspace::Command;
use nightshift_core::state::TriggerSource;
use nightshift_demo::DemoDb;
use nightshift_executor::builtin::{Noop, Sleep};
use nightshift_executor::Executor;
use nightshift_scheduler::{run_scheduler, SchedulerConfig, SystemClock};
use nightshift_store::Store;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// Flags of `nightshift dev`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database URL (default: an SQLite file in the state directory).
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Where dev keeps its SQLite file and coordination snapshot.
    #[arg(long, default_value = ".nightshift", value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Console address.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Number of embedded executors.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub executors: u32,
    /// Items each executor runs at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub capacity: u32,
    /// DAG folder applied at start and re-applied when its files change.
    #[arg(long, default_value = "dags", value_name = "DIR")]
    pub dags: PathBuf,
    /// Demo accounts to seed when the demo ledger is empty.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub accounts: i64,
    /// Trigger a run of this DAG as soon as everything is up.
    #[arg(long, value_name = "DAG")]
    pub run_now: Option<String>,
    /// File holding the console's operator token (default: a fresh random
    /// one, printed). Or set NIGHTSHIFT_OPERATOR_TOKEN.
    #[arg(long, env = "NIGHTSHIFT_OPERATOR_TOKEN_FILE", value_name = "FILE")]
    pub operator_token_file: Option<PathBuf>,
    /// The operator token (deprecated: visible in `ps`; `--token` is its
    /// old name).
    #[arg(
        long,
        alias = "token",
        value_name = "TOKEN",
        conflicts_with = "operator_token_file"
    )]
    pub operator_token: Option<crate::cli::tokens::Secret>,
    /// Show the log on the terminal too, with this filter (e.g. `info`,
    /// `debug,sqlx=warn`); `RUST_LOG` does the same. Without either, the
    /// log goes only to `nightshift.log` in the state directory.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// Runs `nightshift dev` until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating {}", args.state_dir.display()))?;
    let log_file = args.state_dir.join("nightshift.log");
    let rust_log = std::env::var("RUST_LOG").ok();
    logging::init_dev(
        &log_file,
        &DevLog::choose(args.log_level.as_deref(), rust_log.as_deref()),
    )
    .with_context(|| format!("opening the log {}", log_file.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(dev(args, log_file))
}

async fn dev(args: Args, log_file: PathBuf) -> anyhow::Result<ExitCode> {
    let mut notes = Vec::new();
    let database = args.database.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            args.state_dir.join("nightshift.db").display()
        )
    });
    let prefix = args.etcd.key_prefix()?;
    let (coord, snapshot_path): (Arc<dyn Coordinator>, Option<PathBuf>) = if args
        .etcd
        .is_configured()
    {
        (args.etcd.connect().await?, None)
    } else {
        let memory = MemoryCoordinator::new();
        let path = args.state_dir.join("coordination.json");
        let restored = snapshot::restore(&memory, &path).await?;
        if restored > 0 {
            tracing::info!(keys = restored, path = %path.display(), "coordination keys restored");
            notes.push(format!(
                "resumed: {restored} coordination keys restored from {}",
                path.display()
            ));
        }
        let persisted = snapshot::Persisted::new(Arc::new(memory), path.clone(), prefix.clone());
        (Arc::new(persisted), Some(path))
    };
    let store = DatabaseArgs {
        database: database.clone(),
    }
    .connect()
    .await?;
    let demo = Arc::new(
        DemoDb::connect(&database)
            .await
            .context("opening the demo ledger")?,
    );
    demo.ensure_schema()
        .await
        .context("creating the demo tables")?;
    if demo.account_count().await? == 0 {
        let report = nightshift_demo::seed(&demo, args.accounts)
            .await
            .context("seeding the demo")?;
        tracing::info!(
            accounts = report.accounts,
            loans = report.loans,
            installments = report.installments,
            "demo seeded"
        );
    }
    let mut dag_mtimes = mtimes(&args.dags);
    apply_folder(coord.as_ref(), &store, &prefix, &args.dags).await;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut config = SchedulerConfig::new(
        format!("dev-scheduler-{}", std::process::id()),
        prefix.clone(),
    );
    config.tick = Duration::from_millis(250);
    // The scheduler's future is not `Send`, so it runs on this task,
    // polled by the main loop below, instead of being spawned.
    let scheduler = run_scheduler(
        coord.clone(),
        store.clone(),
        Arc::new(SystemClock),
        config,
        stop_rx.clone(),
    );
    tokio::pin!(scheduler);
    let mut scheduler_done = false;
    for i in 0..args.executors {
        let id = if snapshot_path.is_some() {
            format!("dev-{i}")
        } else {
            format!("dev-{i}-{}", std::process::id())
        };
        let builder = Executor::builder()
            .coordinator(coord.clone())
            .prefix(prefix.clone())
            .id(id)
            .capacity(args.capacity)
            .label("mode", "dev")
            .handler("noop", Noop)
            .handler("sleep", Sleep)
            .program(
                nightshift_demo::report::SETTLEMENT_REPORT,
                nightshift_demo::report::settlement_report(&args.state_dir, &database)
                    .context("installing the settlement-report script")?,
            );
        let executor = nightshift_demo::register(builder, demo.clone()).build()?;
        let rx = stop_rx.clone();
        tasks.spawn(async move {
            if let Err(e) = executor.run_until(stopped(rx)).await {
                tracing::error!(error = %e, "executor stopped");
            }
        });
    }
    let token = crate::cli::tokens::load(
        "operator-token",
        args.operator_token.as_ref(),
        args.operator_token_file.as_deref(),
        crate::cli::tokens::OPERATOR_TOKEN_ENV,
        |name| std::env::var(name).ok(),
    )?
    .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    let auth =
        AuthConfig::operators([("operator", token.clone())]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr().unwrap_or(args.listen);
    {
        let mut state = AppState::new(store.clone(), coord.clone(), &prefix, auth);
        // One process: the console's /metrics shows the scheduler's and the
        // executors' metrics too.
        let process = crate::cli::prometheus::handle()?;
        state.process_metrics = Some(Arc::new(move || process.render()));
        let rx = stop_rx.clone();
        tasks.spawn(async move {
            if let Err(e) = nightshift_console::serve(listener, state, stopped(rx)).await {
                tracing::error!(error = %e, "console stopped");
            }
        });
    }
    let console = format!("http://{addr}");
    let stop_hint = if snapshot_path.is_some() {
        "Ctrl-C (the next start resumes where this one stopped)"
    } else {
        "Ctrl-C"
    };
    let mut banner = vec![
        format!(
            "nightshift dev: {} executors, database {}",
            args.executors,
            // a --database URL may carry a password: never print it
            if args.database.is_some() {
                "from --database"
            } else {
                database.as_str()
            }
        ),
        format!("console: {console}/"),
        format!("token:   {token}"),
        format!("api:     curl -H 'Authorization: Bearer {token}' {console}/api/v1/runs"),
        format!(
            "log:     {}  (--log-level info or RUST_LOG shows it here)",
            log_file.display()
        ),
        format!("stop:    {stop_hint}"),
    ];
    banner.extend(notes);
    println!("{}", banner.join("\n"));
    if let Some(dag) = &args.run_now {
        let dag_name = DagName::new(dag.as_str());
        let command = Command::Trigger {
            dag: dag_name.clone(),
            business_date: None,
            params: None,
            rerun: true,
            source: TriggerSource::Manual,
        };
        let id = issue(coord.as_ref(), &prefix, command).await?;
        tracing::info!(dag = %dag, command = %id, "run requested");
        let run = trigger_run_id(&dag_name, &id);
        let (store, console, stop) = (store.clone(), console.clone(), stop_rx.clone());
        tasks.spawn(async move {
            let print = |line: &str| println!("{line}");
            let end = follow_run(&store, &dag_name, &id, &run, Some(&console), stop, print).await;
            if let RunEnd::Rejected(reason) = end {
                println!("trigger of {dag_name} {reason}");
            }
        });
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut reload = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => { eprintln!("ctrl-c: stopping"); break; }
            _ = term.recv() => { eprintln!("sigterm: stopping"); break; }
            result = &mut scheduler, if !scheduler_done => {
                scheduler_done = true;
                if let Err(e) = result {
                    eprintln!("error: the scheduler stopped: {e:#}");
                    break;
                }
            }
            _ = reload.tick() => {
                let now = mtimes(&args.dags);
                if now != dag_mtimes {
                    dag_mtimes = now;
                    eprintln!("{} changed: applying it again", args.dags.display());
                    apply_folder(coord.as_ref(), &store, &prefix, &args.dags).await;
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(40), async {
        if !scheduler_done {
            if let Err(e) = (&mut scheduler).await {
                tracing::warn!(error = %e, "scheduler stopped with an error");
            }
        }
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        eprintln!("some tasks did not stop within 40 s");
    }
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves when the stop flag is raised.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Modification times of the files under `dir` (one level, plus calendars).
fn mtimes(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let mut out = BTreeMap::new();
    for folder in [dir.to_path_buf(), dir.join("calendars")] {
        if let Ok(entries) = std::fs::read_dir(&folder) {
            for entry in entries.flatten() {
                if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                    out.insert(entry.path(), modified);
                }
            }
        }
    }
    out
}

/// Validates and applies every DAG of `dir`; problems are printed, never fatal.
async fn apply_folder(coord: &dyn Coordinator, store: &Store, prefix: &str, dir: &Path) {
    let paths = [dir.to_path_buf()];
    let report = load_dags(&paths);
    if report.has_errors() {
        for d in &report.diagnostics {
            eprintln!("{}", d.render());
        }
        eprintln!(
            "{} error(s) in {}: nothing applied",
            report.error_count(),
            dir.display()
        );
        return;
    }
    for dag in &report.dags {
        match apply_one(coord, store, prefix, dag, false).await {
            Ok(line) => tracing::info!(dag = %dag.spec.name, "{line}"),
            Err(e) => eprintln!("applying {}: {e:#}", dag.spec.name),
        }
    }
}
