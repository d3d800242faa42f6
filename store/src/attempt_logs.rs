//! Attempt logs (`attempt_logs`): the log tail an executor shipped with an
//! item attempt's result, one row per (run, job, item, attempt).
//!
//! A log is written once: the leader stores it when it absorbs the result,
//! and a new leader redoing that work writes the same text again, so a
//! second write of the same attempt keeps the first.

use crate::error::{missing_parent, query_err, QueryContext};
use crate::{Result, Store};
use nightshift_core::ids::{ItemIndex, JobName, RunId};

/// Rows per insert statement: a log is up to 64 KiB, so this keeps a
/// statement around 4 MiB at most.
const LOGS_PER_STATEMENT: usize = 64;

/// The log of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptLog {
    /// The run.
    pub run_id: RunId,
    /// The job.
    pub job: JobName,
    /// The shard item.
    pub item: ItemIndex,
    /// Which try.
    pub attempt: u32,
    /// The log text (lines ending in `\n`).
    pub log: String,
}

impl Store {
    /// Stores attempt logs, many per statement. Idempotent: an attempt that
    /// has a log keeps it. A NUL character (PostgreSQL text cannot hold
    /// one) is stored as U+FFFD on both backends.
    pub async fn record_attempt_logs(&self, logs: &[AttemptLog]) -> Result<()> {
        for chunk in logs.chunks(LOGS_PER_STATEMENT) {
            on_pool!(self, pool => {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO attempt_logs (run_id, job, item, attempt, log) ",
                );
                insert.push_values(chunk, |mut row, l| {
                    row.push_bind(l.run_id.as_str())
                        .push_bind(l.job.as_str())
                        .push_bind(i64::from(l.item.0))
                        .push_bind(i64::from(l.attempt))
                        .push_bind(l.log.replace('\0', "\u{FFFD}"));
                });
                insert.push(" ON CONFLICT (run_id, job, item, attempt) DO NOTHING");
                insert.build().execute(pool).await.map(|r| r.rows_affected())
            })
            .op("record attempt logs", || format!("{} logs", chunk.len()))
            .map_err(missing_parent(|| "the logs' run".to_owned()))?;
        }
        Ok(())
    }

    /// The log of one attempt; `None` when it has none (it logged nothing,
    /// ended without a result of its executor, or does not exist).
    pub async fn attempt_log(
        &self,
        run_id: &RunId,
        job: &JobName,
        item: ItemIndex,
        attempt: u32,
    ) -> Result<Option<String>> {
        let log: Option<String> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT log FROM attempt_logs WHERE run_id = $1 AND job = $2 AND item = $3 AND attempt = $4",
        )
        .bind(run_id.as_str())
        .bind(job.as_str())
        .bind(i64::from(item.0))
        .bind(i64::from(attempt))
        .fetch_optional(pool)
        .await)
        .map_err(query_err("get attempt log"))?;
        Ok(log)
    }
}
