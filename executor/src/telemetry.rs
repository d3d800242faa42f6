//! The executor's metrics, recorded through the [`metrics`] facade: the SDK
//! only records; the process that embeds it chooses an exporter (the
//! `nightshift executor` binary serves Prometheus on `--metrics-listen`;
//! without a recorder installed every call here is a no-op).
//!
//! Names start with `nightshift_executor_`; counters only go up (they live
//! as long as the process, across registrations). Labels are bounded by the
//! DAG definitions: `dag`, `job`, and `outcome` from a closed set.

use crate::assignment::Finish;
use crate::job::ItemOutcome;
use std::time::Duration;

/// How an attempt ended, as the `outcome` label.
pub(crate) fn outcome(finish: &Finish, cancelled: bool) -> &'static str {
    match finish {
        Finish::Returned(Ok(ItemOutcome::Succeeded)) => "succeeded",
        Finish::Returned(Ok(ItemOutcome::Skipped(_))) => "skipped",
        Finish::Returned(Ok(ItemOutcome::Cancelled)) => "cancelled",
        Finish::Returned(Err(_)) if cancelled => "cancelled",
        Finish::Returned(Err(_)) => "failed",
        Finish::Panicked(_) => "panicked",
        Finish::TimedOut { .. } => "timed_out",
        Finish::Stopped(_) => "stopped",
    }
}

/// An attempt started.
pub(crate) fn item_started(dag: &str, job: &str) {
    metrics::counter!("nightshift_executor_items_started_total", "dag" => dag.to_owned(), "job" => job.to_owned())
        .increment(1);
}

/// An attempt's handler ended after `took`.
pub(crate) fn item_finished(dag: &str, job: &str, outcome: &'static str, took: Duration) {
    let labels = [
        ("dag", dag.to_owned()),
        ("job", job.to_owned()),
        ("outcome", outcome.to_owned()),
    ];
    metrics::counter!("nightshift_executor_items_finished_total", &labels).increment(1);
    metrics::histogram!("nightshift_executor_item_duration_seconds", &labels)
        .record(took.as_secs_f64());
}

/// A result batch was written (one fenced txn with `results` outcomes).
pub(crate) fn batch_written(results: usize) {
    metrics::counter!("nightshift_executor_result_batches_total").increment(1);
    metrics::counter!("nightshift_executor_results_recorded_total").increment(results as u64);
}

/// Outcomes dropped because their items were no longer owned.
pub(crate) fn results_dropped(n: usize) {
    metrics::counter!("nightshift_executor_results_dropped_total").increment(n as u64);
}

/// The executor registered (a new lease).
pub(crate) fn registered() {
    metrics::counter!("nightshift_executor_registrations_total").increment(1);
}

/// The executor stopped its work because its lease was in doubt.
pub(crate) fn self_fenced() {
    metrics::counter!("nightshift_executor_self_fences_total").increment(1);
}

/// Items running now, for the capacity gauge.
pub(crate) fn in_flight(n: usize) {
    metrics::gauge!("nightshift_executor_items_in_flight").set(n as f64);
}
