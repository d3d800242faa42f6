//! `nightshift runs cancel|retry|skip|mark-succeeded`: operator commands on
//! one run, written for the leader to carry out (the CLI never changes run
//! state itself).
//!
//! With the store at hand (`--database` or `NIGHTSHIFT_DATABASE_URL`) the
//! verb waits for the leader's outcome and says whether the command took
//! effect: exit 0 when it was applied, 4 when the leader rejected it (its
//! reason on stderr), 2 when no leader carried it out in time. Without the
//! store it prints the command id and exits 0 once the command is written.

use crate::cli::conn::{self, DatabaseArgs, EtcdArgs};
use crate::cli::follow::{command_outcome, is_rejection};
use crate::cli::issue::issue;
use crate::cli::trigger::EXIT_REJECTED;
use anyhow::Context as _;
use nightshift_core::ids::{ItemIndex, JobName, RunId};
use nightshift_core::keyspace::Command;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long a verb waits for the leader's outcome.
const OUTCOME_WAIT: Duration = Duration::from_secs(30);

/// `nightshift runs <verb>`.
#[derive(Debug, clap::Subcommand)]
pub enum RunsCommand {
    /// Cancel a run: running items are cancelled, pending jobs never start.
    Cancel {
        /// The run id.
        #[arg(value_name = "RUN")]
        run: String,
        #[command(flatten)]
        common: Common,
    },
    /// Retry the failed items of a run (of one job with --job).
    Retry {
        /// The run id.
        #[arg(value_name = "RUN")]
        run: String,
        /// Only this job's failed items.
        #[arg(long, value_name = "JOB")]
        job: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Skip a job that has not finished: downstream jobs see it skipped.
    Skip {
        /// The run id.
        #[arg(value_name = "RUN")]
        run: String,
        /// The job to skip.
        #[arg(long, value_name = "JOB")]
        job: String,
        #[command(flatten)]
        common: Common,
    },
    /// Record an item as succeeded without running it again.
    MarkSucceeded {
        /// The run id.
        #[arg(value_name = "RUN")]
        run: String,
        /// The item's job.
        #[arg(long, value_name = "JOB")]
        job: String,
        /// The item's index.
        #[arg(long, value_name = "N")]
        item: u32,
        #[command(flatten)]
        common: Common,
    },
}

/// Flags every verb takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Store URL: when given, wait for the leader's outcome and report it.
    #[arg(long, env = "NIGHTSHIFT_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// Runs `nightshift runs <verb>`.
pub fn run(verb: RunsCommand) -> ExitCode {
    conn::block_on(async move {
        let (command, common) = command_of(verb)?;
        let prefix = common.etcd.key_prefix()?;
        let store = match &common.database {
            Some(url) => Some(
                DatabaseArgs {
                    database: url.clone(),
                }
                .connect()
                .await?,
            ),
            None => None,
        };
        let coord = common.etcd.connect().await?;
        let kind = command.kind();
        let id = issue(coord.as_ref(), &prefix, command).await?;
        let Some(store) = store else {
            eprintln!("{kind} requested: command {id} (give --database to wait for the outcome)");
            println!("{id}");
            return Ok(ExitCode::SUCCESS);
        };
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let outcome = command_outcome(&store, kind, None, &id)
                .await
                .context("reading the command's outcome")?;
            if let Some(outcome) = outcome {
                if is_rejection(&outcome) {
                    eprintln!("error: the leader {outcome} (command {id})");
                    return Ok(ExitCode::from(EXIT_REJECTED));
                }
                println!("{outcome}");
                return Ok(ExitCode::SUCCESS);
            }
            if started.elapsed() >= OUTCOME_WAIT {
                anyhow::bail!(
                    "no leader carried out command {id} within {} s (is a scheduler running?); \
                     it stays queued",
                    OUTCOME_WAIT.as_secs()
                );
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    })
}

/// The command a verb writes, with its ids checked as key segments.
fn command_of(verb: RunsCommand) -> anyhow::Result<(Command, Common)> {
    Ok(match verb {
        RunsCommand::Cancel { run, common } => (Command::CancelRun { run: run_id(&run)? }, common),
        RunsCommand::Retry { run, job, common } => (
            Command::Retry {
                run: run_id(&run)?,
                job: job.as_deref().map(job_name).transpose()?,
            },
            common,
        ),
        RunsCommand::Skip { run, job, common } => (
            Command::SkipJob {
                run: run_id(&run)?,
                job: job_name(&job)?,
            },
            common,
        ),
        RunsCommand::MarkSucceeded {
            run,
            job,
            item,
            common,
        } => (
            Command::MarkItemSucceeded {
                run: run_id(&run)?,
                job: job_name(&job)?,
                item: ItemIndex(item),
            },
            common,
        ),
    })
}

fn run_id(text: &str) -> anyhow::Result<RunId> {
    conn::checked_id("run id", text, RunId::new)
}

fn job_name(text: &str) -> anyhow::Result<JobName> {
    conn::checked_id("job name", text, JobName::new)
}
