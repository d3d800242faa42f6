//! Operator actions on DAGs and runs. Each one checks what it can (the DAG,
//! run, job or item exists; the run is not already over) and then writes
//! exactly one [`CommandRecord`] to `{p}commands/{id}`, naming the operator,
//! for the scheduler leader to carry out; it answers 202 with the command
//! id. The console never writes run state (invariant 6): whether the command
//! worked is the leader's to say, and `GET /commands/{id}`
//! ([`super::commands`]) reads it back; the pages follow every action to
//! that outcome.
//!
//! Unknown fields and values out of range are a 400 naming the field and
//! the allowed range, before anything is written. Actions without
//! parameters take no body or `{}` (`NoFields`).

use super::id_segment;
use super::runs::{get_run, run_spec};
use crate::auth::Operator;
use crate::error::ApiError;
use crate::extract::{NoFields, OptionalJson};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{Datelike, NaiveDate};
use nightshift_client::IssueError;
use nightshift_core::ids::{DagName, ItemIndex, JobName};
use nightshift_core::keyspace::commands::trigger_run_id;
use nightshift_core::keyspace::{Command, CommandId};
use nightshift_core::schedule::business_date_for;
use nightshift_core::state::TriggerSource;
use nightshift_store::Run;
use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;

/// Years a business date may fall in: a date outside them is a typo (a
/// two-digit year, a swapped field), not a business day.
pub const BUSINESS_DATE_YEARS: RangeInclusive<i32> = 1970..=2999;

/// Largest run `params` object, as compact JSON. Params travel in the
/// command, the run record and every item's context, so they are meant for
/// a few settings, not for data.
pub const MAX_PARAMS_BYTES: usize = 16 * 1024;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dags/{dag}/trigger", post(trigger))
        .route("/dags/{dag}/pause", post(pause))
        .route("/dags/{dag}/resume", post(resume))
        .route("/runs/{run}/cancel", post(cancel))
        .route("/runs/{run}/retry", post(retry))
        .route("/runs/{run}/clear", post(clear))
        .route("/runs/{run}/jobs/{job}/skip", post(skip))
        .route(
            "/runs/{run}/jobs/{job}/items/{item}/mark-succeeded",
            post(mark_succeeded),
        )
}

/// `POST /dags/{dag}/trigger` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// Business date (`YYYY-MM-DD`, years [`BUSINESS_DATE_YEARS`]); default:
    /// today's in the DAG's zone (under its business-date policy and
    /// calendar), written into the command so that a settled date is not
    /// re-run without `rerun`.
    #[serde(default)]
    pub business_date: Option<NaiveDate>,
    /// Run parameters: a JSON object of at most [`MAX_PARAMS_BYTES`].
    #[serde(default)]
    pub params: Option<serde_json::Value>,
    /// Run even if a run of this business date already succeeded.
    #[serde(default)]
    pub rerun: bool,
}

/// `POST /runs/{run}/retry` body (may be empty).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Only this job; every failed job when absent.
    #[serde(default)]
    pub job: Option<String>,
}

/// `POST /runs/{run}/clear` body: what to run again in the same run.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    /// Jobs cleared whole.
    #[serde(default)]
    pub jobs: Vec<String>,
    /// Items cleared one by one: job → item indices.
    #[serde(default)]
    pub items: std::collections::BTreeMap<String, Vec<u32>>,
    /// Also clear every job downstream of a cleared job.
    #[serde(default)]
    pub downstream: bool,
}

/// Most item indices one clear may name (a whole job is named by `jobs`).
pub const MAX_CLEAR_ITEMS: usize = 10_000;

/// Answer to every action: the command the leader will carry out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Issued {
    /// Command id (the leader's event for it carries the same id).
    pub command_id: String,
    /// Command kind (`trigger`, `cancel_run`, ...).
    pub kind: String,
    /// Who issued it.
    pub issued_by: String,
}

/// Writes the command through the shared command client, which refuses
/// to overwrite an existing key (two commands of the same millisecond and
/// nonce cannot both land).
pub async fn issue(
    state: &AppState,
    operator: &Operator,
    command: Command,
) -> Result<Issued, ApiError> {
    let kind = command.kind().to_owned();
    let id = nightshift_client::issue(state.coord.as_ref(), &state.prefix, &operator.user, command)
        .await
        .map_err(|e| match e {
            IssueError::Coordination { source, .. } => ApiError::from(source),
            IssueError::NoFreeId => {
                ApiError::Conflict("a command with the same id exists; try again".to_owned())
            }
            IssueError::Encode(e) => ApiError::Internal(format!("encoding command: {e}")),
        })?;
    Ok(Issued {
        command_id: id.to_string(),
        kind,
        issued_by: operator.user.clone(),
    })
}

type Accepted = (StatusCode, Json<Issued>);

