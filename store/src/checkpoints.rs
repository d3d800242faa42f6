//! Work identity across runs: the redo generation of runs (`runs.redo`)
//! and the item checkpoints of finished runs (`item_checkpoints`).
//!
//! The leader copies a run's checkpoints here from etcd when the run ends
//! ([`Store::save_checkpoints`], idempotent), and seeds a job's open items
//! from here when a later run of the same work starts
//! ([`Store::resumable_checkpoints`]). The console shows an item's
//! checkpoint from here once its run has ended ([`Store::item_checkpoint`]).

use crate::error::{missing_parent, query_err, QueryContext};
use crate::rows::{date_text, json, to_u32};
use crate::{Result, Store};
use chrono::NaiveDate;
use nightshift_core::ids::{DagName, ExecutorId, FencingToken, ItemIndex, JobName, RunId};

/// The last checkpoint of one item in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCheckpoint {
    /// The run.
    pub run_id: RunId,
    /// The job.
    pub job: JobName,
    /// The item.
    pub item: ItemIndex,
    /// The run's DAG.
    pub dag: DagName,
    /// The run's business date.
    pub business_date: NaiveDate,
    /// The item's work key (`WorkKey`'s text).
    pub work_key: String,
    /// The attempt that stored it (of the run that stored it: a seeded
    /// checkpoint that was never replaced keeps its first run's attempt).
    pub attempt: u32,
    /// The executor that stored it.
    pub executor: ExecutorId,
    /// The fencing token it was stored under.
    pub fencing_token: FencingToken,
    /// When it was stored, epoch milliseconds.
    pub saved_at_ms: i64,
    /// The handler's value.
    pub value: serde_json::Value,
    /// Whether a later run of the same work may resume from it (the item
    /// did not succeed in this run).
    pub resumable: bool,
}

#[derive(sqlx::FromRow)]
struct CheckpointRow {
    run_id: String,
    job: String,
    item: i64,
    dag: String,
    business_date: String,
    work_key: String,
    attempt: i64,
    executor: String,
    fencing_token: i64,
    saved_at_ms: i64,
    value_json: String,
    resumable: bool,
}

impl TryFrom<CheckpointRow> for StoredCheckpoint {
    type Error = crate::StoreError;
    fn try_from(r: CheckpointRow) -> Result<Self> {
        Ok(StoredCheckpoint {
            run_id: RunId::new(r.run_id),
            job: JobName::new(r.job),
            item: ItemIndex(to_u32("item_checkpoints.item", r.item)?),
            dag: DagName::new(r.dag),
            business_date: crate::rows::date("item_checkpoints.business_date", &r.business_date)?,
            work_key: r.work_key,
            attempt: to_u32("item_checkpoints.attempt", r.attempt)?,
            executor: ExecutorId::new(r.executor),
            fencing_token: FencingToken(r.fencing_token),
            saved_at_ms: r.saved_at_ms,
            value: json("item_checkpoints.value_json", &r.value_json)?,
            resumable: r.resumable,
        })
    }
}

const COLUMNS: &str = "run_id, job, item, dag, business_date, work_key, attempt, executor, \
    fencing_token, saved_at_ms, value_json, resumable";

/// Rows per `INSERT`: 12 binds a row, far below both backends' bind limits.
const ROWS_PER_STATEMENT: usize = 1000;

impl Store {
    /// Sets a run's redo generation (stored beside the run row, which is
    /// inserted first). Idempotent.
    pub async fn set_run_redo(&self, run_id: &RunId, redo: u32) -> Result<()> {
        on_pool!(self, pool => sqlx::query("UPDATE runs SET redo = $2 WHERE run_id = $1")
            .bind(run_id.as_str())
            .bind(i64::from(redo))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .op("set run redo", || format!("run {run_id}"))?;
        Ok(())
    }

    /// A run's redo generation (0 for an unknown run).
    pub async fn run_redo(&self, run_id: &RunId) -> Result<u32> {
        let redo: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT redo FROM runs WHERE run_id = $1")
            .bind(run_id.as_str())
            .fetch_optional(pool)
            .await)
        .map_err(query_err("get run redo"))?;
        to_u32("runs.redo", redo.unwrap_or(0))
    }

