//! One run's pass: consume result batches, fail over vanished assignments,
//! hand out due retries, enforce job timeouts, end jobs, start the jobs whose
//! upstreams are done, end the run — then write it all in fenced txns and
//! bring SQL up to date. A finished run is persisted to SQL, then its etcd
//! keys are deleted.
//!
//! The pass works on a copy of the run record and replaces the leader's
//! copy only once its writes committed (`commit`: every txn compares the
//! record's revision, a failed or unanswered one makes the leader reload
//! the run), so a failed pass leaves nothing half-applied: result batches
//! are deleted in the same (or a later) txn as the record that applied
//! them, and SQL writes are idempotent.

use super::dispatch::{assignment_of, receivers, Started};
use super::history::{self, alert, Emit};
use super::{put, Leader, LeaderError};
use crate::failover::fail_over;
use crate::first_error::{first_error_line, job_failure};
use crate::orchestration::{
    apply_result, job_outcome, ready_jobs, run_outcome, take_due_retries, ItemEffect, JobDecision,
};
use crate::record::{JobRecord, RunRecord};
use nightshift_coord::TxnOp;
use nightshift_core::ids::{ExecutorId, JobName, RunId};
use nightshift_core::keyspace::{self, ExecutorInfo, ItemSet, ResultBatch, ResultOutcome};
use nightshift_core::state::{AlertRule, AlertSeverity, AttemptOutcome, JobState, RunState};
use nightshift_store::{EndedAttempt, NewAttempt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// Writes collected during a run's pass (see `commit`).
type Writes = super::commit::RunOps;

fn attempt_outcome(o: ResultOutcome) -> AttemptOutcome {
    match o {
        ResultOutcome::Succeeded | ResultOutcome::Skipped => AttemptOutcome::Succeeded,
        ResultOutcome::Failed => AttemptOutcome::Failed,
        ResultOutcome::TimedOut => AttemptOutcome::TimedOut,
        ResultOutcome::Cancelled => AttemptOutcome::Cancelled,
    }
}

fn ended(
    new: NewAttempt,
    outcome: AttemptOutcome,
    ended_at_ms: i64,
    error: Option<String>,
) -> EndedAttempt {
    EndedAttempt {
        new,
        outcome,
        ended_at_ms,
        error,
    }
}

fn store_err(e: nightshift_store::StoreError) -> LeaderError {
    LeaderError::Store(super::health::describe(&e))
}

impl Leader {
    /// One pass over one live run.
    #[tracing::instrument(level = "debug", skip_all, fields(run = %run))]
    pub(super) async fn reconcile_run(
        &mut self,
        run: &RunId,
        executors: &BTreeMap<ExecutorId, ExecutorInfo>,
    ) -> Result<(), LeaderError> {
        if !self.fresh(run).await {
            return Ok(());
        }
        let Some(live) = self.runs.get(run) else {
            return Ok(());
        };
        let mut rec = live.rec.clone();
        let now = self.clock.now_ms();
        let mut w = Writes::default();
        let names: Vec<JobName> = rec.jobs.keys().cloned().collect();
        for name in &names {
            let state = rec.jobs[name].state;
            if state == JobState::Running {
                self.progress_job(&mut rec, name, executors, now, &mut w)
                    .await?;
            }
        }
        self.advance_jobs(&mut rec, executors, now, &mut w).await?;
        // Terminal jobs hold no assignments: the executors stop and forget them.
        for (name, job) in rec.jobs.iter_mut() {
            if !job.state.is_terminal() {
                continue;
            }
            // Keys of executors that are no longer owners (an earlier
            // leader's leftovers) go too.
            let mut keys: BTreeSet<ExecutorId> =
                self.owned.of(&rec.run, name).into_keys().collect();
            keys.extend(job.owners.keys().cloned());
            for exec in &keys {
                w.after.push(TxnOp::Delete {
                    key: keyspace::assign_key(&self.config.prefix, &rec.run, name, exec),
                });
            }
            if !job.owners.is_empty() {
                // Items stopped by the leader (run cancel, job timeout, an
                // operator's skip) end their attempt here: the executor
                // reports nothing for them. An item that already reported
                // keeps its recorded end (the write is idempotent).
                let stopped_items = job.cancelled.union(&job.skipped);
                let mut stopped = Vec::new();
                for (exec, owner) in &job.owners {
                    for item in owner.items.intersection(&stopped_items).iter() {
                        let new = history::attempt(
                            &rec.run,
                            name,
                            item,
                            job.attempt(item),
                            exec,
                            owner.token,
                            owner.assigned_at_ms,
                            job.moved_from.get(item).cloned(),
                        );
                        stopped.push(ended(
                            new,
                            AttemptOutcome::Cancelled,
                            now,
                            Some(history::STOPPED_BY_LEADER.into()),
                        ));
                    }
                }
                self.store
                    .record_ended_attempts_in_term(&stopped, self.term)
                    .await
                    .map_err(store_err)?;
                job.owners.clear();
            }
        }
        if rec.state == RunState::Pending && rec.jobs.values().any(|j| j.state != JobState::Pending)
        {
            rec.state = RunState::Running;
        }
        if !rec.state.is_terminal() {
            if let Some(end) = run_outcome(rec.jobs.values().map(|j| &j.state)) {
                rec.state = end;
                tracing::info!(run = %rec.run, state = %end, "run ended");
            }
        }
        self.deadline_alert(&rec, now);
        // Assignments staged by a start that was never activated (its
        // leader died first) while the job is still unstarted: their
        // executors wait for an activation that will not come.
        let prefix = self.config.prefix.clone();
        let unactivated: Vec<JobName> =
            super::commit::unactivated_jobs(&rec, |job| !self.owned.of(run, job).is_empty())
                .cloned()
                .collect();
        for job in unactivated {
            for exec in self.owned.of(run, &job).into_keys() {
                w.staged.push(TxnOp::Delete {
                    key: keyspace::assign_key(&prefix, run, &job, &exec),
                });
            }
        }
        // An owner's fencing token is its assignment's mod revision: the
        // revision of the txn that wrote it. Noted as soon as it is known,
        // or an assignment that vanishes before the next pass reads it
        // would be recorded as lost under token 0.
        let note_tokens = |rec: &mut RunRecord, ops: &[TxnOp], revision: i64| {
            for op in ops {
                let TxnOp::Put { key, .. } = op else {
                    continue;
                };
                let Some((_, job, exec)) = keyspace::parse_assign_key(&prefix, key) else {
                    continue;
                };
                if let Some(owner) = rec.jobs.get_mut(&job).and_then(|j| j.owners.get_mut(&exec)) {
                    owner.token = revision;
                }
            }
        };
        // Tokens of assignments in the record's own txn are known only once
        // it committed: the record carrying them is rewritten next pass.
        self.commit_run(run, w, &mut rec, note_tokens).await?;
        let Some(live) = self.runs.get_mut(run) else {
            return Ok(());
        };
        live.rec = rec;
        Ok(())
    }

    /// Brings a run's SQL rows up to its record and, once it has ended and
    /// is stored, removes its etcd keys. The pass does this for every run
    /// after all of them were reconciled, so that SQL round trips never
    /// delay another run's dispatch (five DAGs firing at the same instant
    /// all get their items before any history is written). A failure is
    /// retried on the next pass; the etcd side is already committed.
    pub(super) async fn persist_run(&mut self, run: &RunId) -> Result<(), LeaderError> {
        let now = self.clock.now_ms();
        if !self.fresh(run).await {
            return Ok(());
        }
        self.slow_check(run, now);
        let Some(live) = self.runs.get_mut(run) else {
            return Ok(());
        };
        history::sync_run(&self.store, &live.rec, &mut live.synced, now, self.term)
            .await
            .map_err(store_err)?;
        if live.rec.state.is_terminal() {
            self.finish_run(run, now).await?;
        }
        Ok(())
    }

    /// Results, failover, retries and the timeout of one running job.
    #[tracing::instrument(level = "debug", skip_all, fields(job = %name))]
    async fn progress_job(
        &mut self,
        rec: &mut RunRecord,
        name: &JobName,
        executors: &BTreeMap<ExecutorId, ExecutorInfo>,
        now: i64,
        w: &mut Writes,
    ) -> Result<(), LeaderError> {
        let Some(spec) = rec.job_spec(name).cloned() else {
            return Ok(());
        };
        let mut rec_lost = std::mem::take(&mut rec.lost_executors);
        let result = self
            .progress_job_inner(rec, name, &spec, executors, now, w, &mut rec_lost)
            .await;
        rec.lost_executors = rec_lost;
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn progress_job_inner(
        &mut self,
        rec: &mut RunRecord,
        name: &JobName,
        spec: &nightshift_core::dag::JobSpec,
        executors: &BTreeMap<ExecutorId, ExecutorInfo>,
        now: i64,
        w: &mut Writes,
        rec_lost: &mut BTreeSet<ExecutorId>,
    ) -> Result<(), LeaderError> {
        let prefix = self.config.prefix.clone();
        let run = rec.run.clone();
        let dag = rec.spec.name.clone();
        let Some(job) = rec.jobs.get_mut(name) else {
            return Ok(());
        };
        let mut dirty: BTreeSet<ExecutorId> = BTreeSet::new();

        // Assignments were read at the start of the pass, BEFORE result
        // batches: an assignment found gone vanished with its lease, and the
        // executor could only write batches while the lease lived — so every
        // batch it ever wrote is visible to the read below, and none of its
        // finished items is taken for lost.
        let present: BTreeMap<ExecutorId, i64> = self.owned.of(&run, name);
        // 1. Result batches (before failover: a dead executor's last results count).
        let (batches, _) = self
            .coord
            .get_prefix_paged(
                &keyspace::results_prefix(&prefix, &run, name),
                nightshift_coord::PAGE_KEYS_ANY,
            )
            .await?;
        let mut finished = Vec::new();
        let mut logs = Vec::new();
        for kv in batches {
            let Some(batch) =
                self.decode_or_report::<ResultBatch>(&kv, "deleted: its results cannot be applied")
            else {
                w.after.push(TxnOp::Delete { key: kv.key });
                continue;
            };
            for r in &batch.results {
                let effect = apply_result(job, spec, &batch.executor, r, now);
                if effect == ItemEffect::Ignored {
                    continue;
                }
                let item = r.item.0;
                let moved_from = job.moved_from.get(item).cloned();
                let new = history::attempt(
                    &run,
                    name,
                    item,
                    r.attempt,
                    &batch.executor,
                    batch.token.0,
                    r.started_at_ms,
                    moved_from,
                );
                let error = match r.outcome {
                    ResultOutcome::Skipped => {
                        Some(format!("skipped: {}", r.error.as_deref().unwrap_or("")))
                    }
                    _ => r.error.clone(),
                };
                let outcome = attempt_outcome(r.outcome);
                super::telemetry::attempt(
                    dag.as_str(),
                    name.as_str(),
                    outcome,
                    std::time::Duration::from_millis(
                        u64::try_from(r.ended_at_ms - r.started_at_ms).unwrap_or(0),
                    ),
                );
                finished.push(ended(new, outcome, r.ended_at_ms, error));
                if let Some(text) = &r.log {
                    logs.push(nightshift_store::AttemptLog {
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
            w.after.push(TxnOp::Delete { key: kv.key });
        }

        // Their attempts go to SQL before anything is committed to etcd (a
        // failure aborts this run's pass; the batches stay), a thousand rows
        // per statement: a statement per row made SQL the bottleneck of
        // dispatch (2 statements per item).
        self.store
            .record_ended_attempts_in_term(&finished, self.term)
            .await
            .map_err(store_err)?;
        // Their logs too: once the batch is deleted, they exist nowhere else.
        self.store
            .record_attempt_logs(&logs)
            .await
            .map_err(store_err)?;

        // 2. Vanished assignments: their lease ended. Record the lost
        // attempts, then move the unfinished items.
        let owners: Vec<ExecutorId> = job.owners.keys().cloned().collect();
        // Every owner whose assignment vanished, known before any item
        // moves: after an etcd restart several leases end at once and their
        // executors re-register under the same ids with new leases. Items
        // moved to such an id in this loop would join its stale owner entry
        // and be recorded as lost a second time, under an attempt that never
        // ran; they wait in `unowned` instead, and step 4 hands them to the
        // re-registered executors as fresh owners.
        let vanished: std::collections::BTreeSet<ExecutorId> = owners
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
            let lost: Vec<_> = unfinished
                .iter()
                .map(|item| {
                    history::attempt(
                        &run,
                        name,
                        item,
                        job.attempt(item),
                        &exec,
                        owner.token,
                        owner.assigned_at_ms,
                        job.moved_from.get(item).cloned(),
                    )
                })
                .collect();
            let lost: Vec<EndedAttempt> = lost
                .into_iter()
                .map(|new| {
                    super::telemetry::attempt(
                        dag.as_str(),
                        name.as_str(),
                        AttemptOutcome::Lost,
                        std::time::Duration::from_millis(
                            u64::try_from(now - new.started_at_ms).unwrap_or(0),
                        ),
                    );
                    ended(
                        new,
                        AttemptOutcome::Lost,
                        now,
                        Some("executor lease ended".into()),
                    )
                })
                .collect();
            self.store
                .record_ended_attempts_in_term(&lost, self.term)
                .await
                .map_err(store_err)?;
            if !unfinished.is_empty() {
                tracing::warn!(run = %run, job = %name, executor = %exec, items = %unfinished, "executor lost while holding items; failing over");
                rec_lost.insert(exec.clone());
                self.outbox.push(alert(
                    AlertRule::ExecutorLost,
                    format!("executor_lost:{exec}:{run}"),
                    AlertSeverity::Warning,
                    &dag,
                    Some(&run),
                    Some(name),
                    Some(&exec),
                    format!(
                        "executor {exec} was lost holding {} item(s) of {name}",
                        unfinished.len()
                    ),
                    now,
                ));
                let emit = Emit { actor: &self.actor };
                self.outbox.push(emit.event(
                    now,
                    "executor_lost",
                    &dag,
                    Some(&run),
                    Some(name),
                    Some(&exec),
                    json!({"items": unfinished.to_string()}),
                ));
            }
            if spec.failover {
                let recv: Vec<_> = receivers(executors, spec, job)
                    .into_iter()
                    .filter(|r| !vanished.contains(&r.id))
                    .collect();
                let moved = fail_over(job, Some(&exec), &recv, now);
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
        for item in take_due_retries(job, now) {
            match job.owner_of(item).cloned() {
                Some(owner) => {
                    dirty.insert(owner);
                }
                None => job.unowned.insert(item),
            }
        }
        // 4. Items nobody owns (no receiver earlier) try again.
        if !job.unowned.is_empty() {
            let recv = receivers(executors, spec, job);
            let moved = fail_over(job, None, &recv, now);
            dirty.extend(moved.to.into_keys());
        }

        // 5. Stalled items: running, and no progress for longer than the
        // item timeout (the executor should have timed it out by then).
        if let Some(limit) = spec.item_timeout {
            let limit = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
            let (reports, _) = self
                .coord
                .get_prefix_paged(
                    &keyspace::progress_prefix(&prefix, &run, name),
                    nightshift_coord::PAGE_KEYS_ANY,
                )
                .await?;
            let done = job.done();
            for kv in reports {
                let Some((_, _, exec)) = keyspace::parse_progress_key(&prefix, &kv.key) else {
                    continue;
                };
                let Some(progress) = self.decode_or_report::<keyspace::ProgressRecord>(
                    &kv,
                    "ignored: no stall detection from it",
                ) else {
                    continue;
                };
                for (&item, p) in &progress.items {
                    if !done.contains(item) && now.saturating_sub(p.at_ms) > limit {
                        // Stop it: its cancel report counts as a timed-out attempt.
                        let owns = job
                            .owners
                            .get(&exec)
                            .is_some_and(|o| o.items.contains(item) && !o.cancel.contains(item));
                        if owns && !job.retry_at.contains(item) {
                            if let Some(owner) = job.owners.get_mut(&exec) {
                                owner.cancel.insert(item);
                            }
                            job.timed_out.insert(item);
                            dirty.insert(exec.clone());
                            tracing::warn!(run = %run, job = %name, item, executor = %exec, "item stalled past its timeout; cancelling it");
                        }
                        self.outbox.push(alert(
                            AlertRule::ItemStalled,
                            format!("item_stalled:{run}:{name}:{item}"),
                            AlertSeverity::Warning,
                            &dag,
                            Some(&run),
                            Some(name),
                            Some(&exec),
                            format!("item {item} of {name} made no progress for over {limit} ms"),
                            now,
                        ));
                        rec.open_alerts
                            .insert(format!("item_stalled:{run}:{name}:{item}"));
                    }
                }
            }
            let cleared: Vec<String> = rec
                .open_alerts
                .iter()
                .filter(|k| {
                    k.strip_prefix(&format!("item_stalled:{run}:{name}:"))
                        .and_then(|i| i.parse::<u32>().ok())
                        .is_some_and(|i| done.contains(i))
                })
                .cloned()
                .collect();
            for key in cleared {
                rec.open_alerts.remove(&key);
                self.outbox.push(history::Pending::Resolve(key, now));
            }
        }

        // 6. Job timeout: stop what runs, the job fails.
        if let (Some(limit), Some(started)) = (spec.timeout, job.started_at_ms) {
            if now.saturating_sub(started) > i64::try_from(limit.as_millis()).unwrap_or(i64::MAX) {
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
            if let Some(end) = job_outcome(job) {
                job.state = end;
                job.ended_at_ms = Some(now);
                if end == JobState::Failed {
                    job.error = Some(job_failure(job.failed.len(), job.first_error.as_deref()));
                }
                tracing::info!(run = %run, job = %name, state = %end, "job ended");
                let emit = Emit { actor: &self.actor };
                self.outbox.push(emit.event(now, "job_ended", &dag, Some(&run), Some(name), None, json!({"state": end.as_str(), "succeeded": job.succeeded.len(), "failed": job.failed.len()})));
            }
        }
        if job.state == JobState::Failed {
            self.outbox.push(alert(
                AlertRule::ItemFailed,
                format!("job_failed:{run}:{name}"),
                AlertSeverity::Critical,
                &dag,
                Some(&run),
                Some(name),
                None,
                format!(
                    "job {name} of run {run} failed: {}",
                    job.error.as_deref().unwrap_or("items failed")
                ),
                now,
            ));
        }
        if !job.state.is_terminal() {
            for exec in dirty {
                let done = job.done();
                if let Some(owner) = job.owners.get_mut(&exec) {
                    owner.items = owner.items.difference(&done);
                    owner.assigned_at_ms = now;
                }
                if let Some(owner) = job.owners.get(&exec) {
                    let value = assignment_of(job, owner);
                    w.rewrites.push(put(
                        keyspace::assign_key(&prefix, &run, name, &exec),
                        &value,
                        Some(owner.lease),
                    )?);
                }
            }
        }
        Ok(())
    }

    /// Starts ready jobs, resolves the ones their trigger rule rules out,
    /// and retries jobs waiting for an executor.
    async fn advance_jobs(
        &mut self,
        rec: &mut RunRecord,
        executors: &BTreeMap<ExecutorId, ExecutorInfo>,
        now: i64,
        w: &mut Writes,
    ) -> Result<(), LeaderError> {
        if rec.state.is_terminal() {
            return Ok(());
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
                        let emit = Emit { actor: &self.actor };
                        self.outbox.push(emit.event(
                            now,
                            "job_ended",
                            &rec.spec.name,
                            Some(&rec.run),
                            Some(&name),
                            None,
                            json!({"state": to.as_str()}),
                        ));
                    }
                }
            }
        }
        let dag = rec.spec.name.clone();
        let run = rec.run.clone();
        // Every start's activation rides in the record's txn: at most one
        // txn's worth of starts per pass (the rest start next pass).
        let most = self.fenced.max_ops.saturating_sub(1).max(1);
        for name in to_start.into_iter().take(most) {
            match self.start_job(rec, &name, executors, now).await? {
                Started::Assigned { staged, activate } => {
                    w.staged.extend(staged);
                    w.activate.extend(activate);
                    self.outbox.push(history::Pending::Resolve(
                        format!("no_executor:{run}:{name}"),
                        now,
                    ));
                    let emit = Emit { actor: &self.actor };
                    self.outbox.push(emit.event(
                        now,
                        "job_started",
                        &dag,
                        Some(&run),
                        Some(&name),
                        None,
                        json!({}),
                    ));
                }
                Started::NoExecutor => {
                    let timeout = rec.job_spec(&name).and_then(|s| s.timeout);
                    let why = no_executor_message(rec.job_spec(&name), &name);
                    let Some(job) = rec.jobs.get_mut(&name) else {
                        continue;
                    };
                    let since = *job.waiting_since_ms.get_or_insert(now);
                    job.state = JobState::Waiting;
                    self.outbox.push(alert(
                        AlertRule::NoExecutor,
                        format!("no_executor:{run}:{name}"),
                        AlertSeverity::Critical,
                        &dag,
                        Some(&run),
                        Some(&name),
                        None,
                        why,
                        now,
                    ));
                    if let Some(limit) = timeout {
                        if now - since > i64::try_from(limit.as_millis()).unwrap_or(i64::MAX) {
                            fail_waiting(job, now);
                            self.outbox.push(alert(AlertRule::ItemFailed, format!("job_failed:{run}:{name}"), AlertSeverity::Critical, &dag, Some(&run), Some(&name), None, format!("job {name} of run {run} failed: no executor before its timeout"), now));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn deadline_alert(&mut self, rec: &RunRecord, now: i64) {
        if let Some(deadline) = rec.deadline_ms {
            if now > deadline && !rec.state.is_terminal() {
                let dag = rec.spec.name.clone();
                self.outbox.push(alert(
                    AlertRule::RunDeadlineMissed,
                    format!("deadline:{}", rec.run),
                    AlertSeverity::Critical,
                    &dag,
                    Some(&rec.run),
                    None,
                    None,
                    format!("run {} missed its deadline", rec.run),
                    now,
                ));
            }
        }
    }

    /// A persisted, finished run: resolve its conditions, drop its etcd keys.
    async fn finish_run(&mut self, run: &RunId, now: i64) -> Result<(), LeaderError> {
        if !self.runs.contains_key(run) {
            return Ok(());
        }
        // Into SQL before the txn below deletes them from etcd.
        let checkpoints = self.save_run_checkpoints(run).await?;
        let dag_version = self.dag_version_release(run);
        let Some(live) = self.runs.get(run) else {
            return Ok(());
        };
        let dag = live.rec.spec.name.clone();
        let state = live.rec.state;
        super::telemetry::run_finished(dag.as_str(), state);
        // `runs/{run}/` holds the state record, specs and progress;
        // `results/{run}/` unconsumed batches; assignments left by a leader
        // that crashed are deleted key by key (they live under executors).
        // The leftover assignments go first, the record last, each txn
        // guarded by the record's revision: if any fails the run is
        // reloaded and finished again (a record found gone was finished).
        let prefix = &self.config.prefix;
        let ops = super::commit::RunOps {
            staged: self
                .owned
                .keys_of_run(prefix, run)
                .into_iter()
                .map(|key| TxnOp::Delete { key })
                .collect(),
            deletes_record: true,
            activate: vec![
                checkpoints,
                TxnOp::DeletePrefix {
                    prefix: keyspace::run_prefix(prefix, run),
                },
                TxnOp::DeletePrefix {
                    prefix: keyspace::run_results_prefix(prefix, run),
                },
            ]
            .into_iter()
            .chain(dag_version)
            .collect(),
            ..Default::default()
        };
        let mut rec = live.rec.clone();
        let live_rec = live.rec.clone();
        if let Err(e) = self.commit_run(run, ops, &mut rec, |_, _, _| {}).await {
            if self.runs.contains_key(run) || matches!(e, LeaderError::Deposed) {
                return Err(e);
            }
            tracing::info!(run = %run, "the run's keys were removed by a commit that went unanswered");
        }
        let live = LiveRecord { rec: live_rec };
        self.outbox
            .push(history::Pending::Resolve(format!("deadline:{run}"), now));
        for job in live.rec.jobs.keys() {
            self.outbox.push(history::Pending::Resolve(
                format!("no_executor:{run}:{job}"),
                now,
            ));
        }
        for key in &live.rec.open_alerts {
            self.outbox
                .push(history::Pending::Resolve(key.clone(), now));
        }
        for key in super::reopen::recovered_alerts(&live.rec) {
            self.outbox.push(history::Pending::Resolve(key, now));
        }
        for exec in &live.rec.lost_executors {
            self.outbox.push(history::Pending::Resolve(
                format!("executor_lost:{exec}:{run}"),
                now,
            ));
        }
        let emit = Emit { actor: &self.actor };
        self.outbox.push(emit.event(
            now,
            &format!("run_{}", state.as_str()),
            &dag,
            Some(run),
            None,
            None,
            json!({}),
        ));
        self.runs.remove(run);
        tracing::info!(run = %run, state = %state, "run persisted; live keys removed");
        Ok(())
    }
}

/// What `finish_run` keeps of a run it removed.
struct LiveRecord {
    rec: RunRecord,
}

fn fail_waiting(job: &mut JobRecord, now: i64) {
    job.state = JobState::Failed;
    job.failed = ItemSet::range(0, job.shards).difference(&job.done());
    job.ended_at_ms = Some(now);
    job.error = Some("no live executor served its handler before its timeout".into());
}

/// Why a job waits for an executor: nobody serves its handler, or nobody
/// serving it carries the labels it requires.
fn no_executor_message(spec: Option<&nightshift_core::dag::JobSpec>, name: &JobName) -> String {
    match spec {
        Some(spec) if !spec.executor_labels.is_empty() => format!(
            "no live executor serves handler {} of job {name} with labels {}",
            spec.handler,
            spec.label_selector()
        ),
        _ => format!("no live executor serves the handler of job {name}"),
    }
}
