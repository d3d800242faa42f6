//! `GET /dags`, `GET /dags/{dag}`, `GET /dags/{dag}/runs` (its `POST`, a
//! trigger, lives in [`super::actions`]): what is applied,
//! when it fires next, and how its runs went.
//!
//! The applied DAG comes from the coordination service (`{p}dags/`, what
//! the leader schedules); a DAG that is only in SQL (e.g. etcd was
//! rebuilt) is shown from its latest recorded version.

use super::{id_segment, limit, Paging, RunBrief};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::time::{local, now_ms, rfc3339};
use crate::{live, AppState};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use nightshift_core::dag::DagSpec;
use nightshift_core::ids::DagName;
use nightshift_core::state::{AlertState, RunState};
use nightshift_store::{AlertFilter, RunFilter};
use serde::Serialize;
use std::collections::BTreeMap;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dags", get(list))
        .route("/dags/{dag}", get(one))
        .route(
            "/dags/{dag}/runs",
            get(runs).post(super::actions::trigger_run),
        )
}

/// One upcoming scheduled fire.
#[derive(Debug, Clone, Serialize)]
pub struct NextFire {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The same instant in the DAG's zone, for people.
    pub at_local: String,
    /// The business date its run is for (`YYYY-MM-DD`).
    pub business_date: String,
}

/// A DAG with its schedule and latest runs.
#[derive(Debug, Clone, Serialize)]
pub struct DagOverview {
    /// Name.
    pub name: String,
    /// Description from the file.
    pub description: Option<String>,
    /// Cron expression, if scheduled.
    pub schedule: Option<String>,
    /// IANA zone the schedule is read in.
    pub timezone: String,
    /// Next scheduled fire time (RFC 3339, UTC); none when paused or unscheduled.
    pub next_fire_at: Option<String>,
    /// The same instant in the DAG's zone, for people.
    pub next_fire_local: Option<String>,
    /// The next five scheduled fires with the business date each run is
    /// for; empty when paused or unscheduled.
    pub next_fires: Vec<NextFire>,
    /// Whether scheduled runs are paused.
    pub paused: bool,
    /// Applied version.
    pub version: u32,
    /// When that version was applied (epoch ms).
    pub applied_at_ms: i64,
    /// Who applied it.
    pub applied_by: String,
    /// Number of jobs.
    pub jobs: usize,
    /// Shard items over all jobs.
    pub total_items: u64,
    /// The newest run.
    pub last_run: Option<RunBrief>,
    /// The newest unfinished run, with its progress.
    pub current_run: Option<RunProgress>,
    /// Open (unacknowledged) alerts of this DAG.
    pub open_alerts: u32,
}

/// An unfinished run and how far it got.
#[derive(Debug, Clone, Serialize)]
pub struct RunProgress {
    /// The run.
    pub run: RunBrief,
    /// Items in a terminal state (items of finished jobs all count).
    pub done: u64,
    /// Items in total.
    pub total: u64,
}

/// A DAG with its jobs, source and version history.
#[derive(Debug, Clone, Serialize)]
pub struct DagDetail {
    /// The overview fields.
    #[serde(flatten)]
    pub overview: DagOverview,
    /// Jobs in topological order.
    pub job_specs: Vec<JobBrief>,
    /// The applied TOML.
    pub source_toml: String,
    /// Every applied version, newest first.
    pub versions: Vec<VersionBrief>,
}

/// One job of a DAG.
#[derive(Debug, Clone, Serialize)]
pub struct JobBrief {
    /// Name.
    pub name: String,
    /// Handler.
    pub handler: String,
    /// Shard items.
    pub shards: u32,
    /// Upstream jobs.
    pub depends_on: Vec<String>,
    /// Which upstream outcomes let it start: `all_success` (the default),
    /// `all_done`, `one_failed`, `none_failed`.
    pub trigger_rule: String,
}

/// One applied version.
#[derive(Debug, Clone, Serialize)]
pub struct VersionBrief {
    /// 1, 2, 3…
    pub version: u32,
    /// When (epoch ms).
    pub applied_at_ms: i64,
    /// Who.
    pub applied_by: String,
    /// Checksum of source and spec.
    pub checksum: String,
}

