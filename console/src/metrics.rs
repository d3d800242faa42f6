//! `GET /metrics` in the Prometheus text exposition format (version 0.0.4),
//! written by hand: a few gauges do not need a metrics library.
//!
//! Gauges are computed per scrape from SQL and the coordination service.
//! Run counts per state cover the most recent [`RUN_COUNT_CAP`] runs of
//! each state (the store has no count query yet).

use crate::api::runs::{detail, Counts};
use crate::error::ApiError;
use crate::{live, AppState};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use nightshift_core::state::{AlertState, RunState};
use nightshift_store::{AlertFilter, RunFilter};
use std::fmt::Write as _;

/// Most runs counted per state.
pub const RUN_COUNT_CAP: u32 = 10_000;

/// The Prometheus text format's content type.
const CONTENT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(Option<(&str, &str)>, u64)]) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (label, value) in samples {
        match label {
            Some((k, v)) => {
                let _ = writeln!(out, "{name}{{{k}=\"{v}\"}} {value}");
            }
            None => {
                let _ = writeln!(out, "{name} {value}");
            }
        }
    }
}

/// The exposition text.
pub async fn render(state: &AppState) -> Result<String, ApiError> {
    let mut out = String::new();
    let mut runs = Vec::new();
    let mut live_runs = Vec::new();
    for &s in RunState::ALL {
        let filter = RunFilter { states: vec![s], limit: Some(RUN_COUNT_CAP), ..RunFilter::default() };
        let found = state.store.list_runs(&filter).await?;
        runs.push((Some(("state", s.as_str())), found.len() as u64));
        if !s.is_terminal() {
            live_runs.extend(found);
        }
    }
    gauge(&mut out, "nightshift_runs", "Runs by state.", &runs);

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
    gauge(&mut out, "nightshift_live_run_items", "Items of pending and running runs by state.", &item_samples);

    let open = AlertFilter { states: vec![AlertState::Open], dag: None, limit: Some(RUN_COUNT_CAP) };
    let open = state.store.list_alerts(&open).await?.len() as u64;
    gauge(&mut out, "nightshift_alerts_open", "Open (unacknowledged) alerts.", &[(None, open)]);

    let executors = live::executors(state).await?.len() as u64;
    gauge(&mut out, "nightshift_executors_live", "Executors registered in the coordination service.", &[(None, executors)]);
    Ok(out)
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match render(&state).await {
        Ok(text) => ([(CONTENT_TYPE, CONTENT)], text).into_response(),
        Err(e) => e.into_response(),
    }
}