async fn accepted(
    state: &AppState,
    operator: &Operator,
    command: Command,
) -> Result<Accepted, ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(issue(state, operator, command).await?),
    ))
}

async fn dag_exists(state: &AppState, dag: &str) -> Result<DagName, ApiError> {
    id_segment("dag name", dag)?;
    let dag = DagName::new(dag);
    super::dags::known_dag(state, &dag).await?;
    Ok(dag)
}

/// Answer to `POST /dags/{dag}/runs`: the issued command and the id of
/// the run the leader will create for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunAccepted {
    /// Id of the run to be created (the leader names it so).
    pub run_id: String,
    /// The command.
    #[serde(flatten)]
    pub issued: Issued,
}

impl TriggerRequest {
    /// The range checks serde cannot do: the business date's year and the
    /// shape and size of `params` (400 naming the field otherwise).
    pub(crate) fn check(&self) -> Result<(), ApiError> {
        if let Some(date) = self.business_date {
            if !BUSINESS_DATE_YEARS.contains(&date.year()) {
                return Err(ApiError::bad(format!(
                    "business_date {date} is out of range (years {} to {})",
                    BUSINESS_DATE_YEARS.start(),
                    BUSINESS_DATE_YEARS.end()
                )));
            }
        }
        if let Some(params) = &self.params {
            if !params.is_object() {
                return Err(ApiError::bad("params must be a JSON object"));
            }
            let size = params.to_string().len();
            if size > MAX_PARAMS_BYTES {
                return Err(ApiError::bad(format!(
                    "params is {size} bytes of JSON; at most {MAX_PARAMS_BYTES} are allowed"
                )));
            }
        }
        Ok(())
    }
}

/// Checks a trigger request and issues its command. A paused DAG is
/// triggered like any other: pausing stops *scheduled* runs only, the rule
/// the leader and the CLI follow (`nightshift pause`), so a manual run
/// during an incident is the operator's explicit choice.
async fn issue_trigger(
    state: &AppState,
    operator: &Operator,
    dag: &str,
    req: TriggerRequest,
) -> Result<(DagName, Issued), ApiError> {
    req.check()?;
    id_segment("dag name", dag)?;
    let dag = DagName::new(dag);
    let known = super::dags::known_dag(state, &dag).await?;
    // A blank date means today's business date; the command names it, so
    // the leader's "already succeeded" check applies to it too and a settled
    // date is re-run only when `rerun` asks for it.
    let business_date = req.business_date.unwrap_or_else(|| {
        let spec = &known.spec;
        business_date_for(
            chrono::Utc::now(),
            spec.timezone,
            spec.business_date,
            spec.calendar.as_ref(),
        )
    });
    let command = Command::Trigger {
        dag: dag.clone(),
        business_date: Some(business_date),
        params: req.params,
        rerun: req.rerun,
        source: TriggerSource::Manual,
    };
    Ok((dag, issue(state, operator, command).await?))
}

async fn trigger(
    State(state): State<AppState>,
    operator: Operator,
    Path(dag): Path<String>,
    OptionalJson(req): OptionalJson<TriggerRequest>,
) -> Result<Accepted, ApiError> {
    let (_, issued) = issue_trigger(&state, &operator, &dag, req).await?;
    Ok((StatusCode::ACCEPTED, Json(issued)))
}

/// `POST /dags/{dag}/runs`: trigger a run; 202 with `{"run_id", ...}`.
pub(crate) async fn trigger_run(
    State(state): State<AppState>,
    operator: Operator,
    Path(dag): Path<String>,
    OptionalJson(req): OptionalJson<TriggerRequest>,
) -> Result<(StatusCode, Json<RunAccepted>), ApiError> {
    let (dag, issued) = issue_trigger(&state, &operator, &dag, req).await?;
    let id = CommandId::parse(&issued.command_id).ok_or_else(|| {
        ApiError::Internal(format!(
            "issued an unparsable command id {}",
            issued.command_id
        ))
    })?;
    let run_id = trigger_run_id(&dag, &id).to_string();
    Ok((StatusCode::ACCEPTED, Json(RunAccepted { run_id, issued })))
}

async fn pause(
    State(state): State<AppState>,
    operator: Operator,
    Path(dag): Path<String>,
    _: NoFields,
) -> Result<Accepted, ApiError> {
    let dag = dag_exists(&state, &dag).await?;
    accepted(&state, &operator, Command::PauseDag { dag }).await
}

async fn resume(
    State(state): State<AppState>,
    operator: Operator,
    Path(dag): Path<String>,
    _: NoFields,
) -> Result<Accepted, ApiError> {
    let dag = dag_exists(&state, &dag).await?;
    accepted(&state, &operator, Command::ResumeDag { dag }).await
}

fn not_over(run: &Run) -> Result<(), ApiError> {
    if run.state.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "run `{}` is already {}",
            run.run_id,
            run.state.as_str()
        )));
    }
    Ok(())
}

