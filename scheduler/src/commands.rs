//! Pure semantics of the operator commands on one run: cancel, retry (of a
//! live run), skip, mark-succeeded and clear. Each is a function of (run
//! record, command, now) → new record + a typed [`CommandOutcome`]; the
//! leader's `intake` only finds the record (live, or rebuilt from SQL for a
//! finished run), calls [`apply`], and writes the result with the command's
//! delete in one fenced txn.
//!
//! Nothing here does I/O. Rules every command keeps (property-tested below):
//!
//! - a rejection changes nothing;
//! - applying a command twice changes nothing more than applying it once
//!   (the second time it is rejected, or applied with no effect);
//! - no item is ever in two terminal sets, and an item that is not terminal
//!   is never counted as done;
//! - re-opened work gets a **new attempt** (a higher number than any run
//!   before), so a late result of an old attempt can never be applied to it.
//!
//! What the re-opening commands (clear, and mark-succeeded on a failed job)
//! do to the rest of the DAG: a downstream job that its trigger rule had
//! resolved without running it (`upstream_failed`, or `skipped` by the rule
//! rather than by an operator) is re-opened to `pending`, so the leader's
//! next pass asks the trigger rule again ([`crate::orchestration::ready_jobs`]).
//! A clear with `downstream` re-opens every job downstream of a cleared job,
//! whatever it did. A run that had ended becomes `running` again; the pass
//! ends it once more when every job is terminal.

use crate::orchestration::job_outcome;
use crate::record::{JobRecord, RunRecord};
use nightshift_core::dag::DagSpec;
use nightshift_core::ids::{ItemIndex, JobName};
use nightshift_core::keyspace::{CommandOutcome, Effect, ItemSet, Rejection};
use nightshift_core::state::{JobState, RunState};
use std::collections::{BTreeMap, BTreeSet};

/// An operator command on one run (the run id already resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCommand {
    /// Cancel the run.
    Cancel,
    /// Re-open the failed jobs of a live run (or one of them).
    Retry {
        /// Only this job.
        job: Option<JobName>,
    },
    /// Skip an unfinished job.
    Skip {
        /// The job.
        job: JobName,
    },
    /// Count an item as succeeded.
    MarkSucceeded {
        /// The job.
        job: JobName,
        /// The item.
        item: ItemIndex,
    },
    /// Run chosen work again in the same run.
    Clear {
        /// Jobs cleared whole.
        jobs: Vec<JobName>,
        /// Items cleared one by one.
        items: BTreeMap<JobName, Vec<ItemIndex>>,
        /// Also clear everything downstream of a cleared job.
        downstream: bool,
    },
}

/// Applies `command` to `run` at `now_ms`: the new record and the outcome.
/// A rejected command returns the record unchanged.
pub fn apply(run: &RunRecord, command: &RunCommand, now_ms: i64) -> (RunRecord, CommandOutcome) {
    let mut rec = run.clone();
    let result = match command {
        RunCommand::Cancel => cancel(&mut rec, now_ms),
        RunCommand::Retry { job } => retry(&mut rec, job.as_ref()),
        RunCommand::Skip { job } => skip(&mut rec, job, now_ms),
        RunCommand::MarkSucceeded { job, item } => mark_succeeded(&mut rec, job, *item, now_ms),
        RunCommand::Clear {
            jobs,
            items,
            downstream,
        } => clear(&mut rec, jobs, items, *downstream),
    };
    match result {
        Ok(effect) => (rec, effect.into()),
        Err(reason) => (run.clone(), reason.into()),
    }
}

/// Cancels a run that has not ended: running items are cancelled, jobs that
/// did not start never will.
pub fn cancel(rec: &mut RunRecord, now_ms: i64) -> Result<Effect, Rejection> {
    if rec.state.is_terminal() {
        return Err(Rejection::RunNotLive);
    }
    for job in rec.jobs.values_mut() {
        if !job.state.is_terminal() {
            let open = ItemSet::range(0, job.shards).difference(&job.done());
            if job.state != JobState::Pending {
                job.cancelled = job.cancelled.union(&open);
            }
            job.state = JobState::Cancelled;
            job.ended_at_ms = Some(now_ms);
            job.retry_at.clear();
        }
    }
    Ok(Effect::Cancelled)
}

