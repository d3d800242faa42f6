//! The overview: the items running now ([`super::running_now`]), tonight's
//! runs on a timeline, and every DAG with its schedule, next fire, last and
//! current run, and open alerts.
//!
//! The timeline's rule: runs *created* in the last 24 hours, plus any run
//! still unfinished however old, one lane per DAG, drawn when they overlap
//! the chosen window ([`Zoom`], `?window=6h|12h|36h`, 12 hours by default)
//! which reaches a little ahead, so tonight's upcoming fire times (markers)
//! are on it too; a fire time further out is an arrow at the right end.

use super::html::{badge, bar, esc, layout, time_html, took, url, zoned_time_html};
use super::timeline::{chart, failing_lanes_first, Axis, Bar, Lane, Marker};
use super::PageResult;
use crate::api::dags::{overviews, DagOverview};
use crate::api::RunBrief;
use crate::auth::CanAct;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::time::{duration, now_ms, parse_instant};
use crate::AppState;
use axum::extract::State;
use axum::response::Html;
use chrono_tz::Tz;
use nightshift_core::state::RunState;
use nightshift_store::RunFilter;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

/// How far back the runs of the timeline are read (the widest window's
/// reach back).
pub const LOOKBACK_MS: i64 = 24 * 3_600_000;
const HOUR_MS: i64 = 3_600_000;

/// The timeline's window: how many hours it shows, and how they split
/// between the past and the coming hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Zoom {
    /// 5 hours back, 1 ahead: the last hours in detail.
    #[serde(rename = "6h")]
    Six,
    /// 9 hours back, 3 ahead: tonight.
    #[default]
    #[serde(rename = "12h")]
    Twelve,
    /// 24 hours back, 12 ahead: a day and tonight's plan.
    #[serde(rename = "36h")]
    ThirtySix,
}

impl Zoom {
    /// Every zoom, narrowest first.
    pub const ALL: [Zoom; 3] = [Zoom::Six, Zoom::Twelve, Zoom::ThirtySix];

    /// Its query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Zoom::Six => "6h",
            Zoom::Twelve => "12h",
            Zoom::ThirtySix => "36h",
        }
    }

    /// How far back and ahead of now it reaches, ms.
    pub fn reach(self) -> (i64, i64) {
        match self {
            Zoom::Six => (5 * HOUR_MS, HOUR_MS),
            Zoom::Twelve => (9 * HOUR_MS, 3 * HOUR_MS),
            Zoom::ThirtySix => (LOOKBACK_MS, 12 * HOUR_MS),
        }
    }
}

/// `GET /` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverviewQuery {
    /// The timeline's window (`6h`, `12h`, `36h`).
    pub window: Option<Zoom>,
}

/// Whether a run's bar (from `start`, to `end` or `now` while open)
/// overlaps `[from, to]`.
fn overlaps(r: &RunBrief, from: i64, to: i64, now: i64) -> bool {
    let start = r.started_at_ms.unwrap_or(r.created_at_ms);
    let end = r.ended_at_ms.unwrap_or(now).max(start);
    end >= from && start <= to
}
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

/// The zone of every DAG when they all share one other than UTC.
fn shared_zone(dags: &[DagOverview]) -> Option<Tz> {
    let zones: HashSet<&str> = dags.iter().map(|d| d.timezone.as_str()).collect();
    match zones.into_iter().collect::<Vec<_>>().as_slice() {
        [one] if *one != "UTC" => one.parse::<Tz>().ok(),
        _ => None,
    }
}

/// The zoom links: the current one marked, the others linking to it.
fn zoom_links(current: Zoom) -> String {
    let links: Vec<String> = Zoom::ALL
        .iter()
        .map(|z| {
            let hours = z.as_str().trim_end_matches('h');
            if *z == current {
                format!("<strong aria-current=\"true\">{hours} h</strong>")
            } else {
                format!("<a href=\"/?window={}\">{hours} h</a>", z.as_str())
            }
        })
        .collect();
    format!("<p class=\"zoom\">Window: {}</p>", links.join(" · "))
}

/// The "tonight" section: the zoom links, a line saying what it shows and
/// the SVG.
async fn timeline(state: &AppState, dags: &[DagOverview], zoom: Zoom) -> Result<String, ApiError> {
    let now = now_ms();
    let (back, ahead) = zoom.reach();
    let (from, to) = (now - back, now + ahead);
    let (runs, capped) = timeline_runs(state, now - LOOKBACK_MS, now).await?;
    let runs: Vec<RunBrief> = runs
        .into_iter()
        .filter(|r| overlaps(r, from, to, now))
        .collect();
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
    let zone = shared_zone(dags);
    let axis = Axis {
        label: format!("runs of the last {} hours by DAG", back / HOUR_MS),
        from_ms: from,
        to_ms: to,
        zone,
        now_ms: Some(now),
        row_h: 22,
    };
    let mut lanes: Vec<Lane> = lanes.into_values().collect();
    failing_lanes_first(&mut lanes);
    let mut note = format!(
        "Runs of the last {} hours and unfinished runs ({} shown), from {} to {} hours ahead; \
         DAGs with a failed run come first, failed runs are drawn over the others, newer over older; \
         ▽ next fire. Click a run to open it.",
        back / HOUR_MS,
        runs.len(),
        time_html(Some(from)),
        ahead / HOUR_MS
    );
    if capped {
        let _ = write!(
            note,
            " Only the newest {MAX_RUNS} runs of the window are drawn."
        );
    }
    Ok(format!(
        "{}<p class=\"sub\">{note}</p>{}",
        zoom_links(zoom),
        chart(&axis, &lanes)
    ))
}

/// `GET /`.
pub async fn page(
    State(state): State<AppState>,
    CanAct(can_act): CanAct,
    ApiQuery(q): ApiQuery<OverviewQuery>,
) -> PageResult {
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
            match d.next_fire_at.as_deref().and_then(parse_instant) {
                // In UTC like every time; the DAG's zone is a choice away
                // and in the title.
                Some(at) => format!(
                    "<span title=\"{}\">{}</span>",
                    esc(d.next_fire_local.as_deref().unwrap_or("")),
                    zoned_time_html(Some(at), Some(&d.timezone))
                ),
                None => "-".to_owned(),
            }
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
    let timeline = timeline(&state, &dags, q.window.unwrap_or_default()).await?;
    let running = super::running_now::section(&state).await?;
    let body = format!(
        "<h1>Overview</h1><p class=\"sub\">As of {}</p><h2>Running now</h2><section id=\"running-now\" data-live>{running}</section>\
         <h2>Tonight</h2><section id=\"timeline\" data-live>{timeline}</section>\
         <h2>DAGs</h2><section id=\"dags\" data-live><table>\
         <thead><tr><th>DAG</th><th>Schedule</th><th>Next fire</th><th>Last run</th><th>Current run</th>\
         <th>Open alerts</th></tr></thead><tbody>{rows}</tbody></table></section>",
        time_html(Some(now_ms()))
    );
    // The DAGs' zone for the page's "DAG zone" choice, when they share one.
    let attrs = match shared_zone(&dags) {
        Some(tz) => format!(" data-zone=\"{}\"", esc(tz.name())),
        None => String::new(),
    };
    Ok(Html(layout("Overview", !can_act, &attrs, &body)))
}