async fn cancel(
    State(state): State<AppState>,
    operator: Operator,
    Path(run): Path<String>,
    _: NoFields,
) -> Result<Accepted, ApiError> {
    let run = get_run(&state, &run).await?;
    not_over(&run)?;
    accepted(&state, &operator, Command::CancelRun { run: run.run_id }).await
}

/// The job of a run, or 404: it must have a job run or be in the run's spec.
async fn job_of(state: &AppState, run: &Run, job: &str) -> Result<(JobName, u32), ApiError> {
    id_segment("job name", job)?;
    let job = JobName::new(job);
    if let Some(jr) = state.store.job_run(&run.run_id, &job).await? {
        return Ok((job, jr.shards));
    }
    match run_spec(state, run)
        .await?
        .and_then(|s| s.job(&job).map(|j| j.shards))
    {
        Some(shards) => Ok((job, shards)),
        None => Err(ApiError::NotFound(format!(
            "run `{}` has no job `{job}`",
            run.run_id
        ))),
    }
}

async fn retry(
    State(state): State<AppState>,
    operator: Operator,
    Path(run): Path<String>,
    OptionalJson(req): OptionalJson<RetryRequest>,
) -> Result<Accepted, ApiError> {
    let run = get_run(&state, &run).await?;
    let job = match req.job {
        Some(job) => Some(job_of(&state, &run, &job).await?.0),
        None => None,
    };
    accepted(
        &state,
        &operator,
        Command::Retry {
            run: run.run_id,
            job,
        },
    )
    .await
}

async fn skip(
    State(state): State<AppState>,
    operator: Operator,
    Path((run, job)): Path<(String, String)>,
    _: NoFields,
) -> Result<Accepted, ApiError> {
    let run = get_run(&state, &run).await?;
    not_over(&run)?;
    let (job, _) = job_of(&state, &run, &job).await?;
    if let Some(jr) = state.store.job_run(&run.run_id, &job).await? {
        if jr.state.is_terminal() {
            return Err(ApiError::Conflict(format!(
                "job `{job}` is already {}",
                jr.state.as_str()
            )));
        }
    }
    accepted(
        &state,
        &operator,
        Command::SkipJob {
            run: run.run_id,
            job,
        },
    )
    .await
}

async fn mark_succeeded(
    State(state): State<AppState>,
    operator: Operator,
    Path((run, job, item)): Path<(String, String, String)>,
    _: NoFields,
) -> Result<Accepted, ApiError> {
    let item: u32 = item.parse().map_err(|_| {
        ApiError::bad(format!(
            "item `{item}` is not an item index (a whole number from 0 to {})",
            u32::MAX
        ))
    })?;
    let run = get_run(&state, &run).await?;
    let (job, shards) = job_of(&state, &run, &job).await?;
    if item >= shards {
        return Err(ApiError::NotFound(format!(
            "job `{job}` has {shards} items; there is no item {item}"
        )));
    }
    accepted(
        &state,
        &operator,
        Command::MarkItemSucceeded {
            run: run.run_id,
            job,
            item: ItemIndex(item),
        },
    )
    .await
}

/// Clears chosen work of a run (it may have ended): 400 when nothing is
/// named or too many items are, 404 naming an unknown job or item.
async fn clear(
    State(state): State<AppState>,
    operator: Operator,
    Path(run): Path<String>,
    OptionalJson(req): OptionalJson<ClearRequest>,
) -> Result<Accepted, ApiError> {
    if req.jobs.is_empty() && req.items.values().all(Vec::is_empty) {
        return Err(ApiError::bad(
            "nothing to clear: give `jobs` (job names) or `items` ({\"job\": [indices]})",
        ));
    }
    let named: usize = req.items.values().map(Vec::len).sum();
    if named > MAX_CLEAR_ITEMS {
        return Err(ApiError::bad(format!(
            "`items` names {named} items; at most {MAX_CLEAR_ITEMS} (clear the whole job with `jobs`)"
        )));
    }
    let run = get_run(&state, &run).await?;
    let mut jobs = Vec::new();
    for job in &req.jobs {
        jobs.push(job_of(&state, &run, job).await?.0);
    }
    let mut items = std::collections::BTreeMap::new();
    for (job, indices) in &req.items {
        let (job, shards) = job_of(&state, &run, job).await?;
        if let Some(bad) = indices.iter().find(|&&i| i >= shards) {
            return Err(ApiError::NotFound(format!(
                "job `{job}` has {shards} items; there is no item {bad}"
            )));
        }
        let list: Vec<ItemIndex> = indices.iter().map(|&i| ItemIndex(i)).collect();
        items.insert(job, list);
    }
    accepted(
        &state,
        &operator,
        Command::Clear {
            run: run.run_id,
            jobs,
            items,
            downstream: req.downstream,
        },
    )
    .await
}
