//! `nightshift trigger DAG [--business-date D] [--params JSON] [--rerun | --redo]`:
//! ask the leader to start a run now.
//!
//! `--rerun` runs the day's work again under the same work keys, so a
//! handler keyed by `ctx.idempotency_key()` applies nothing twice; `--redo`
//! (with `--business-date`) is the deliberate way to apply the effects
//! again: the run gets the date's next redo generation, shown in its
//! `command_redo` and `run_created` events.
//!
//! The DAG must be applied and `--params` must be a JSON object; either
//! mistake is reported before anything is written (exit 1). The id of the
//! run the command creates is printed alone on stdout (for scripts). With
//! `--wait` it follows the run in the store and exits 0 when it succeeded, 3
//! when it failed or was cancelled, and 4 when the leader rejected the
//! trigger (with the leader's reason).
//!
//! With `--server URL` (and a console token) the trigger goes through the
//! console's API instead, with no etcd or database flags: same output, same
//! exit codes (a console refusing a paused DAG's trigger is a rejection, 4).

use crate::cli::applied;
use crate::cli::conn::{self, bad_input, DatabaseArgs, EtcdArgs};
use crate::cli::follow::{follow_run, follow_run_remote, RunEnd};
use crate::cli::issue::{self, Sent};
use crate::cli::remote::ServerArgs;
use anyhow::Context as _;
use chrono::NaiveDate;
use nightshift_client::{CommandClient, ServerClient};
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::keyspace::commands::trigger_run_id;
use nightshift_core::keyspace::{Command, CommandId};
use nightshift_core::state::{RunState, TriggerSource};
use std::process::ExitCode;

/// Flags of `nightshift trigger`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The applied DAG to run.
    #[arg(value_name = "DAG")]
    pub dag: String,
    /// Business date of the run (YYYY-MM-DD); default: the DAG's business
    /// date of now, in its time zone.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub business_date: Option<String>,
    /// Run parameters, a JSON object merged over the jobs' params.
    #[arg(long, value_name = "JSON")]
    pub params: Option<String>,
    /// Run even if a run of this business date already succeeded. Items
    /// keep their work keys: effects keyed by `ctx.idempotency_key()` are
    /// not applied again, and unfinished items resume from checkpoints.
    #[arg(long)]
    pub rerun: bool,
    /// Apply the business date's work again, effects included: the run
    /// gets a new redo generation, which changes every item's
    /// `ctx.idempotency_key()` and starts without checkpoints. Needs
    /// --business-date (a redo names the day it redoes).
    #[arg(long, conflicts_with = "rerun", requires = "business_date")]
    pub redo: bool,
    /// Follow the run until it ends, one line per change on stderr: exit 0
    /// when it succeeded, 3 when it failed or was cancelled, 4 when the
    /// leader rejected the trigger. Needs the store (--database), or
    /// --server.
    #[arg(long)]
    pub wait: bool,
    /// Store URL, read to follow the run with --wait.
    #[arg(long, env = "NIGHTSHIFT_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Exit code of a followed run that failed or was cancelled.
pub const EXIT_RUN_FAILED: u8 = 3;
/// Exit code of a command the leader rejected.
pub const EXIT_REJECTED: u8 = 4;

/// Runs `nightshift trigger`.
pub fn run(args: Args) -> ExitCode {
    conn::block_on(async move {
        let dag = dag_name(&args.dag)?;
        let business_date = args.business_date.as_deref().map(parse_date).transpose()?;
        let params = args.params.as_deref().map(parse_params).transpose()?;
        let command = match (args.redo, business_date) {
            (true, Some(day)) => Command::Redo {
                dag: dag.clone(),
                business_date: day,
                params,
            },
            (true, None) => return bad_input("--redo needs --business-date"),
            (false, _) => Command::Trigger {
                dag: dag.clone(),
                business_date,
                params,
                rerun: args.rerun,
                source: TriggerSource::Manual,
            },
        };
        if let Some(server) = args.server.client()? {
            return through_console(server, &args, command).await;
        }
        let prefix = args.etcd.key_prefix()?;
        let store = match (args.wait, &args.database) {
            (false, _) => None,
            (true, Some(url)) => Some(DatabaseArgs { database: url.clone() }.connect().await?),
            (true, None) => {
                return bad_input("--wait reads the run from the store: give --database URL (or NIGHTSHIFT_DATABASE_URL), or go through a console with --server URL")
            }
        };
        let coord = args.etcd.connect().await?;
        applied::require(coord.as_ref(), &prefix, &dag).await?;
        let client = issue::direct(coord, &prefix, None);
        let issued = match issue::send(&client, command, &[409]).await? {
            Sent::Issued(issued) => issued,
            Sent::Conflict(why) => return Ok(rejected(&why)),
        };
        let id = issued.id.clone();
        let run = trigger_run_id(&dag, &id);
        announce(&args, &id, &run);
        let Some(store) = store else {
            return Ok(ExitCode::SUCCESS);
        };
        let (_keep, never) = tokio::sync::watch::channel(false);
        let print = |line: &str| eprintln!("{line}");
        Ok(exit_of(
            follow_run(&store, &dag, &id, &run, None, never, print).await,
        ))
    })
}

