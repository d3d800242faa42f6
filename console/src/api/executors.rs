//! `GET /executors`: live executors from the coordination service, with the
//! items each is running (its live assignments less what SQL records as
//! ended: [`crate::live_items`]) and its remaining lease time.
//! `GET /executors/lost`: executors whose lease ended while they held
//! unfinished items, from the `executor_lost` events the scheduler leader
//! writes when it fails their items over.

use super::limit;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::time::now_ms;
use crate::{live, live_items, AppState};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nightshift_coord::LeaseId;
use nightshift_store::EventFilter;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/executors", get(list))
        .route("/executors/lost", get(lost))
}

/// Event kind the scheduler leader writes when an executor's lease ended
/// while it held unfinished items (`detail.items`: the items, `0-9,20`).
pub const EXECUTOR_LOST: &str = "executor_lost";

/// Default look-back of [`lost_executors`], hours.
pub const LOST_DEFAULT_HOURS: u32 = 24;

/// Longest look-back of [`lost_executors`], hours (a week).
pub const LOST_MAX_HOURS: u32 = 168;

/// `GET /executors/lost` query.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LostQuery {
    /// Look-back in hours, 1 to [`LOST_MAX_HOURS`]; default
    /// [`LOST_DEFAULT_HOURS`].
    pub hours: Option<u32>,
    /// Page size (newest first).
    pub limit: Option<u32>,
}

/// An executor that was lost while holding items of a job.
#[derive(Debug, Clone, Serialize)]
pub struct LostExecutor {
    /// Sequence number of the `executor_lost` event.
    pub seq: i64,
    /// Executor id.
    pub executor: Option<String>,
    /// When the leader noticed its lease had ended (epoch ms).
    pub at_ms: i64,
    /// DAG of the run.
    pub dag: Option<String>,
    /// Run it held items of.
    pub run_id: Option<String>,
    /// Job it held items of.
    pub job: Option<String>,
    /// The unfinished items it held (`0-9,20`: inclusive ranges).
    pub items: String,
    /// How many items that is, when `items` reads as ranges.
    pub item_count: Option<u64>,
}

/// The number of items in `0-9,20,30-31`; `None` when it is empty or does
/// not read.
pub fn count_items(text: &str) -> Option<u64> {
    if text.trim().is_empty() {
        return None;
    }
    let mut n = 0u64;
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?),
            None => {
                let a = part.parse::<u64>().ok()?;
                (a, a)
            }
        };
        n += b.checked_sub(a)? + 1;
    }
    Some(n)
}

/// Executors lost in the last `q.hours` hours, newest first.
pub async fn lost_executors(
    state: &AppState,
    q: &LostQuery,
) -> Result<Vec<LostExecutor>, ApiError> {
    let hours = match q.hours {
        None => LOST_DEFAULT_HOURS,
        Some(h) if (1..=LOST_MAX_HOURS).contains(&h) => h,
        Some(h) => {
            return Err(ApiError::bad(format!(
                "hours {h} is out of range (1 to {LOST_MAX_HOURS})"
            )))
        }
    };
    let filter = EventFilter {
        kind: Some(EXECUTOR_LOST.to_owned()),
        from_ms: Some(now_ms() - i64::from(hours) * 3_600_000),
        newest_first: true,
        limit: Some(limit(q.limit)?),
        ..EventFilter::default()
    };
    Ok(state
        .store
        .events(&filter)
        .await?
        .into_iter()
        .map(|e| {
            let ev = e.event;
            let items = match ev.detail.get("items") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            LostExecutor {
                seq: e.seq,
                executor: ev.executor.map(|x| x.to_string()),
                at_ms: ev.at_ms,
                dag: ev.dag.map(|d| d.to_string()),
                run_id: ev.run_id.map(|r| r.to_string()),
                job: ev.job.map(|j| j.to_string()),
                item_count: count_items(&items),
                items,
            }
        })
        .collect())
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
    /// Items it is running now (assigned to it and not recorded as ended).
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
    for r in live_items::running_items(state).await? {
        *running.entry(r.executor.to_string()).or_default() += 1;
    }
    let mut out = Vec::new();
    for info in live::executors(state).await? {
        let ttl = state
            .coord
            .lease_time_to_live(LeaseId(info.lease))
            .await
            .ok()
            .flatten();
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

async fn lost(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<LostQuery>,
) -> Result<Json<Vec<LostExecutor>>, ApiError> {
    Ok(Json(lost_executors(&state, &q).await?))
}

#[cfg(test)]
mod tests {
    use super::count_items;

    #[test]
    fn item_ranges_are_counted_inclusively() {
        assert_eq!(count_items("0-9,20,30-31"), Some(13));
        assert_eq!(count_items("4"), Some(1));
        assert_eq!(count_items(""), None);
        assert_eq!(count_items("9-0"), None);
        assert_eq!(count_items("a-b"), None);
    }
}
