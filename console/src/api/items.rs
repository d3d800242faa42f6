//! `GET /runs/{run}/jobs/{job}/items`: one object per shard item with its
//! state, its attempts and its live progress. The state comes from the
//! attempts in SQL merged with the live assignments in the coordination
//! service ([`crate::live_items`]): SQL learns of an attempt only when it
//! ends, so an item in flight is `running` with its executor and attempt
//! only thanks to its owner's assignment key.
//! Its last checkpoint comes from the coordination service while the run
//! is live, from SQL after.

use super::id_segment;
use super::runs::{get_run, run_spec};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::time::now_ms;
use crate::{live, live_items, AppState};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use nightshift_core::ids::JobName;
use nightshift_core::state::{AttemptOutcome, JobState};
use nightshift_store::Attempt;
use serde::{Deserialize, Serialize};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/runs/{run}/jobs/{job}/items", get(list))
        .route("/runs/{run}/items", get(list_by_query))
}

/// `GET /runs/{run}/items?job=` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    /// The job (required: items are numbered per job).
    pub job: String,
}

/// One shard item.
#[derive(Debug, Clone, Serialize)]
pub struct ItemView {
    /// Job name.
    pub job: String,
    /// Item index.
    pub item: u32,
    /// `pending`, `running`, `succeeded`, `failed`, `skipped`, `cancelled`
    /// or `upstream_failed`.
    pub state: &'static str,
    /// Owner of the running attempt, else executor of the latest attempt.
    pub executor: Option<String>,
    /// The running attempt's number (only while `running`).
    pub attempt: Option<u32>,
    /// The leader asked the owner to stop it (only while `running`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cancelling: bool,
    /// Latest sign of life of a running item (epoch ms): its last progress
    /// report, else when it was handed out at the earliest (the job's start
    /// or its previous attempt's end).
    pub last_progress_at_ms: Option<i64>,
    /// Now minus `last_progress_at_ms`: a stuck item's keeps growing.
    pub last_progress_age_ms: Option<i64>,
    /// Every attempt, first to last.
    pub attempts: Vec<AttemptView>,
    /// Latest reported progress, while running.
    pub progress: Option<ProgressView>,
    /// The item's last checkpoint: where its next attempt resumes.
    pub checkpoint: Option<CheckpointView>,
}

/// An item's last checkpoint (`ctx.checkpoint(value)`).
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointView {
    /// The handler's value.
    pub value: serde_json::Value,
    /// Run whose attempt stored it (an earlier run's when seeded from it).
    pub run_id: String,
    /// Attempt (of that run) that stored it.
    pub attempt: u32,
    /// Executor that stored it.
    pub executor: String,
    /// When it was stored (epoch ms).
    pub saved_at_ms: i64,
}

/// One attempt at an item.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    /// 1, 2, 3…
    pub attempt: u32,
    /// Who ran it.
    pub executor: String,
    /// The fencing token it ran under.
    pub fencing_token: i64,
    /// Start (epoch ms).
    pub started_at_ms: i64,
    /// End (epoch ms).
    pub ended_at_ms: Option<i64>,
    /// `succeeded`, `failed`, `timed_out`, `cancelled`, `lost`, `fenced`.
    pub outcome: Option<String>,
    /// Error or reason.
    pub error: Option<String>,
    /// Executor it failed over from.
    pub moved_from: Option<String>,
}

/// Progress reported by a running item's handler.
#[derive(Debug, Clone, Serialize)]
pub struct ProgressView {
    /// Reporting executor.
    pub executor: String,
    /// Units done.
    pub done: u64,
    /// Units in total (0: unknown).
    pub total: u64,
    /// Status line.
    pub message: Option<String>,
    /// When reported (epoch ms).
    pub at_ms: i64,
}

/// The state of an item from its job's state and its attempts (in order).
///
/// The latest attempt decides while there is one: unfinished → running;
/// lost or fenced → pending (it is being moved) unless the job is over.
/// Without attempts, a finished job tells what happened to the item.
pub fn item_state(job: JobState, attempts: &[Attempt]) -> &'static str {
    let from_job = || match job {
        JobState::Skipped => Some("skipped"),
        JobState::Cancelled => Some("cancelled"),
        JobState::UpstreamFailed => Some("upstream_failed"),
        _ => None,
    };
    match attempts.iter().max_by_key(|a| a.attempt) {
        None => from_job().unwrap_or("pending"),
        Some(last) => match last.outcome {
            None => "running",
            Some(AttemptOutcome::Succeeded) => "succeeded",
            Some(AttemptOutcome::Failed | AttemptOutcome::TimedOut) => "failed",
            Some(AttemptOutcome::Cancelled) => "cancelled",
            Some(AttemptOutcome::Lost | AttemptOutcome::Fenced) => {
                from_job().unwrap_or(if job.is_terminal() {
                    "failed"
                } else {
                    "pending"
                })
            }
        },
    }
}

