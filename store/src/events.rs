//! The append-only event log (`events`): every state change, command and
//! membership change, searchable by DAG, run, job, executor, kind and time.
//!
//! Nothing here updates or deletes an event. Sequence numbers increase in
//! commit order on both backends, so a reader tailing with `after_seq` never
//! skips an event: SQLite has a single writer, and in PostgreSQL appends take
//! a transaction-scoped advisory lock (otherwise a transaction holding seq 7
//! could commit after one holding seq 8, and a tail at 8 would miss 7).

use crate::connect::BeginWrite;
use crate::error::{query_err, StoreError};
use crate::filter::{Arg, Where};
use crate::rows::{json, to_u32};
use crate::{Backend, Result, Store};
use nightshift_core::ids::{DagName, ExecutorId, ItemIndex, JobName, RunId};

/// Key of the PostgreSQL advisory lock that orders event appends ("nsevents").
const EVENT_LOCK_KEY: i64 = 0x6e73_6576_656e_7473;

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// When it happened, epoch milliseconds.
    pub at_ms: i64,
    /// What happened, e.g. `run_started`, `item_failed`, `command_cancel`.
    pub kind: String,
    /// Who did it: a user name, `scheduler:<id>` or `executor:<id>`.
    pub actor: String,
    /// The DAG it concerns.
    pub dag: Option<DagName>,
    /// The run it concerns.
    pub run_id: Option<RunId>,
    /// The job it concerns.
    pub job: Option<JobName>,
    /// The item it concerns.
    pub item: Option<ItemIndex>,
    /// The executor it concerns.
    pub executor: Option<ExecutorId>,
    /// Anything else, as JSON.
    pub detail: serde_json::Value,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its position in the log; increases in commit order.
    pub seq: i64,
    /// The event as appended.
    pub event: NewEvent,
}

/// Which events [`Store::events`] returns. All conditions are combined with
/// AND; unset ones match everything.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this DAG.
    pub dag: Option<DagName>,
    /// Only this run.
    pub run_id: Option<RunId>,
    /// Only this job.
    pub job: Option<JobName>,
    /// Only this executor.
    pub executor: Option<ExecutorId>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only events at or after this instant.
    pub from_ms: Option<i64>,
    /// Only events strictly before this instant.
    pub to_ms: Option<i64>,
    /// Only events after this sequence number (tailing forwards).
    pub after_seq: Option<i64>,
    /// Only events before this sequence number (paging backwards).
    pub before_seq: Option<i64>,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
    /// Page size; default 100.
    pub limit: Option<u32>,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    at_ms: i64,
    kind: String,
    actor: String,
    dag: Option<String>,
    run_id: Option<String>,
    job: Option<String>,
    item: Option<i64>,
    executor: Option<String>,
    detail_json: String,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self> {
        Ok(Event {
            seq: r.seq,
            event: NewEvent {
                at_ms: r.at_ms,
                kind: r.kind,
                actor: r.actor,
                dag: r.dag.map(DagName::new),
                run_id: r.run_id.map(RunId::new),
                job: r.job.map(JobName::new),
                item: r
                    .item
                    .map(|i| to_u32("events.item", i).map(ItemIndex))
                    .transpose()?,
                executor: r.executor.map(ExecutorId::new),
                detail: json("events.detail_json", &r.detail_json)?,
            },
        })
    }
}

const INSERT_EVENT: &str = "INSERT INTO events (at_ms, kind, actor, dag, run_id, job, item, \
    executor, detail_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq";

impl Store {
    /// Appends one event and returns its sequence number.
    pub async fn append_event(&self, event: &NewEvent) -> Result<i64> {
        let seqs = self.append_events(std::slice::from_ref(event)).await?;
        seqs.first().copied().ok_or_else(|| StoreError::Corrupt {
            column: "events.seq",
            detail: "insert returned no sequence number".to_owned(),
        })
    }

    /// Appends events atomically, in order; returns their sequence numbers.
    pub async fn append_events(&self, events: &[NewEvent]) -> Result<Vec<i64>> {
        const OP: &str = "append events";
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let lock = self.backend() == Backend::Postgres;
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await.map_err(query_err(OP))?;
            if lock {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(EVENT_LOCK_KEY)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err(OP))?;
            }
            let mut seqs = Vec::with_capacity(events.len());
            for e in events {
                let seq: i64 = sqlx::query_scalar(INSERT_EVENT)
                    .bind(e.at_ms)
                    .bind(e.kind.as_str())
                    .bind(e.actor.as_str())
                    .bind(e.dag.as_ref().map(DagName::as_str))
                    .bind(e.run_id.as_ref().map(RunId::as_str))
                    .bind(e.job.as_ref().map(JobName::as_str))
                    .bind(e.item.map(|i| i64::from(i.0)))
                    .bind(e.executor.as_ref().map(ExecutorId::as_str))
                    .bind(e.detail.to_string())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(query_err(OP))?;
                seqs.push(seq);
            }
            tx.commit().await.map_err(query_err(OP))?;
            Ok(seqs)
        })
    }

    /// Events matching `filter`, by sequence number.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let mut w = Where::default();
        w.eq_text("dag", filter.dag.as_ref().map(DagName::as_str));
        w.eq_text("run_id", filter.run_id.as_ref().map(RunId::as_str));
        w.eq_text("job", filter.job.as_ref().map(JobName::as_str));
        w.eq_text("executor", filter.executor.as_ref().map(ExecutorId::as_str));
        w.eq_text("kind", filter.kind.as_deref());
        w.cmp_int("at_ms", ">=", filter.from_ms);
        w.cmp_int("at_ms", "<", filter.to_ms);
        w.cmp_int("seq", ">", filter.after_seq);
        w.cmp_int("seq", "<", filter.before_seq);
        let limit = w.arg(Arg::Int(
            filter.limit.unwrap_or(crate::runs::DEFAULT_LIMIT).into(),
        ));
        let order = if filter.newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT seq, at_ms, kind, actor, dag, run_id, job, item, executor, detail_json \
             FROM events{} ORDER BY seq {order} LIMIT {limit}",
            w.sql()
        );
        let rows: Vec<EventRow> = on_pool!(self, pool => bind_args!(sqlx::query_as(&sql), w.args)
            .fetch_all(pool)
            .await)
        .map_err(query_err("list events"))?;
        rows.into_iter().map(Event::try_from).collect()
    }
}
