//! `GET /alerts`, `GET /alerts/silences`, `POST /alerts/{id}/ack`,
//! `POST /alerts/silence`.
//!
//! Alerts are not run state: the console acknowledges and silences them in
//! SQL itself, and appends an audit event naming the operator.

use super::{id_segment, limit};
use crate::auth::Operator;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, NoFields};
use crate::time::now_ms;
use crate::AppState;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use nightshift_core::ids::DagName;
use nightshift_core::state::{AlertRule, AlertState};
use nightshift_store::{Alert, AlertFilter, AlertId, NewEvent, Silence, StoreError};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Longest silence: 30 days.
pub const MAX_SILENCE_MINUTES: u32 = 30 * 24 * 60;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(list))
        .route("/alerts/silences", get(silences))
        .route("/alerts/silence", post(silence))
        .route("/alerts/{id}/ack", post(ack))
}

/// `GET /alerts` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// States, comma-separated (`open,acknowledged`); default any.
    pub state: Option<String>,
    /// Only this DAG.
    pub dag: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
}

/// An alert.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    /// Id.
    pub id: i64,
    /// Rule that fired.
    pub rule: String,
    /// `warning` or `critical`.
    pub severity: String,
    /// `open`, `acknowledged` or `resolved`.
    pub state: String,
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
    /// For humans.
    pub message: String,
    /// Opened (epoch ms).
    pub opened_at_ms: i64,
    /// Last seen (epoch ms).
    pub last_seen_at_ms: i64,
    /// Acknowledged (epoch ms).
    pub acked_at_ms: Option<i64>,
    /// By whom.
    pub acked_by: Option<String>,
    /// Resolved (epoch ms).
    pub resolved_at_ms: Option<i64>,
}

impl From<Alert> for AlertView {
    fn from(a: Alert) -> Self {
        AlertView {
            id: a.id.0,
            rule: a.rule.as_str().to_owned(),
            severity: a.severity.as_str().to_owned(),
            state: a.state.as_str().to_owned(),
            dag: a.dag.map(|d| d.to_string()),
            run_id: a.run_id.map(|r| r.to_string()),
            job: a.job.map(|j| j.to_string()),
            item: a.item.map(|i| i.0),
            executor: a.executor.map(|e| e.to_string()),
            message: a.message,
            opened_at_ms: a.opened_at_ms,
            last_seen_at_ms: a.last_seen_at_ms,
            acked_at_ms: a.acked_at_ms,
            acked_by: a.acked_by,
            resolved_at_ms: a.resolved_at_ms,
        }
    }
}

/// A silence in force.
#[derive(Debug, Clone, Serialize)]
pub struct SilenceView {
    /// Id.
    pub id: i64,
    /// Rule silenced.
    pub rule: String,
    /// DAG, or every DAG.
    pub dag: Option<String>,
    /// End (epoch ms, exclusive).
    pub until_ms: i64,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at_ms: i64,
}

impl From<Silence> for SilenceView {
    fn from(s: Silence) -> Self {
        SilenceView {
            id: s.id,
            rule: s.rule.as_str().to_owned(),
            dag: s.dag.map(|d| d.to_string()),
            until_ms: s.until_ms,
            created_by: s.created_by,
            created_at_ms: s.created_at_ms,
        }
    }
}

/// `POST /alerts/silence` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    /// Rule to silence (`item_failed`, ...).
    pub rule: String,
    /// Only for this DAG; every DAG when absent.
    #[serde(default)]
    pub dag: Option<String>,
    /// How long, 1 to [`MAX_SILENCE_MINUTES`].
    pub minutes: u32,
}

/// Alerts matching the query, newest first.
pub async fn alerts(state: &AppState, q: &AlertQuery) -> Result<Vec<AlertView>, ApiError> {
    let mut states = Vec::new();
    for s in q
        .state
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        states.push(
            AlertState::from_str(s)
                .map_err(|_| ApiError::bad(format!("unknown alert state `{s}`")))?,
        );
    }
    let dag = match q.dag.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => {
            id_segment("dag name", d)?;
            Some(DagName::new(d))
        }
        None => None,
    };
    let filter = AlertFilter {
        states,
        dag,
        limit: Some(limit(q.limit)?),
    };
    Ok(state
        .store
        .list_alerts(&filter)
        .await?
        .into_iter()
        .map(AlertView::from)
        .collect())
}

/// Silences in force now.
pub async fn active_silences(state: &AppState) -> Result<Vec<SilenceView>, ApiError> {
    Ok(state
        .store
        .active_silences(now_ms())
        .await?
        .into_iter()
        .map(SilenceView::from)
        .collect())
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<Json<Vec<AlertView>>, ApiError> {
    Ok(Json(alerts(&state, &q).await?))
}

async fn silences(State(state): State<AppState>) -> Result<Json<Vec<SilenceView>>, ApiError> {
    Ok(Json(active_silences(&state).await?))
}

async fn ack(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
    _: NoFields,
) -> Result<Json<AlertView>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad(format!("alert id `{id}` is not a number")))?;
    let now = now_ms();
    let alert = match state
        .store
        .ack_alert(AlertId(id), &operator.user, now)
        .await
    {
        Ok(alert) => alert,
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::NotFound(format!("no alert {id}")))
        }
        Err(StoreError::IllegalTransition { .. }) => {
            return Err(ApiError::Conflict(format!(
                "alert {id} is resolved and cannot be acknowledged"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    audit(
        &state,
        "alert_acknowledged",
        &operator,
        alert.dag.clone(),
        serde_json::json!({ "alert_id": id }),
    )
    .await?;
    Ok(Json(alert.into()))
}

async fn silence(
    State(state): State<AppState>,
    operator: Operator,
    ApiJson(req): ApiJson<SilenceRequest>,
) -> Result<Json<SilenceView>, ApiError> {
    let rule = AlertRule::from_str(&req.rule).map_err(|_| {
        let known: Vec<&str> = AlertRule::ALL.iter().map(|r| r.as_str()).collect();
        ApiError::bad(format!(
            "unknown alert rule `{}` (one of {})",
            req.rule,
            known.join(", ")
        ))
    })?;
    if !(1..=MAX_SILENCE_MINUTES).contains(&req.minutes) {
        return Err(ApiError::bad(format!(
            "minutes {} is out of range (1 to {MAX_SILENCE_MINUTES}, i.e. 30 days)",
            req.minutes
        )));
    }
    let dag = match req.dag.as_deref() {
        Some(d) => {
            id_segment("dag name", d)?;
            Some(DagName::new(d))
        }
        None => None,
    };
    let now = now_ms();
    let until = now + i64::from(req.minutes) * 60_000;
    let silence = state
        .store
        .silence(rule, dag.as_ref(), until, &operator.user, now)
        .await?;
    let detail =
        serde_json::json!({ "rule": rule.as_str(), "until_ms": until, "silence_id": silence.id });
    audit(&state, "alert_silenced", &operator, dag, detail).await?;
    Ok(Json(silence.into()))
}

async fn audit(
    state: &AppState,
    kind: &str,
    operator: &Operator,
    dag: Option<DagName>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let event = NewEvent {
        at_ms: now_ms(),
        kind: kind.to_owned(),
        actor: operator.user.clone(),
        dag,
        run_id: None,
        job: None,
        item: None,
        executor: None,
        detail,
    };
    state.store.append_event(&event).await?;
    Ok(())
}
