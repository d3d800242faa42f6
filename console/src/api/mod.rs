//! The JSON API under `/api/v1` — **API boundary**: scripts and the pages'
//! script depend on these shapes. Each resource module has its own
//! `router()`; the wire types (DTOs) are defined here and in those modules,
//! separate from the store's and the keyspace's types, so that an internal
//! change does not silently change the API.
//!
//! Reads come from SQL (history) and the coordination service (live state).
//! Writes ([`actions`]) are commands for the leader, plus alert
//! acknowledgements and silences ([`alerts`]).

pub mod actions;
pub mod alerts;
pub mod applicable;
pub mod commands;
pub mod dags;
pub mod events;
pub mod executors;
pub mod items;
pub mod logs;
pub mod notifications;
pub mod runs;

use crate::error::ApiError;
use crate::AppState;
use axum::routing::get;
use axum::Router;
use nightshift_core::keyspace::validate_segment;
use nightshift_store::Run;
use serde::{Deserialize, Serialize};

/// Largest page size of any listing.
pub const MAX_LIMIT: u32 = 1000;

/// Page size when none is asked for.
pub const DEFAULT_LIMIT: u32 = 50;

/// Every `/api/v1` route.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(dags::router())
        .merge(runs::router())
        .merge(items::router())
        .merge(logs::router())
        .merge(executors::router())
        .merge(alerts::router())
        .merge(events::router())
        .merge(actions::router())
        .merge(commands::router())
        .merge(notifications::router())
        .route("/stream", get(crate::stream::stream))
        // The same stream under the name the API list uses.
        .route("/events/stream", get(crate::stream::stream))
        .route("/openapi.json", get(crate::openapi::openapi))
}

/// Checks that a path or query value is a valid id (400 otherwise).
pub(crate) fn id_segment(kind: &'static str, value: &str) -> Result<(), ApiError> {
    validate_segment(kind, value).map_err(|e| ApiError::bad(e.to_string()))
}

/// `?limit=&offset=`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    /// Page size, 1 to [`MAX_LIMIT`]; default [`DEFAULT_LIMIT`].
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
}

/// A validated page size.
pub(crate) fn limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad(format!(
            "limit {n} is out of range (1 to {MAX_LIMIT})"
        ))),
    }
}

/// One run, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct RunBrief {
    /// Run id.
    pub run_id: String,
    /// DAG.
    pub dag: String,
    /// DAG version the run uses.
    pub dag_version: u32,
    /// `pending`, `running`, `succeeded`, `failed`, `cancelled`.
    pub state: String,
    /// Business date, `YYYY-MM-DD`.
    pub business_date: String,
    /// `schedule`, `manual`, `backfill`, `retry`, `catch_up`.
    pub trigger_source: String,
    /// Run parameters.
    pub params: serde_json::Value,
    /// Schedule instant it fired for (epoch ms).
    pub scheduled_for_ms: Option<i64>,
    /// Creation (epoch ms).
    pub created_at_ms: i64,
    /// Start (epoch ms).
    pub started_at_ms: Option<i64>,
    /// End (epoch ms).
    pub ended_at_ms: Option<i64>,
    /// End (or now, while running) minus start.
    pub duration_ms: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

impl RunBrief {
    /// The wire form of a stored run, durations measured up to `now_ms`.
    pub fn new(run: &Run, now_ms: i64) -> Self {
        RunBrief {
            run_id: run.run_id.to_string(),
            dag: run.dag.to_string(),
            dag_version: run.dag_version,
            state: run.state.as_str().to_owned(),
            business_date: run.business_date.to_string(),
            trigger_source: run.trigger_source.as_str().to_owned(),
            params: run.params.clone(),
            scheduled_for_ms: run.scheduled_for_ms,
            created_at_ms: run.created_at_ms,
            started_at_ms: run.started_at_ms,
            ended_at_ms: run.ended_at_ms,
            duration_ms: run
                .started_at_ms
                .map(|s| run.ended_at_ms.unwrap_or(now_ms) - s),
            error: run.error.clone(),
        }
    }
}
