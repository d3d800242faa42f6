//! One running job's pass, pure: a snapshot of what the leader read →
//! the job's new record and the typed [`Effect`]s that carry it out.
//!
//! The leader's pass over a run (`leader/runs.rs`) reads, for each running
//! job, the result batches waiting in etcd, the assignment keys present
//! and the executors' progress reports; [`reconcile_job`] decides
//! everything from that — which results count, which attempts ended,
//! which items fail over from vanished executors, which retries are due,
//! which items stalled, whether the job timed out or ended — without I/O
//! or a clock; the leader then applies the effects (SQL rows first, then
//! the etcd ops in the run's fenced commit, then events and alerts to the
//! outbox). Because the rules are pure they are property-tested here,
//! including that a second call on the snapshot the first one's effects
//! produce changes nothing.
//!
//! The order of the steps matters and is the one the leader always had:
//! 1. result batches (a dead executor's last results count before its
//!    items are failed over);
//! 2. assignments found gone: their lease ended; the unfinished items'
//!    attempts are recorded as lost and the items move (or fail, for a job
//!    without failover);
//! 3. due retries go back to their owner at the next attempt;
//! 4. items nobody owns are offered to the live executors again;
//! 5. stalled items (no progress past the item timeout) are cancelled;
//! 6. the job timeout;
//! 7. the job's end; then every touched owner's assignment is rewritten.

use crate::alert_key::AlertKey;
use crate::failover::{fail_over, Receiver};
use crate::first_error::{first_error_line, job_failure};
use crate::orchestration::{apply_result, job_outcome, take_due_retries, ItemEffect};
use crate::plan::eligible;
use crate::record::{JobRecord, Owner};
use nightshift_core::dag::JobSpec;
use nightshift_core::ids::{DagName, ExecutorId, FencingToken, ItemIndex, JobName, RunId};
use nightshift_core::keyspace::{
    AssignmentRecord, ExecutorInfo, ItemSet, ProgressRecord, ResultBatch, ResultOutcome,
};
use nightshift_core::state::{AlertRule, AlertSeverity, AttemptOutcome, JobState};
use nightshift_store::{AttemptLog, EndedAttempt, NewAttempt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// The error recorded on attempts whose executor's lease ended.
pub const LEASE_ENDED: &str = "executor lease ended";

/// The error recorded on attempts the leader ends itself because it
/// stopped their items (run cancelled, job timed out or skipped): their
/// executor reports nothing, and their fencing token is the last one the
/// leader saw for the owner.
pub const STOPPED_BY_LEADER: &str = "stopped by the leader";

/// One result batch as read: its key, and its content when it decoded (an
/// undecodable batch is deleted unapplied; the leader reports it).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadBatch {
    /// The batch's key, deleted once the record that absorbed it commits.
    pub key: String,
    /// The batch, `None` when it could not be decoded.
    pub batch: Option<ResultBatch>,
}

/// Everything [`reconcile_job`] decides from: one running job of one run.
#[derive(Debug, Clone)]
pub struct JobSnapshot<'a> {
    /// The run.
    pub run: &'a RunId,
    /// Its DAG (for the telemetry the leader derives from attempts).
    pub dag: &'a DagName,
    /// The job.
    pub name: &'a JobName,
    /// The job's spec in the run's DAG version: retries, timeouts,
    /// failover, handler and labels.
    pub spec: &'a JobSpec,
    /// The job's record as the leader holds it.
    pub job: JobRecord,
    /// The run's self-resolving alerts that are open.
    pub open_alerts: BTreeSet<AlertKey>,
    /// The assignment keys of the job present in etcd: executor → the
    /// key's mod revision (the owner's fencing token). Read before the
    /// batches, so an assignment found gone had every batch of its
    /// executor visible to the batch read.
    pub present: BTreeMap<ExecutorId, i64>,
    /// The job's result batches, in key order.
    pub batches: Vec<ReadBatch>,
    /// Progress reports by executor (read only when the job has an item
    /// timeout; empty otherwise).
    pub progress: Vec<(ExecutorId, ProgressRecord)>,
    /// The live executors.
    pub executors: &'a BTreeMap<ExecutorId, ExecutorInfo>,
    /// The pass's instant, ms.
    pub now: i64,
}

