//! Item attempts (`item_attempts`): one row per try of one shard item on one
//! executor, with the fencing token it ran under and, after a failover, the
//! executor it was moved from.
//!
//! An attempt ends exactly once: [`Store::finish_attempt`] refuses to
//! overwrite an outcome, so a stale owner's late report cannot rewrite
//! history.

use crate::error::{missing_parent, query_err, QueryContext, StoreError};
use crate::filter::Where;
use crate::rows::{parse_opt, to_u32};
use crate::{Result, Store};
use nightshift_core::ids::{ExecutorId, FencingToken, ItemIndex, JobName, RunId};
use nightshift_core::state::AttemptOutcome;
use std::fmt;

/// Database id of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttemptId(pub i64);

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An attempt that has just started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttempt {
    /// The run.
    pub run_id: RunId,
    /// The job.
    pub job: JobName,
    /// The shard item.
    pub item: ItemIndex,
    /// 1 for the first try, then 2, 3… (unique per item).
    pub attempt: u32,
    /// Who runs it.
    pub executor: ExecutorId,
    /// The assignment's fencing token it runs under.
    pub fencing_token: FencingToken,
    /// When it started, epoch milliseconds.
    pub started_at_ms: i64,
    /// The executor it failed over from, if it was moved.
    pub moved_from: Option<ExecutorId>,
}

/// A stored attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Its database id.
    pub id: AttemptId,
    /// The run.
    pub run_id: RunId,
    /// The job.
    pub job: JobName,
    /// The shard item.
    pub item: ItemIndex,
    /// Which try.
    pub attempt: u32,
    /// Who ran it.
    pub executor: ExecutorId,
    /// The fencing token it ran under.
    pub fencing_token: FencingToken,
    /// When it started.
    pub started_at_ms: i64,
    /// When it ended, once it has.
    pub ended_at_ms: Option<i64>,
    /// How it ended, once it has.
    pub outcome: Option<AttemptOutcome>,
    /// The handler's error or the reason it was cut short.
    pub error: Option<String>,
    /// The executor it failed over from.
    pub moved_from: Option<ExecutorId>,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    id: i64,
    run_id: String,
    job: String,
    item: i64,
    attempt: i64,
    executor: String,
    fencing_token: i64,
    started_at_ms: i64,
    ended_at_ms: Option<i64>,
    outcome: Option<String>,
    error: Option<String>,
    moved_from: Option<String>,
}

impl TryFrom<AttemptRow> for Attempt {
    type Error = StoreError;
    fn try_from(r: AttemptRow) -> Result<Self> {
        Ok(Attempt {
            id: AttemptId(r.id),
            run_id: RunId::new(r.run_id),
            job: JobName::new(r.job),
            item: ItemIndex(to_u32("item_attempts.item", r.item)?),
            attempt: to_u32("item_attempts.attempt", r.attempt)?,
            executor: ExecutorId::new(r.executor),
            fencing_token: FencingToken(r.fencing_token),
            started_at_ms: r.started_at_ms,
            ended_at_ms: r.ended_at_ms,
            outcome: parse_opt("item_attempts.outcome", r.outcome.as_deref())?,
            error: r.error,
            moved_from: r.moved_from.map(ExecutorId::new),
        })
    }
}

/// An attempt recorded whole, start and end at once: what the leader knows
/// when an executor's result (or the loss of its lease) arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedAttempt {
    /// The attempt as it started.
    pub new: NewAttempt,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// When it ended (never before it started: earlier ends are raised).
    pub ended_at_ms: i64,
    /// The handler's error or the reason it was cut short.
    pub error: Option<String>,
}

/// A run's items by how many succeeded attempts they have (the
/// exactly-once check of a benchmark, counted by the database).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SucceededCounts {
    /// Items (of any job) with exactly one succeeded attempt.
    pub once: u64,
    /// Items with more than one.
    pub more: u64,
}

/// Rows per `INSERT` of [`Store::record_ended_attempts`]: 11 binds a row
/// stays far below SQLite's (32,766) and PostgreSQL's (65,535) bind limits.
const ROWS_PER_STATEMENT: usize = 1000;

