//! The leader's metrics, recorded through the [`metrics`] facade (the
//! binary chooses the exporter: `nightshift scheduler --metrics-listen`).
//! Names start with `nightshift_scheduler_`; counters only go up for the
//! life of the process, whichever replica leads. Labels are bounded: `dag`
//! and `job` by the applied DAGs, `outcome`, `kind` and `state` by closed
//! sets.

use nightshift_coord::TxnOp;
use nightshift_core::state::{AttemptOutcome, RunState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The largest value any fenced txn of this process has put, in bytes.
static LARGEST_VALUE: AtomicU64 = AtomicU64::new(0);

/// A fenced txn is about to be sent with `ops`: raises
/// `nightshift_scheduler_largest_value_bytes` (the largest value the leader
/// ever wrote) when one of its puts is larger. The bound the protocol
/// promises on record sizes (issue 12) is watched here, by what was really
/// written, not by what the code is believed to write.
pub fn values_written(ops: &[TxnOp]) {
    let largest = ops
        .iter()
        .filter_map(|op| match op {
            TxnOp::Put { value, .. } => Some(value.len()),
            _ => None,
        })
        .max()
        .map_or(0, |n| u64::try_from(n).unwrap_or(u64::MAX));
    let before = LARGEST_VALUE.fetch_max(largest, Ordering::Relaxed);
    if largest > before {
        metrics::gauge!("nightshift_scheduler_largest_value_bytes").set(largest as f64);
    }
}

/// One leader pass ended (`ok` false: it failed and is retried).
pub fn pass(took: Duration, ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    metrics::counter!("nightshift_scheduler_passes_total", "outcome" => outcome).increment(1);
    metrics::histogram!("nightshift_scheduler_pass_seconds").record(took.as_secs_f64());
}

/// A fenced txn was committed, or failed (`kind` of error).
pub fn txn(error: Option<&'static str>) {
    match error {
        None => metrics::counter!("nightshift_scheduler_etcd_txns_total").increment(1),
        Some(kind) => {
            metrics::counter!("nightshift_scheduler_etcd_errors_total", "kind" => kind).increment(1)
        }
    }
}

/// The `kind` label of an etcd error.
pub fn error_kind(e: &nightshift_coord::CoordError) -> &'static str {
    match e {
        nightshift_coord::CoordError::Full(_) => "full",
        e if e.is_transient() => "unavailable",
        _ => "other",
    }
}

/// An operator command was carried out or rejected.
pub fn command(kind: &'static str, rejected: bool) {
    let outcome = if rejected { "rejected" } else { "applied" };
    metrics::counter!("nightshift_scheduler_commands_total", "kind" => kind, "outcome" => outcome)
        .increment(1);
}

/// Items of a job given to executors at its start or by failover.
pub fn items_assigned(dag: &str, job: &str, n: u64) {
    metrics::counter!("nightshift_scheduler_items_assigned_total", "dag" => dag.to_owned(), "job" => job.to_owned())
        .increment(n);
}

/// An attempt's outcome was applied (each `(item, attempt)` once).
pub fn attempt(dag: &str, job: &str, outcome: AttemptOutcome, took: Duration) {
    let labels = [
        ("dag", dag.to_owned()),
        ("job", job.to_owned()),
        ("outcome", outcome.as_str().to_owned()),
    ];
    metrics::counter!("nightshift_scheduler_attempts_total", &labels).increment(1);
    metrics::histogram!("nightshift_scheduler_attempt_duration_seconds", &labels)
        .record(took.as_secs_f64());
}

/// A run ended.
pub fn run_finished(dag: &str, state: RunState) {
    metrics::counter!("nightshift_scheduler_runs_finished_total", "dag" => dag.to_owned(), "state" => state.as_str())
        .increment(1);
}

/// Whether this replica leads (1) or stands by (0).
pub fn leading(yes: bool) {
    metrics::gauge!("nightshift_scheduler_leading").set(if yes { 1.0 } else { 0.0 });
}

/// Runs live in etcd (led by this replica).
pub fn live_runs(n: usize) {
    metrics::gauge!("nightshift_scheduler_live_runs").set(n as f64);
}