    /// The highest redo generation of any run of `dag` for `day` (0 if none).
    pub async fn max_redo(&self, dag: &DagName, day: NaiveDate) -> Result<u32> {
        let redo: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT MAX(redo) FROM runs WHERE dag = $1 AND business_date = $2")
            .bind(dag.as_str())
            .bind(date_text(day))
            .fetch_one(pool)
            .await)
        .map_err(query_err("get max redo"))?;
        to_u32("runs.redo", redo.unwrap_or(0))
    }

    /// Stores the last checkpoints of a run's items. Idempotent: a row of the
    /// same (run, job, item) is replaced, as a leader finishing a crashed
    /// one's work needs.
    pub async fn save_checkpoints(&self, rows: &[StoredCheckpoint]) -> Result<()> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            on_pool!(self, pool => {
                let mut insert = sqlx::QueryBuilder::new(format!(
                    "INSERT INTO item_checkpoints ({COLUMNS}) "
                ));
                insert.push_values(chunk, |mut row, c| {
                    row.push_bind(c.run_id.as_str())
                        .push_bind(c.job.as_str())
                        .push_bind(i64::from(c.item.0))
                        .push_bind(c.dag.as_str())
                        .push_bind(date_text(c.business_date))
                        .push_bind(c.work_key.as_str())
                        .push_bind(i64::from(c.attempt))
                        .push_bind(c.executor.as_str())
                        .push_bind(c.fencing_token.0)
                        .push_bind(c.saved_at_ms)
                        .push_bind(c.value.to_string())
                        .push_bind(c.resumable);
                });
                insert.push(
                    " ON CONFLICT (run_id, job, item) DO UPDATE SET \
                     work_key = excluded.work_key, attempt = excluded.attempt, \
                     executor = excluded.executor, fencing_token = excluded.fencing_token, \
                     saved_at_ms = excluded.saved_at_ms, value_json = excluded.value_json, \
                     resumable = excluded.resumable",
                );
                insert.build().execute(pool).await.map(|r| r.rows_affected())
            })
            .op("save checkpoints", || {
                format!("{} checkpoints", chunk.len())
            })
            .map_err(missing_parent(|| "the checkpoints' run".to_owned()))?;
        }
        Ok(())
    }

    /// For each work key of `job` of `dag` on `day`: its latest stored
    /// checkpoint, if that one is resumable (the latest run that stored one
    /// did not finish the item). What a new run of the same work resumes from.
    pub async fn resumable_checkpoints(
        &self,
        dag: &DagName,
        day: NaiveDate,
        job: &JobName,
    ) -> Result<Vec<StoredCheckpoint>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM item_checkpoints \
             WHERE dag = $1 AND business_date = $2 AND job = $3 \
             ORDER BY work_key, saved_at_ms DESC, run_id DESC"
        );
        let rows: Vec<CheckpointRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(dag.as_str())
            .bind(date_text(day))
            .bind(job.as_str())
            .fetch_all(pool)
            .await)
        .map_err(query_err("list checkpoints"))?;
        let mut latest: Vec<StoredCheckpoint> = Vec::new();
        for row in rows {
            let row = StoredCheckpoint::try_from(row)?;
            // Rows come newest first within a work key: keep the first.
            if latest.last().is_some_and(|l| l.work_key == row.work_key) {
                continue;
            }
            latest.push(row);
        }
        latest.retain(|c| c.resumable);
        Ok(latest)
    }

    /// The stored checkpoints of a finished run's job, by item.
    pub async fn job_checkpoints(
        &self,
        run_id: &RunId,
        job: &JobName,
    ) -> Result<Vec<StoredCheckpoint>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM item_checkpoints WHERE run_id = $1 AND job = $2 ORDER BY item"
        );
        let rows: Vec<CheckpointRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(run_id.as_str())
            .bind(job.as_str())
            .fetch_all(pool)
            .await)
        .map_err(query_err("list job checkpoints"))?;
        rows.into_iter().map(StoredCheckpoint::try_from).collect()
    }

    /// The stored checkpoint of one item of a finished run.
    pub async fn item_checkpoint(
        &self,
        run_id: &RunId,
        job: &JobName,
        item: ItemIndex,
    ) -> Result<Option<StoredCheckpoint>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM item_checkpoints WHERE run_id = $1 AND job = $2 AND item = $3"
        );
        let row: Option<CheckpointRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(run_id.as_str())
            .bind(job.as_str())
            .bind(i64::from(item.0))
            .fetch_optional(pool)
            .await)
        .map_err(query_err("get checkpoint"))?;
        row.map(StoredCheckpoint::try_from).transpose()
    }
}