/// A DAG as the console knows it, from etcd or SQL.
pub(crate) struct KnownDag {
    pub spec: DagSpec,
    pub source_toml: String,
    pub version: u32,
    pub paused: bool,
    pub applied_at_ms: i64,
    pub applied_by: String,
}

/// Every DAG: applied ones from the coordination service, plus SQL-only
/// ones that were not removed.
pub(crate) async fn known_dags(state: &AppState) -> Result<Vec<KnownDag>, ApiError> {
    let mut out: BTreeMap<String, KnownDag> = BTreeMap::new();
    for applied in live::applied_dags(state).await? {
        out.insert(applied.spec.name.to_string(), from_applied(applied));
    }
    for summary in state.store.list_dags().await? {
        if summary.removed || out.contains_key(summary.dag.as_str()) {
            continue;
        }
        if let Some(known) = from_sql(state, &summary.dag).await? {
            out.insert(summary.dag.to_string(), known);
        }
    }
    Ok(out.into_values().collect())
}

/// One DAG, or 404.
pub(crate) async fn known_dag(state: &AppState, dag: &DagName) -> Result<KnownDag, ApiError> {
    if let Some(applied) = live::applied_dag(state, dag).await? {
        return Ok(from_applied(applied));
    }
    from_sql(state, dag)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no DAG named `{dag}`")))
}

fn from_applied(a: nightshift_core::keyspace::AppliedDag) -> KnownDag {
    KnownDag {
        spec: a.spec,
        source_toml: a.source_toml,
        version: a.version,
        paused: a.paused,
        applied_at_ms: a.applied_at_ms,
        applied_by: a.applied_by,
    }
}

async fn from_sql(state: &AppState, dag: &DagName) -> Result<Option<KnownDag>, ApiError> {
    let Some(summary) = state.store.get_dag(dag).await? else {
        return Ok(None);
    };
    let Some(version) = state.store.latest_dag_version(dag).await? else {
        return Ok(None);
    };
    let spec: DagSpec = match serde_json::from_str(&version.spec_json) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(dag = %dag, error = %e, "stored DAG spec does not decode");
            return Ok(None);
        }
    };
    Ok(Some(KnownDag {
        spec,
        source_toml: version.source_toml,
        version: version.version,
        paused: summary.paused,
        applied_at_ms: version.applied_at_ms,
        applied_by: version.applied_by,
    }))
}

