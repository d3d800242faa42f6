//! Pure orchestration rules: given a DAG and the state of a run, what
//! happens next. No I/O and no clock (instants are passed in), so the rules
//! are property-tested in isolation (invariants 3 and 5) and the leader loop
//! only carries their decisions out.
//!
//! - [`ready_jobs`]: pending jobs whose upstreams are all terminal either
//!   start or are resolved (`upstream_failed` / `skipped`) by their trigger
//!   rule; resolutions cascade down the DAG.
//! - [`apply_result`]: one reported item outcome → the item's new state
//!   (succeeded, failed for good, retry after backoff, re-queued), applied at
//!   most once per `(item, attempt)`.
//! - [`job_outcome`] / [`run_outcome`]: when a job or a run is over, and how.

use crate::record::JobRecord;
use nightshift_core::dag::{DagSpec, JobSpec, TriggerRule};
use nightshift_core::ids::{ExecutorId, JobName};
use nightshift_core::keyspace::{ItemResult, ResultOutcome};
use nightshift_core::state::{JobState, RunState};
use std::collections::BTreeMap;

/// What to do with a pending job whose upstreams are terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobDecision {
    /// Dispatch it now.
    Start(JobName),
    /// Never run it: it ends in this state (`upstream_failed` or `skipped`).
    Resolve(JobName, JobState),
}

/// The trigger rule's verdict on a set of upstream outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Run the job.
    Run,
    /// An upstream failure forbids running: `upstream_failed`.
    UpstreamFailed,
    /// The rule does not hold without any failure: `skipped`.
    Skip,
}

fn failed(s: JobState) -> bool {
    matches!(s, JobState::Failed | JobState::UpstreamFailed)
}

/// The verdict of `rule` on the upstream states, or `None` while one of them
/// is not terminal (a job never starts before its upstreams are done).
pub fn verdict(rule: TriggerRule, upstream: &[JobState]) -> Option<Verdict> {
    if !upstream.iter().all(|s| s.is_terminal()) {
        return None;
    }
    let any_failed = upstream.iter().any(|&s| failed(s));
    Some(match rule {
        TriggerRule::AllSuccess if upstream.iter().all(|&s| s == JobState::Succeeded) => {
            Verdict::Run
        }
        TriggerRule::AllSuccess | TriggerRule::NoneFailed if any_failed => Verdict::UpstreamFailed,
        TriggerRule::AllSuccess => Verdict::Skip,
        TriggerRule::NoneFailed => Verdict::Run,
        TriggerRule::AllDone => Verdict::Run,
        TriggerRule::OneFailed if any_failed => Verdict::Run,
        TriggerRule::OneFailed => Verdict::Skip,
    })
}

/// Decisions for every pending job of the run whose upstreams are terminal.
/// Resolutions cascade: a job resolved `upstream_failed` resolves its own
/// pending downstream jobs in the same call.
pub fn ready_jobs(spec: &DagSpec, states: &BTreeMap<JobName, JobState>) -> Vec<JobDecision> {
    let mut states = states.clone();
    let mut decisions = Vec::new();
    loop {
        let mut changed = false;
        for job in &spec.jobs {
            if states.get(&job.name) != Some(&JobState::Pending) {
                continue;
            }
            let upstream: Vec<JobState> = job
                .depends_on
                .iter()
                .map(|d| states.get(d).copied().unwrap_or(JobState::Pending))
                .collect();
            match verdict(job.trigger_rule, &upstream) {
                None => {}
                Some(Verdict::Run) => {
                    // Running is not terminal: nothing downstream can follow yet.
                    states.insert(job.name.clone(), JobState::Running);
                    decisions.push(JobDecision::Start(job.name.clone()));
                }
                Some(v) => {
                    let to = if v == Verdict::UpstreamFailed {
                        JobState::UpstreamFailed
                    } else {
                        JobState::Skipped
                    };
                    states.insert(job.name.clone(), to);
                    decisions.push(JobDecision::Resolve(job.name.clone(), to));
                    changed = true;
                }
            }
        }
        if !changed {
            return decisions;
        }
    }
}

/// What one reported outcome did to its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemEffect {
    /// Stale, duplicate or not from the item's owner: nothing changed.
    Ignored,
    /// The item succeeded.
    Succeeded,
    /// The handler skipped it.
    Skipped,
    /// It stopped as the leader asked.
    Cancelled,
    /// It failed and will be retried at this instant (ms).
    RetryAt(i64),
    /// It failed and has no retry left.
    FailedForGood,
    /// It stopped for a reason that is not its own failure (e.g. the
    /// executor drained): run it again at once, without using a retry.
    Requeue,
}