const ATTEMPT_COLUMNS: &str = "id, run_id, job, item, attempt, executor, fencing_token, \
    started_at_ms, ended_at_ms, outcome, error, moved_from";

impl Store {
    /// Records that an attempt started. A second start of the same
    /// (run, job, item, attempt) is a [`StoreError::Conflict`].
    pub async fn start_attempt(&self, new: &NewAttempt) -> Result<AttemptId> {
        const OP: &str = "start attempt";
        let id: i64 = on_pool!(self, pool => sqlx::query_scalar(
            "INSERT INTO item_attempts (run_id, job, item, attempt, executor, fencing_token, \
             started_at_ms, moved_from) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(new.run_id.as_str())
        .bind(new.job.as_str())
        .bind(i64::from(new.item.0))
        .bind(i64::from(new.attempt))
        .bind(new.executor.as_str())
        .bind(new.fencing_token.0)
        .bind(new.started_at_ms)
        .bind(new.moved_from.as_ref().map(ExecutorId::as_str))
        .fetch_one(pool)
        .await)
        .op(OP, || {
            format!(
                "attempt {} of item {} of job {} in run {}",
                new.attempt, new.item, new.job, new.run_id
            )
        })
        .map_err(missing_parent(|| format!("run {}", new.run_id)))?;
        Ok(AttemptId(id))
    }

    /// Records whole attempts, many per statement. Idempotent, as a new
    /// leader redoing a crashed one's work needs: an attempt already stored
    /// and ended keeps its first outcome; one stored but not ended gets this
    /// end; a new one is inserted ended.
    ///
    /// Each statement stands alone (no transaction spans them): after a
    /// failure part may be stored, and repeating the call completes it.
    pub async fn record_ended_attempts(&self, ended: &[EndedAttempt]) -> Result<()> {
        self.record_ended_attempts_in_term(ended, 0).await
    }

    /// [`Store::record_ended_attempts`] by the scheduler leader of `term`
    /// (its election key's create revision; terms increase with each new
    /// leader). An attempt that already ended keeps its row unless this
    /// write comes from a later term than the row's: a deposed leader that
    /// finishes its pass late is ignored, and its successor's outcome
    /// replaces whatever a deposed leader wrote first.
    pub async fn record_ended_attempts_in_term(
        &self,
        ended: &[EndedAttempt],
        term: i64,
    ) -> Result<()> {
        for chunk in ended.chunks(ROWS_PER_STATEMENT) {
            on_pool!(self, pool => {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO item_attempts (run_id, job, item, attempt, executor, fencing_token, \
                     started_at_ms, moved_from, ended_at_ms, outcome, error, term) ",
                );
                insert.push_values(chunk, |mut row, e| {
                    row.push_bind(e.new.run_id.as_str())
                        .push_bind(e.new.job.as_str())
                        .push_bind(i64::from(e.new.item.0))
                        .push_bind(i64::from(e.new.attempt))
                        .push_bind(e.new.executor.as_str())
                        .push_bind(e.new.fencing_token.0)
                        .push_bind(e.new.started_at_ms)
                        .push_bind(e.new.moved_from.as_ref().map(ExecutorId::as_str))
                        .push_bind(e.ended_at_ms.max(e.new.started_at_ms))
                        .push_bind(e.outcome.as_str())
                        .push_bind(e.error.as_deref())
                        .push_bind(term);
                });
                insert.push(
                    " ON CONFLICT (run_id, job, item, attempt) DO UPDATE SET \
                     ended_at_ms = excluded.ended_at_ms, outcome = excluded.outcome, \
                     error = excluded.error, term = excluded.term \
                     WHERE item_attempts.ended_at_ms IS NULL OR item_attempts.term < excluded.term",
                );
                insert.build().execute(pool).await.map(|r| r.rows_affected())
            })
            .op("record attempts", || format!("{} attempts", chunk.len()))
            .map_err(missing_parent(|| "the attempts' run".to_owned()))?;
        }
        Ok(())
    }

