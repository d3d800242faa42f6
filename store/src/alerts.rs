//! Alerts (`alerts`) and silences (`alert_silences`).
//!
//! An alert is identified by its dedupe key while it is active (open or
//! acknowledged): raising the same condition again bumps `last_seen_at_ms` of
//! the active alert instead of opening a second one. A partial unique index
//! enforces "at most one active alert per key" in the database, so two
//! schedulers racing cannot open duplicates either. Once resolved, the same
//! key may open a fresh alert.

use crate::error::{query_err, QueryContext, StoreError};
use crate::filter::{Arg, Where};
use crate::rows::{parse, to_u32};
use crate::{Result, Store};
use nightshift_core::ids::{DagName, ExecutorId, ItemIndex, JobName, RunId};
use nightshift_core::state::{AlertRule, AlertSeverity, AlertState, RunState};
use std::fmt;

/// Database id of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AlertId(pub i64);

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A condition to raise as an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// The rule that fired.
    pub rule: AlertRule,
    /// Identity of the condition, e.g. `item_failed:<run>:<job>:<item>`.
    pub dedupe_key: String,
    /// How loud.
    pub severity: AlertSeverity,
    /// The DAG concerned.
    pub dag: Option<DagName>,
    /// The run concerned.
    pub run_id: Option<RunId>,
    /// The job concerned.
    pub job: Option<JobName>,
    /// The item concerned.
    pub item: Option<ItemIndex>,
    /// The executor concerned.
    pub executor: Option<ExecutorId>,
    /// For humans.
    pub message: String,
    /// When the condition was seen, epoch milliseconds.
    pub at_ms: i64,
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Its id.
    pub id: AlertId,
    /// The rule that fired.
    pub rule: AlertRule,
    /// Identity of the condition.
    pub dedupe_key: String,
    /// How loud.
    pub severity: AlertSeverity,
    /// Open, acknowledged or resolved.
    pub state: AlertState,
    /// The DAG concerned.
    pub dag: Option<DagName>,
    /// The run concerned.
    pub run_id: Option<RunId>,
    /// The job concerned.
    pub job: Option<JobName>,
    /// The item concerned.
    pub item: Option<ItemIndex>,
    /// The executor concerned.
    pub executor: Option<ExecutorId>,
    /// For humans (from the first time it was raised).
    pub message: String,
    /// When it was opened.
    pub opened_at_ms: i64,
    /// The latest time the condition was seen.
    pub last_seen_at_ms: i64,
    /// When it was acknowledged.
    pub acked_at_ms: Option<i64>,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
    /// When it was resolved.
    pub resolved_at_ms: Option<i64>,
    /// When a notification was sent for it.
    pub notified_at_ms: Option<i64>,
}

/// The result of [`Store::open_alert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertOpened {
    /// The active alert for the key.
    pub alert: Alert,
    /// Whether this call opened it (false: it was already active).
    pub created: bool,
}

/// Which alerts [`Store::list_alerts`] returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Only these states (empty: any).
    pub states: Vec<AlertState>,
    /// Only this DAG.
    pub dag: Option<DagName>,
    /// Page size; default 100.
    pub limit: Option<u32>,
}

/// A silence: alerts of `rule` (for `dag`, or every DAG) are not notified
/// until `until_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    /// Its database id.
    pub id: i64,
    /// The rule silenced.
    pub rule: AlertRule,
    /// The DAG it is limited to; `None` silences the rule everywhere.
    pub dag: Option<DagName>,
    /// End of the silence, epoch milliseconds (exclusive).
    pub until_ms: i64,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: i64,
    rule: String,
    dedupe_key: String,
    severity: String,
    state: String,
    dag: Option<String>,
    run_id: Option<String>,
    job: Option<String>,
    item: Option<i64>,
    executor: Option<String>,
    message: String,
    opened_at_ms: i64,
    last_seen_at_ms: i64,
    acked_at_ms: Option<i64>,
    acked_by: Option<String>,
    resolved_at_ms: Option<i64>,
    notified_at_ms: Option<i64>,
}

