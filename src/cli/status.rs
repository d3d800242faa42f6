//! `nightshift status [RUN_ID] [--dag D] [--limit N] [--format text|json]`:
//! recent runs, or one run's per-job progress.
//!
//! History comes from SQL. For one run, the leader's live record in etcd
//! (`{p}runs/{run}/state`) is used when it can be read, because it is more
//! current than SQL while the run is going (it also knows which items are
//! running); if etcd is not configured or does not answer at once, the
//! SQL tallies are shown. Read-only. With `--server URL` and a console
//! token it reads the console's API instead (whose job counts include the
//! items running now), with no etcd or database flags.

use crate::cli::conn::{self, bad_input, EtcdArgs};
use crate::cli::live;
use crate::cli::remote::{self, ApiRun, ApiRunDetail, ServerArgs};
use anyhow::Context as _;
use clap::ValueEnum;
use nightshift_client::ServerClient;
use nightshift_coord::etcd::EtcdCoordinator;
use nightshift_core::dag::DagSpec;
use nightshift_core::ids::{JobName, RunId};
use nightshift_scheduler::record::{JobRecord, RunRecord};
use nightshift_store::{JobRun, Run, RunFilter, Store};
use serde::Serialize;
use std::process::ExitCode;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Text,
    /// One JSON document.
    Json,
}

/// Flags of `nightshift status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run id: show its per-job progress instead of the run list.
    #[arg(value_name = "RUN_ID")]
    pub run: Option<String>,
    /// Only runs of this DAG.
    #[arg(long, value_name = "DAG")]
    pub dag: Option<String>,
    /// How many runs to list, newest first.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Store URL (not needed with --server).
    #[arg(long, env = "NIGHTSHIFT_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Optional here: with etcd, a live run shows its leader's current progress.
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

