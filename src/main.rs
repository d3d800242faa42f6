//! The `nightshift` command line.
//!
//! Flags are parsed by clap into [`Cli`]; each subcommand lives in its own
//! module under `cli/` and returns `anyhow::Result<ExitCode>`.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Nightshift: a distributed, sharded batch-job scheduler.
#[derive(Debug, Parser)]
#[command(name = "nightshift", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate DAG files (files or folders) and report every error.
    Validate(cli::validate::Args),
    /// Run a stand-alone executor serving programs (--program) and/or the built-in noop and sleep handlers.
    Executor(cli::executor::Args),
    /// Run a scheduler replica (one of the replicas leads; the others stand by).
    Scheduler(cli::scheduler::Args),
    /// Validate DAG files and publish them (versioned; history kept in SQL).
    Apply(cli::apply::Args),
    /// Stop the scheduled runs of a DAG (manual triggers still run).
    Pause(cli::pause::Args),
    /// Resume the scheduled runs of a paused DAG.
    Resume(cli::pause::Args),
    /// Move an idle keyspace to this build's format (after an upgrade that
    /// changed it; schedulers and executors say when it is needed).
    Migrate(cli::migrate::Args),
    /// Ask the scheduler to start a run of a DAG now; prints the run id
    /// (--wait follows it to its end).
    Trigger(cli::trigger::Args),
    /// Operator commands on a run: cancel, retry, skip a job, mark an item
    /// succeeded (with --database, waits for the leader's outcome).
    #[command(subcommand)]
    Runs(cli::runs::RunsCommand),
    /// Trigger one run per business day of a date range, oldest first.
    Backfill(cli::backfill::Args),
    /// Show the assignment the next run of a DAG would get, without running it.
    Plan(cli::plan::Args),
    /// Show recent runs, or one run's per-job progress.
    Status(cli::status::Args),
    /// Print an item attempt's log (the latest ended attempt unless
    /// --attempt; --follow prints each attempt's log as it ends).
    Logs(cli::logs::Args),
    /// Applied DAGs (`dags list`).
    #[command(subcommand)]
    Dags(cli::inventory::DagsCommand),
    /// Live executors: handlers, capacity, labels, host.
    Executors(cli::inventory::ExecutorsArgs),
    /// Open alerts (`--all`: resolved ones too).
    Alerts(cli::inventory::AlertsArgs),
    /// Serve the web console and JSON API (reads SQL and etcd; actions are
    /// commands for the scheduler leader).
    Console(cli::console::Args),
    /// Everything in one process for development: in-process coordination,
    /// SQLite, scheduler, console and executors running the finance demo.
    Dev(cli::dev::Args),
    /// The finance demo: seed its ledger, or run an executor serving its handlers.
    #[command(subcommand)]
    Demo(cli::demo::DemoCommand),
    /// Measure Nightshift against a real etcd and its raw put rate.
    Bench(nightshift_lab::bench::Args),
    /// Run the finance demo on real etcd + PostgreSQL while injecting
    /// faults, then check nothing was lost or done twice.
    Chaos(nightshift_lab::chaos::Args),
    /// Print (or --apply) least-privilege etcd roles and users, one per
    /// component.
    EtcdRoles(cli::etcd_roles::Args),
}

fn main() -> ExitCode {
    // Usage errors are bad input (exit 1) like every other bad input;
    // `--help` and `--version` still exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // `dev` logs to a file in its state directory (it sets up its own).
    if !matches!(cli.command, Command::Dev(_)) {
        cli::logging::init();
    }
    let result = match cli.command {
        Command::Validate(args) => cli::validate::run(args),
        Command::Executor(args) => cli::executor::run(args),
        Command::Scheduler(args) => cli::scheduler::run(args),
        Command::Apply(args) => Ok(cli::apply::run(args)),
        Command::Pause(args) => Ok(cli::pause::run(args, true)),
        Command::Resume(args) => Ok(cli::pause::run(args, false)),
        Command::Migrate(args) => Ok(cli::migrate::run(args)),
        Command::Trigger(args) => Ok(cli::trigger::run(args)),
        Command::Runs(verb) => Ok(cli::runs::run(verb)),
        Command::Backfill(args) => Ok(cli::backfill::run(args)),
        Command::Plan(args) => Ok(cli::plan::run(args)),
        Command::Status(args) => Ok(cli::status::run(args)),
        Command::Logs(args) => Ok(cli::logs::run(args)),
        Command::Dags(command) => Ok(cli::inventory::dags(command)),
        Command::Executors(args) => Ok(cli::inventory::executors(args)),
        Command::Alerts(args) => Ok(cli::inventory::alerts(args)),
        Command::Console(args) => Ok(cli::console::run(args)),
        Command::Dev(args) => cli::dev::run(args),
        Command::Demo(command) => cli::demo::run(command),
        Command::Bench(args) => lab_result(nightshift_lab::bench::run(args)),
        Command::Chaos(args) => Ok(cli::conn::exit_code(lab_result(
            nightshift_lab::chaos::run(args),
        ))),
        Command::EtcdRoles(args) => Ok(cli::etcd_roles::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// The lab's bad input as the CLI's own, so it exits 1 like any other.
fn lab_result(
    result: anyhow::Result<std::process::ExitCode>,
) -> anyhow::Result<std::process::ExitCode> {
    result.map_err(|e| match e.downcast::<nightshift_lab::BadInput>() {
        Ok(bad) => cli::conn::BadInput(bad.0).into(),
        Err(e) => e,
    })
}
