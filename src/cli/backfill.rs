//! `nightshift backfill DAG --from D --to D [--parallel N] [--rerun]`: one
//! run per business day of a date range, oldest first.
//!
//! The days are those the DAG's schedule and calendar select (a DAG without
//! a schedule: every business day of its calendar, or every day). Without
//! `--rerun`, a day whose run already succeeded is skipped, and said so.
//! Each day is a Trigger command (source `backfill`) for the leader; at most
//! `--parallel` of them are in flight at once: the CLI polls SQL until a
//! run ends before issuing the next (with `--no-wait`, every command is
//! issued at once and the leader's concurrency policy applies). The exit
//! code is 2 when any backfill run did not succeed.

use crate::cli::applied;
use crate::cli::backfill_days::business_days;
use crate::cli::conn::{self, bad_input, DatabaseArgs, EtcdArgs};
use crate::cli::follow::command_outcome;
use crate::cli::issue::issue;
use crate::cli::trigger::{dag_name, parse_date};
use anyhow::Context as _;
use chrono::NaiveDate;
use nightshift_coord::Coordinator;
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::keyspace::{self, Command, CommandId};
use nightshift_core::state::{RunState, TriggerSource};
use nightshift_store::Store;
use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// A handled command with no run in SQL after this long is reported as
/// "no run started" (the leader refused it; its event says why).
const NO_RUN_GRACE: Duration = Duration::from_secs(30);

/// Flags of `nightshift backfill`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The applied DAG.
    #[arg(value_name = "DAG")]
    pub dag: String,
    /// First business date (YYYY-MM-DD), included.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: String,
    /// Last business date (YYYY-MM-DD), included.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: String,
    /// How many backfill runs may be in flight at once.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub parallel: u32,
    /// Run again the days whose run already succeeded.
    #[arg(long)]
    pub rerun: bool,
    /// Issue every command at once and exit without waiting for the runs.
    #[arg(long)]
    pub no_wait: bool,
    /// Longest accepted range, in days.
    #[arg(long, default_value_t = 366, value_name = "DAYS")]
    pub max_days: u32,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// One issued day, until its run ends.
struct InFlight {
    date: NaiveDate,
    command: CommandId,
    /// Runs of that date that existed before the command was issued.
    before: BTreeSet<RunId>,
    run: Option<RunId>,
    command_gone_at: Option<Instant>,
}

/// Runs `nightshift backfill`.
pub fn run(args: Args) -> ExitCode {
    conn::block_on(backfill(args))
}