#[derive(Debug, Serialize)]
struct RunRow {
    run_id: String,
    dag: String,
    dag_version: u32,
    business_date: String,
    state: String,
    trigger: String,
    created_at_ms: i64,
    started_at_ms: Option<i64>,
    ended_at_ms: Option<i64>,
    duration_ms: Option<i64>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct JobRow {
    job: String,
    state: String,
    total: u32,
    done: u64,
    running: u64,
    failed: u64,
    pending: u64,
}

/// Runs `nightshift status`.
pub fn run(args: Args) -> ExitCode {
    conn::block_on(async move {
        if let Some(dag) = &args.dag {
            crate::cli::trigger::dag_name(dag)?;
        }
        if let Some(server) = args.server.client()? {
            return match &args.run {
                None => {
                    let rows = server_list(&server, &args).await?;
                    print_list(args.format, &rows)
                }
                Some(run) => server_one(&server, &args, run).await,
            };
        }
        let store = remote::database(args.database.as_deref())?
            .connect()
            .await?;
        match &args.run {
            None => list(&store, &args).await,
            Some(run) => one(&store, &args, run).await,
        }
    })
}

/// Recent runs through a console (`GET /api/v1/runs`).
async fn server_list(server: &ServerClient, args: &Args) -> anyhow::Result<Vec<RunRow>> {
    let mut path = format!("/runs?limit={}", args.limit.clamp(1, 1000));
    if let Some(dag) = &args.dag {
        path.push_str(&format!("&dag={dag}"));
    }
    let runs: Vec<ApiRun> = server.get_json(&path).await.map_err(remote::error)?;
    let now = conn::now_ms();
    runs.iter()
        .map(|r| Ok(run_row(&r.to_run()?, now)))
        .collect()
}

/// One run through a console (`GET /api/v1/runs/{run}`), whose job counts
/// already include the items running now.
async fn server_one(server: &ServerClient, args: &Args, run: &str) -> anyhow::Result<ExitCode> {
    let run_id = conn::checked_id("run id", run, RunId::new)?;
    let detail: ApiRunDetail = match server.get_json(&format!("/runs/{run_id}")).await {
        Ok(detail) => detail,
        Err(e) if remote::is_not_found(&e) => return bad_input(format!("unknown run `{run_id}`")),
        Err(e) => return Err(remote::error(e)),
    };
    let run = detail.run.to_run()?;
    let jobs: Vec<JobRow> = detail
        .jobs
        .iter()
        .map(|j| {
            let c = j.counts;
            JobRow {
                job: j.job.clone(),
                state: j.state.clone(),
                total: u32::try_from(c.total).unwrap_or(u32::MAX),
                done: c.succeeded + c.skipped + c.cancelled,
                running: c.running,
                failed: c.failed,
                pending: c.pending,
            }
        })
        .collect();
    let live = !run.state.is_terminal();
    print_one(args.format, &run_row(&run, conn::now_ms()), &jobs, live)
}

async fn list(store: &Store, args: &Args) -> anyhow::Result<ExitCode> {
    let filter = RunFilter {
        dag: args.dag.as_deref().map(Into::into),
        limit: Some(args.limit.max(1)),
        ..RunFilter::default()
    };
    let runs = store.list_runs(&filter).await.context("listing runs")?;
    let now = conn::now_ms();
    let rows: Vec<RunRow> = runs.iter().map(|r| run_row(r, now)).collect();
    print_list(args.format, &rows)
}

fn print_list(format: Format, rows: &[RunRow]) -> anyhow::Result<ExitCode> {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "runs": rows }))?
        ),
        Format::Text if rows.is_empty() => println!("no runs yet"),
        Format::Text => {
            println!(
                "{:<36} {:<20} {:<10} {:<15} {:<9} {:<20} {:>9}",
                "RUN", "DAG", "DATE", "STATE", "TRIGGER", "STARTED (UTC)", "DURATION"
            );
            for r in rows {
                println!(
                    "{:<36} {:<20} {:<10} {:<15} {:<9} {:<20} {:>9}",
                    r.run_id,
                    r.dag,
                    r.business_date,
                    r.state,
                    r.trigger,
                    r.started_at_ms.map_or("-".to_owned(), time),
                    r.duration_ms.map_or("-".to_owned(), duration)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn one(store: &Store, args: &Args, run: &str) -> anyhow::Result<ExitCode> {
    let run_id = conn::checked_id("run id", run, RunId::new)?;
    let Some(run) = store.get_run(&run_id).await.context("reading the run")? else {
        return bad_input(format!("unknown run `{run_id}`"));
    };
    let sql_jobs = store
        .job_runs(&run_id)
        .await
        .context("reading the run's jobs")?;
    let spec: Option<DagSpec> = store
        .dag_version(&run.dag, run.dag_version)
        .await
        .context("reading the run's dag version")?
        .and_then(|v| serde_json::from_str(&v.spec_json).ok());
    let live = if run.state.is_terminal() {
        None
    } else {
        live_run(args, &run_id).await
    };
    let jobs = job_rows(spec.as_ref(), &sql_jobs, live.as_ref());
    let row = run_row(&run, conn::now_ms());
    print_one(args.format, &row, &jobs, live.is_some())
}

fn print_one(
    format: Format,
    row: &RunRow,
    jobs: &[JobRow],
    live: bool,
) -> anyhow::Result<ExitCode> {
    match format {
        Format::Json => {
            let doc = serde_json::json!({ "run": row, "jobs": jobs, "live": live });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Text => {
            println!(
                "run {} of {} v{} (business date {})",
                row.run_id, row.dag, row.dag_version, row.business_date
            );
            println!(
                "state {} (trigger {}), duration {}",
                row.state,
                row.trigger,
                row.duration_ms.map_or("-".to_owned(), duration)
            );
            if let Some(error) = &row.error {
                println!("error: {error}");
            }
            println!(
                "\n{:<24} {:<15} {:>7} {:>7} {:>7} {:>7} {:>7}",
                "JOB", "STATE", "DONE", "RUNNING", "FAILED", "PENDING", "TOTAL"
            );
            for j in jobs {
                println!(
                    "{:<24} {:<15} {:>7} {:>7} {:>7} {:>7} {:>7}",
                    j.job, j.state, j.done, j.running, j.failed, j.pending, j.total
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The leader's live record of a run, if etcd is configured and answers at
/// once; any failure falls back to SQL (with a note in the debug log).
async fn live_run(args: &Args, run: &RunId) -> Option<RunRecord> {
    if !args.etcd.is_configured() {
        return None;
    }
    let prefix = args.etcd.key_prefix().ok()?;
    let mut config = match args.etcd.config() {
        Ok(config) => config,
        Err(e) => {
            tracing::warn!(error = %e, "etcd not usable: showing SQL progress only");
            return None;
        }
    };
    config.connect_timeout = std::time::Duration::from_secs(2);
    let coord = match EtcdCoordinator::connect(config).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "etcd not reachable: showing SQL progress only");
            return None;
        }
    };
    match live::read_run(&coord, &prefix, run).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "live run not readable: showing SQL progress only");
            None
        }
    }
}

/// One row per job, in the DAG's order when the spec is known.
fn job_rows(spec: Option<&DagSpec>, sql: &[JobRun], live: Option<&RunRecord>) -> Vec<JobRow> {
    let mut names: Vec<(JobName, u32)> = spec
        .map(|s| s.jobs.iter().map(|j| (j.name.clone(), j.shards)).collect())
        .unwrap_or_default();
    for j in sql {
        if !names.iter().any(|(n, _)| n == &j.job) {
            names.push((j.job.clone(), j.shards));
        }
    }
    names
        .into_iter()
        .map(|(name, shards)| {
            if let Some(job) = live.and_then(|l| l.jobs.get(&name)) {
                return live_row(&name, job);
            }
            match sql.iter().find(|j| j.job == name) {
                Some(j) => {
                    let done =
                        u64::from(j.succeeded) + u64::from(j.skipped) + u64::from(j.cancelled);
                    let failed = u64::from(j.failed);
                    JobRow {
                        job: name.to_string(),
                        state: j.state.to_string(),
                        total: j.shards,
                        done,
                        running: 0,
                        failed,
                        pending: u64::from(j.shards).saturating_sub(done + failed),
                    }
                }
                None => JobRow {
                    job: name.to_string(),
                    state: "pending".into(),
                    total: shards,
                    done: 0,
                    running: 0,
                    failed: 0,
                    pending: u64::from(shards),
                },
            }
        })
        .collect()
}

fn live_row(name: &JobName, job: &JobRecord) -> JobRow {
    let done_set = job.succeeded.union(&job.skipped).union(&job.cancelled);
    let finished = done_set.union(&job.failed);
    let running: u64 = job
        .owners
        .values()
        .map(|o| o.items.difference(&finished).len())
        .sum();
    let (done, failed) = (done_set.len(), job.failed.len());
    JobRow {
        job: name.to_string(),
        state: job.state.to_string(),
        total: job.shards,
        done,
        running,
        failed,
        pending: u64::from(job.shards).saturating_sub(done + failed + running),
    }
}

fn run_row(r: &Run, now_ms: i64) -> RunRow {
    let duration_ms = r
        .started_at_ms
        .map(|s| r.ended_at_ms.unwrap_or(now_ms).saturating_sub(s).max(0));
    RunRow {
        run_id: r.run_id.to_string(),
        dag: r.dag.to_string(),
        dag_version: r.dag_version,
        business_date: r.business_date.to_string(),
        state: r.state.to_string(),
        trigger: r.trigger_source.to_string(),
        created_at_ms: r.created_at_ms,
        started_at_ms: r.started_at_ms,
        ended_at_ms: r.ended_at_ms,
        duration_ms,
        error: r.error.clone(),
    }
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// `1h02m`, `3m05s`, `4.2s`.
fn duration(ms: i64) -> String {
    let secs = ms / 1000;
    match secs {
        0..=59 => format!("{:.1}s", ms as f64 / 1000.0),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(4_200), "4.2s");
        assert_eq!(duration(185_000), "3m05s");
        assert_eq!(duration(3_720_000), "1h02m");
    }
}
