//! `nightshift logs RUN --job J --item I [--attempt N] [--follow]`: the log
//! of an item attempt, as its executor shipped it with the attempt's result
//! (the last 64 KiB of its lines; a marker line at the top says when
//! earlier ones were dropped).
//!
//! Logs arrive when an attempt *ends*: a running attempt has none yet.
//! Without `--attempt` the latest ended attempt is shown; `--follow` prints
//! each attempt's log as it ends (with a header line per attempt) until the
//! item succeeded or was skipped, or its job or run ended. `--format json`
//! prints a JSON document (one JSON line per attempt with `--follow`).
//! Reads SQL, or
//! the console's API with `--server URL` and a token (no database flags).

use crate::cli::conn::{self, bad_input};
use crate::cli::remote::{self, ApiRunDetail, ServerArgs};
use crate::cli::status::Format;
use anyhow::Context as _;
use nightshift_client::ServerClient;
use nightshift_core::ids::{ItemIndex, JobName, RunId};
use nightshift_core::state::AttemptOutcome;
use nightshift_store::Store;
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
    /// Output format: the log as is, or JSON (one document; with
    /// --follow, one JSON line per attempt).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Store URL (not needed with --server).
    #[arg(long, env = "NIGHTSHIFT_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// An ended attempt, as either source tells it.
#[derive(Debug, Clone)]
struct Ended {
    attempt: u32,
    executor: String,
    /// `succeeded`, `failed`, ... (`None`: ended without a recorded outcome).
    outcome: Option<String>,
}

/// Where logs are read: the store, or a console's API.
enum Source {
    Store(Store),
    Server(ServerClient),
}

/// An item's attempts as the items API lists them (the fields used here).
#[derive(Debug, serde::Deserialize)]
struct ApiItem {
    item: u32,
    #[serde(default)]
    attempts: Vec<ApiAttempt>,
}

#[derive(Debug, serde::Deserialize)]
struct ApiAttempt {
    attempt: u32,
    executor: String,
    #[serde(default)]
    ended_at_ms: Option<i64>,
    #[serde(default)]
    outcome: Option<String>,
}

impl Source {
    /// Whether the run exists.
    async fn run_exists(&self, run: &RunId) -> anyhow::Result<bool> {
        match self {
            Source::Store(store) => Ok(store
                .get_run(run)
                .await
                .context("reading the run")?
                .is_some()),
            Source::Server(server) => {
                match server
                    .get_json::<serde_json::Value>(&format!("/runs/{run}"))
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(e) if remote::is_not_found(&e) => Ok(false),
                    Err(e) => Err(remote::error(e)),
                }
            }
        }
    }

    /// The item's ended attempts, oldest first.
    async fn ended_attempts(
        &self,
        run: &RunId,
        job: &JobName,
        item: ItemIndex,
    ) -> anyhow::Result<Vec<Ended>> {
        let mut out: Vec<Ended> = match self {
            Source::Store(store) => store
                .attempts(run, job, Some(item))
                .await
                .context("reading the item's attempts")?
                .into_iter()
                .filter(|a| a.ended_at_ms.is_some())
                .map(|a| Ended {
                    attempt: a.attempt,
                    executor: a.executor.to_string(),
                    outcome: a.outcome.map(|o| o.as_str().to_owned()),
                })
                .collect(),
            Source::Server(server) => server
                .get_json::<Vec<ApiItem>>(&format!("/runs/{run}/jobs/{job}/items"))
                .await
                .map_err(remote::error)?
                .into_iter()
                .filter(|i| i.item == item.0)
                .flat_map(|i| i.attempts)
                .filter(|a| a.ended_at_ms.is_some())
                .map(|a| Ended {
                    attempt: a.attempt,
                    executor: a.executor,
                    outcome: a.outcome,
                })
                .collect(),
        };
        out.sort_by_key(|a| a.attempt);
        Ok(out)
    }

    /// The log of one attempt, if it has one.
    async fn attempt_log(
        &self,
        run: &RunId,
        job: &JobName,
        item: ItemIndex,
        attempt: u32,
    ) -> anyhow::Result<Option<String>> {
        match self {
            Source::Store(store) => store
                .attempt_log(run, job, item, attempt)
                .await
                .context("reading the log"),
            Source::Server(server) => {
                let path = format!("/runs/{run}/jobs/{job}/items/{item}/attempts/{attempt}/log");
                match server.get_text(&path).await {
                    Ok(log) => Ok(Some(log)),
                    Err(e) if remote::is_not_found(&e) => Ok(None),
                    Err(e) => Err(remote::error(e)),
                }
            }
        }
    }

    /// Whether the run, and whether the job, has ended.
    async fn over(&self, run: &RunId, job: &JobName) -> anyhow::Result<(bool, bool)> {
        match self {
            Source::Store(store) => {
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
                Ok((run_over, job_over))
            }
            Source::Server(server) => {
                let detail: ApiRunDetail = server
                    .get_json(&format!("/runs/{run}"))
                    .await
                    .map_err(remote::error)?;
                let run_over = detail.run.to_run()?.state.is_terminal();
                let mut job_over = false;
                for j in detail.jobs.iter().filter(|j| j.job == job.as_str()) {
                    job_over |= j.to_job_run(run)?.state.is_terminal();
                }
                Ok((run_over, job_over))
            }
        }
    }
}

