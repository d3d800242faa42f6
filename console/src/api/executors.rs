//! `GET /executors`: live executors from the coordination service, with the
//! items each is running (from SQL) and its remaining lease time.

use crate::error::ApiError;
use crate::{live, AppState};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nightshift_coord::LeaseId;
use serde::Serialize;
use std::collections::BTreeMap;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/executors", get(list))
}

/// A live executor.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutorView {
    /// Executor id.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Handlers it runs.
    pub handlers: Vec<String>,
    /// Operator labels.
    pub labels: BTreeMap<String, String>,
    /// Items it runs at once.
    pub capacity: u32,
    /// Items it is running now (unfinished attempts).
    pub running_items: u64,
    /// SDK version.
    pub version: String,
    /// Registration time (epoch ms).
    pub started_at_ms: i64,
    /// Its lease.
    pub lease: i64,
    /// Remaining time to live of the lease; a healthy executor keeps it
    /// near the full TTL.
    pub lease_ttl_ms: Option<u64>,
}

/// Every live executor.
pub async fn executors(state: &AppState) -> Result<Vec<ExecutorView>, ApiError> {
    let mut running: BTreeMap<String, u64> = BTreeMap::new();
    for a in state.store.unfinished_attempts(None, None).await? {
        *running.entry(a.executor.to_string()).or_default() += 1;
    }
    let mut out = Vec::new();
    for info in live::executors(state).await? {
        let ttl = state.coord.lease_time_to_live(LeaseId(info.lease)).await.ok().flatten();
        out.push(ExecutorView {
            running_items: running.get(info.id.as_str()).copied().unwrap_or(0),
            id: info.id.to_string(),
            host: info.host,
            pid: info.pid,
            handlers: info.handlers.iter().map(ToString::to_string).collect(),
            labels: info.labels,
            capacity: info.capacity,
            version: info.version,
            started_at_ms: info.started_at_ms,
            lease: info.lease,
            lease_ttl_ms: ttl.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        });
    }
    Ok(out)
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<ExecutorView>>, ApiError> {
    Ok(Json(executors(&state).await?))
}