fn retry(rec: &mut RunRecord, only: Option<&JobName>) -> Result<Effect, Rejection> {
    if rec.state.is_terminal() {
        return Err(Rejection::RunEnding);
    }
    if let Some(job) = only {
        if !rec.jobs.contains_key(job) {
            return Err(Rejection::NoJob { job: job.clone() });
        }
    }
    let mut n = 0;
    for (name, job) in rec.jobs.iter_mut() {
        let selected = only.is_none_or(|j| j == name);
        if selected && matches!(job.state, JobState::Failed | JobState::UpstreamFailed) {
            for item in job.failed.iter().collect::<Vec<_>>() {
                job.failures.remove(item);
                job.set_attempt(item, job.attempt(item) + 1);
            }
            job.failed = ItemSet::new();
            job.state = JobState::Pending;
            job.ended_at_ms = None;
            job.error = None;
            n += 1;
        }
    }
    Ok(Effect::Reopened { jobs: n })
}

fn skip(rec: &mut RunRecord, name: &JobName, now_ms: i64) -> Result<Effect, Rejection> {
    if rec.state.is_terminal() {
        return Err(Rejection::RunNotLive);
    }
    let job = job_mut(rec, name)?;
    if job.state.is_terminal() {
        return Err(Rejection::JobState {
            job: name.clone(),
            state: job.state,
        });
    }
    let open = ItemSet::range(0, job.shards).difference(&job.done());
    job.skipped = job.skipped.union(&open);
    job.retry_at.clear();
    job.state = JobState::Skipped;
    job.ended_at_ms = Some(now_ms);
    Ok(Effect::Skipped)
}

fn mark_succeeded(
    rec: &mut RunRecord,
    name: &JobName,
    item: ItemIndex,
    now_ms: i64,
) -> Result<Effect, Rejection> {
    let job = job_mut(rec, name)?;
    if item.0 >= job.shards {
        return Err(Rejection::NoItem {
            job: name.clone(),
            item,
            shards: job.shards,
        });
    }
    if job.succeeded.contains(item.0) {
        return Err(Rejection::ItemSucceeded {
            job: name.clone(),
            item,
        });
    }
    let i = item.0;
    match job.state {
        JobState::Pending | JobState::Waiting | JobState::Running => {
            // Its owner may still run it: the result is then ignored
            // (the item is done), and the next rewrite drops it.
            job.failed.remove(i);
            job.skipped.remove(i);
            job.cancelled.remove(i);
            job.retry_at.remove(i);
            job.unowned.remove(i);
            job.timed_out.remove(i);
            job.succeeded.insert(i);
            Ok(Effect::MarkedSucceeded)
        }
        // The case it exists for: a job failed because of this item.
        JobState::Failed if job.failed.contains(i) || job.cancelled.contains(i) => {
            job.failed.remove(i);
            job.cancelled.remove(i);
            job.succeeded.insert(i);
            // Settled only when nothing failed or was cut short is left
            // (the state machine's `failed → succeeded`).
            if let Some(end) = job_outcome(job) {
                if end == JobState::Succeeded {
                    job.state = end;
                    job.error = None;
                    job.ended_at_ms = Some(now_ms);
                    reopen_resolved_downstream(rec, &BTreeSet::from([name.clone()]));
                    reopen_run(rec);
                }
            }
            Ok(Effect::MarkedSucceeded)
        }
        state => Err(Rejection::JobState {
            job: name.clone(),
            state,
        }),
    }
}

