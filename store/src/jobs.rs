//! Per-job rows of a run (`job_runs`): state, shard count and item tallies,
//! written as a whole by the scheduler and checked against
//! [`JobState::can_transition`].

use crate::error::{missing_parent, query_err, QueryContext, StoreError};
use crate::rows::{parse, to_u32};
use crate::{Result, Store};
use nightshift_core::ids::{JobName, RunId};
use nightshift_core::state::{JobState, StateMachine};

/// One job of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    /// The run.
    pub run_id: RunId,
    /// The job.
    pub job: JobName,
    /// Where it is in its life.
    pub state: JobState,
    /// Number of shard items.
    pub shards: u32,
    /// Items that succeeded.
    pub succeeded: u32,
    /// Items that failed for good.
    pub failed: u32,
    /// Items skipped.
    pub skipped: u32,
    /// Items cancelled.
    pub cancelled: u32,
    /// When it started running, epoch milliseconds. Kept once set.
    pub started_at_ms: Option<i64>,
    /// When it reached a terminal state.
    pub ended_at_ms: Option<i64>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct JobRunRow {
    run_id: String,
    job: String,
    state: String,
    shards: i64,
    succeeded: i64,
    failed: i64,
    skipped: i64,
    cancelled: i64,
    started_at_ms: Option<i64>,
    ended_at_ms: Option<i64>,
    error: Option<String>,
}

impl TryFrom<JobRunRow> for JobRun {
    type Error = StoreError;
    fn try_from(r: JobRunRow) -> Result<Self> {
        Ok(JobRun {
            run_id: RunId::new(r.run_id),
            job: JobName::new(r.job),
            state: parse("job_runs.state", &r.state)?,
            shards: to_u32("job_runs.shards", r.shards)?,
            succeeded: to_u32("job_runs.succeeded", r.succeeded)?,
            failed: to_u32("job_runs.failed", r.failed)?,
            skipped: to_u32("job_runs.skipped", r.skipped)?,
            cancelled: to_u32("job_runs.cancelled", r.cancelled)?,
            started_at_ms: r.started_at_ms,
            ended_at_ms: r.ended_at_ms,
            error: r.error,
        })
    }
}

const JOB_COLUMNS: &str = "run_id, job, state, shards, succeeded, failed, skipped, cancelled, \
    started_at_ms, ended_at_ms, error";

impl Store {
    /// Inserts or replaces the row of `job_run.job` in `job_run.run_id`.
    ///
    /// A new row may start in any state. An existing row may keep its state
    /// (to update tallies) or move as [`JobState::can_transition`] allows;
    /// anything else is [`StoreError::IllegalTransition`] and changes nothing.
    /// `started_at_ms` keeps its first non-null value.
    pub async fn upsert_job_run(&self, job_run: &JobRun) -> Result<()> {
        self.upsert_job_run_in_term(job_run, 0).await
    }

    /// [`Store::upsert_job_run`] by the scheduler leader of `term` (its
    /// election key's create revision): an existing row last written in a
    /// later term is left alone ([`StoreError::Superseded`]), so a deposed
    /// leader's late write never replaces its successor's.
    pub async fn upsert_job_run_in_term(&self, job_run: &JobRun, term: i64) -> Result<()> {
        const OP: &str = "upsert job run";
        let to = job_run.state;
        // Predecessors are fixed by the state machine, not by the caller, so
        // they are safe to inline as literals.
        let from: Vec<String> = JobState::ALL
            .iter()
            .filter(|&&from| from == to || JobState::can_transition(from, to))
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let sql = format!(
            "INSERT INTO job_runs ({JOB_COLUMNS}, term) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (run_id, job) DO UPDATE SET state = excluded.state, shards = excluded.shards, \
             succeeded = excluded.succeeded, failed = excluded.failed, skipped = excluded.skipped, \
             cancelled = excluded.cancelled, \
             started_at_ms = COALESCE(job_runs.started_at_ms, excluded.started_at_ms), \
             ended_at_ms = excluded.ended_at_ms, error = excluded.error, term = excluded.term \
             WHERE job_runs.state IN ({}) AND job_runs.term <= excluded.term",
            from.join(", ")
        );
        let changed = on_pool!(self, pool => sqlx::query(&sql)
            .bind(job_run.run_id.as_str())
            .bind(job_run.job.as_str())
            .bind(to.as_str())
            .bind(i64::from(job_run.shards))
            .bind(i64::from(job_run.succeeded))
            .bind(i64::from(job_run.failed))
            .bind(i64::from(job_run.skipped))
            .bind(i64::from(job_run.cancelled))
            .bind(job_run.started_at_ms)
            .bind(job_run.ended_at_ms)
            .bind(job_run.error.as_deref())
            .bind(term)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .op(OP, || {
            format!("job {} of run {}", job_run.job, job_run.run_id)
        })
        .map_err(missing_parent(|| format!("run {}", job_run.run_id)))?;
        if changed == 0 {
            let what = || format!("job {} of run {}", job_run.job, job_run.run_id);
            let row_term: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
                "SELECT term FROM job_runs WHERE run_id = $1 AND job = $2",
            )
            .bind(job_run.run_id.as_str())
            .bind(job_run.job.as_str())
            .fetch_optional(pool)
            .await)
            .op(OP, what)?;
            if let Some(current) = row_term.filter(|&t| t > term) {
                return Err(StoreError::Superseded {
                    what: what(),
                    term,
                    current,
                });
            }
            let current = self.job_run(&job_run.run_id, &job_run.job).await?;
            return Err(StoreError::IllegalTransition {
                what: format!("job {} of run {}", job_run.job, job_run.run_id),
                from: current.map_or_else(|| "nothing".to_owned(), |j| j.state.to_string()),
                to: to.to_string(),
            });
        }
        Ok(())
    }

    /// One job of a run.
    pub async fn job_run(&self, run_id: &RunId, job: &JobName) -> Result<Option<JobRun>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM job_runs WHERE run_id = $1 AND job = $2");
        let row: Option<JobRunRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(run_id.as_str())
            .bind(job.as_str())
            .fetch_optional(pool)
            .await)
        .map_err(query_err("get job run"))?;
        row.map(JobRun::try_from).transpose()
    }

    /// Every job row of a run, by job name.
    pub async fn job_runs(&self, run_id: &RunId) -> Result<Vec<JobRun>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM job_runs WHERE run_id = $1 ORDER BY job");
        let rows: Vec<JobRunRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(run_id.as_str())
            .fetch_all(pool)
            .await)
        .map_err(query_err("list job runs"))?;
        rows.into_iter().map(JobRun::try_from).collect()
    }
}
