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
    /// Run a stand-alone executor with the built-in noop and sleep handlers.
    Executor(cli::executor::Args),
}

fn main() -> ExitCode {
    cli::logging::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => cli::validate::run(args),
        Command::Executor(args) => cli::executor::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