    /// Records how an attempt ended. An attempt ends once: finishing it again
    /// is [`StoreError::IllegalTransition`] and keeps the first outcome.
    pub async fn finish_attempt(
        &self,
        id: AttemptId,
        outcome: AttemptOutcome,
        ended_at_ms: i64,
        error: Option<&str>,
    ) -> Result<Attempt> {
        let sql = format!(
            "UPDATE item_attempts SET outcome = $2, ended_at_ms = $3, error = $4 \
             WHERE id = $1 AND ended_at_ms IS NULL RETURNING {ATTEMPT_COLUMNS}"
        );
        let row: Option<AttemptRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id.0)
            .bind(outcome.as_str())
            .bind(ended_at_ms)
            .bind(error)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("finish attempt"))?;
        if let Some(row) = row {
            return row.try_into();
        }
        let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM item_attempts WHERE id = $1");
        let existing: Option<AttemptRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id.0)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("get attempt"))?;
        match existing {
            None => Err(StoreError::NotFound {
                what: format!("attempt {id}"),
            }),
            Some(row) => Err(StoreError::IllegalTransition {
                what: format!("attempt {id}"),
                from: row.outcome.unwrap_or_else(|| "ended".to_owned()),
                to: outcome.to_string(),
            }),
        }
    }

    /// Attempts of a job in a run (of one item, if given), by item then try.
    pub async fn attempts(
        &self,
        run_id: &RunId,
        job: &JobName,
        item: Option<ItemIndex>,
    ) -> Result<Vec<Attempt>> {
        let mut w = Where::default();
        w.eq_text("run_id", Some(run_id.as_str()));
        w.eq_text("job", Some(job.as_str()));
        w.cmp_int("item", "=", item.map(|i| i64::from(i.0)));
        self.select_attempts(w, "list attempts").await
    }

    /// Attempts that have not ended, optionally of one run and/or one
    /// executor: what must be closed when an owner is lost or a leader takes
    /// over after a crash.
    pub async fn unfinished_attempts(
        &self,
        run_id: Option<&RunId>,
        executor: Option<&ExecutorId>,
    ) -> Result<Vec<Attempt>> {
        let mut w = Where::default();
        w.raw("ended_at_ms IS NULL");
        w.eq_text("run_id", run_id.map(RunId::as_str));
        w.eq_text("executor", executor.map(ExecutorId::as_str));
        self.select_attempts(w, "list unfinished attempts").await
    }

    /// How many items of `run_id` (every job) succeeded exactly once and
    /// how many more than once, grouped in SQL: a million-item run is
    /// counted without loading its attempt rows.
    pub async fn succeeded_counts(&self, run_id: &RunId) -> Result<SucceededCounts> {
        let sql = "SELECT \
                CAST(COALESCE(SUM(CASE WHEN n = 1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
                CAST(COALESCE(SUM(CASE WHEN n > 1 THEN 1 ELSE 0 END), 0) AS BIGINT) \
            FROM (SELECT COUNT(*) AS n FROM item_attempts \
                  WHERE run_id = $1 AND outcome = $2 GROUP BY job, item) AS per_item";
        let (once, more): (i64, i64) = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(run_id.as_str())
            .bind(AttemptOutcome::Succeeded.as_str())
            .fetch_one(pool)
            .await)
        .map_err(query_err("count succeeded items"))?;
        Ok(SucceededCounts {
            once: u64::try_from(once).unwrap_or(0),
            more: u64::try_from(more).unwrap_or(0),
        })
    }

    async fn select_attempts(&self, w: Where, op: &'static str) -> Result<Vec<Attempt>> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM item_attempts{} ORDER BY run_id, job, item, attempt",
            w.sql()
        );
        let rows: Vec<AttemptRow> = on_pool!(self, pool => bind_args!(sqlx::query_as(&sql), w.args)
            .fetch_all(pool)
            .await)
        .map_err(query_err(op))?;
        rows.into_iter().map(Attempt::try_from).collect()
    }
}