/// An alert to open for the job (its run and job are the snapshot's).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertOpen {
    /// Its identity.
    pub key: AlertKey,
    /// The rule that fired.
    pub rule: AlertRule,
    /// How bad.
    pub severity: AlertSeverity,
    /// The executor concerned, if any.
    pub executor: Option<ExecutorId>,
    /// What an operator reads.
    pub message: String,
}

/// What the leader does to carry a [`JobStep`] out.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// SQL, before the etcd commit (a failure aborts the run's pass and the
    /// batches stay): attempts that ended — reported results and attempts
    /// lost with their executor. Each is also counted in the attempt
    /// metrics.
    EndAttempts(Vec<EndedAttempt>),
    /// SQL, before the etcd commit: the logs the results carried (once the
    /// batch is deleted they exist nowhere else).
    SaveLogs(Vec<AttemptLog>),
    /// etcd, once the record that absorbed it committed: delete a consumed
    /// (or undecodable) result batch.
    DeleteBatch {
        /// The batch's key.
        key: String,
    },
    /// etcd, with the record: rewrite an owner's assignment, attached to
    /// its lease (its new mod revision becomes the owner's token).
    PutAssignment {
        /// The owner.
        executor: ExecutorId,
        /// Its lease.
        lease: i64,
        /// What the key holds.
        value: AssignmentRecord,
    },
    /// Outbox: open (or bump) an alert.
    OpenAlert(AlertOpen),
    /// Outbox: resolve an alert.
    ResolveAlert(AlertKey),
    /// Outbox: an event about the job.
    Event {
        /// Its kind (`executor_lost`, `job_ended`).
        kind: &'static str,
        /// The executor concerned, if any.
        executor: Option<ExecutorId>,
        /// Details.
        detail: serde_json::Value,
    },
}

/// What [`reconcile_job`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStep {
    /// The job's new record.
    pub job: JobRecord,
    /// The run's self-resolving open alerts, updated.
    pub open_alerts: BTreeSet<AlertKey>,
    /// Executors lost holding items of the job (their alerts resolve when
    /// the run ends).
    pub lost: BTreeSet<ExecutorId>,
    /// What to do, in order within each destination (SQL, etcd, outbox).
    pub effects: Vec<Effect>,
}

/// A new attempt row for `item`.
#[allow(clippy::too_many_arguments)]
pub fn attempt_row(
    run: &RunId,
    job: &JobName,
    item: u32,
    attempt: u32,
    executor: &ExecutorId,
    token: i64,
    started_at_ms: i64,
    moved_from: Option<ExecutorId>,
) -> NewAttempt {
    NewAttempt {
        run_id: run.clone(),
        job: job.clone(),
        item: ItemIndex(item),
        attempt,
        executor: executor.clone(),
        fencing_token: FencingToken(token),
        started_at_ms,
        moved_from,
    }
}

/// The attempt outcome a reported result stands for.
pub fn attempt_outcome(o: ResultOutcome) -> AttemptOutcome {
    match o {
        ResultOutcome::Succeeded | ResultOutcome::Skipped => AttemptOutcome::Succeeded,
        ResultOutcome::Failed => AttemptOutcome::Failed,
        ResultOutcome::TimedOut => AttemptOutcome::TimedOut,
        ResultOutcome::Cancelled => AttemptOutcome::Cancelled,
    }
}

/// Live executors eligible for `spec` (its handler, its labels), as failover
/// receivers with their load in `job` (unfinished items they hold).
pub fn receivers(
    executors: &BTreeMap<ExecutorId, ExecutorInfo>,
    spec: &JobSpec,
    job: &JobRecord,
) -> Vec<Receiver> {
    let done = job.done();
    executors
        .values()
        .filter(|e| eligible(spec, e))
        .map(|e| Receiver {
            id: e.id.clone(),
            lease: e.lease,
            weight: e.capacity_for(&spec.handler),
            load: job
                .owners
                .get(&e.id)
                .map_or(0, |o| o.items.difference(&done).len()),
        })
        .collect()
}

