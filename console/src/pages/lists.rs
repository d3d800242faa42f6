//! The list pages: executors (live ones, and those lost in the last 24
//! hours while holding items), alerts (with acknowledge and silence), and
//! the event log with its filter form.

use super::html::{action, action_form, badge, esc, layout, url, zoned_time_html};
use super::PageResult;
use crate::api::alerts::{active_silences, alerts as list_alerts, AlertQuery};
use crate::api::dags::known_dags;
use crate::api::events::{events as list_events, EventQuery};
use crate::api::executors::{
    executors as list_executors, lost_executors, LostQuery, LOST_DEFAULT_HOURS,
};
use crate::auth::CanAct;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::time::{duration, now_ms};
use crate::AppState;
use axum::extract::State;
use axum::response::Html;
use nightshift_core::state::AlertRule;
use std::collections::HashMap;
use std::fmt::Write as _;

/// Most lost executors listed on the executors page.
const LOST_ROWS: u32 = 100;

/// Each known DAG's time zone by name, for the `data-zone` of a row's
/// times (the header's "DAG zone" choice shows them in their DAG's zone).
async fn dag_zones(state: &AppState) -> Result<HashMap<String, String>, ApiError> {
    Ok(known_dags(state)
        .await?
        .into_iter()
        .map(|k| (k.spec.name.to_string(), k.spec.timezone.name().to_owned()))
        .collect())
}

/// An instant of a row about `dag`, with the DAG's zone.
fn row_time(zones: &HashMap<String, String>, ms: i64, dag: Option<&str>) -> String {
    zoned_time_html(Some(ms), dag.and_then(|d| zones.get(d)).map(String::as_str))
}

/// `GET /executors`.
pub async fn executors(State(state): State<AppState>, CanAct(can_act): CanAct) -> PageResult {
    let now = now_ms();
    let mut rows = String::new();
    for e in list_executors(&state).await? {
        let labels: Vec<String> = e
            .labels
            .iter()
            .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
            .collect();
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{} <small>pid {}</small></td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.id),
            esc(&e.host),
            e.pid,
            esc(&e.handlers.join(", ")),
            labels.join(" "),
            e.running_items,
            e.capacity,
            esc(&duration(now - e.started_at_ms)),
            e.lease_ttl_ms.map_or_else(|| "-".to_owned(), |t| esc(&duration(t as i64))),
            esc(&e.version)
        );
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"8\">No executor is registered.</td></tr>");
    }
    let zones = dag_zones(&state).await?;
    let mut lost = String::new();
    let lost_list = lost_executors(
        &state,
        &LostQuery {
            hours: Some(LOST_DEFAULT_HOURS),
            limit: Some(LOST_ROWS),
        },
    )
    .await?;
    for l in &lost_list {
        let run = l
            .run_id
            .as_deref()
            .map(|r| format!("<a href=\"/runs/{}\">{}</a>", url(r), esc(r)))
            .unwrap_or_default();
        let job = match (&l.run_id, &l.job) {
            (Some(r), Some(j)) => {
                format!("<a href=\"/runs/{}?job={}\">{}</a>", url(r), url(j), esc(j))
            }
            (None, Some(j)) => esc(j),
            _ => String::new(),
        };
        let count = l
            .item_count
            .map(|n| format!(" <small>({n})</small>"))
            .unwrap_or_default();
        let _ = write!(
            lost,
            "<tr class=\"lost\"><td>{}</td><td>{}</td><td>{}</td><td>{run}</td><td>{job}</td><td><code>{}</code>{count}</td></tr>",
            esc(l.executor.as_deref().unwrap_or("-")),
            row_time(&zones, l.at_ms, l.dag.as_deref()),
            esc(l.dag.as_deref().unwrap_or("")),
            esc(&l.items)
        );
    }
    if lost.is_empty() {
        lost.push_str("<tr><td colspan=\"6\">No executor was lost while holding items in the last 24 hours.</td></tr>");
    }
    let more = if lost_list.len() as u32 == LOST_ROWS {
        format!(
            "<p class=\"sub\">The newest {LOST_ROWS} are shown; <a href=\"/events?kind=executor_lost\">the event log</a> has them all.</p>"
        )
    } else {
        String::new()
    };
    let body = format!(
        "<h1>Executors</h1><section id=\"executors\" data-live><table><thead><tr><th>Id</th><th>Host</th>\
         <th>Handlers</th><th>Labels</th><th>Running / capacity</th><th>Up</th><th>Lease left</th>\
         <th>Version</th></tr></thead><tbody>{rows}</tbody></table></section>\
         <h2>Recently lost executors</h2><p class=\"sub\">Executors whose lease ended while they held unfinished items, \
         in the last 24 hours; the scheduler moved those items to live executors.</p>\
         <section id=\"lost-executors\" data-live><table><thead><tr><th>Executor</th><th>Lost at</th><th>DAG</th>\
         <th>Run</th><th>Job</th><th>Items it held</th></tr></thead><tbody>{lost}</tbody></table>{more}</section>"
    );
    Ok(Html(layout("Executors", !can_act, "", &body)))
}

