//! `GET /runs` and `GET /runs/{run}`: runs with their jobs and per-job item
//! counts, throughput and ETA.

use super::{id_segment, limit, RunBrief};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::time::now_ms;
use crate::{live_items, AppState};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use nightshift_core::dag::DagSpec;
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::state::{JobState, RunState};
use nightshift_store::{Run, RunFilter};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/runs", get(list))
        .route("/runs/{run}", get(one))
}

/// `GET /runs` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// Only this DAG.
    pub dag: Option<String>,
    /// Only these states, comma-separated.
    pub state: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
}

/// A run with its jobs.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    /// The run.
    pub run: RunBrief,
    /// Its jobs in topological order (jobs not started yet included).
    pub jobs: Vec<JobProgress>,
    /// Item counts over all jobs.
    pub totals: Counts,
    /// The run this one retries, if it is a retry.
    pub retry_of: Option<String>,
    /// The runs that retry this one, oldest first.
    pub retried_by: Vec<String>,
}

/// Item counts by state.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    /// Items in total.
    pub total: u64,
    /// Not started, or moved and waiting.
    pub pending: u64,
    /// Running now.
    pub running: u64,
    /// Succeeded.
    pub succeeded: u64,
    /// Failed for good.
    pub failed: u64,
    /// Skipped.
    pub skipped: u64,
    /// Cancelled.
    pub cancelled: u64,
}

/// One job of a run.
#[derive(Debug, Clone, Serialize)]
pub struct JobProgress {
    /// Job name.
    pub job: String,
    /// Job state (`pending` for jobs not started yet).
    pub state: String,
    /// Upstream jobs.
    pub depends_on: Vec<String>,
    /// Item counts.
    pub counts: Counts,
    /// Start (epoch ms).
    pub started_at_ms: Option<i64>,
    /// End (epoch ms).
    pub ended_at_ms: Option<i64>,
    /// Items finished per minute since the start.
    pub items_per_minute: Option<f64>,
    /// Estimated time to finish at that rate, while running.
    pub eta_ms: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The spec a run was started with, if it can still be read.
pub(crate) async fn run_spec(state: &AppState, run: &Run) -> Result<Option<DagSpec>, ApiError> {
    let Some(version) = state.store.dag_version(&run.dag, run.dag_version).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_str(&version.spec_json).ok())
}

/// A run or 404.
pub(crate) async fn get_run(state: &AppState, run: &str) -> Result<Run, ApiError> {
    id_segment("run id", run)?;
    state
        .store
        .get_run(&RunId::new(run))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no run `{run}`")))
}

