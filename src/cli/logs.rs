//! `nightshift logs RUN --job J --item I [--attempt N] [--follow]`: the log
//! of an item attempt, as its executor shipped it with the attempt's result
//! (the last 64 KiB of its lines; a marker line at the top says when
//! earlier ones were dropped).
//!
//! Logs arrive when an attempt *ends*: a running attempt has none yet.
//! Without `--attempt` the latest ended attempt is shown; `--follow` prints
//! each attempt's log as it ends (with a header line per attempt) until the
//! item succeeded or was skipped, or its job or run ended. Reads SQL only.

use crate::cli::conn::{self, bad_input, DatabaseArgs};
use anyhow::Context as _;
use nightshift_core::ids::{ItemIndex, JobName, RunId};
use nightshift_core::state::AttemptOutcome;
use nightshift_store::{Attempt, Store};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

/// How often `--follow` looks for newly ended attempts.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// Flags of `nightshift logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run id.
    #[arg(value_name = "RUN_ID")]
    pub run: String,
    /// The job the item belongs to.
    #[arg(long, value_name = "JOB")]
    pub job: String,
    /// The item index.
    #[arg(long, value_name = "INDEX")]
    pub item: u32,
    /// The attempt (from 1); default: the latest that ended.
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
    /// Keep printing each new attempt's log as it ends, until the item
    /// succeeded or was skipped, or its job or run ended.
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// Runs `nightshift logs`.
pub fn run(args: Args) -> ExitCode {
    conn::block_on(async move {
        let run = conn::checked_id("run id", &args.run, RunId::new)?;
        let job = conn::checked_id("job name", &args.job, JobName::new)?;
        if args.attempt == Some(0) {
            return bad_input("attempts are numbered from 1");
        }
        let store = args.db.connect().await?;
        if store
            .get_run(&run)
            .await
            .context("reading the run")?
            .is_none()
        {
            return bad_input(format!("unknown run `{run}`"));
        }
        let item = ItemIndex(args.item);
        if args.follow {
            follow(&store, &run, &job, item, args.attempt).await
        } else {
            once(&store, &run, &job, item, args.attempt).await
        }
    })
}

async fn ended_attempts(
    store: &Store,
    run: &RunId,
    job: &JobName,
    item: ItemIndex,
) -> anyhow::Result<Vec<Attempt>> {
    let mut attempts = store
        .attempts(run, job, Some(item))
        .await
        .context("reading the item's attempts")?;
    attempts.retain(|a| a.ended_at_ms.is_some());
    attempts.sort_by_key(|a| a.attempt);
    Ok(attempts)
}

async fn once(
    store: &Store,
    run: &RunId,
    job: &JobName,
    item: ItemIndex,
    attempt: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let attempt = match attempt {
        Some(n) => n,
        None => match ended_attempts(store, run, job, item).await?.last() {
            Some(a) => a.attempt,
            None => {
                return bad_input(format!(
                    "item {item} of job `{job}` in run `{run}` has no ended attempt yet \
                     (logs arrive when an attempt ends; --follow waits for them)"
                ))
            }
        },
    };
    match store
        .attempt_log(run, job, item, attempt)
        .await
        .context("reading the log")?
    {
        Some(log) => {
            print!("{log}");
            Ok(ExitCode::SUCCESS)
        }
        None => bad_input(format!(
            "no log for attempt {attempt} of item {item} of job `{job}` in run `{run}` \
             (it has not ended, logged nothing, or ended without its executor's result)"
        )),
    }
}

/// Whether nothing more will happen to the item: it succeeded (or was
/// skipped), or its job or run is over.
async fn finished(
    store: &Store,
    run: &RunId,
    job: &JobName,
    attempts: &[Attempt],
) -> anyhow::Result<bool> {
    // A skip is stored as a succeeded attempt (with a `skipped:` error).
    if attempts
        .last()
        .and_then(|a| a.outcome)
        .is_some_and(|o| o == AttemptOutcome::Succeeded)
    {
        return Ok(true);
    }
    let run_over = store
        .get_run(run)
        .await
        .context("reading the run")?
        .is_some_and(|r| r.state.is_terminal());
    let job_over = store
        .job_runs(run)
        .await
        .context("reading the run's jobs")?
        .iter()
        .any(|j| &j.job == job && j.state.is_terminal());
    Ok(run_over || job_over)
}

async fn follow(
    store: &Store,
    run: &RunId,
    job: &JobName,
    item: ItemIndex,
    from: Option<u32>,
) -> anyhow::Result<ExitCode> {
    // Without --attempt: from the latest ended attempt (the history before
    // it is one `--attempt N` away), or the first.
    let from = match from {
        Some(n) => n,
        None => ended_attempts(store, run, job, item)
            .await?
            .last()
            .map_or(1, |a| a.attempt),
    };
    let mut printed: BTreeSet<u32> = BTreeSet::new();
    eprintln!("following item {item} of job `{job}` in run `{run}` (logs arrive as attempts end)");
    loop {
        // Terminal state is read before the attempts: an attempt that ends
        // in between is then still printed by this pass.
        let attempts_before = ended_attempts(store, run, job, item).await?;
        let done = finished(store, run, job, &attempts_before).await?;
        let attempts = ended_attempts(store, run, job, item).await?;
        for a in attempts.iter().filter(|a| a.attempt >= from) {
            if !printed.insert(a.attempt) {
                continue;
            }
            let outcome = a.outcome.map_or("ended", |o| o.as_str());
            println!("--- attempt {} on {}: {outcome} ---", a.attempt, a.executor);
            match store
                .attempt_log(run, job, item, a.attempt)
                .await
                .context("reading the log")?
            {
                Some(log) => print!("{log}"),
                None => println!("(no log)"),
            }
            std::io::stdout().flush().ok();
        }
        if done {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}
