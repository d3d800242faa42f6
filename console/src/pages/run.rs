//! The run page: per job a progress bar, counts, throughput and ETA; a Gantt
//! chart of the jobs; the grid of one job's items coloured by state, each
//! with its executor, attempts, error and last progress in a tooltip (and in
//! a detail panel on click, with the latest ended attempt's log, fetched
//! from the logs API and inserted as text); the same job's item attempts on a time axis
//! ([`super::item_timeline`], paged); actions on the run, its jobs and
//! items.

use super::html::{
    action_form, action_form_unless, action_unless, badge, bar, esc, layout, time_html, took, url,
};
use super::item_timeline::item_timeline;
use super::svg::{gantt, Span};
use super::PageResult;
use crate::api::applicable;
use crate::api::dags::known_dag;
use crate::api::items::{items, ItemView};
use crate::api::runs::{detail, get_run, JobProgress};
use crate::auth::CanAct;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::time::{duration, now_ms};
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::Html;
use nightshift_core::state::JobState;
use serde::Deserialize;
use std::fmt::Write as _;

/// Most item cells drawn; larger jobs show the first ones and say so.
const MAX_CELLS: usize = 5000;

/// `GET /runs/{run}` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunPageQuery {
    /// Job whose items are shown (default: the first running job, else the first job).
    pub job: Option<String>,
    /// Item rows of the job's item timeline to skip (paging).
    pub offset: Option<u32>,
}