/// The assignment record an owner's key should hold: its unfinished items at
/// their current attempts.
pub fn assignment_of(job: &JobRecord, owner: &Owner) -> AssignmentRecord {
    let items = owner.items.difference(&job.done());
    let attempts = job
        .attempts
        .by_value()
        .flat_map(|(&a, with)| {
            with.intersection(&items)
                .iter()
                .map(move |i| (i, a))
                .collect::<Vec<_>>()
        })
        .collect();
    AssignmentRecord {
        items,
        attempts,
        cancel: owner.cancel.intersection(&owner.items),
        generation: job.generation,
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Results, failover, retries, stalls and the timeout of one running job
/// (see the module doc for the steps). A job that is not running is
/// returned unchanged, with no effect.
pub fn reconcile_job(snapshot: JobSnapshot<'_>) -> JobStep {
    let JobSnapshot {
        run,
        dag: _,
        name,
        spec,
        mut job,
        mut open_alerts,
        present,
        batches,
        progress,
        executors,
        now,
    } = snapshot;
    let mut effects = Vec::new();
    let mut lost_executors = BTreeSet::new();
    if job.state != JobState::Running {
        return JobStep {
            job,
            open_alerts,
            lost: lost_executors,
            effects,
        };
    }
    let mut dirty: BTreeSet<ExecutorId> = BTreeSet::new();

    // 1. Result batches (before failover: a dead executor's last results count).
    let mut finished = Vec::new();
    let mut logs = Vec::new();
    let mut consumed = Vec::new();
    for read in batches {
        for (batch, r) in read
            .batch
            .iter()
            .flat_map(|b| b.results.iter().map(move |r| (b, r)))
        {
            let effect = apply_result(&mut job, spec, &batch.executor, r, now);
            if effect == ItemEffect::Ignored {
                continue;
            }
            let item = r.item.0;
            let new = attempt_row(
                run,
                name,
                item,
                r.attempt,
                &batch.executor,
                batch.token.0,
                r.started_at_ms,
                job.moved_from.get(item).cloned(),
            );
            let error = match r.outcome {
                ResultOutcome::Skipped => {
                    Some(format!("skipped: {}", r.error.as_deref().unwrap_or("")))
                }
                _ => r.error.clone(),
            };
            finished.push(EndedAttempt {
                new,
                outcome: attempt_outcome(r.outcome),
                ended_at_ms: r.ended_at_ms,
                error,
            });
            if let Some(text) = &r.log {
                logs.push(AttemptLog {
                    run_id: run.clone(),
                    job: name.clone(),
                    item: r.item,
                    attempt: r.attempt,
                    log: text.clone(),
                });
            }
            job.moved_from.remove(item);
            tracing::debug!(run = %run, job = %name, item, attempt = r.attempt, executor = %batch.executor, ?effect, "result applied");
            if effect == ItemEffect::Requeue {
                dirty.insert(batch.executor.clone());
            }
            if effect == ItemEffect::FailedForGood {
                tracing::warn!(run = %run, job = %name, item, error = ?r.error, "item failed for good");
                if job.first_error.is_none() {
                    job.first_error = first_error_line(r.error.as_deref(), r.log.as_deref())
                        .map(|line| format!("item {item}: {line}"));
                }
            }
        }
        consumed.push(Effect::DeleteBatch { key: read.key });
    }
    if !finished.is_empty() {
        effects.push(Effect::EndAttempts(finished));
    }
    if !logs.is_empty() {
        effects.push(Effect::SaveLogs(logs));
    }
    effects.extend(consumed);

    // 2. Vanished assignments: their lease ended. Record the lost
    // attempts, then move the unfinished items.
    let owners: Vec<ExecutorId> = job.owners.keys().cloned().collect();
    // Every owner whose assignment vanished, known before any item moves:
    // after an etcd restart several leases end at once and their executors
    // re-register under the same ids with new leases. Items moved to such
    // an id in this loop would join its stale owner entry and be recorded
    // as lost a second time, under an attempt that never ran; they wait in
    // `unowned` instead, and step 4 hands them to the re-registered
    // executors as fresh owners.
    let vanished: BTreeSet<ExecutorId> = owners
        .iter()
        .filter(|e| !present.contains_key(*e))
        .cloned()
        .collect();
    for exec in owners {
        if let Some(&rev) = present.get(&exec) {
            if let Some(owner) = job.owners.get_mut(&exec) {
                owner.token = rev;
            }
            continue;
        }
        let Some(owner) = job.owners.get(&exec).cloned() else {
            continue;
        };
        let unfinished = owner.items.difference(&job.done());
        let lost: Vec<EndedAttempt> = unfinished
            .iter()
            .map(|item| EndedAttempt {
                new: attempt_row(
                    run,
                    name,
                    item,
                    job.attempt(item),
                    &exec,
                    owner.token,
                    owner.assigned_at_ms,
                    job.moved_from.get(item).cloned(),
                ),
                outcome: AttemptOutcome::Lost,
                ended_at_ms: now,
                error: Some(LEASE_ENDED.into()),
            })
            .collect();
        if !lost.is_empty() {
            effects.push(Effect::EndAttempts(lost));
        }
        if !unfinished.is_empty() {
            tracing::warn!(run = %run, job = %name, executor = %exec, items = %unfinished, "executor lost while holding items; failing over");
            lost_executors.insert(exec.clone());
            effects.push(Effect::OpenAlert(AlertOpen {
                key: AlertKey::ExecutorLost {
                    executor: exec.clone(),
                    run: run.clone(),
                },
                rule: AlertRule::ExecutorLost,
                severity: AlertSeverity::Warning,
                executor: Some(exec.clone()),
                message: format!(
                    "executor {exec} was lost holding {} item(s) of {name}",
                    unfinished.len()
                ),
            }));
            effects.push(Effect::Event {
                kind: "executor_lost",
                executor: Some(exec.clone()),
                detail: json!({"items": unfinished.to_string()}),
            });
        }
        if spec.failover {
            let recv: Vec<_> = receivers(executors, spec, &job)
                .into_iter()
                .filter(|r| !vanished.contains(&r.id))
                .collect();
            let moved = fail_over(&mut job, Some(&exec), &recv, now);
            for (to, items) in &moved.to {
                tracing::info!(run = %run, job = %name, from = %exec, to = %to, items = %items, "items moved");
                dirty.insert(to.clone());
            }
        } else {
            job.owners.remove(&exec);
            job.failed = job.failed.union(&unfinished);
        }
    }

    // 3. Due retries go back to their owner at the next attempt.
    for item in take_due_retries(&mut job, now) {
        match job.owner_of(item).cloned() {
            Some(owner) => {
                dirty.insert(owner);
            }
            None => job.unowned.insert(item),
        }
    }
    // 4. Items nobody owns (no receiver earlier) try again.
    if !job.unowned.is_empty() {
        let recv = receivers(executors, spec, &job);
        let moved = fail_over(&mut job, None, &recv, now);
        dirty.extend(moved.to.into_keys());
    }

    // 5. Stalled items: running, and no progress for longer than the item
    // timeout (the executor should have timed it out by then).
    if let Some(limit) = spec.item_timeout {
        let limit = millis(limit);
        let done = job.done();
        for (exec, report) in &progress {
            for (&item, p) in &report.items {
                if done.contains(item) || now.saturating_sub(p.at_ms) <= limit {
                    continue;
                }
                // Stop it: its cancel report counts as a timed-out attempt.
                let owns = job
                    .owners
                    .get(exec)
                    .is_some_and(|o| o.items.contains(item) && !o.cancel.contains(item));
                if owns && !job.retry_at.contains(item) {
                    if let Some(owner) = job.owners.get_mut(exec) {
                        owner.cancel.insert(item);
                    }
                    job.timed_out.insert(item);
                    dirty.insert(exec.clone());
                    tracing::warn!(run = %run, job = %name, item, executor = %exec, "item stalled past its timeout; cancelling it");
                }
                let key = AlertKey::ItemStalled {
                    run: run.clone(),
                    job: name.clone(),
                    item,
                };
                effects.push(Effect::OpenAlert(AlertOpen {
                    key: key.clone(),
                    rule: AlertRule::ItemStalled,
                    severity: AlertSeverity::Warning,
                    executor: Some(exec.clone()),
                    message: format!("item {item} of {name} made no progress for over {limit} ms"),
                }));
                open_alerts.insert(key);
            }
        }
        let cleared: Vec<AlertKey> = open_alerts
            .iter()
            .filter(|k| {
                matches!(k, AlertKey::ItemStalled { run: r, job: j, item }
                    if r == run && j == name && done.contains(*item))
            })
            .cloned()
            .collect();
        for key in cleared {
            open_alerts.remove(&key);
            effects.push(Effect::ResolveAlert(key));
        }
    }

    // 6. Job timeout: stop what runs, the job fails.
    if let (Some(limit), Some(started)) = (spec.timeout, job.started_at_ms) {
        if now.saturating_sub(started) > millis(limit) {
            let open = ItemSet::range(0, job.shards).difference(&job.done());
            job.cancelled = job.cancelled.union(&open);
            job.retry_at.clear();
            job.error = Some(format!(
                "job timed out after {}",
                nightshift_core::duration::format_duration(limit)
            ));
            job.state = JobState::Failed;
            job.ended_at_ms = Some(now);
            tracing::warn!(run = %run, job = %name, "job timed out; cancelling its items");
        }
    }

    // 7. Done?
    if job.state == JobState::Running {
        if let Some(end) = job_outcome(&job) {
            job.state = end;
            job.ended_at_ms = Some(now);
            if end == JobState::Failed {
                job.error = Some(job_failure(job.failed.len(), job.first_error.as_deref()));
            }
            tracing::info!(run = %run, job = %name, state = %end, "job ended");
            effects.push(Effect::Event {
                kind: "job_ended",
                executor: None,
                detail: json!({"state": end.as_str(), "succeeded": job.succeeded.len(), "failed": job.failed.len()}),
            });
        }
    }
    if job.state == JobState::Failed {
        effects.push(Effect::OpenAlert(AlertOpen {
            key: AlertKey::JobFailed {
                run: run.clone(),
                job: name.clone(),
            },
            rule: AlertRule::ItemFailed,
            severity: AlertSeverity::Critical,
            executor: None,
            message: format!(
                "job {name} of run {run} failed: {}",
                job.error.as_deref().unwrap_or("items failed")
            ),
        }));
    }
    if !job.state.is_terminal() {
        for exec in dirty {
            let done = job.done();
            if let Some(owner) = job.owners.get_mut(&exec) {
                owner.items = owner.items.difference(&done);
                owner.assigned_at_ms = now;
            }
            if let Some(owner) = job.owners.get(&exec) {
                effects.push(Effect::PutAssignment {
                    executor: exec.clone(),
                    lease: owner.lease,
                    value: assignment_of(&job, owner),
                });
            }
        }
    }
    JobStep {
        job,
        open_alerts,
        lost: lost_executors,
        effects,
    }
}

/// What the end of a run's pass does besides writing the record.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEffect {
    /// SQL, before the etcd commit: attempts of items the leader stopped
    /// (one statement per job).
    EndAttempts(Vec<EndedAttempt>),
    /// etcd, once the record committed: delete an ended job's assignment.
    DeleteAssignment {
        /// The job.
        job: JobName,
        /// The executor whose key it is.
        executor: ExecutorId,
    },
    /// Outbox: open (or bump) an alert about the run, or one of its jobs.
    OpenAlert {
        /// The job it is about, if any.
        job: Option<JobName>,
        /// The alert.
        alert: AlertOpen,
    },
    /// Outbox: resolve an alert.
    ResolveAlert(AlertKey),
    /// Outbox: an event about the run, or one of its jobs.
    Event {
        /// Its kind (`job_ended`, `job_started`).
        kind: &'static str,
        /// The job it is about, if any.
        job: Option<JobName>,
        /// Details.
        detail: serde_json::Value,
    },
}

/// The end of a run's pass, pure, once its running jobs were reconciled
/// and its ready jobs started: ended jobs let go of their assignments
/// (every key present, an earlier leader's leftovers included) and the
/// attempts of the items the leader stopped (run cancel, job timeout, an
/// operator's skip) end here, since their executors report nothing; the
/// run moves to running or to its end; a run past its deadline alerts.
/// `present` is the assignment keys found for each job.
pub fn settle_run(
    mut rec: crate::record::RunRecord,
    present: &BTreeMap<JobName, BTreeSet<ExecutorId>>,
    now: i64,
) -> (crate::record::RunRecord, Vec<RunEffect>) {
    use nightshift_core::state::RunState;
    let mut effects = Vec::new();
    let run = rec.run.clone();
    for (name, job) in rec.jobs.iter_mut() {
        if !job.state.is_terminal() {
            continue;
        }
        let mut keys: BTreeSet<ExecutorId> = present.get(name).cloned().unwrap_or_default();
        keys.extend(job.owners.keys().cloned());
        effects.extend(
            keys.into_iter()
                .map(|executor| RunEffect::DeleteAssignment {
                    job: name.clone(),
                    executor,
                }),
        );
        if job.owners.is_empty() {
            continue;
        }
        // An item that already reported keeps its recorded end (the write
        // is idempotent).
        let stopped_items = job.cancelled.union(&job.skipped);
        let mut stopped = Vec::new();
        for (exec, owner) in &job.owners {
            for item in owner.items.intersection(&stopped_items).iter() {
                stopped.push(EndedAttempt {
                    new: attempt_row(
                        &run,
                        name,
                        item,
                        job.attempt(item),
                        exec,
                        owner.token,
                        owner.assigned_at_ms,
                        job.moved_from.get(item).cloned(),
                    ),
                    outcome: AttemptOutcome::Cancelled,
                    ended_at_ms: now,
                    error: Some(STOPPED_BY_LEADER.into()),
                });
            }
        }
        effects.push(RunEffect::EndAttempts(stopped));
        job.owners.clear();
    }
    if rec.state == RunState::Pending && rec.jobs.values().any(|j| j.state != JobState::Pending) {
        rec.state = RunState::Running;
    }
    if !rec.state.is_terminal() {
        if let Some(end) = crate::orchestration::run_outcome(rec.jobs.values().map(|j| &j.state)) {
            rec.state = end;
            tracing::info!(run = %rec.run, state = %end, "run ended");
        }
    }
    if let Some(deadline) = rec.deadline_ms {
        if now > deadline && !rec.state.is_terminal() {
            effects.push(RunEffect::OpenAlert {
                job: None,
                alert: AlertOpen {
                    key: AlertKey::DeadlineMissed { run: run.clone() },
                    rule: AlertRule::RunDeadlineMissed,
                    severity: AlertSeverity::Critical,
                    executor: None,
                    message: format!("run {run} missed its deadline"),
                },
            });
        }
    }
    (rec, effects)
}

/// The jobs a pass tries to start, pure: those waiting for an executor,
/// then the pending ones whose upstreams are done and whose trigger rule
/// holds ([`ready_jobs`](crate::orchestration::ready_jobs)). The ones the
/// rule rules out end here (`upstream_failed` / `skipped`). Nothing
/// starts in an ended run.
pub fn jobs_to_start(
    rec: &mut crate::record::RunRecord,
    now: i64,
) -> (Vec<JobName>, Vec<RunEffect>) {
    use crate::orchestration::{ready_jobs, JobDecision};
    let mut effects = Vec::new();
    if rec.state.is_terminal() {
        return (Vec::new(), effects);
    }
    let states: BTreeMap<JobName, JobState> =
        rec.jobs.iter().map(|(n, j)| (n.clone(), j.state)).collect();
    let mut to_start: Vec<JobName> = rec
        .jobs
        .iter()
        .filter(|(_, j)| j.state == JobState::Waiting)
        .map(|(n, _)| n.clone())
        .collect();
    for decision in ready_jobs(&rec.spec, &states) {
        match decision {
            JobDecision::Start(name) => to_start.push(name),
            JobDecision::Resolve(name, to) => {
                if let Some(job) = rec.jobs.get_mut(&name) {
                    job.state = to;
                    job.ended_at_ms = Some(now);
                    tracing::info!(run = %rec.run, job = %name, state = %to, "job resolved by its trigger rule");
                    effects.push(RunEffect::Event {
                        kind: "job_ended",
                        job: Some(name),
                        detail: json!({"state": to.as_str()}),
                    });
                }
            }
        }
    }
    (to_start, effects)
}

/// What a job's start adds besides its assignments: its `no_executor`
/// alert (if it waited) resolves, and a `job_started` event.
pub fn job_started(run: &RunId, name: &JobName) -> Vec<RunEffect> {
    vec![
        RunEffect::ResolveAlert(AlertKey::NoExecutor {
            run: run.clone(),
            job: name.clone(),
        }),
        RunEffect::Event {
            kind: "job_started",
            job: Some(name.clone()),
            detail: json!({}),
        },
    ]
}

/// A job that found no live executor for it, pure: it waits (since the
/// first time), alerts `no_executor`, and fails — every open item failed
/// — once it waited longer than its timeout.
pub fn no_executor(rec: &mut crate::record::RunRecord, name: &JobName, now: i64) -> Vec<RunEffect> {
    let spec = rec.job_spec(name);
    let timeout = spec.and_then(|s| s.timeout);
    let why = no_executor_message(spec, name);
    let run = rec.run.clone();
    let Some(job) = rec.jobs.get_mut(name) else {
        return Vec::new();
    };
    let since = *job.waiting_since_ms.get_or_insert(now);
    job.state = JobState::Waiting;
    let mut effects = vec![RunEffect::OpenAlert {
        job: Some(name.clone()),
        alert: AlertOpen {
            key: AlertKey::NoExecutor {
                run: run.clone(),
                job: name.clone(),
            },
            rule: AlertRule::NoExecutor,
            severity: AlertSeverity::Critical,
            executor: None,
            message: why,
        },
    }];
    if let Some(limit) = timeout {
        if now - since > millis(limit) {
            fail_waiting(job, now);
            effects.push(RunEffect::OpenAlert {
                job: Some(name.clone()),
                alert: AlertOpen {
                    key: AlertKey::JobFailed {
                        run: run.clone(),
                        job: name.clone(),
                    },
                    rule: AlertRule::ItemFailed,
                    severity: AlertSeverity::Critical,
                    executor: None,
                    message: format!(
                        "job {name} of run {run} failed: no executor before its timeout"
                    ),
                },
            });
        }
    }
    effects
}

fn fail_waiting(job: &mut JobRecord, now: i64) {
    job.state = JobState::Failed;
    job.failed = ItemSet::range(0, job.shards).difference(&job.done());
    job.ended_at_ms = Some(now);
    job.error = Some("no live executor served its handler before its timeout".into());
}

/// Why a job waits for an executor: nobody serves its handler, or nobody
/// serving it carries the labels it requires.
fn no_executor_message(spec: Option<&JobSpec>, name: &JobName) -> String {
    match spec {
        Some(spec) if !spec.executor_labels.is_empty() => format!(
            "no live executor serves handler {} of job {name} with labels {}",
            spec.handler,
            spec.label_selector()
        ),
        _ => format!("no live executor serves the handler of job {name}"),
    }
}

/// The alerts that end with a finished run: its deadline, its jobs'
/// `no_executor`, the self-resolving ones it opened (stalled items, slow
/// run) and the loss of the executors that held its items. (The failure
/// alerts a success settles are `leader::reopen::recovered_alerts`.)
pub fn resolved_when_finished(rec: &crate::record::RunRecord) -> Vec<AlertKey> {
    let run = &rec.run;
    std::iter::once(AlertKey::DeadlineMissed { run: run.clone() })
        .chain(rec.jobs.keys().map(|job| AlertKey::NoExecutor {
            run: run.clone(),
            job: job.clone(),
        }))
        .chain(rec.open_alerts.iter().cloned())
        .chain(
            rec.lost_executors
                .iter()
                .map(|executor| AlertKey::ExecutorLost {
                    executor: executor.clone(),
                    run: run.clone(),
                }),
        )
        .collect()
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