fn clear(
    rec: &mut RunRecord,
    jobs: &[JobName],
    items: &BTreeMap<JobName, Vec<ItemIndex>>,
    downstream: bool,
) -> Result<Effect, Rejection> {
    // What is asked, checked before anything changes.
    let mut chosen: BTreeMap<JobName, ItemSet> = BTreeMap::new();
    for name in jobs {
        let job = job_of(rec, name)?;
        chosen.insert(name.clone(), ItemSet::range(0, job.shards));
    }
    for (name, indices) in items {
        let job = job_of(rec, name)?;
        for item in indices {
            if item.0 >= job.shards {
                return Err(Rejection::NoItem {
                    job: name.clone(),
                    item: *item,
                    shards: job.shards,
                });
            }
        }
        let set: ItemSet = indices.iter().map(|i| i.0).collect();
        let entry = chosen.entry(name.clone()).or_default();
        *entry = entry.union(&set);
    }
    if chosen.values().all(|s| s.is_empty()) {
        return Err(Rejection::NothingToClear);
    }
    if downstream {
        let roots: BTreeSet<JobName> = chosen.keys().cloned().collect();
        for name in downstream_of(&rec.spec, &roots) {
            if let Some(job) = rec.jobs.get(&name) {
                chosen
                    .entry(name)
                    .or_insert_with(|| ItemSet::range(0, job.shards));
            }
        }
    }
    // A job still at work cannot be cleared under its owners' feet.
    for name in chosen.keys() {
        let job = job_of(rec, name)?;
        if matches!(job.state, JobState::Waiting | JobState::Running) {
            return Err(Rejection::JobState {
                job: name.clone(),
                state: job.state,
            });
        }
    }
    let mut reopened = BTreeSet::new();
    let mut count = 0u64;
    for (name, set) in &chosen {
        let Some(job) = rec.jobs.get_mut(name) else {
            continue;
        };
        let done = set.intersection(&job.done());
        let resolved = job.state.is_terminal() && job.started_at_ms.is_none();
        if done.is_empty() && !resolved {
            continue;
        }
        for i in done.iter() {
            for s in [
                &mut job.succeeded,
                &mut job.failed,
                &mut job.skipped,
                &mut job.cancelled,
            ] {
                s.remove(i);
            }
            job.timed_out.remove(i);
            job.failures.remove(i);
            job.moved_from.remove(i);
            // A new attempt: a late report of the old one is never applied.
            job.set_attempt(i, job.attempt(i) + 1);
        }
        count += done.len();
        reopen_job(job);
        reopened.insert(name.clone());
    }
    if reopened.is_empty() {
        // Everything asked for is already waiting to run: a repeat.
        return Ok(Effect::Cleared {
            items: 0,
            jobs: Vec::new(),
        });
    }
    let also = reopen_resolved_downstream(rec, &reopened);
    reopened.extend(also);
    reopen_run(rec);
    Ok(Effect::Cleared {
        items: count,
        jobs: reopened.into_iter().collect(),
    })
}

/// A job back to `pending`, its per-start facts forgotten (the timeout
/// counts from its next start).
fn reopen_job(job: &mut JobRecord) {
    job.state = JobState::Pending;
    job.started_at_ms = None;
    job.ended_at_ms = None;
    job.waiting_since_ms = None;
    job.error = None;
    job.retry_at.clear();
    job.unowned = ItemSet::new();
    job.owners.clear();
}

/// Re-opens, transitively, the jobs downstream of `changed` that their
/// trigger rule resolved without running (`upstream_failed`, or `skipped`
/// by the rule: never started and no item skipped by an operator), so the
/// rule is asked again. Returns them.
fn reopen_resolved_downstream(
    rec: &mut RunRecord,
    changed: &BTreeSet<JobName>,
) -> BTreeSet<JobName> {
    let mut out = BTreeSet::new();
    for name in downstream_of(&rec.spec, changed) {
        let Some(job) = rec.jobs.get_mut(&name) else {
            continue;
        };
        let by_rule = match job.state {
            JobState::UpstreamFailed => true,
            JobState::Skipped => job.started_at_ms.is_none() && job.skipped.is_empty(),
            _ => false,
        };
        if by_rule {
            reopen_job(job);
            out.insert(name);
        }
    }
    out
}

/// A run that had ended runs again (the pass ends it once more).
fn reopen_run(rec: &mut RunRecord) {
    if rec.state.is_terminal() {
        rec.state = RunState::Running;
    }
}

/// Every job downstream (transitively) of `roots`, roots excluded.
pub fn downstream_of(spec: &DagSpec, roots: &BTreeSet<JobName>) -> BTreeSet<JobName> {
    let mut out: BTreeSet<JobName> = BTreeSet::new();
    let mut frontier: Vec<JobName> = roots.iter().cloned().collect();
    while let Some(up) = frontier.pop() {
        for job in &spec.jobs {
            if job.depends_on.contains(&up)
                && !roots.contains(&job.name)
                && out.insert(job.name.clone())
            {
                frontier.push(job.name.clone());
            }
        }
    }
    out
}

fn job_of<'a>(rec: &'a RunRecord, name: &JobName) -> Result<&'a JobRecord, Rejection> {
    rec.jobs
        .get(name)
        .ok_or_else(|| Rejection::NoJob { job: name.clone() })
}

fn job_mut<'a>(rec: &'a mut RunRecord, name: &JobName) -> Result<&'a mut JobRecord, Rejection> {
    rec.jobs
        .get_mut(name)
        .ok_or_else(|| Rejection::NoJob { job: name.clone() })
}

#[cfg(test)]
#[path = "commands_tests.rs"]
mod tests;