/// `GET /alerts?state=&dag=`.
pub async fn alerts(
    State(state): State<AppState>,
    CanAct(can_act): CanAct,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> PageResult {
    let ro = !can_act;
    let zones = dag_zones(&state).await?;
    let mut rows = String::new();
    for a in list_alerts(&state, &q).await? {
        let mut target = String::new();
        if let Some(run) = &a.run_id {
            let _ = write!(target, "<a href=\"/runs/{}\">{}</a>", url(run), esc(run));
        } else if let Some(dag) = &a.dag {
            let _ = write!(target, "<a href=\"/dags/{}\">{}</a>", url(dag), esc(dag));
        }
        if let Some(job) = &a.job {
            let _ = write!(target, " / {}", esc(job));
        }
        if let Some(item) = a.item {
            let _ = write!(target, " / item {item}");
        }
        if let Some(ex) = &a.executor {
            let _ = write!(target, " <small>on {}</small>", esc(ex));
        }
        let ack = if a.state == "open" {
            action(
                "Acknowledge",
                &format!("/api/v1/alerts/{}/ack", a.id),
                None,
                ro,
            )
        } else {
            a.acked_by
                .as_deref()
                .map(|u| format!("<small>by {}</small>", esc(u)))
                .unwrap_or_default()
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{target}</td><td class=\"message\">{}</td><td>{}</td><td>{}</td><td>{ack}</td></tr>",
            a.id,
            badge(&a.state),
            badge(&a.severity),
            esc(&a.rule),
            esc(&a.message),
            row_time(&zones, a.opened_at_ms, a.dag.as_deref()),
            a.resolved_at_ms.map_or_else(
                || "-".to_owned(),
                |at| row_time(&zones, at, a.dag.as_deref())
            )
        );
    }
    let mut silences = String::new();
    for s in active_silences(&state).await? {
        let _ = write!(
            silences,
            "<li>{} {} until {} <small>by {}</small></li>",
            esc(&s.rule),
            s.dag
                .as_deref()
                .map_or_else(|| "everywhere".to_owned(), |d| format!("for {}", esc(d))),
            row_time(&zones, s.until_ms, s.dag.as_deref()),
            esc(&s.created_by)
        );
    }
    let options: String = AlertRule::ALL
        .iter()
        .map(|r| format!("<option>{}</option>", r.as_str()))
        .collect();
    let fields = format!(
        "<label>Rule <select name=\"rule\">{options}</select></label>\
         <label>DAG (empty: all) <input name=\"dag\"></label>\
         <label>Minutes <input name=\"minutes\" type=\"number\" min=\"1\" value=\"60\"></label>"
    );
    let filter = ["", "open", "acknowledged", "resolved"]
        .iter()
        .map(|s| {
            format!(
                "<a href=\"/alerts?state={s}\">{}</a>",
                if s.is_empty() { "all" } else { s }
            )
        })
        .collect::<Vec<_>>()
        .join(" · ");
    let body = format!(
        "<h1>Alerts</h1><p>{filter}</p><section id=\"alerts\" data-live><table><thead><tr><th>Id</th><th>State</th>\
         <th>Severity</th><th>Rule</th><th>Where</th><th>Message</th><th>Opened</th><th>Resolved</th><th></th></tr></thead>\
         <tbody>{rows}</tbody></table><h2>Silences</h2><ul>{silences}</ul></section><h2>Silence a rule</h2>{}{}",
        action_form("/api/v1/alerts/silence", None, ro, &fields, "Silence"),
        if state.notifier.is_some() {
            format!("<h2>Notifications</h2>{}", action("Send a test notification", "/api/v1/notifications/test", None, ro))
        } else {
            String::new()
        }
    );
    Ok(Html(layout("Alerts", ro, "", &body)))
}

fn field(name: &str, label: &str, value: &Option<String>) -> String {
    format!(
        "<label>{label} <input name=\"{name}\" value=\"{}\"></label>",
        esc(value.as_deref().unwrap_or(""))
    )
}

/// `GET /events?dag=&run=&job=&executor=&kind=&from=&to=`.
pub async fn events(
    State(state): State<AppState>,
    CanAct(can_act): CanAct,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> PageResult {
    let zones = dag_zones(&state).await?;
    let mut rows = String::new();
    for e in list_events(&state, &q).await? {
        let detail = if e.detail.is_null() {
            String::new()
        } else {
            e.detail.to_string()
        };
        let run = e
            .run_id
            .as_deref()
            .map(|r| format!("<a href=\"/runs/{}\">{}</a>", url(r), esc(r)))
            .unwrap_or_default();
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{run}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"payload\"><code>{}</code></td></tr>",
            e.seq,
            row_time(&zones, e.at_ms, e.dag.as_deref()),
            esc(&e.kind),
            esc(&e.actor),
            esc(e.dag.as_deref().unwrap_or("")),
            esc(e.job.as_deref().unwrap_or("")),
            e.item.map(|i| i.to_string()).unwrap_or_default(),
            esc(e.executor.as_deref().unwrap_or("")),
            esc(&detail)
        );
    }
    let form = format!(
        "<form class=\"filter\" method=\"get\" action=\"/events\">{}{}{}{}{}{}{}<button>Filter</button></form>",
        field("dag", "DAG", &q.dag),
        field("run", "Run", &q.run),
        field("job", "Job", &q.job),
        field("executor", "Executor", &q.executor),
        field("kind", "Kind", &q.kind),
        field("from", "From (RFC 3339)", &q.from),
        field("to", "To", &q.to)
    );
    let body = format!(
        "<h1>Events</h1>{form}<section id=\"events\" data-live><table><thead><tr><th>#</th><th>At</th><th>Kind</th>\
         <th>Actor</th><th>DAG</th><th>Run</th><th>Job</th><th>Item</th><th>Executor</th><th>Detail</th></tr></thead>\
         <tbody>{rows}</tbody></table></section>"
    );
    Ok(Html(layout("Events", !can_act, "", &body)))
}