async fn backfill(args: Args) -> anyhow::Result<ExitCode> {
    let prefix = args.etcd.key_prefix()?;
    let dag = dag_name(&args.dag)?;
    let (from, to) = (parse_date(&args.from)?, parse_date(&args.to)?);
    if from > to {
        return bad_input(format!("--from {from} is after --to {to}"));
    }
    let days = (to - from).num_days() + 1;
    if days > i64::from(args.max_days) {
        return bad_input(format!(
            "the range has {days} days, more than --max-days {} (raise it if you mean it)",
            args.max_days
        ));
    }
    if args.parallel == 0 {
        return bad_input("--parallel must be at least 1");
    }
    let coord = args.etcd.connect().await?;
    let store = args.db.connect().await?;
    let published = applied::require(coord.as_ref(), &prefix, &dag).await?;
    let dates =
        business_days(&published.spec, from, to).map_err(|e| conn::BadInput(e.to_string()))?;
    if dates.is_empty() {
        println!("no business day of {dag} between {from} and {to}: nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    let parallel = usize::try_from(args.parallel).unwrap_or(usize::MAX);
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut outcomes: Vec<(NaiveDate, bool)> = Vec::new();
    for date in dates {
        let runs = store
            .runs_for_business_date(&dag, date)
            .await
            .context("reading runs")?;
        if !args.rerun {
            if let Some(done) = runs.iter().find(|r| r.state == RunState::Succeeded) {
                println!(
                    "{date}: skipped, run {} already succeeded (--rerun runs it again)",
                    done.run_id
                );
                continue;
            }
        }
        if !args.no_wait {
            while in_flight.len() >= parallel {
                wait_for_progress(
                    coord.as_ref(),
                    &store,
                    &prefix,
                    &dag,
                    &mut in_flight,
                    &mut outcomes,
                )
                .await?;
            }
        }
        let command = Command::Trigger {
            dag: dag.clone(),
            business_date: Some(date),
            params: None,
            rerun: args.rerun,
            source: TriggerSource::Backfill,
        };
        let id = issue(coord.as_ref(), &prefix, command).await?;
        println!("{date}: triggered (command {id})");
        let before = runs.into_iter().map(|r| r.run_id).collect();
        in_flight.push(InFlight {
            date,
            command: id,
            before,
            run: None,
            command_gone_at: None,
        });
    }
    if args.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    while !in_flight.is_empty() {
        wait_for_progress(
            coord.as_ref(),
            &store,
            &prefix,
            &dag,
            &mut in_flight,
            &mut outcomes,
        )
        .await?;
    }
    let failed = outcomes.iter().filter(|(_, ok)| !ok).count();
    println!(
        "backfill done: {} run(s), {failed} did not succeed",
        outcomes.len()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Polls (backing off from 200 ms to 5 s) until at least one in-flight day
/// finishes, printing each change. No deadline: a backfill waits as long as
/// its runs take.
async fn wait_for_progress(
    coord: &dyn Coordinator,
    store: &Store,
    prefix: &str,
    dag: &DagName,
    in_flight: &mut Vec<InFlight>,
    outcomes: &mut Vec<(NaiveDate, bool)>,
) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(200);
    loop {
        let before = in_flight.len();
        let mut still = Vec::new();
        for mut day in in_flight.drain(..) {
            match poll(coord, store, prefix, dag, &mut day).await? {
                Some((line, succeeded)) => {
                    println!("{}: {line}", day.date);
                    outcomes.push((day.date, succeeded));
                }
                None => still.push(day),
            }
        }
        *in_flight = still;
        if in_flight.len() < before {
            return Ok(());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// `Some((line to print, succeeded))` when the day is finished.
async fn poll(
    coord: &dyn Coordinator,
    store: &Store,
    prefix: &str,
    dag: &DagName,
    day: &mut InFlight,
) -> anyhow::Result<Option<(String, bool)>> {
    let runs = store
        .runs_for_business_date(dag, day.date)
        .await
        .context("reading runs")?;
    if let Some(run) = runs.iter().rev().find(|r| !day.before.contains(&r.run_id)) {
        if day.run.as_ref() != Some(&run.run_id) {
            println!("{}: run {} started", day.date, run.run_id);
            day.run = Some(run.run_id.clone());
        }
        return Ok(run.state.is_terminal().then(|| {
            (
                format!("run {} {}", run.run_id, run.state),
                run.state == RunState::Succeeded,
            )
        }));
    }
    let key = keyspace::command_key(prefix, &day.command);
    let pending = coord
        .get(&key)
        .await
        .with_context(|| format!("reading {key} from etcd"))?
        .is_some();
    if pending {
        day.command_gone_at = None;
        return Ok(None);
    }
    // The leader deletes a command it refuses and records why in an event.
    let outcome = command_outcome(store, "trigger", Some(dag), &day.command)
        .await
        .context("reading events")?;
    if let Some(outcome) = outcome {
        if outcome.rejected() {
            return Ok(Some((format!("command {} {outcome}", day.command), false)));
        }
    }
    let gone = *day.command_gone_at.get_or_insert_with(Instant::now);
    Ok((gone.elapsed() >= NO_RUN_GRACE).then(|| {
        (
            format!(
                "the leader handled command {} without starting a run (see its event)",
                day.command
            ),
            false,
        )
    }))
}