/// Applies one outcome reported by `executor` to the job. An outcome counts
/// only if it is for the item's current attempt, comes from the item's
/// current owner, and the item is neither terminal nor waiting for a retry:
/// so each `(item, attempt)` is applied at most once, however often a batch
/// is seen.
pub fn apply_result(
    job: &mut JobRecord,
    spec: &JobSpec,
    executor: &ExecutorId,
    r: &ItemResult,
    now_ms: i64,
) -> ItemEffect {
    let item = r.item.0;
    let owned = job
        .owners
        .get(executor)
        .is_some_and(|o| o.items.contains(item));
    if item >= job.shards
        || !owned
        || r.attempt != job.attempt(item)
        || job.done().contains(item)
        || job.retry_at.contains(item)
    {
        return ItemEffect::Ignored;
    }
    let cancel_requested = job
        .owners
        .get(executor)
        .is_some_and(|o| o.cancel.contains(item));
    // A stalled item the leader stopped failed by timing out, whatever the
    // executor saw; a cancel for any other reason (run cancelled, job
    // timed out) is final.
    let timed_out = cancel_requested && job.timed_out.remove(item);
    let outcome = if timed_out {
        ResultOutcome::TimedOut
    } else {
        r.outcome
    };
    let final_cancel = cancel_requested && !timed_out;
    match outcome {
        ResultOutcome::Succeeded => {
            job.succeeded.insert(item);
            ItemEffect::Succeeded
        }
        ResultOutcome::Skipped => {
            job.skipped.insert(item);
            ItemEffect::Skipped
        }
        ResultOutcome::Cancelled if final_cancel => {
            job.cancelled.insert(item);
            ItemEffect::Cancelled
        }
        ResultOutcome::Cancelled => {
            job.set_attempt(item, r.attempt + 1);
            ItemEffect::Requeue
        }
        ResultOutcome::Failed | ResultOutcome::TimedOut => {
            let failures = job.failure_count(item) + 1;
            job.set_failure_count(item, failures);
            let retryable = r.retryable || outcome == ResultOutcome::TimedOut;
            if retryable && failures <= spec.retries && !final_cancel {
                let delay =
                    i64::try_from(spec.retry_delay(failures).as_millis()).unwrap_or(i64::MAX);
                let at = now_ms.saturating_add(delay);
                job.retry_at.insert(item, at);
                ItemEffect::RetryAt(at)
            } else {
                job.failed.insert(item);
                ItemEffect::FailedForGood
            }
        }
    }
}

/// Items whose retry is due at `now_ms`: they leave `retry_at` (and any
/// cancel request) and move to their next attempt. The caller hands them to
/// their owner (or re-queues them when the owner is gone).
pub fn take_due_retries(job: &mut JobRecord, now_ms: i64) -> Vec<u32> {
    let due: Vec<u32> = job.retry_at.take_up_to(&now_ms).iter().collect();
    for &item in &due {
        for owner in job.owners.values_mut() {
            owner.cancel.remove(item);
        }
        let next = job.attempt(item) + 1;
        job.set_attempt(item, next);
    }
    due
}

/// The state a running job ends in once every item is terminal; `None` while
/// an item is unfinished.
pub fn job_outcome(job: &JobRecord) -> Option<JobState> {
    if job.done().len() < u64::from(job.shards) {
        return None;
    }
    Some(if !job.failed.is_empty() {
        JobState::Failed
    } else if !job.cancelled.is_empty() {
        JobState::Cancelled
    } else {
        JobState::Succeeded
    })
}

/// The state a run ends in once every job is terminal; `None` before.
pub fn run_outcome<'a>(jobs: impl IntoIterator<Item = &'a JobState>) -> Option<RunState> {
    let states: Vec<JobState> = jobs.into_iter().copied().collect();
    if !states.iter().all(|s| s.is_terminal()) {
        return None;
    }
    Some(if states.iter().any(|&s| failed(s)) {
        RunState::Failed
    } else if states.contains(&JobState::Cancelled) {
        RunState::Cancelled
    } else {
        RunState::Succeeded
    })
}

#[cfg(test)]
#[path = "orchestration_tests.rs"]
mod tests;