/// The overview of every DAG.
pub async fn overviews(state: &AppState) -> Result<Vec<DagOverview>, ApiError> {
    let filter = AlertFilter {
        states: vec![AlertState::Open],
        dag: None,
        limit: Some(10_000),
    };
    let mut open: BTreeMap<String, u32> = BTreeMap::new();
    for alert in state.store.list_alerts(&filter).await? {
        if let Some(dag) = alert.dag {
            *open.entry(dag.to_string()).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for known in known_dags(state).await? {
        let alerts = open.get(known.spec.name.as_str()).copied().unwrap_or(0);
        out.push(overview(state, &known, alerts).await?);
    }
    Ok(out)
}

pub(crate) async fn overview(
    state: &AppState,
    known: &KnownDag,
    open_alerts: u32,
) -> Result<DagOverview, ApiError> {
    let now = now_ms();
    let spec = &known.spec;
    let fires = match known.paused {
        false => spec.next_fires(Utc::now(), 5),
        true => Vec::new(),
    };
    let next = fires.first().map(|(fire, _)| *fire);
    let recent = RunFilter {
        dag: Some(spec.name.clone()),
        limit: Some(1),
        ..RunFilter::default()
    };
    let last_run = state
        .store
        .list_runs(&recent)
        .await?
        .first()
        .map(|r| RunBrief::new(r, now));
    let live_filter = RunFilter {
        dag: Some(spec.name.clone()),
        states: vec![RunState::Pending, RunState::Running],
        limit: Some(1),
        ..RunFilter::default()
    };
    let current_run = match state.store.list_runs(&live_filter).await?.first() {
        Some(run) => {
            let mut done = 0u64;
            for jr in state.store.job_runs(&run.run_id).await? {
                done += if jr.state.is_terminal() {
                    u64::from(jr.shards)
                } else {
                    u64::from(jr.succeeded + jr.failed + jr.skipped + jr.cancelled)
                };
            }
            Some(RunProgress {
                run: RunBrief::new(run, now),
                done,
                total: spec.total_items(),
            })
        }
        None => None,
    };
    Ok(DagOverview {
        name: spec.name.to_string(),
        description: spec.description.clone(),
        schedule: spec.schedule.clone(),
        timezone: spec.timezone.name().to_owned(),
        next_fire_at: next.map(rfc3339),
        next_fire_local: next.map(|t| local(t, spec.timezone)),
        next_fires: fires
            .iter()
            .map(|(fire, day)| NextFire {
                at: rfc3339(*fire),
                at_local: local(*fire, spec.timezone),
                business_date: day.to_string(),
            })
            .collect(),
        paused: known.paused,
        version: known.version,
        applied_at_ms: known.applied_at_ms,
        applied_by: known.applied_by.clone(),
        jobs: spec.jobs.len(),
        total_items: spec.total_items(),
        last_run,
        current_run,
        open_alerts,
    })
}

/// One DAG in detail.
pub async fn detail(state: &AppState, dag: &DagName) -> Result<DagDetail, ApiError> {
    let known = known_dag(state, dag).await?;
    let filter = AlertFilter {
        states: vec![AlertState::Open],
        dag: Some(dag.clone()),
        limit: Some(10_000),
    };
    let open = u32::try_from(state.store.list_alerts(&filter).await?.len()).unwrap_or(u32::MAX);
    let overview = overview(state, &known, open).await?;
    let job_specs = known
        .spec
        .topo_order()
        .iter()
        .filter_map(|name| known.spec.job(name))
        .map(|j| JobBrief {
            name: j.name.to_string(),
            handler: j.handler.to_string(),
            shards: j.shards,
            depends_on: j.depends_on.iter().map(ToString::to_string).collect(),
            trigger_rule: j.trigger_rule.as_str().to_owned(),
        })
        .collect();
    let mut versions: Vec<VersionBrief> = state
        .store
        .dag_versions(dag)
        .await?
        .into_iter()
        .map(|v| VersionBrief {
            version: v.version,
            applied_at_ms: v.applied_at_ms,
            applied_by: v.applied_by,
            checksum: v.checksum,
        })
        .collect();
    versions.reverse();
    Ok(DagDetail {
        overview,
        job_specs,
        source_toml: known.source_toml,
        versions,
    })
}

/// Runs of one DAG, newest first.
pub async fn dag_runs(
    state: &AppState,
    dag: &DagName,
    paging: Paging,
) -> Result<Vec<RunBrief>, ApiError> {
    known_dag(state, dag).await?;
    let filter = RunFilter {
        dag: Some(dag.clone()),
        limit: Some(limit(paging.limit)?),
        offset: paging.offset.unwrap_or(0),
        ..RunFilter::default()
    };
    let now = now_ms();
    Ok(state
        .store
        .list_runs(&filter)
        .await?
        .iter()
        .map(|r| RunBrief::new(r, now))
        .collect())
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<DagOverview>>, ApiError> {
    Ok(Json(overviews(&state).await?))
}

async fn one(
    State(state): State<AppState>,
    Path(dag): Path<String>,
) -> Result<Json<DagDetail>, ApiError> {
    id_segment("dag name", &dag)?;
    Ok(Json(detail(&state, &DagName::new(dag)).await?))
}

async fn runs(
    State(state): State<AppState>,
    Path(dag): Path<String>,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Json<Vec<RunBrief>>, ApiError> {
    id_segment("dag name", &dag)?;
    Ok(Json(dag_runs(&state, &DagName::new(dag), paging).await?))
}
