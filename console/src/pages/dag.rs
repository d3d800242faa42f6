//! The DAG page: the job graph coloured by the selected run (each job a
//! link to its items in that run), the jobs with their trigger rules, the
//! duration trend of recent runs, run history with paging, actions
//! (trigger, pause / resume), the applied TOML and its version history.

use super::html::{action, action_form, badge, esc, layout, time_html, took, url};
use super::svg::{dag_graph, Node};
use super::trend::{duration_trend, TrendRun, TREND_RUNS};
use super::{PageError, PageResult};
use crate::api::runs::{detail as run_detail, get_run};
use crate::api::{dags, id_segment, Paging};
use crate::auth::CanAct;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::Html;
use nightshift_core::dag::TriggerRule;
use nightshift_core::ids::DagName;
use nightshift_core::slow::{median_ms, slow_after_ms, BASELINE_RUNS};
use nightshift_core::state::RunState;
use nightshift_store::RunFilter;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write as _;

const PAGE: u32 = 20;

/// `GET /dags/{dag}` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DagPageQuery {
    /// Run whose job states colour the graph (default: the newest).
    pub run: Option<String>,
    /// History rows to skip.
    pub offset: Option<u32>,
}

/// `GET /dags/{dag}`.
pub async fn page(
    State(state): State<AppState>,
    CanAct(can_act): CanAct,
    Path(dag): Path<String>,
    ApiQuery(q): ApiQuery<DagPageQuery>,
) -> PageResult {
    id_segment("dag name", &dag)?;
    let name = DagName::new(&dag);
    let d = dags::detail(&state, &name).await?;
    let offset = q.offset.unwrap_or(0);
    let history = dags::dag_runs(
        &state,
        &name,
        Paging {
            limit: Some(PAGE),
            offset: Some(offset),
        },
    )
    .await?;
    let selected = match q.run.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => {
            let run = get_run(&state, r).await?;
            if run.dag != name {
                return Err(PageError::from(ApiError::NotFound(format!(
                    "run `{r}` is not a run of `{dag}`"
                ))));
            }
            Some(run)
        }
        None => match history.first() {
            Some(r) if offset == 0 => Some(get_run(&state, &r.run_id).await?),
            _ => None,
        },
    };
    let job_states: HashMap<String, String> = match &selected {
        Some(run) => run_detail(&state, run)
            .await?
            .jobs
            .into_iter()
            .map(|j| (j.job, j.state))
            .collect(),
        None => HashMap::new(),
    };
    let default_rule = TriggerRule::default().as_str();
    let nodes: Vec<Node> = d
        .job_specs
        .iter()
        .map(|j| Node {
            name: j.name.clone(),
            depends_on: j.depends_on.clone(),
            state: job_states
                .get(&j.name)
                .cloned()
                .unwrap_or_else(|| "pending".to_owned()),
            // The job's items in the selected run, else its row below.
            href: match &selected {
                Some(run) => format!(
                    "/runs/{}?job={}#items",
                    url(run.run_id.as_str()),
                    url(&j.name)
                ),
                None => format!("#job-{}", url(&j.name)),
            },
            rule: (j.trigger_rule != default_rule).then(|| j.trigger_rule.clone()),
        })
        .collect();
    let ro = !can_act;
    let o = &d.overview;
    let n = esc(&o.name);
    let mut body = format!("<h1>DAG {n}</h1>");
    if let Some(desc) = &o.description {
        let _ = write!(body, "<p class=\"sub\">{}</p>", esc(desc));
    }
    let schedule = o.schedule.as_deref().map_or_else(
        || "manual only".to_owned(),
        |s| format!("<code>{}</code>", esc(s)),
    );
    let _ = write!(
        body,
        "<section id=\"summary\" data-live><p>Schedule {schedule} in {} · next fire {} · version {} applied {} by {}{}</p></section>",
        esc(&o.timezone),
        esc(o.next_fire_local.as_deref().unwrap_or("-")),
        o.version,
        time_html(Some(o.applied_at_ms)),
        esc(&o.applied_by),
        if o.paused { format!(" · {}", badge("paused")) } else { String::new() }
    );
    if !o.next_fires.is_empty() {
        body.push_str("<section id=\"next-fires\"><h2>Next fires</h2><table><thead><tr><th>At (DAG zone)</th><th>Business date</th></tr></thead><tbody>");
        for fire in &o.next_fires {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&fire.at_local),
                esc(&fire.business_date)
            );
        }
        body.push_str("</tbody></table></section>");
    }
    let api = format!("/api/v1/dags/{}", url(&o.name));
    let trigger_fields = "<label>Business date <input name=\"business_date\" type=\"date\"></label>\
        <label>Params (JSON object) <input name=\"params\" data-json placeholder='{\"region\":\"eu\"}'></label>";
    // Re-running a settled business date is a choice of its own: without
    // it the leader refuses a date that already succeeded (a blank date is
    // today's business date, named in the command).
    let trigger_fields = &format!(
        "{trigger_fields}<label class=\"check\"><span><input name=\"rerun\" type=\"checkbox\"> \
         re-run even if this date already succeeded</span></label>\
         <small class=\"why\">blank date: today's business date in {}</small>",
        esc(&o.timezone)
    );
    let confirm = if o.paused {
        format!(
            "{} is paused (no scheduled runs). Trigger a manual run anyway?",
            o.name
        )
    } else {
        format!("Trigger a run of {}?", o.name)
    };
    body.push_str("<section class=\"actions\">");
    body.push_str(&action_form(
        &format!("{api}/trigger"),
        Some(&confirm),
        ro,
        trigger_fields,
        "Trigger run",
    ));
    body.push_str(&if o.paused {
        action("Resume", &format!("{api}/resume"), None, ro)
    } else {
        action(
            "Pause",
            &format!("{api}/pause"),
            Some(&format!("Pause scheduled runs of {}?", o.name)),
            ro,
        )
    });
    body.push_str("</section>");
    let caption = match &selected {
        Some(run) => format!(
            "states in run <a href=\"/runs/{}\">{}</a>",
            url(run.run_id.as_str()),
            esc(run.run_id.as_str())
        ),
        None => "no run selected".to_owned(),
    };
    let _ = write!(
        body,
        "<h2>Jobs</h2><p class=\"sub\">{caption}</p><section id=\"graph\" class=\"scroll\" data-live>{}</section>",
        dag_graph(&nodes)
    );
    let mut jobs = String::new();
    for j in &d.job_specs {
        let ups = j
            .depends_on
            .iter()
            .map(|u| format!("<a href=\"#job-{}\">{}</a>", url(u), esc(u)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            jobs,
            "<tr id=\"job-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            url(&j.name),
            esc(&j.name),
            esc(&j.handler),
            j.shards,
            if ups.is_empty() { "-".to_owned() } else { ups },
            esc(&j.trigger_rule)
        );
    }
    let _ = write!(
        body,
        "<section id=\"job-list\" class=\"scroll\"><table><thead><tr><th>Job</th><th>Handler</th><th>Items</th>\
         <th>Depends on</th><th>Trigger rule</th></tr></thead><tbody>{jobs}</tbody></table></section>"
    );

    // Duration trend: the last ended runs, oldest first, against the
    // baseline the scheduler would fix for the next run.
    let ended = state
        .store
        .list_runs(&RunFilter {
            dag: Some(name.clone()),
            states: vec![RunState::Succeeded, RunState::Failed, RunState::Cancelled],
            limit: Some(TREND_RUNS),
            ..RunFilter::default()
        })
        .await
        .map_err(ApiError::from)?;
    let trend: Vec<TrendRun> = ended
        .iter()
        .rev()
        .filter_map(|r| {
            // A run cancelled before it started took no time: no bar.
            let took = r.ended_at_ms?.checked_sub(r.started_at_ms?)?;
            Some(TrendRun {
                run_id: r.run_id.to_string(),
                state: r.state.as_str().to_owned(),
                business_date: r.business_date.to_string(),
                duration_ms: took,
            })
        })
        .collect();
    let baseline = state
        .store
        .recent_run_durations(&name, BASELINE_RUNS)
        .await
        .map_err(ApiError::from)?;
    let _ = write!(
        body,
        "<h2>Duration trend</h2><p class=\"sub\">the last {TREND_RUNS} ended runs, oldest first; \
         lines: the median of the last {BASELINE_RUNS} succeeded runs and 1.5 × it, past which \
         a run is slower than usual</p><section id=\"trend\" class=\"scroll\" data-live>{}</section>",
        duration_trend(&trend, median_ms(&baseline), slow_after_ms(&baseline))
    );

    let mut rows = String::new();
    for r in &history {
        let _ = write!(
            rows,
            "<tr><td><a href=\"/runs/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td><a href=\"/dags/{}?run={}\">graph</a></td></tr>",
            url(&r.run_id),
            esc(&r.run_id),
            badge(&r.state),
            esc(&r.business_date),
            time_html(r.started_at_ms),
            esc(&took(r.duration_ms)),
            esc(&r.trigger_source),
            url(&o.name),
            url(&r.run_id)
        );
    }
    let mut paging = String::new();
    if offset > 0 {
        let _ = write!(
            paging,
            "<a href=\"/dags/{}?offset={}\">← newer</a> ",
            url(&o.name),
            offset.saturating_sub(PAGE)
        );
    }
    if history.len() as u32 == PAGE {
        let _ = write!(
            paging,
            "<a href=\"/dags/{}?offset={}\">older →</a>",
            url(&o.name),
            offset + PAGE
        );
    }
    let _ = write!(
        body,
        "<h2>Runs</h2><section id=\"history\" data-live><table><thead><tr><th>Run</th><th>State</th>\
         <th>Business date</th><th>Started</th><th>Duration</th><th>Trigger</th><th></th></tr></thead>\
         <tbody>{rows}</tbody></table><p class=\"paging\">{paging}</p></section>"
    );
    let mut versions = String::new();
    for v in &d.versions {
        let _ = write!(
            versions,
            "<tr><td>v{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            v.version,
            time_html(Some(v.applied_at_ms)),
            esc(&v.applied_by),
            esc(v.checksum.get(..12).unwrap_or(&v.checksum))
        );
    }
    let _ = write!(
        body,
        "<h2>Applied definition</h2><pre class=\"toml\">{}</pre><h2>Versions</h2><table><thead><tr>\
         <th>Version</th><th>Applied</th><th>By</th><th>Checksum</th></tr></thead><tbody>{versions}</tbody></table>",
        esc(&d.source_toml)
    );
    let attrs = format!(" data-dag=\"{n}\" data-zone=\"{}\"", esc(&o.timezone));
    Ok(Html(layout(&format!("DAG {}", o.name), ro, &attrs, &body)))
}