fn segments(j: &JobProgress) -> [(&'static str, u64); 5] {
    let c = &j.counts;
    [
        ("succeeded", c.succeeded),
        ("failed", c.failed),
        ("skipped", c.skipped),
        ("cancelled", c.cancelled),
        ("running", c.running),
    ]
}

fn item_tooltip(item: &ItemView) -> String {
    let mut t = format!("item {} · {}", item.item, item.state);
    if let Some(e) = &item.executor {
        let _ = write!(t, " · on {e}");
    }
    if let Some(n) = item.attempt {
        let _ = write!(t, " · attempt {n}");
    }
    if item.cancelling {
        t.push_str(" · stopping");
    }
    if let Some(age) = item.last_progress_age_ms {
        let _ = write!(t, "\nlast progress {} ago", duration(age));
    }
    for a in &item.attempts {
        let took = a
            .ended_at_ms
            .map(|end| duration(end - a.started_at_ms))
            .unwrap_or_else(|| "running".to_owned());
        let _ = write!(
            t,
            "\nattempt {} on {} ({took}): {}",
            a.attempt,
            a.executor,
            a.outcome.as_deref().unwrap_or("running")
        );
        if let Some(err) = &a.error {
            let _ = write!(t, " — {err}");
        }
        if let Some(from) = &a.moved_from {
            let _ = write!(t, " (moved from {from})");
        }
    }
    if let Some(p) = &item.progress {
        let _ = write!(t, "\nprogress {}/{}", p.done, p.total);
        if let Some(m) = &p.message {
            let _ = write!(t, ": {m}");
        }
    }
    if let Some(c) = &item.checkpoint {
        let _ = write!(
            t,
            "\ncheckpoint (attempt {} of run {} on {}): {}",
            c.attempt, c.run_id, c.executor, c.value
        );
    }
    t
}

/// `GET /runs/{run}`.
pub async fn page(
    State(state): State<AppState>,
    CanAct(can_act): CanAct,
    Path(run_id): Path<String>,
    ApiQuery(q): ApiQuery<RunPageQuery>,
) -> PageResult {
    let run = get_run(&state, &run_id).await?;
    let d = detail(&state, &run).await?;
    let ro = !can_act;
    let r = &d.run;
    let rid = esc(&r.run_id);
    let api = format!("/api/v1/runs/{}", url(&r.run_id));
    let mut body = format!(
        "<h1>Run {rid}</h1><section id=\"summary\" data-live><p>DAG <a href=\"/dags/{}\">{}</a> · business date {} · {} \
         · trigger {} · started {} · {}</p>{}</section>",
        url(&r.dag),
        esc(&r.dag),
        esc(&r.business_date),
        badge(&r.state),
        esc(&r.trigger_source),
        time_html(r.started_at_ms),
        esc(&took(r.duration_ms)),
        bar(d.totals.total, &[
            ("succeeded", d.totals.succeeded),
            ("failed", d.totals.failed),
            ("skipped", d.totals.skipped),
            ("cancelled", d.totals.cancelled),
            ("running", d.totals.running),
        ])
    );
    if let Some(err) = &r.error {
        let _ = write!(body, "<p class=\"error\">{}</p>", esc(err));
    }
    let redo = state
        .store
        .run_redo(&run.run_id)
        .await
        .map_err(crate::error::ApiError::from)?;
    if redo > 0 {
        // A redo applies the day's effects again: say so where it is seen.
        let _ = write!(
            body,
            "<p class=\"sub\">redo {redo} of {}: its items have new idempotency keys</p>",
            esc(&r.business_date)
        );
    }
    // A retry and the run it retries link to each other.
    if let Some(origin) = &d.retry_of {
        let _ = write!(
            body,
            "<p id=\"retry-of\">Retry of run <a href=\"/runs/{}\">{}</a></p>",
            url(origin),
            esc(origin)
        );
    }
    if !d.retried_by.is_empty() {
        let links: Vec<String> = d
            .retried_by
            .iter()
            .map(|r| format!("<a href=\"/runs/{}\">{}</a>", url(r), esc(r)))
            .collect();
        let _ = write!(
            body,
            "<p id=\"retried-by\">Retried by run {}</p>",
            links.join(", ")
        );
    }
    let run_state = run.state;
    let job_state = |j: &JobProgress| j.state.parse::<JobState>().unwrap_or(JobState::Pending);
    let job_states: Vec<JobState> = d.jobs.iter().map(job_state).collect();
    body.push_str("<section class=\"actions\" id=\"run-actions\" data-live>");
    body.push_str(&action_unless(
        "Cancel run",
        &format!("{api}/cancel"),
        Some(&format!("Cancel run {}?", r.run_id)),
        ro,
        applicable::cancel_run(run_state).as_deref(),
        true,
    ));
    body.push_str(&action_unless(
        "Retry failed items",
        &format!("{api}/retry"),
        Some(&format!("Retry every failed item of run {}?", r.run_id)),
        ro,
        applicable::retry_run(run_state, &job_states).as_deref(),
        true,
    ));
    body.push_str("</section>");

    let mut rows = String::new();
    for j in &d.jobs {
        let c = &j.counts;
        let jn = esc(&j.job);
        let rate = j
            .items_per_minute
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.1}/min"));
        let eta = j.eta_ms.map_or_else(|| "-".to_owned(), duration);
        let japi = format!("{api}/jobs/{}", url(&j.job));
        let skip = action_unless(
            "Skip",
            &format!("{japi}/skip"),
            Some(&format!("Skip job {} of run {}?", j.job, r.run_id)),
            ro,
            applicable::skip_job(run_state, job_state(j)).as_deref(),
            false,
        );
        let retry = action_form_unless(
            &format!("{api}/retry"),
            Some(&format!("Retry the failed items of job {}?", j.job)),
            ro,
            &format!("<input type=\"hidden\" name=\"job\" value=\"{jn}\">"),
            "Retry",
            applicable::retry_job(job_state(j)).as_deref(),
        );
        // Clear: run the job again in this run (even if the run ended).
        let jobs_json = serde_json::json!([j.job]).to_string();
        let clear = action_form(
            &format!("{api}/clear"),
            Some(&format!(
                "Clear job {} of run {}: its items run again (new attempts)?",
                j.job, r.run_id
            )),
            ro,
            &format!(
                "<input type=\"hidden\" name=\"jobs\" data-json value=\"{}\">\
                 <select name=\"downstream\" data-json title=\"also re-run the jobs downstream\">\
                 <option value=\"true\">+ downstream</option><option value=\"false\">only this job</option></select>",
                esc(&jobs_json)
            ),
            "Clear",
        );
        let _ = write!(
            rows,
            "<tr><td><a href=\"?job={}\">{jn}</a></td><td>{}</td><td class=\"wide\">{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{skip}{retry}{clear}</td></tr>",
            url(&j.job),
            badge(&j.state),
            bar(c.total, &segments(j)),
            c.pending,
            c.running,
            c.succeeded,
            c.failed,
            c.skipped + c.cancelled,
            esc(&rate),
            esc(&eta)
        );
    }
    let spans: Vec<Span> = d
        .jobs
        .iter()
        .map(|j| Span {
            label: j.job.clone(),
            state: j.state.clone(),
            start_ms: j.started_at_ms,
            end_ms: j.ended_at_ms,
        })
        .collect();
    let _ = write!(
        body,
        "<h2>Jobs</h2><section id=\"jobs\" data-live><table><thead><tr><th>Job</th><th>State</th><th>Progress</th>\
         <th>Pending</th><th>Running</th><th>Succeeded</th><th>Failed</th><th>Skipped/cancelled</th>\
         <th>Throughput</th><th>ETA</th><th></th></tr></thead><tbody>{rows}</tbody></table></section>\
         <h2>Timeline</h2><section id=\"gantt\" data-live>{}</section>",
        gantt(&spans, now_ms())
    );

    let selected = q
        .job
        .filter(|j| !j.is_empty())
        .or_else(|| {
            d.jobs
                .iter()
                .find(|j| j.state == "running")
                .map(|j| j.job.clone())
        })
        .or_else(|| d.jobs.first().map(|j| j.job.clone()));
    if let Some(job) = selected {
        let list = items(&state, &r.run_id, &job).await?;
        let mark_why_not = d
            .jobs
            .iter()
            .find(|j| j.job == job)
            .and_then(|j| applicable::mark_item_succeeded(run_state, job_state(j)))
            .unwrap_or_default();
        let mut cells = String::new();
        for item in list.iter().take(MAX_CELLS) {
            // The latest ended attempt: the detail panel fetches its log.
            let attempt = item
                .attempts
                .iter()
                .filter(|a| a.ended_at_ms.is_some())
                .map(|a| a.attempt)
                .max()
                .map_or_else(String::new, |n| format!(" data-attempt=\"{n}\""));
            let stale = item
                .last_progress_age_ms
                .is_some_and(|age| age > super::running_now::STALE_AFTER_MS);
            let _ = write!(
                cells,
                "<button class=\"cell st-{}{}\" data-item=\"{}\" data-executor=\"{}\"{attempt} title=\"{}\"></button>",
                esc(item.state),
                if stale { " stale" } else { "" },
                item.item,
                esc(item.executor.as_deref().unwrap_or("")),
                esc(&item_tooltip(item))
            );
        }
        let more = if list.len() > MAX_CELLS {
            format!(
                "<p class=\"sub\">showing the first {MAX_CELLS} of {} items</p>",
                list.len()
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<h2>Items of {}</h2><section id=\"items\" data-live><div class=\"grid\" data-mark-base=\"{api}/jobs/{}/items/\" \
             data-read-only=\"{ro}\" data-mark-why-not=\"{}\">{cells}</div>{more}</section><pre id=\"item-detail\" class=\"detail\" hidden></pre>\
             <h2>Item timeline of {}</h2><section id=\"item-timeline\" data-live>{}</section>",
            esc(&job),
            url(&job),
            esc(&mark_why_not),
            esc(&job),
            item_timeline(&job, &list, q.offset.unwrap_or(0) as usize, now_ms())
        );
    }
    // The DAG's zone, for the header's "DAG zone" choice of times.
    let zone = match known_dag(&state, &run.dag).await {
        Ok(known) => format!(" data-zone=\"{}\"", esc(known.spec.timezone.name())),
        Err(ApiError::NotFound(_)) => String::new(),
        Err(e) => return Err(e.into()),
    };
    let attrs = format!(" data-run=\"{rid}\"{zone}");
    Ok(Html(layout(
        &format!("Run {}", r.run_id),
        ro,
        &attrs,
        &body,
    )))
}