impl TryFrom<AlertRow> for Alert {
    type Error = StoreError;
    fn try_from(r: AlertRow) -> Result<Self> {
        Ok(Alert {
            id: AlertId(r.id),
            rule: parse("alerts.rule", &r.rule)?,
            dedupe_key: r.dedupe_key,
            severity: parse("alerts.severity", &r.severity)?,
            state: parse("alerts.state", &r.state)?,
            dag: r.dag.map(DagName::new),
            run_id: r.run_id.map(RunId::new),
            job: r.job.map(JobName::new),
            item: r
                .item
                .map(|i| to_u32("alerts.item", i).map(ItemIndex))
                .transpose()?,
            executor: r.executor.map(ExecutorId::new),
            message: r.message,
            opened_at_ms: r.opened_at_ms,
            last_seen_at_ms: r.last_seen_at_ms,
            acked_at_ms: r.acked_at_ms,
            acked_by: r.acked_by,
            resolved_at_ms: r.resolved_at_ms,
            notified_at_ms: r.notified_at_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SilenceRow {
    id: i64,
    rule: String,
    dag: Option<String>,
    until_ms: i64,
    created_by: String,
    created_at_ms: i64,
}

impl TryFrom<SilenceRow> for Silence {
    type Error = StoreError;
    fn try_from(r: SilenceRow) -> Result<Self> {
        Ok(Silence {
            id: r.id,
            rule: parse("alert_silences.rule", &r.rule)?,
            dag: r.dag.map(DagName::new),
            until_ms: r.until_ms,
            created_by: r.created_by,
            created_at_ms: r.created_at_ms,
        })
    }
}

const ALERT_COLUMNS: &str = "id, rule, dedupe_key, severity, state, dag, run_id, job, item, \
    executor, message, opened_at_ms, last_seen_at_ms, acked_at_ms, acked_by, resolved_at_ms, \
    notified_at_ms";
const SILENCE_COLUMNS: &str = "id, rule, dag, until_ms, created_by, created_at_ms";

impl Store {
    /// Opens an alert, or — if one with the same dedupe key is active — bumps
    /// its `last_seen_at_ms` and returns it.
    pub async fn open_alert(&self, new: &NewAlert) -> Result<AlertOpened> {
        const OP: &str = "open alert";
        let bump = format!(
            "UPDATE alerts SET last_seen_at_ms = CASE WHEN last_seen_at_ms < $2 THEN $2 \
             ELSE last_seen_at_ms END WHERE dedupe_key = $1 AND state <> 'resolved' \
             RETURNING {ALERT_COLUMNS}"
        );
        let insert = format!(
            "INSERT INTO alerts (rule, dedupe_key, severity, state, dag, run_id, job, item, \
             executor, message, opened_at_ms, last_seen_at_ms) \
             VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $9, $10, $10) \
             ON CONFLICT (dedupe_key) WHERE state <> 'resolved' DO NOTHING RETURNING {ALERT_COLUMNS}"
        );
        // Bump, else insert; if a concurrent opener inserted in between, the
        // insert does nothing and the next bump finds its alert.
        for _ in 0..3 {
            let bumped: Option<AlertRow> = on_pool!(self, pool => sqlx::query_as(&bump)
                .bind(new.dedupe_key.as_str())
                .bind(new.at_ms)
                .fetch_optional(pool)
                .await)
            .map_err(query_err(OP))?;
            if let Some(row) = bumped {
                return Ok(AlertOpened {
                    alert: row.try_into()?,
                    created: false,
                });
            }
            let inserted: Option<AlertRow> = on_pool!(self, pool => sqlx::query_as(&insert)
                .bind(new.rule.as_str())
                .bind(new.dedupe_key.as_str())
                .bind(new.severity.as_str())
                .bind(new.dag.as_ref().map(DagName::as_str))
                .bind(new.run_id.as_ref().map(RunId::as_str))
                .bind(new.job.as_ref().map(JobName::as_str))
                .bind(new.item.map(|i| i64::from(i.0)))
                .bind(new.executor.as_ref().map(ExecutorId::as_str))
                .bind(new.message.as_str())
                .bind(new.at_ms)
                .fetch_optional(pool)
                .await)
            .op(OP, || format!("alert {}", new.dedupe_key))?;
            if let Some(row) = inserted {
                return Ok(AlertOpened {
                    alert: row.try_into()?,
                    created: true,
                });
            }
        }
        Err(StoreError::Conflict {
            op: OP,
            what: format!("alert {} (kept changing)", new.dedupe_key),
        })
    }

    /// Resolves the active alert with this dedupe key; `None` if none is
    /// active.
    pub async fn resolve_alert(&self, dedupe_key: &str, at_ms: i64) -> Result<Option<Alert>> {
        let sql = format!(
            "UPDATE alerts SET state = 'resolved', resolved_at_ms = $2 \
             WHERE dedupe_key = $1 AND state <> 'resolved' RETURNING {ALERT_COLUMNS}"
        );
        let row: Option<AlertRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(dedupe_key)
            .bind(at_ms)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("resolve alert"))?;
        row.map(Alert::try_from).transpose()
    }

    /// Resolves every active alert of `run` raised by one of `rules`;
    /// returns those it resolved.
    ///
    /// The leader resolves a finished run's alerts by their keys, but a
    /// leader killed after opening an alert and before committing what it
    /// knew (a lost executor, say) leaves one its successor never learns
    /// the key of: resolving by run and rule closes those too.
    pub async fn resolve_run_alerts(
        &self,
        run: &RunId,
        rules: &[AlertRule],
        at_ms: i64,
    ) -> Result<Vec<Alert>> {
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let sql = resolve_by_rule(rules, "run_id = $2");
        let rows: Vec<AlertRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(at_ms)
            .bind(run.as_str())
            .fetch_all(pool)
            .await)
        .map_err(query_err("resolve a run's alerts"))?;
        rows.into_iter().map(Alert::try_from).collect()
    }

    /// Resolves every active alert raised by one of `rules` whose run has
    /// ended in SQL (succeeded, failed or cancelled), whoever opened it and
    /// whenever. The leader sweeps with this: a leader killed between
    /// ending a run and resolving its alerts, or a deposed leader opening
    /// one late (alerts, unlike run rows, carry no term), would otherwise
    /// leave them open for ever.
    pub async fn resolve_alerts_of_ended_runs(
        &self,
        rules: &[AlertRule],
        at_ms: i64,
    ) -> Result<Vec<Alert>> {
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let ended = sql_names(
            RunState::ALL
                .iter()
                .filter(|s| s.is_terminal())
                .map(|s| s.as_str()),
        );
        let sql = resolve_by_rule(
            rules,
            &format!(
                "run_id IS NOT NULL AND EXISTS (SELECT 1 FROM runs \
                 WHERE runs.run_id = alerts.run_id AND runs.state IN ({ended}))"
            ),
        );
        let rows: Vec<AlertRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(at_ms)
            .fetch_all(pool)
            .await)
        .map_err(query_err("resolve the alerts of ended runs"))?;
        rows.into_iter().map(Alert::try_from).collect()
    }

    /// Acknowledges an open alert. Acknowledging it again returns it
    /// unchanged (the first acknowledgement is kept); a resolved alert cannot
    /// be acknowledged.
    pub async fn ack_alert(&self, id: AlertId, user: &str, at_ms: i64) -> Result<Alert> {
        let sql = format!(
            "UPDATE alerts SET state = 'acknowledged', acked_at_ms = $2, acked_by = $3 \
             WHERE id = $1 AND state = 'open' RETURNING {ALERT_COLUMNS}"
        );
        let row: Option<AlertRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id.0)
            .bind(at_ms)
            .bind(user)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("acknowledge alert"))?;
        if let Some(row) = row {
            return row.try_into();
        }
        match self.get_alert(id).await? {
            None => Err(StoreError::NotFound {
                what: format!("alert {id}"),
            }),
            Some(alert) if alert.state == AlertState::Acknowledged => Ok(alert),
            Some(alert) => Err(StoreError::IllegalTransition {
                what: format!("alert {id}"),
                from: alert.state.to_string(),
                to: AlertState::Acknowledged.to_string(),
            }),
        }
    }

    /// Records that a notification was sent for an alert.
    pub async fn mark_alert_notified(&self, id: AlertId, at_ms: i64) -> Result<()> {
        let done = on_pool!(self, pool => sqlx::query(
            "UPDATE alerts SET notified_at_ms = $2 WHERE id = $1",
        )
        .bind(id.0)
        .bind(at_ms)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
        .map_err(query_err("mark alert notified"))?;
        if done == 0 {
            return Err(StoreError::NotFound {
                what: format!("alert {id}"),
            });
        }
        Ok(())
    }

    /// One alert.
    pub async fn get_alert(&self, id: AlertId) -> Result<Option<Alert>> {
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1");
        let row: Option<AlertRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id.0)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("get alert"))?;
        row.map(Alert::try_from).transpose()
    }

    /// Alerts matching `filter`, newest first.
    pub async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>> {
        let mut w = Where::default();
        let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
        w.in_text("state", &states);
        w.eq_text("dag", filter.dag.as_ref().map(DagName::as_str));
        let limit = w.arg(Arg::Int(
            filter.limit.unwrap_or(crate::runs::DEFAULT_LIMIT).into(),
        ));
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts{} ORDER BY opened_at_ms DESC, id DESC LIMIT {limit}",
            w.sql()
        );
        let rows: Vec<AlertRow> = on_pool!(self, pool => bind_args!(sqlx::query_as(&sql), w.args)
            .fetch_all(pool)
            .await)
        .map_err(query_err("list alerts"))?;
        rows.into_iter().map(Alert::try_from).collect()
    }

    /// Silences `rule` (for `dag`, or everywhere when `None`) until `until_ms`.
    pub async fn silence(
        &self,
        rule: AlertRule,
        dag: Option<&DagName>,
        until_ms: i64,
        created_by: &str,
        at_ms: i64,
    ) -> Result<Silence> {
        let sql = format!(
            "INSERT INTO alert_silences (rule, dag, until_ms, created_by, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {SILENCE_COLUMNS}"
        );
        let row: SilenceRow = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(rule.as_str())
            .bind(dag.map(DagName::as_str))
            .bind(until_ms)
            .bind(created_by)
            .bind(at_ms)
            .fetch_one(pool)
            .await)
        .map_err(query_err("create silence"))?;
        row.try_into()
    }

    /// Whether alerts of `rule` for `dag` are silenced at `now_ms`: by a
    /// silence of that DAG or of every DAG.
    pub async fn is_silenced(
        &self,
        rule: AlertRule,
        dag: Option<&DagName>,
        now_ms: i64,
    ) -> Result<bool> {
        let count: i64 = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM alert_silences WHERE rule = $1 AND until_ms > $2 \
             AND (dag IS NULL OR dag = $3)",
        )
        .bind(rule.as_str())
        .bind(now_ms)
        .bind(dag.map(DagName::as_str))
        .fetch_one(pool)
        .await)
        .map_err(query_err("check silences"))?;
        Ok(count > 0)
    }

    /// Silences still in force at `now_ms`, ending soonest first.
    pub async fn active_silences(&self, now_ms: i64) -> Result<Vec<Silence>> {
        let sql = format!(
            "SELECT {SILENCE_COLUMNS} FROM alert_silences WHERE until_ms > $1 ORDER BY until_ms, id"
        );
        let rows: Vec<SilenceRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(now_ms)
            .fetch_all(pool)
            .await)
        .map_err(query_err("list silences"))?;
        rows.into_iter().map(Silence::try_from).collect()
    }
}

/// `'a', 'b'`: a SQL list of names the code owns (enum values, never
/// input), so they are written into the statement rather than bound.
fn sql_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One statement resolving, at `$1`, every active alert raised by one of
/// `rules` that matches `condition` (which may use `$2` onwards).
fn resolve_by_rule(rules: &[AlertRule], condition: &str) -> String {
    format!(
        "UPDATE alerts SET state = 'resolved', resolved_at_ms = $1 \
         WHERE state <> 'resolved' AND rule IN ({}) AND {condition} \
         RETURNING {ALERT_COLUMNS}",
        sql_names(rules.iter().map(|r| r.as_str()))
    )
}
