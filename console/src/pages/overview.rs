//! The overview: every DAG with its schedule, next fire, last and current
//! run, and open alerts.

use super::html::{badge, bar, esc, layout, took, url, when};
use super::PageResult;
use crate::api::dags::overviews;
use crate::auth::CanAct;
use crate::AppState;
use axum::extract::State;
use axum::response::Html;
use std::fmt::Write as _;

/// `GET /`.
pub async fn page(State(state): State<AppState>, CanAct(can_act): CanAct) -> PageResult {
    let dags = overviews(&state).await?;
    let mut rows = String::new();
    for d in &dags {
        let name = esc(&d.name);
        let schedule = match &d.schedule {
            Some(s) => format!("<code>{}</code> <small>{}</small>", esc(s), esc(&d.timezone)),
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
            format!("<a class=\"alerts\" href=\"/alerts?state=open&amp;dag={}\">{}</a>", url(&d.name), d.open_alerts)
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
    let body = format!(
        "<h1>Overview</h1><p class=\"sub\">As of {}</p><section id=\"dags\" data-live><table>\
         <thead><tr><th>DAG</th><th>Schedule</th><th>Next fire</th><th>Last run</th><th>Current run</th>\
         <th>Open alerts</th></tr></thead><tbody>{rows}</tbody></table></section>",
        esc(&when(Some(crate::time::now_ms())))
    );
    Ok(Html(layout("Overview", !can_act, "", &body)))
}
