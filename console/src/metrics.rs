//! `GET /metrics` in the Prometheus text exposition format (version 0.0.4).
//! Every name starts with `nightshift_`.
//!
//! Two parts. The console's own: gauges of the installation's *state*
//! computed per scrape from SQL and the coordination service (run counts
//! per state cover the most recent [`RUN_COUNT_CAP`] runs of each state;
//! item counts only the live runs), and counters of its own errors. Then
//! the process's recorder ([`AppState::process_metrics`]): counters and
//! histograms of *events* (attempts by outcome and their durations, leader
//! passes, commands), recorded where they happen through the `metrics`
//! facade by the scheduler and the SDK, so a counter never goes down —
//! the console does not rebuild history into counters. A section whose
//! source fails is left out (and counted in the error counters) instead of
//! failing the scrape, so the error counters stay visible while SQL or etcd
//! is down.

use crate::api::runs::{detail, Counts};
use crate::error::{ApiError, Backend};
use crate::{live, AppState};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nightshift_core::state::{AlertState, RunState};
use nightshift_store::{AlertFilter, RunFilter};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most runs counted per state.
pub const RUN_COUNT_CAP: u32 = 10_000;

/// The Prometheus text format's content type.
const CONTENT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Errors the console itself hit, per backing service.
#[derive(Debug, Default)]
pub struct ErrorCounts {
    sql: AtomicU64,
    coord: AtomicU64,
}

impl ErrorCounts {
    /// Counts one error.
    pub fn count(&self, backend: Backend) {
        let counter = match backend {
            Backend::Sql => &self.sql,
            Backend::Coord => &self.coord,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(sql, coordination)` so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.sql.load(Ordering::Relaxed),
            self.coord.load(Ordering::Relaxed),
        )
    }
}

/// Middleware: counts responses that carry a [`Backend`] error marker.
pub async fn count_errors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if let Some(backend) = res.extensions().get::<Backend>() {
        state.errors.count(*backend);
    }
    res
}

/// Escapes a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn samples(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(Option<(&str, &str)>, u64)],
) {
    header(out, name, kind, help);
    for (l, value) in samples {
        match l {
            Some((k, v)) => {
                let _ = writeln!(out, "{name}{{{k}=\"{}\"}} {value}", label(v));
            }
            None => {
                let _ = writeln!(out, "{name} {value}");
            }
        }
    }
}

/// Records `e` in the error counters and logs it; the section is skipped.
fn skipped(state: &AppState, section: &str, e: ApiError) {
    if let Some(backend) = e.backend() {
        state.errors.count(backend);
    }
    tracing::warn!(section, error = %e, "metrics section skipped");
}

async fn runs_and_items(state: &AppState, out: &mut String) -> Result<(), ApiError> {
    let mut runs = Vec::new();
    let mut live_runs = Vec::new();
    for &s in RunState::ALL {
        let filter = RunFilter {
            states: vec![s],
            limit: Some(RUN_COUNT_CAP),
            ..RunFilter::default()
        };
        let found = state.store.list_runs(&filter).await?;
        runs.push((Some(("state", s.as_str())), found.len() as u64));
        if !s.is_terminal() {
            live_runs.extend(found);
        }
    }
    samples(out, "nightshift_runs", "gauge", "Runs by state.", &runs);

    let mut items = Counts::default();
    for run in &live_runs {
        let t = detail(state, run).await?.totals;
        items.pending += t.pending;
        items.running += t.running;
        items.succeeded += t.succeeded;
        items.failed += t.failed;
        items.skipped += t.skipped;
        items.cancelled += t.cancelled;
    }
    let item_samples = [
        ("pending", items.pending),
        ("running", items.running),
        ("succeeded", items.succeeded),
        ("failed", items.failed),
        ("skipped", items.skipped),
        ("cancelled", items.cancelled),
    ]
    .map(|(s, n)| (Some(("state", s)), n));
    samples(
        out,
        "nightshift_live_run_items",
        "gauge",
        "Items of pending and running runs by state.",
        &item_samples,
    );

    Ok(())
}

async fn alerts(state: &AppState, out: &mut String) -> Result<(), ApiError> {
    let open = AlertFilter {
        states: vec![AlertState::Open],
        dag: None,
        limit: Some(RUN_COUNT_CAP),
    };
    let open = state.store.list_alerts(&open).await?.len() as u64;
    samples(
        out,
        "nightshift_alerts_open",
        "gauge",
        "Open (unacknowledged) alerts.",
        &[(None, open)],
    );
    Ok(())
}

async fn coordination(state: &AppState, out: &mut String) -> Result<(), ApiError> {
    let executors = live::executors(state).await?.len() as u64;
    samples(
        out,
        "nightshift_executors_live",
        "gauge",
        "Executors registered in the coordination service.",
        &[(None, executors)],
    );
    // The scheduler's election: candidates under `{p}leader/`, the one
    // with the lowest create revision leads; its value is its id.
    let (mut candidates, _) = state
        .coord
        .get_prefix(&nightshift_core::keyspace::leader_prefix(&state.prefix))
        .await?;
    candidates.sort_by_key(|kv| kv.create_revision);
    samples(
        out,
        "nightshift_scheduler_candidates",
        "gauge",
        "Schedulers campaigning for leadership.",
        &[(None, candidates.len() as u64)],
    );
    samples(
        out,
        "nightshift_leader_present",
        "gauge",
        "1 when a scheduler leads.",
        &[(None, u64::from(!candidates.is_empty()))],
    );
    if let Some(leader) = candidates.first() {
        let id = String::from_utf8_lossy(&leader.value).into_owned();
        samples(
            out,
            "nightshift_leader_info",
            "gauge",
            "The leading scheduler (value 1).",
            &[(Some(("scheduler", id.as_str())), 1)],
        );
    }
    Ok(())
}

/// The exposition text. Sections whose source fails are left out.
pub async fn render(state: &AppState) -> String {
    let mut out = String::new();
    if let Err(e) = runs_and_items(state, &mut out).await {
        skipped(state, "runs", e);
    }
    if let Err(e) = alerts(state, &mut out).await {
        skipped(state, "alerts", e);
    }
    if let Err(e) = coordination(state, &mut out).await {
        skipped(state, "coordination", e);
    }
    if let Some(notifier) = &state.notifier {
        let (delivered, failed) = notifier.counts();
        samples(
            &mut out,
            "nightshift_notifications_delivered_total",
            "counter",
            "Notifications delivered (per channel).",
            &[(None, delivered)],
        );
        samples(
            &mut out,
            "nightshift_notification_failures_total",
            "counter",
            "Notifications that failed after every retry (per channel).",
            &[(None, failed)],
        );
    }
    let (sql, coord) = state.errors.get();
    samples(
        &mut out,
        "nightshift_console_sql_errors_total",
        "counter",
        "SQL errors this console hit.",
        &[(None, sql)],
    );
    samples(
        &mut out,
        "nightshift_console_etcd_errors_total",
        "counter",
        "Coordination service (etcd) errors this console hit.",
        &[(None, coord)],
    );
    if let Some(process) = &state.process_metrics {
        out.push_str(&process());
    }
    out
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Response {
    ([(CONTENT_TYPE, CONTENT)], render(&state).await).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
