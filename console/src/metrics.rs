//! `GET /metrics` in the Prometheus text exposition format (version 0.0.4),
//! written by hand: a few gauges, counters and one histogram do not need a
//! metrics library. Every name starts with `nightshift_`.
//!
//! Gauges are computed per scrape from SQL and the coordination service.
//! Run counts per state cover the most recent [`RUN_COUNT_CAP`] runs of
//! each state (the store has no count query yet); the item duration
//! histogram covers the finished attempts of the live runs and of the
//! [`RECENT_RUNS`] most recent runs. A section whose source fails is left
//! out (and counted in the error counters) instead of failing the scrape,
//! so the error counters stay visible while SQL or etcd is down.

use crate::api::runs::{detail, Counts};
use crate::error::{ApiError, Backend};
use crate::{live, AppState};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nightshift_core::state::{AlertState, RunState};
use nightshift_store::{AlertFilter, Run, RunFilter};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most runs counted per state.
pub const RUN_COUNT_CAP: u32 = 10_000;
/// Recent runs whose attempts feed the item duration histogram.
pub const RECENT_RUNS: u32 = 20;
/// Upper bounds (seconds) of the item duration histogram's buckets.
pub const DURATION_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0,
];

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

/// A Prometheus histogram of `values` (seconds).
pub fn histogram(out: &mut String, name: &str, help: &str, values: &[f64]) {
    header(out, name, "histogram", help);
    for bound in DURATION_BUCKETS {
        let n = values.iter().filter(|v| **v <= *bound).count();
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", values.len());
    let _ = writeln!(out, "{name}_sum {}", values.iter().sum::<f64>());
    let _ = writeln!(out, "{name}_count {}", values.len());
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

    let recent = state
        .store
        .list_runs(&RunFilter {
            limit: Some(RECENT_RUNS),
            ..RunFilter::default()
        })
        .await?;
    let mut seen: Vec<&Run> = Vec::new();
    for run in live_runs.iter().chain(recent.iter()) {
        if !seen.iter().any(|r| r.run_id == run.run_id) {
            seen.push(run);
        }
    }
    let mut durations = Vec::new();
    for run in seen {
        for jr in state.store.job_runs(&run.run_id).await? {
            for a in state.store.attempts(&run.run_id, &jr.job, None).await? {
                if let Some(end) = a.ended_at_ms {
                    durations.push((end - a.started_at_ms).max(0) as f64 / 1000.0);
                }
            }
        }
    }
    histogram(
        out,
        "nightshift_item_duration_seconds",
        "Duration of finished item attempts of live and recent runs.",
        &durations,
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
    fn histograms_are_cumulative() {
        let mut out = String::new();
        histogram(
            &mut out,
            "nightshift_x_seconds",
            "x",
            &[0.05, 2.0, 2.0, 20_000.0],
        );
        assert!(
            out.contains("nightshift_x_seconds_bucket{le=\"0.1\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("nightshift_x_seconds_bucket{le=\"5\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("nightshift_x_seconds_bucket{le=\"14400\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("nightshift_x_seconds_bucket{le=\"+Inf\"} 4\n"),
            "{out}"
        );
        assert!(out.contains("nightshift_x_seconds_count 4\n"), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