/// The trigger through a console's API (`--server`): the console checks
/// the DAG and issues the command; `--wait` follows the run through the
/// API. Exit codes as on the direct path.
async fn through_console(
    server: ServerClient,
    args: &Args,
    command: Command,
) -> anyhow::Result<ExitCode> {
    let client = CommandClient::Server(server.clone());
    let issued = match issue::send(&client, command, &[409]).await? {
        Sent::Issued(issued) => issued,
        Sent::Conflict(why) => return Ok(rejected(&why)),
    };
    let run = issued
        .run_id
        .clone()
        .context("the console did not name the run it triggers")?;
    announce(args, &issued.id, &run);
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let print = |line: &str| eprintln!("{line}");
    Ok(exit_of(
        follow_run_remote(&server, &issued, &run, print).await?,
    ))
}

/// The requested line on stderr, the run id alone on stdout (for scripts).
fn announce(args: &Args, id: &CommandId, run: &RunId) {
    let date = args.business_date.as_deref().map_or_else(
        || "today's business date".to_owned(),
        |d| format!("business date {}", d.trim()),
    );
    let what = if args.redo { "redo" } else { "trigger" };
    eprintln!(
        "{what} of {} ({date}) requested: command {id}, run {run}",
        args.dag
    );
    println!("{run}");
}

/// The exit code of a followed run.
fn exit_of(end: RunEnd) -> ExitCode {
    match end {
        RunEnd::Ended(RunState::Succeeded) => ExitCode::SUCCESS,
        RunEnd::Ended(_) | RunEnd::Stopped => ExitCode::from(EXIT_RUN_FAILED),
        RunEnd::Rejected(reason) => rejected_by_leader(&reason),
    }
}

fn rejected_by_leader(reason: &str) -> ExitCode {
    eprintln!("error: the leader {reason}");
    ExitCode::from(EXIT_REJECTED)
}

/// A trigger the console refused as conflicting (the DAG is paused).
fn rejected(why: &str) -> ExitCode {
    eprintln!("error: the console rejected the trigger: {why}");
    ExitCode::from(EXIT_REJECTED)
}

/// A DAG name from the command line, checked as a key segment.
pub fn dag_name(text: &str) -> anyhow::Result<DagName> {
    conn::checked_id("dag name", text, DagName::new)
}

/// A `YYYY-MM-DD` date from the command line.
pub fn parse_date(text: &str) -> anyhow::Result<NaiveDate> {
    match NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        Ok(date) => Ok(date),
        Err(e) => bad_input(format!("invalid date `{text}`: {e} (expected YYYY-MM-DD)")),
    }
}

/// `--params`: must be a JSON object.
pub fn parse_params(text: &str) -> anyhow::Result<serde_json::Value> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(other) => bad_input(format!(
            "--params must be a JSON object like {{\"key\": \"value\"}}, not {}",
            kind_of(&other)
        )),
        Err(e) => bad_input(format!("--params is not valid JSON: {e}")),
    }
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_must_be_a_json_object() {
        assert_eq!(
            parse_params(r#"{"a":1}"#).unwrap(),
            serde_json::json!({"a": 1})
        );
        assert!(parse_params("[1]")
            .unwrap_err()
            .to_string()
            .contains("not an array"));
        assert!(parse_params("{oops")
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
    }

    #[test]
    fn dates_and_names_are_checked() {
        assert_eq!(
            parse_date("2024-02-29").unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
        );
        assert!(parse_date("2023-02-29").is_err());
        assert!(dag_name("a/b").is_err());
        assert_eq!(dag_name("daily").unwrap().as_str(), "daily");
    }
}