/// A run in detail.
pub async fn detail(state: &AppState, run: &Run) -> Result<RunDetail, ApiError> {
    let now = now_ms();
    let spec = run_spec(state, run).await?;
    let job_runs = state.store.job_runs(&run.run_id).await?;
    // Running items are in the live assignments, not in SQL (which learns
    // of an attempt when it ends): count them for every job not over.
    let mut running: BTreeMap<String, u64> = BTreeMap::new();
    for jr in job_runs.iter().filter(|j| !j.state.is_terminal()) {
        let live = live_items::job_assignments(state, &run.run_id, &jr.job).await?;
        if live.is_empty() {
            continue;
        }
        let attempts = live_items::by_item(state.store.attempts(&run.run_id, &jr.job, None).await?);
        let n = live_items::running_of_job(
            &run.run_id,
            &jr.job,
            jr.state,
            jr.started_at_ms,
            &attempts,
            &live,
            &BTreeMap::new(),
        )
        .len();
        running.insert(jr.job.to_string(), n as u64);
    }
    // Jobs in topological order from the spec, then any job the spec does
    // not name (it should not happen, but history must still show).
    let mut order: Vec<(String, Vec<String>, u32)> = match &spec {
        Some(spec) => spec
            .topo_order()
            .iter()
            .filter_map(|n| spec.job(n))
            .map(|j| {
                (
                    j.name.to_string(),
                    j.depends_on.iter().map(ToString::to_string).collect(),
                    j.shards,
                )
            })
            .collect(),
        None => Vec::new(),
    };
    for jr in &job_runs {
        if !order.iter().any(|(n, _, _)| n == jr.job.as_str()) {
            order.push((jr.job.to_string(), Vec::new(), jr.shards));
        }
    }
    let mut totals = Counts::default();
    let mut jobs = Vec::new();
    for (name, depends_on, spec_shards) in order {
        let jr = job_runs.iter().find(|j| j.job.as_str() == name);
        let state_name = jr.map_or(JobState::Pending, |j| j.state);
        let mut c = Counts {
            total: u64::from(jr.map_or(spec_shards, |j| j.shards)),
            ..Counts::default()
        };
        if let Some(j) = jr {
            c.succeeded = j.succeeded.into();
            c.failed = j.failed.into();
            c.skipped = j.skipped.into();
            c.cancelled = j.cancelled.into();
        }
        c.running = running.get(&name).copied().unwrap_or(0);
        let finished = c.succeeded + c.failed + c.skipped + c.cancelled;
        c.pending = c.total.saturating_sub(finished + c.running);
        let started = jr.and_then(|j| j.started_at_ms);
        let ended = jr.and_then(|j| j.ended_at_ms);
        let elapsed = started.map(|s| ended.unwrap_or(now) - s).filter(|&e| e > 0);
        let rate = elapsed.map(|e| finished as f64 * 60_000.0 / e as f64);
        let eta_ms = match (state_name, elapsed) {
            (JobState::Running, Some(e)) if finished > 0 => Some(
                (e as f64 * (c.total.saturating_sub(finished)) as f64 / finished as f64) as i64,
            ),
            _ => None,
        };
        add(&mut totals, &c);
        jobs.push(JobProgress {
            job: name,
            state: state_name.as_str().to_owned(),
            depends_on,
            counts: c,
            started_at_ms: started,
            ended_at_ms: ended,
            items_per_minute: rate,
            eta_ms,
            error: jr.and_then(|j| j.error.clone()),
        });
    }
    let retry_of = state.store.retry_of(&run.run_id).await?;
    let retried_by = state.store.retries_of(&run.run_id).await?;
    Ok(RunDetail {
        run: RunBrief::new(run, now),
        jobs,
        totals,
        retry_of: retry_of.map(|r| r.to_string()),
        retried_by: retried_by.iter().map(|r| r.to_string()).collect(),
    })
}

fn add(total: &mut Counts, c: &Counts) {
    total.total += c.total;
    total.pending += c.pending;
    total.running += c.running;
    total.succeeded += c.succeeded;
    total.failed += c.failed;
    total.skipped += c.skipped;
    total.cancelled += c.cancelled;
}

/// Parses `running,failed` into run states (400 on an unknown one).
pub(crate) fn run_states(text: Option<&str>) -> Result<Vec<RunState>, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(|s| {
            RunState::ALL
                .iter()
                .copied()
                .find(|st| st.as_str() == s.trim())
                .ok_or_else(|| ApiError::bad(format!("unknown run state `{s}`")))
        })
        .collect()
}

/// Runs matching the query, newest first.
pub async fn list_runs(state: &AppState, q: &RunQuery) -> Result<Vec<RunBrief>, ApiError> {
    let dag = match q.dag.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => {
            id_segment("dag name", d)?;
            Some(DagName::new(d))
        }
        None => None,
    };
    let filter = RunFilter {
        dag,
        states: run_states(q.state.as_deref())?,
        limit: Some(limit(q.limit)?),
        offset: q.offset.unwrap_or(0),
        ..RunFilter::default()
    };
    let now = now_ms();
    Ok(state
        .store
        .list_runs(&filter)
        .await?
        .iter()
        .map(|r| RunBrief::new(r, now))
        .collect())
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> Result<Json<Vec<RunBrief>>, ApiError> {
    Ok(Json(list_runs(&state, &q).await?))
}

async fn one(
    State(state): State<AppState>,
    Path(run): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let run = get_run(&state, &run).await?;
    Ok(Json(detail(&state, &run).await?))
}