/// Every item of a job of a run.
pub async fn items(state: &AppState, run: &str, job: &str) -> Result<Vec<ItemView>, ApiError> {
    id_segment("job name", job)?;
    let run = get_run(state, run).await?;
    let job = JobName::new(job);
    let job_run = state.store.job_run(&run.run_id, &job).await?;
    let shards = match &job_run {
        Some(jr) => jr.shards,
        None => run_spec(state, &run)
            .await?
            .and_then(|spec| spec.job(&job).map(|j| j.shards))
            .ok_or_else(|| {
                ApiError::NotFound(format!("run `{}` has no job `{job}`", run.run_id))
            })?,
    };
    let job_state = job_run.as_ref().map_or(JobState::Pending, |j| j.state);
    let job_started = job_run.as_ref().and_then(|j| j.started_at_ms);
    let attempts = state.store.attempts(&run.run_id, &job, None).await?;
    // A finished job's leftover keys say nothing; skip the reads.
    let (live, mut progress) = if job_state.is_terminal() {
        (Default::default(), Default::default())
    } else {
        (
            live_items::job_assignments(state, &run.run_id, &job).await?,
            live::progress(state, &run.run_id, &job).await?,
        )
    };
    let now = now_ms();
    let mut checkpoints = if run.state.is_terminal() {
        state
            .store
            .job_checkpoints(&run.run_id, &job)
            .await?
            .into_iter()
            .map(|c| {
                let view = CheckpointView {
                    value: c.value,
                    run_id: c.run_id.to_string(),
                    attempt: c.attempt,
                    executor: c.executor.to_string(),
                    saved_at_ms: c.saved_at_ms,
                };
                (c.item.0, view)
            })
            .collect()
    } else {
        live::checkpoints(state, &run.run_id, &job)
            .await?
            .into_iter()
            .map(|(item, c)| {
                let view = CheckpointView {
                    value: c.value,
                    run_id: c.run.to_string(),
                    attempt: c.attempt,
                    executor: c.executor.to_string(),
                    saved_at_ms: c.saved_at_ms,
                };
                (item, view)
            })
            .collect::<std::collections::BTreeMap<u32, CheckpointView>>()
    };
    let mut by_item: Vec<Vec<Attempt>> = vec![Vec::new(); shards as usize];
    for a in attempts {
        if let Some(slot) = by_item.get_mut(a.item.0 as usize) {
            slot.push(a);
        }
    }
    Ok(by_item
        .into_iter()
        .enumerate()
        .map(|(i, attempts)| {
            let item = i as u32;
            let merged = live_items::merge_item(job_state, &attempts, live.get(&item));
            let progress = progress
                .remove(&item)
                .filter(|(executor, _)| {
                    merged.state == "running"
                        && merged.executor.as_deref() == Some(executor.as_str())
                })
                .map(|(executor, p)| ProgressView {
                    executor: executor.to_string(),
                    done: p.done,
                    total: p.total,
                    message: p.message,
                    at_ms: p.at_ms,
                });
            let last_progress_at_ms = (merged.state == "running")
                .then(|| {
                    live_items::last_sign_of_life(
                        progress.as_ref().map(|p| p.at_ms),
                        job_started,
                        &attempts,
                    )
                })
                .flatten();
            ItemView {
                job: job.to_string(),
                item,
                state: merged.state,
                executor: merged.executor,
                attempt: merged.attempt,
                cancelling: merged.cancelling,
                last_progress_at_ms,
                last_progress_age_ms: last_progress_at_ms.map(|at| (now - at).max(0)),
                attempts: attempts
                    .iter()
                    .map(|a| AttemptView {
                        attempt: a.attempt,
                        executor: a.executor.to_string(),
                        fencing_token: a.fencing_token.0,
                        started_at_ms: a.started_at_ms,
                        ended_at_ms: a.ended_at_ms,
                        outcome: a.outcome.map(|o| o.as_str().to_owned()),
                        error: a.error.clone(),
                        moved_from: a.moved_from.as_ref().map(ToString::to_string),
                    })
                    .collect(),
                progress,
                checkpoint: checkpoints.remove(&item),
            }
        })
        .collect())
}

async fn list(
    State(state): State<AppState>,
    Path((run, job)): Path<(String, String)>,
) -> Result<Json<Vec<ItemView>>, ApiError> {
    Ok(Json(items(&state, &run, &job).await?))
}

async fn list_by_query(
    State(state): State<AppState>,
    Path(run): Path<String>,
    ApiQuery(q): ApiQuery<ItemsQuery>,
) -> Result<Json<Vec<ItemView>>, ApiError> {
    Ok(Json(items(&state, &run, &q.job).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift_core::ids::{ExecutorId, FencingToken, ItemIndex, RunId};
    use nightshift_store::AttemptId;

    fn attempt(n: u32, outcome: Option<AttemptOutcome>) -> Attempt {
        Attempt {
            id: AttemptId(i64::from(n)),
            run_id: RunId::new("r"),
            job: JobName::new("j"),
            item: ItemIndex(0),
            attempt: n,
            executor: ExecutorId::new("e"),
            fencing_token: FencingToken(1),
            started_at_ms: 0,
            ended_at_ms: outcome.map(|_| 1),
            outcome,
            error: None,
            moved_from: None,
        }
    }

    #[test]
    fn the_latest_attempt_decides() {
        use AttemptOutcome::*;
        let running = JobState::Running;
        assert_eq!(item_state(running, &[]), "pending");
        assert_eq!(item_state(running, &[attempt(1, None)]), "running");
        assert_eq!(
            item_state(
                running,
                &[attempt(2, Some(Succeeded)), attempt(1, Some(Failed))]
            ),
            "succeeded"
        );
        assert_eq!(
            item_state(
                running,
                &[attempt(1, Some(Succeeded)), attempt(2, Some(TimedOut))]
            ),
            "failed"
        );
        assert_eq!(item_state(running, &[attempt(1, Some(Lost))]), "pending");
        assert_eq!(
            item_state(JobState::Failed, &[attempt(1, Some(Fenced))]),
            "failed"
        );
        assert_eq!(
            item_state(running, &[attempt(1, Some(Cancelled))]),
            "cancelled"
        );
    }

    #[test]
    fn items_never_run_take_their_jobs_outcome() {
        assert_eq!(item_state(JobState::UpstreamFailed, &[]), "upstream_failed");
        assert_eq!(item_state(JobState::Skipped, &[]), "skipped");
        assert_eq!(item_state(JobState::Cancelled, &[]), "cancelled");
        assert_eq!(item_state(JobState::Pending, &[]), "pending");
    }
}
