//! The overview: the items running now ([`super::running_now`]), tonight's
//! runs on a timeline, and every DAG with its schedule, next fire, last and
//! current run, and open alerts.
//!
//! The timeline's rule: runs *created* in the last 24 hours, plus any run
//! still unfinished however old, one lane per DAG, on an axis from 24 hours
//! ago to 12 hours ahead, so tonight's upcoming fire times (markers) are on
//! it too; a fire time further out is an arrow at the right end.

use super::html::{badge, bar, esc, layout, took, url, when};
use super::timeline::{chart, Axis, Bar, Lane, Marker};
use super::PageResult;
use crate::api::dags::{overviews, DagOverview};
use crate::api::RunBrief;
use crate::auth::CanAct;
use crate::error::ApiError;
use crate::time::{duration, now_ms, parse_instant};
use crate::AppState;
use axum::extract::State;
use axum::response::Html;
use chrono_tz::Tz;
use nightshift_core::state::RunState;
use nightshift_store::RunFilter;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

/// How far back the timeline reaches.
pub const LOOKBACK_MS: i64 = 24 * 3_600_000;
/// How far ahead it reaches (upcoming fire times).
pub const LOOKAHEAD_MS: i64 = 12 * 3_600_000;
/// Most runs drawn: the newest ones, and the unfinished ones.
pub const MAX_RUNS: u32 = 500;

/// The runs of the timeline: created since `from_ms` (newest first, at
/// most [`MAX_RUNS`]) and every unfinished one; `true` when runs created
/// in the window were left out.
async fn timeline_runs(
    state: &AppState,
    from_ms: i64,
    now: i64,
) -> Result<(Vec<RunBrief>, bool), ApiError> {
    let newest = RunFilter {
        limit: Some(MAX_RUNS + 1),
        ..RunFilter::default()
    };
    let mut runs: Vec<_> = state
        .store
        .list_runs(&newest)
        .await?
        .into_iter()
        .filter(|r| r.created_at_ms >= from_ms)
        .collect();
    let capped = runs.len() > MAX_RUNS as usize;
    runs.truncate(MAX_RUNS as usize);
    let unfinished = RunFilter {
        states: vec![RunState::Pending, RunState::Running],
        limit: Some(MAX_RUNS),
        ..RunFilter::default()
    };
    let seen: HashSet<String> = runs.iter().map(|r| r.run_id.to_string()).collect();
    for r in state.store.list_runs(&unfinished).await? {
        if !seen.contains(r.run_id.as_str()) {
            runs.push(r);
        }
    }
    Ok((runs.iter().map(|r| RunBrief::new(r, now)).collect(), capped))
}

fn run_bar(r: &RunBrief) -> Bar {
    let start = r.started_at_ms.unwrap_or(r.created_at_ms);
    let started = r.started_at_ms.map_or_else(
        || format!("created {}", crate::time::utc(r.created_at_ms)),
        |s| format!("started {}", crate::time::utc(s)),
    );
    let took = r
        .duration_ms
        .map_or_else(|| "not started".to_owned(), duration);
    Bar {
        state: r.state.clone(),
        start_ms: start,
        end_ms: r.ended_at_ms,
        title: format!(
            "run {} · {} · business date {} · {started} · {took}",
            r.run_id, r.state, r.business_date
        ),
        href: Some(format!("/runs/{}", url(&r.run_id))),
    }
}

