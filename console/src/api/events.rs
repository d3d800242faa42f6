//! `GET /events`: the audit log, filtered by DAG, run, job, executor, kind
//! and time range; newest first, or oldest first when tailing with `after`.

use super::{id_segment, limit};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::time::parse_instant;
use crate::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nightshift_core::ids::{DagName, ExecutorId, JobName, RunId};
use nightshift_store::{Event, EventFilter};
use serde::{Deserialize, Serialize};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(list))
}

/// `GET /events` query; empty values mean "any".
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// DAG.
    pub dag: Option<String>,
    /// Run id.
    pub run: Option<String>,
    /// Job.
    pub job: Option<String>,
    /// Executor id.
    pub executor: Option<String>,
    /// Event kind (`run_started`, ...).
    pub kind: Option<String>,
    /// At or after (epoch ms or RFC 3339).
    pub from: Option<String>,
    /// Strictly before (epoch ms or RFC 3339).
    pub to: Option<String>,
    /// Only events after this sequence number, oldest first.
    pub after: Option<i64>,
    /// Only events before this sequence number (paging back).
    pub before: Option<i64>,
    /// Page size.
    pub limit: Option<u32>,
}

/// One event of the log.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    /// Position in the log.
    pub seq: i64,
    /// When (epoch ms).
    pub at_ms: i64,
    /// What happened.
    pub kind: String,
    /// Who did it.
    pub actor: String,
    /// DAG.
    pub dag: Option<String>,
    /// Run.
    pub run_id: Option<String>,
    /// Job.
    pub job: Option<String>,
    /// Item.
    pub item: Option<u32>,
    /// Executor.
    pub executor: Option<String>,
    /// Anything else.
    pub detail: serde_json::Value,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        let ev = e.event;
        EventView {
            seq: e.seq,
            at_ms: ev.at_ms,
            kind: ev.kind,
            actor: ev.actor,
            dag: ev.dag.map(|d| d.to_string()),
            run_id: ev.run_id.map(|r| r.to_string()),
            job: ev.job.map(|j| j.to_string()),
            item: ev.item.map(|i| i.0),
            executor: ev.executor.map(|x| x.to_string()),
            detail: ev.detail,
        }
    }
}

fn opt_id(kind: &'static str, value: &Option<String>) -> Result<Option<String>, ApiError> {
    match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => {
            id_segment(kind, v)?;
            Ok(Some(v.to_owned()))
        }
        None => Ok(None),
    }
}

fn opt_instant(name: &str, value: &Option<String>) -> Result<Option<i64>, ApiError> {
    match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => parse_instant(v).map(Some).ok_or_else(|| {
            ApiError::bad(format!(
                "`{name}` must be epoch milliseconds or an RFC 3339 time"
            ))
        }),
        None => Ok(None),
    }
}

/// The store filter of a query (400 on bad values).
pub fn filter(q: &EventQuery) -> Result<EventFilter, ApiError> {
    let kind = q.kind.as_deref().map(str::trim).filter(|k| !k.is_empty());
    if let Some(k) = kind {
        if k.len() > 64 || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ApiError::bad(
                "`kind` must be letters, digits and underscores",
            ));
        }
    }
    Ok(EventFilter {
        dag: opt_id("dag name", &q.dag)?.map(DagName::new),
        run_id: opt_id("run id", &q.run)?.map(RunId::new),
        job: opt_id("job name", &q.job)?.map(JobName::new),
        executor: opt_id("executor id", &q.executor)?.map(ExecutorId::new),
        kind: kind.map(str::to_owned),
        from_ms: opt_instant("from", &q.from)?,
        to_ms: opt_instant("to", &q.to)?,
        after_seq: q.after,
        before_seq: q.before,
        newest_first: q.after.is_none(),
        limit: Some(limit(q.limit)?),
    })
}

/// Events matching the query.
pub async fn events(state: &AppState, q: &EventQuery) -> Result<Vec<EventView>, ApiError> {
    let filter = filter(q)?;
    Ok(state
        .store
        .events(&filter)
        .await?
        .into_iter()
        .map(EventView::from)
        .collect())
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    Ok(Json(events(&state, &q).await?))
}
