//! `nightshift demo`: the finance demo outside `nightshift dev` —
//! `seed` fills the demo ledger of a database, `executor` runs an executor
//! process serving the demo handlers (plus `noop` and `sleep`) against etcd,
//! as a lender's own service would in production.

use crate::cli::conn::{until_reachable, DatabaseArgs, EtcdArgs};
use anyhow::Context as _;
use nightshift_core::duration::parse_duration;
use nightshift_demo::DemoDb;
use nightshift_executor::builtin::{Noop, Sleep};
use nightshift_executor::Executor;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Subcommands of `nightshift demo`.
#[derive(Debug, clap::Subcommand)]
pub enum DemoCommand {
    /// Create the demo tables and upsert deterministic accounts, loans and
    /// installment schedules (re-runnable).
    Seed(SeedArgs),
    /// Break the ledger on purpose (one posting leg off by 1.00), so that the
    /// next reconciliation fails and raises an alert: for the tour.
    Tamper(DbArgs),
    /// Undo `nightshift demo tamper`.
    Repair(DbArgs),
    /// Run an executor serving interest-accrual, nightly-debits,
    /// ledger-postings, reconciliation, noop and sleep.
    Executor(Box<ExecutorArgs>),
}

/// Flags of `nightshift demo seed`.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Number of accounts (ids 1..=N).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub accounts: i64,
}

/// Flags of `nightshift demo tamper` and `repair`.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// Flags of `nightshift demo executor`.
#[derive(Debug, clap::Args)]
pub struct ExecutorArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Executor id (default: demo-{pid}).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Items run at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub capacity: u32,
    /// Lease TTL: how long after a crash the executor's items move elsewhere.
    #[arg(long, default_value = "10s", value_parser = duration, value_name = "DURATION")]
    pub lease_ttl: Duration,
    /// Where the settlement-report program and its reports go (default:
    /// the system temp dir's nightshift-demo/).
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<std::path::PathBuf>,
    /// Lets the built-in `sleep` handler journal its steps (job param
    /// `journal`, a plain file name) into this directory, as `nightshift
    /// executor --sleep-journal-dir` does; `nightshift chaos` uses it for
    /// its stubborn items.
    #[arg(long, value_name = "DIR")]
    pub sleep_journal_dir: Option<std::path::PathBuf>,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// Runs `nightshift demo ...`.
pub fn run(command: DemoCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        match command {
            DemoCommand::Seed(args) => {
                let db = DemoDb::connect(&args.db.database)
                    .await
                    .context("opening the database")?;
                let report = nightshift_demo::seed(&db, args.accounts)
                    .await
                    .context("seeding")?;
                println!(
                    "demo seeded: {} accounts, {} loans, {} installments",
                    report.accounts, report.loans, report.installments
                );
                Ok(ExitCode::SUCCESS)
            }
            DemoCommand::Tamper(args) => {
                let db = DemoDb::connect(&args.db.database)
                    .await
                    .context("opening the database")?;
                match db.tamper().await.context("tampering")? {
                    0 => println!("nothing tampered: no posting yet, or already tampered"),
                    _ => println!(
                        "one posting leg is now off by 1.00: the next reconciliation fails"
                    ),
                }
                Ok(ExitCode::SUCCESS)
            }
            DemoCommand::Repair(args) => {
                let db = DemoDb::connect(&args.db.database)
                    .await
                    .context("opening the database")?;
                let n = db.repair().await.context("repairing")?;
                println!("{n} tampered leg(s) repaired");
                Ok(ExitCode::SUCCESS)
            }
            DemoCommand::Executor(args) => executor(*args).await,
        }
    })
}

async fn executor(args: ExecutorArgs) -> anyhow::Result<ExitCode> {
    let prefix = args.etcd.key_prefix()?;
    let url = &args.db.database;
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        return crate::cli::conn::bad_input("--database: expected sqlite://FILE or postgres://...");
    }
    let coord = until_reachable("etcd", || args.etcd.connect()).await?;
    let db = until_reachable("the demo database", || async {
        let db = DemoDb::connect(&args.db.database)
            .await
            .context("opening the database")?;
        db.ensure_schema()
            .await
            .context("creating the demo tables")?;
        Ok(db)
    })
    .await?;
    let db = Arc::new(db);
    let builder = Executor::builder()
        .coordinator(coord)
        .prefix(prefix)
        .id(args
            .id
            .unwrap_or_else(|| format!("demo-{}", std::process::id())))
        .capacity(args.capacity)
        .lease_ttl(args.lease_ttl)
        .handler("noop", Noop);
    let builder = match &args.sleep_journal_dir {
        Some(dir) => builder.handler("sleep", Sleep::journaling_into(dir)),
        None => builder.handler("sleep", Sleep),
    };
    let report_dir = args
        .report_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("nightshift-demo"));
    let report = nightshift_demo::report::settlement_report(&report_dir, &args.db.database)
        .context("installing the settlement-report script")?;
    let builder = builder.program(nightshift_demo::report::SETTLEMENT_REPORT, report);
    let executor = nightshift_demo::register(builder, db).build()?;
    tracing::info!(executor = %executor.id(), "demo executor starting");
    executor.run_until_signal().await?;
    Ok(ExitCode::SUCCESS)
}
