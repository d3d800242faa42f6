//! Runs of DAGs (`runs`): creation, state changes checked against
//! [`RunState::can_transition`], lookups and paged listing.
//!
//! The `runs_one_per_schedule_instant` index makes a second run for the same
//! schedule instant of a DAG a [`StoreError::Conflict`]: a run fires at most
//! once per instant even if two leaders briefly overlap.

use crate::error::{missing_parent, query_err, QueryContext, StoreError};
use crate::filter::{Arg, Where};
use crate::rows::{date, date_text, json, parse, to_u32};
use crate::{Result, Store};
use chrono::NaiveDate;
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::state::{RunState, StateMachine, TriggerSource};

/// A run to create; it starts [`RunState::Pending`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// Its id.
    pub run_id: RunId,
    /// The DAG.
    pub dag: DagName,
    /// The DAG version it runs (must have been recorded).
    pub dag_version: u32,
    /// The business date handed to every item.
    pub business_date: NaiveDate,
    /// What created it.
    pub trigger_source: TriggerSource,
    /// Run parameters (JSON object).
    pub params: serde_json::Value,
    /// The schedule instant it fires for, epoch milliseconds, if scheduled.
    pub scheduled_for_ms: Option<i64>,
    /// Creation time, epoch milliseconds.
    pub created_at_ms: i64,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Its id.
    pub run_id: RunId,
    /// The DAG.
    pub dag: DagName,
    /// The DAG version it runs.
    pub dag_version: u32,
    /// The business date.
    pub business_date: NaiveDate,
    /// Where it is in its life.
    pub state: RunState,
    /// What created it.
    pub trigger_source: TriggerSource,
    /// Run parameters.
    pub params: serde_json::Value,
    /// The schedule instant, if scheduled.
    pub scheduled_for_ms: Option<i64>,
    /// Creation time.
    pub created_at_ms: i64,
    /// When it first became running.
    pub started_at_ms: Option<i64>,
    /// When it reached a terminal state.
    pub ended_at_ms: Option<i64>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// Which runs [`Store::list_runs`] returns: newest first, `limit` at a time.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this DAG.
    pub dag: Option<DagName>,
    /// Only these states (empty: any).
    pub states: Vec<RunState>,
    /// Only runs created strictly before this instant (keyset paging).
    pub created_before_ms: Option<i64>,
    /// Page size; default 100.
    pub limit: Option<u32>,
    /// Rows to skip (offset paging).
    pub offset: u32,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    run_id: String,
    dag: String,
    dag_version: i64,
    business_date: String,
    state: String,
    trigger_source: String,
    params_json: String,
    scheduled_for_ms: Option<i64>,
    created_at_ms: i64,
    started_at_ms: Option<i64>,
    ended_at_ms: Option<i64>,
    error: Option<String>,
}

impl TryFrom<RunRow> for Run {
    type Error = StoreError;
    fn try_from(r: RunRow) -> Result<Self> {
        Ok(Run {
            run_id: RunId::new(r.run_id),
            dag: DagName::new(r.dag),
            dag_version: to_u32("runs.dag_version", r.dag_version)?,
            business_date: date("runs.business_date", &r.business_date)?,
            state: parse("runs.state", &r.state)?,
            trigger_source: parse("runs.trigger_source", &r.trigger_source)?,
            params: json("runs.params_json", &r.params_json)?,
            scheduled_for_ms: r.scheduled_for_ms,
            created_at_ms: r.created_at_ms,
            started_at_ms: r.started_at_ms,
            ended_at_ms: r.ended_at_ms,
            error: r.error,
        })
    }
}

const RUN_COLUMNS: &str = "run_id, dag, dag_version, business_date, state, trigger_source, \
    params_json, scheduled_for_ms, created_at_ms, started_at_ms, ended_at_ms, error";

/// Default page size of listings.
pub(crate) const DEFAULT_LIMIT: u32 = 100;