/// Runs `nightshift logs`.
pub fn run(args: Args) -> ExitCode {
    conn::block_on(async move {
        let run = conn::checked_id("run id", &args.run, RunId::new)?;
        let job = conn::checked_id("job name", &args.job, JobName::new)?;
        if args.attempt == Some(0) {
            return bad_input("attempts are numbered from 1");
        }
        let source = match args.server.client()? {
            Some(server) => Source::Server(server),
            None => Source::Store(
                remote::database(args.database.as_deref())?
                    .connect()
                    .await?,
            ),
        };
        if !source.run_exists(&run).await? {
            return bad_input(format!("unknown run `{run}`"));
        }
        let item = ItemIndex(args.item);
        let at = At {
            run: &run,
            job: &job,
            item,
            format: args.format,
        };
        if args.follow {
            follow(&source, &at, args.attempt).await
        } else {
            once(&source, &at, args.attempt).await
        }
    })
}

/// The item whose logs are printed, and how.
struct At<'a> {
    run: &'a RunId,
    job: &'a JobName,
    item: ItemIndex,
    format: Format,
}

/// One attempt's log as `--format json` prints it.
#[derive(Debug, serde::Serialize)]
struct LogDoc<'a> {
    run_id: &'a str,
    job: &'a str,
    item: u32,
    attempt: u32,
    /// The executor that ran it (known with --follow).
    #[serde(skip_serializing_if = "Option::is_none")]
    executor: Option<&'a str>,
    /// How it ended (known with --follow).
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'a str>,
    /// The log text; `null` when the attempt has none.
    log: Option<&'a str>,
}

impl At<'_> {
    fn doc<'a>(
        &'a self,
        attempt: u32,
        ended: Option<&'a Ended>,
        log: Option<&'a str>,
    ) -> LogDoc<'a> {
        LogDoc {
            run_id: self.run.as_str(),
            job: self.job.as_str(),
            item: self.item.0,
            attempt,
            executor: ended.map(|e| e.executor.as_str()),
            outcome: ended.and_then(|e| e.outcome.as_deref()),
            log,
        }
    }
}

async fn once(source: &Source, at: &At<'_>, attempt: Option<u32>) -> anyhow::Result<ExitCode> {
    let (run, job, item) = (at.run, at.job, at.item);
    let attempt = match attempt {
        Some(n) => n,
        None => match source.ended_attempts(run, job, item).await?.last() {
            Some(a) => a.attempt,
            None => {
                return bad_input(format!(
                    "item {item} of job `{job}` in run `{run}` has no ended attempt yet \
                     (logs arrive when an attempt ends; --follow waits for them)"
                ))
            }
        },
    };
    match source.attempt_log(run, job, item, attempt).await? {
        Some(log) if at.format == Format::Json => {
            let doc = at.doc(attempt, None, Some(&log));
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(ExitCode::SUCCESS)
        }
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
    source: &Source,
    run: &RunId,
    job: &JobName,
    attempts: &[Ended],
) -> anyhow::Result<bool> {
    // A skip is stored as a succeeded attempt (with a `skipped:` error).
    if attempts
        .last()
        .and_then(|a| a.outcome.as_deref())
        .is_some_and(|o| o == AttemptOutcome::Succeeded.as_str())
    {
        return Ok(true);
    }
    let (run_over, job_over) = source.over(run, job).await?;
    Ok(run_over || job_over)
}

async fn follow(source: &Source, at: &At<'_>, from: Option<u32>) -> anyhow::Result<ExitCode> {
    let (run, job, item) = (at.run, at.job, at.item);
    // Without --attempt: from the latest ended attempt (the history before
    // it is one `--attempt N` away), or the first.
    let from = match from {
        Some(n) => n,
        None => source
            .ended_attempts(run, job, item)
            .await?
            .last()
            .map_or(1, |a| a.attempt),
    };
    let mut printed: BTreeSet<u32> = BTreeSet::new();
    eprintln!("following item {item} of job `{job}` in run `{run}` (logs arrive as attempts end)");
    loop {
        // Terminal state is read before the attempts: an attempt that ends
        // in between is then still printed by this pass.
        let attempts_before = source.ended_attempts(run, job, item).await?;
        let done = finished(source, run, job, &attempts_before).await?;
        let attempts = source.ended_attempts(run, job, item).await?;
        for a in attempts.iter().filter(|a| a.attempt >= from) {
            if !printed.insert(a.attempt) {
                continue;
            }
            let log = source.attempt_log(run, job, item, a.attempt).await?;
            if at.format == Format::Json {
                let doc = at.doc(a.attempt, Some(a), log.as_deref());
                println!("{}", serde_json::to_string(&doc)?);
            } else {
                let outcome = a.outcome.as_deref().unwrap_or("ended");
                println!("--- attempt {} on {}: {outcome} ---", a.attempt, a.executor);
                match log {
                    Some(log) => print!("{log}"),
                    None => println!("(no log)"),
                }
            }
            std::io::stdout().flush().ok();
        }
        if done {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}
