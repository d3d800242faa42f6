//! `nightshift runs cancel|retry|skip|mark-succeeded|clear`: operator commands on
//! one run, written for the leader to carry out (the CLI never changes run
//! state itself).
//!
//! With the store at hand (`--database` or `NIGHTSHIFT_DATABASE_URL`), or
//! through a console (`--server URL` with a token, no etcd or database
//! flags), the verb waits for the leader's outcome and says whether the
//! command took effect: exit 0 when it was applied, 4 when it was rejected
//! (the leader's reason, or the console's when it refused the action as
//! conflicting with the run's state, on stderr), 2 when no leader carried
//! it out in time. Direct without the store it prints the command id and
//! exits 0 once the command is written.

use crate::cli::conn::{self, DatabaseArgs, EtcdArgs};
use crate::cli::issue::{self, Sent};
use crate::cli::remote::{self, ServerArgs};
use crate::cli::trigger::EXIT_REJECTED;
use nightshift_client::CommandClient;
use nightshift_core::ids::{ItemIndex, JobName, RunId};
use nightshift_core::keyspace::Command;
use std::process::ExitCode;
use std::time::Duration;

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
    /// Run chosen work of a run again, in the same run, even if it ended:
    /// whole jobs, or some items of one job (new attempts).
    Clear {
        /// The run id.
        #[arg(value_name = "RUN")]
        run: String,
        /// A job to clear (repeat for several; with --items, exactly one).
        #[arg(long = "job", value_name = "JOB", required = true)]
        jobs: Vec<String>,
        /// Only these items of the job: `1,2,5-9`.
        #[arg(long, value_name = "LIST")]
        items: Option<String>,
        /// Also clear every job downstream of the cleared ones.
        #[arg(long)]
        downstream: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Record an item as succeeded without running it again (also on a
    /// failed job: its downstream jobs are then re-evaluated).
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
    #[command(flatten)]
    pub server: ServerArgs,
}

impl Common {
    /// The command client these flags ask for: the console with
    /// `--server`, else etcd (and the store, when given, for outcomes).
    async fn client(&self) -> anyhow::Result<CommandClient> {
        if let Some(server) = self.server.client()? {
            return Ok(CommandClient::Server(server));
        }
        let prefix = self.etcd.key_prefix()?;
        let store = match &self.database {
            Some(url) => Some(
                DatabaseArgs {
                    database: url.clone(),
                }
                .connect()
                .await?,
            ),
            None => None,
        };
        let coord = self.etcd.connect().await?;
        Ok(issue::direct(coord, &prefix, store))
    }
}

/// Runs `nightshift runs <verb>`.
pub fn run(verb: RunsCommand) -> ExitCode {
    conn::block_on(async move {
        let (command, common) = command_of(verb)?;
        let client = common.client().await?;
        let kind = command.kind();
        let issued = match issue::send(&client, command, &[404, 409]).await? {
            Sent::Issued(issued) => issued,
            Sent::Conflict(why) => {
                eprintln!("error: the console rejected the {kind} command: {why}");
                return Ok(ExitCode::from(EXIT_REJECTED));
            }
        };
        let id = &issued.id;
        if !client.can_follow() {
            eprintln!("{kind} requested: command {id} (give --database to wait for the outcome)");
            println!("{id}");
            return Ok(ExitCode::SUCCESS);
        }
        match client
            .wait_outcome(&issued, OUTCOME_WAIT)
            .await
            .map_err(remote::error)?
        {
            Some(outcome) if outcome.rejected() => {
                eprintln!("error: the leader {outcome} (command {id})");
                Ok(ExitCode::from(EXIT_REJECTED))
            }
            Some(outcome) => {
                println!("{outcome}");
                Ok(ExitCode::SUCCESS)
            }
            None => anyhow::bail!(
                "no leader carried out command {id} within {} s (is a scheduler running?); \
                 it stays queued",
                OUTCOME_WAIT.as_secs()
            ),
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
        RunsCommand::Clear {
            run,
            jobs,
            items,
            downstream,
            common,
        } => {
            let run = run_id(&run)?;
            let jobs: Vec<JobName> = jobs.iter().map(|j| job_name(j)).collect::<Result<_, _>>()?;
            let (jobs, items) = match items {
                None => (jobs, Default::default()),
                Some(list) => {
                    let [job] = <[JobName; 1]>::try_from(jobs).map_err(|_| {
                        anyhow::anyhow!("--items applies to one job: give exactly one --job")
                    })?;
                    let items = parse_items(&list)?;
                    (Vec::new(), [(job, items)].into())
                }
            };
            (
                Command::Clear {
                    run,
                    jobs,
                    items,
                    downstream,
                },
                common,
            )
        }
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

/// Most items `--items` may name (a whole job is cleared without it).
const MAX_ITEMS: u64 = 10_000;

/// `1,2,5-9` → the item indices, in order, without repeats.
fn parse_items(list: &str) -> anyhow::Result<Vec<ItemIndex>> {
    let mut out = std::collections::BTreeSet::new();
    for part in list.split(',').map(str::trim) {
        let bad =
            || anyhow::anyhow!("--items: `{part}` is not an item index or range (e.g. `1,2,5-9`)");
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<u32>().map_err(|_| bad())?,
                b.trim().parse::<u32>().map_err(|_| bad())?,
            ),
            None => {
                let n = part.parse::<u32>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if lo > hi {
            anyhow::bail!("--items: range `{part}` runs backwards");
        }
        if u64::from(hi - lo) + 1 + out.len() as u64 > MAX_ITEMS {
            anyhow::bail!("--items names more than {MAX_ITEMS} items; clear the whole job instead");
        }
        out.extend((lo..=hi).map(ItemIndex));
    }
    Ok(out.into_iter().collect())
}

fn run_id(text: &str) -> anyhow::Result<RunId> {
    conn::checked_id("run id", text, RunId::new)
}

fn job_name(text: &str) -> anyhow::Result<JobName> {
    conn::checked_id("job name", text, JobName::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_lists_take_indices_and_ranges() {
        let got: Vec<u32> = parse_items("1, 2,5-7,2")
            .unwrap()
            .iter()
            .map(|i| i.0)
            .collect();
        assert_eq!(got, vec![1, 2, 5, 6, 7]);
        for bad in ["", "x", "3-1", "1-", "-2", "1,,2", "0-4294967295"] {
            assert!(parse_items(bad).is_err(), "{bad}");
        }
    }
}