impl Store {
    /// Creates a run in [`RunState::Pending`].
    ///
    /// Fails with [`StoreError::Conflict`] if the run id exists, or if a
    /// scheduled (or catch-up) run for the same DAG and instant exists.
    pub async fn insert_run(&self, new: &NewRun) -> Result<Run> {
        const OP: &str = "insert run";
        let sql = format!(
            "INSERT INTO runs (run_id, dag, dag_version, business_date, state, trigger_source, \
             params_json, scheduled_for_ms, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {RUN_COLUMNS}"
        );
        let row: RunRow = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(new.run_id.as_str())
            .bind(new.dag.as_str())
            .bind(i64::from(new.dag_version))
            .bind(date_text(new.business_date))
            .bind(RunState::Pending.as_str())
            .bind(new.trigger_source.as_str())
            .bind(new.params.to_string())
            .bind(new.scheduled_for_ms)
            .bind(new.created_at_ms)
            .fetch_one(pool)
            .await)
        .op(OP, || match new.scheduled_for_ms {
            Some(at) => format!(
                "run {} (or a run of dag {} for instant {at})",
                new.run_id, new.dag
            ),
            None => format!("run {}", new.run_id),
        })
        .map_err(missing_parent(|| {
            format!("version {} of dag {}", new.dag_version, new.dag)
        }))?;
        row.try_into()
    }

    /// Moves a run to `to`, if [`RunState::can_transition`] allows it from
    /// its current state. Becoming running sets `started_at_ms` (once);
    /// becoming terminal sets `ended_at_ms`. `error`, if given, replaces the
    /// stored one.
    pub async fn update_run_state(
        &self,
        run_id: &RunId,
        to: RunState,
        at_ms: i64,
        error: Option<&str>,
    ) -> Result<Run> {
        self.update_run_state_in_term(run_id, to, at_ms, error, 0)
            .await
    }

    /// [`Store::update_run_state`] by the scheduler leader of `term` (its
    /// election key's create revision): a run last written in a later term
    /// is left alone ([`StoreError::Superseded`]), so a deposed leader's
    /// late write never replaces its successor's.
    pub async fn update_run_state_in_term(
        &self,
        run_id: &RunId,
        to: RunState,
        at_ms: i64,
        error: Option<&str>,
        term: i64,
    ) -> Result<Run> {
        const OP: &str = "update run state";
        let from: Vec<&str> = RunState::ALL
            .iter()
            .filter(|&&from| RunState::can_transition(from, to))
            .map(|s| s.as_str())
            .collect();
        let mut w = Where::default();
        let mut sets = vec![format!(
            "state = {}",
            w.arg(Arg::Text(to.as_str().to_owned()))
        )];
        if let Some(e) = error {
            sets.push(format!("error = {}", w.arg(Arg::Text(e.to_owned()))));
        }
        if to == RunState::Running {
            let p = w.arg(Arg::Int(at_ms));
            sets.push(format!("started_at_ms = COALESCE(started_at_ms, {p})"));
            // A run re-opened by a clear has not ended (nor failed) any more.
            sets.push("ended_at_ms = NULL".to_owned());
            if error.is_none() {
                sets.push("error = NULL".to_owned());
            }
        }
        if to.is_terminal() {
            let p = w.arg(Arg::Int(at_ms));
            sets.push(format!("ended_at_ms = {p}"));
        }
        let p = w.arg(Arg::Int(term));
        sets.push(format!("term = {p}"));
        w.eq_text("run_id", Some(run_id.as_str()));
        w.raw(&format!("term <= {p}"));
        if from.is_empty() {
            w.raw("1 = 0");
        }
        w.in_text("state", &from);
        let sql = format!(
            "UPDATE runs SET {}{} RETURNING {RUN_COLUMNS}",
            sets.join(", "),
            w.sql()
        );
        let row: Option<RunRow> = on_pool!(self, pool => bind_args!(sqlx::query_as(&sql), w.args)
            .fetch_optional(pool)
            .await)
        .map_err(query_err(OP))?;
        match row {
            Some(row) => row.try_into(),
            None => match self.get_run(run_id).await? {
                None => Err(StoreError::NotFound {
                    what: format!("run {run_id}"),
                }),
                Some(run) => {
                    let current = self.run_term(run_id).await?;
                    if current > term {
                        Err(StoreError::Superseded {
                            what: format!("run {run_id}"),
                            term,
                            current,
                        })
                    } else {
                        Err(StoreError::IllegalTransition {
                            what: format!("run {run_id}"),
                            from: run.state.to_string(),
                            to: to.to_string(),
                        })
                    }
                }
            },
        }
    }

    /// The term of the leader that last wrote the run's state (0 when none
    /// did, or the run is unknown).
    async fn run_term(&self, run_id: &RunId) -> Result<i64> {
        let term: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT term FROM runs WHERE run_id = $1",
        )
        .bind(run_id.as_str())
        .fetch_optional(pool)
        .await)
        .map_err(query_err("read run term"))?;
        Ok(term.unwrap_or(0))
    }

    /// One run.
    pub async fn get_run(&self, run_id: &RunId) -> Result<Option<Run>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1");
        let row: Option<RunRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(run_id.as_str())
            .fetch_optional(pool)
            .await)
        .map_err(query_err("get run"))?;
        row.map(Run::try_from).transpose()
    }

    /// Runs matching `filter`, newest first (by creation time, then run id).
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        let mut w = Where::default();
        w.eq_text("dag", filter.dag.as_ref().map(DagName::as_str));
        let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
        w.in_text("state", &states);
        w.cmp_int("created_at_ms", "<", filter.created_before_ms);
        let limit = w.arg(Arg::Int(filter.limit.unwrap_or(DEFAULT_LIMIT).into()));
        let offset = w.arg(Arg::Int(filter.offset.into()));
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs{} ORDER BY created_at_ms DESC, run_id DESC \
             LIMIT {limit} OFFSET {offset}",
            w.sql()
        );
        let rows: Vec<RunRow> = on_pool!(self, pool => bind_args!(sqlx::query_as(&sql), w.args)
            .fetch_all(pool)
            .await)
        .map_err(query_err("list runs"))?;
        rows.into_iter().map(Run::try_from).collect()
    }

    /// Every run of `dag` for one business date, oldest first (a date can
    /// have several: a scheduled run, then manual re-runs or backfills).
    pub async fn runs_for_business_date(&self, dag: &DagName, day: NaiveDate) -> Result<Vec<Run>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE dag = $1 AND business_date = $2 \
             ORDER BY created_at_ms, run_id"
        );
        let rows: Vec<RunRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(dag.as_str())
            .bind(date_text(day))
            .fetch_all(pool)
            .await)
        .map_err(query_err("list runs for business date"))?;
        rows.into_iter().map(Run::try_from).collect()
    }

    /// Records that `retry` is a retry of `origin` (both runs must exist).
    /// Repeating it is harmless.
    pub async fn link_retry(&self, retry: &RunId, origin: &RunId) -> Result<()> {
        let changed = on_pool!(self, pool => sqlx::query(
            "UPDATE runs SET retry_of = $2 WHERE run_id = $1 AND EXISTS (SELECT 1 FROM runs o WHERE o.run_id = $2)")
            .bind(retry.as_str())
            .bind(origin.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(query_err("link retry"))?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: format!("run {retry} or its origin {origin}"),
            });
        }
        Ok(())
    }

    /// The run `run` retries, if it is a retry.
    pub async fn retry_of(&self, run: &RunId) -> Result<Option<RunId>> {
        let row: Option<(Option<String>,)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT retry_of FROM runs WHERE run_id = $1")
            .bind(run.as_str())
            .fetch_optional(pool)
            .await)
        .map_err(query_err("read retry origin"))?;
        Ok(row.and_then(|(r,)| r).map(RunId::new))
    }

    /// The runs that retry `run`, oldest first.
    pub async fn retries_of(&self, run: &RunId) -> Result<Vec<RunId>> {
        let rows: Vec<(String,)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT run_id FROM runs WHERE retry_of = $1 ORDER BY created_at_ms, run_id")
            .bind(run.as_str())
            .fetch_all(pool)
            .await)
        .map_err(query_err("list retries"))?;
        Ok(rows.into_iter().map(|(r,)| RunId::new(r)).collect())
    }

    /// Durations (end − start, ms) of the last `limit` succeeded runs of
    /// `dag`, newest first: the baseline of the "slower than usual" alert.
    pub async fn recent_run_durations(&self, dag: &DagName, limit: u32) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT ended_at_ms - started_at_ms FROM runs WHERE dag = $1 AND state = $2 \
             AND started_at_ms IS NOT NULL AND ended_at_ms IS NOT NULL \
             ORDER BY ended_at_ms DESC, run_id LIMIT $3")
            .bind(dag.as_str())
            .bind(RunState::Succeeded.as_str())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)
        .map_err(query_err("recent run durations"))?;
        Ok(rows.into_iter().map(|(d,)| d).collect())
    }
}