/// The "tonight" section: the SVG and a line saying what it shows.
async fn timeline(state: &AppState, dags: &[DagOverview]) -> Result<String, ApiError> {
    let now = now_ms();
    let from = now - LOOKBACK_MS;
    let (runs, capped) = timeline_runs(state, from, now).await?;
    let mut lanes: BTreeMap<String, Lane> = BTreeMap::new();
    for d in dags {
        let mut lane = Lane {
            label: d.name.clone(),
            href: Some(format!("/dags/{}", url(&d.name))),
            ..Lane::default()
        };
        if let (Some(at), Some(local)) = (
            d.next_fire_at.as_deref().and_then(parse_instant),
            &d.next_fire_local,
        ) {
            lane.markers.push(Marker {
                at_ms: at,
                title: format!("{}: next fire {local} ({})", d.name, crate::time::utc(at)),
            });
        }
        lanes.insert(d.name.clone(), lane);
    }
    // Runs of a DAG that is no longer applied still get a lane.
    for r in &runs {
        let lane = lanes.entry(r.dag.clone()).or_insert_with(|| Lane {
            label: r.dag.clone(),
            ..Lane::default()
        });
        lane.bars.push(run_bar(r));
    }
    // A second axis row in the DAGs' zone when they all share one.
    let zones: HashSet<&str> = dags.iter().map(|d| d.timezone.as_str()).collect();
    let zone = match zones.into_iter().collect::<Vec<_>>().as_slice() {
        [one] if *one != "UTC" => one.parse::<Tz>().ok(),
        _ => None,
    };
    let axis = Axis {
        label: "runs of the last 24 hours by DAG".to_owned(),
        from_ms: from,
        to_ms: now + LOOKAHEAD_MS,
        zone,
        now_ms: Some(now),
        row_h: 22,
    };
    let lanes: Vec<Lane> = lanes.into_values().collect();
    let mut note = format!(
        "Runs created in the last 24 hours and unfinished runs ({} shown), from {} to 12 hours ahead; ▽ next fire. Click a run to open it.",
        runs.len(),
        crate::time::utc(from)
    );
    if capped {
        let _ = write!(
            note,
            " Only the newest {MAX_RUNS} runs of the window are drawn."
        );
    }
    Ok(format!(
        "<p class=\"sub\">{}</p>{}",
        esc(&note),
        chart(&axis, &lanes)
    ))
}

/// `GET /`.
pub async fn page(State(state): State<AppState>, CanAct(can_act): CanAct) -> PageResult {
    let dags = overviews(&state).await?;
    let mut rows = String::new();
    for d in &dags {
        let name = esc(&d.name);
        let schedule = match &d.schedule {
            Some(s) => format!(
                "<code>{}</code> <small>{}</small>",
                esc(s),
                esc(&d.timezone)
            ),
            None => "<small>manual only</small>".to_owned(),
        };
        let next = if d.paused {
            badge("paused")
        } else {
            esc(d.next_fire_local.as_deref().unwrap_or("-"))
        };
        let last = match &d.last_run {
            Some(r) => format!(
                "<a href=\"/runs/{}\">{}</a> {} <small>{}</small>",
                url(&r.run_id),
                esc(&r.business_date),
                badge(&r.state),
                esc(&took(r.duration_ms))
            ),
            None => "<small>never ran</small>".to_owned(),
        };
        let current = match &d.current_run {
            Some(c) => format!(
                "<a href=\"/runs/{}\">{}</a>{}",
                url(&c.run.run_id),
                esc(&c.run.business_date),
                bar(c.total, &[("succeeded", c.done)])
            ),
            None => "-".to_owned(),
        };
        let alerts = if d.open_alerts > 0 {
            format!(
                "<a class=\"alerts\" href=\"/alerts?state=open&amp;dag={}\">{}</a>",
                url(&d.name),
                d.open_alerts
            )
        } else {
            "0".to_owned()
        };
        let _ = write!(
            rows,
            "<tr><td><a href=\"/dags/{}\">{name}</a><br><small>{} jobs · {} items · v{}</small></td>\
             <td>{schedule}</td><td>{next}</td><td>{last}</td><td>{current}</td><td>{alerts}</td></tr>",
            url(&d.name),
            d.jobs,
            d.total_items,
            d.version
        );
    }
    if dags.is_empty() {
        rows.push_str("<tr><td colspan=\"6\">No DAG is applied yet (<code>nightshift apply dags/</code>).</td></tr>");
    }
    let timeline = timeline(&state, &dags).await?;
    let running = super::running_now::section(&state).await?;
    let body = format!(
        "<h1>Overview</h1><p class=\"sub\">As of {}</p><h2>Running now</h2><section id=\"running-now\" data-live>{running}</section>\
         <h2>Tonight</h2><section id=\"timeline\" data-live>{timeline}</section>\
         <h2>DAGs</h2><section id=\"dags\" data-live><table>\
         <thead><tr><th>DAG</th><th>Schedule</th><th>Next fire</th><th>Last run</th><th>Current run</th>\
         <th>Open alerts</th></tr></thead><tbody>{rows}</tbody></table></section>",
        esc(&when(Some(now_ms())))
    );
    Ok(Html(layout("Overview", !can_act, "", &body)))
}
