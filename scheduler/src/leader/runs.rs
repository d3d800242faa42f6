//! One run's pass, as snapshot → pure decision → effects: read what the
//! pass needs (result batches, progress reports; the assignments were
//! listed at the start of the pass), let [`crate::reconcile`] decide —
//! each running job's results, failover, retries, stalls and timeout, the
//! jobs to start, the ended jobs' cleanup and the run's state — and carry
//! the effects out: SQL rows first, then the etcd ops in fenced txns, then
//! events and alerts to the outbox. Job starts read and plan in
//! `dispatch`. A finished run is persisted to SQL, then its etcd keys are
//! deleted.
//!
//! The pass works on a copy of the run record and replaces the leader's
//! copy only once its writes committed (`commit`: every txn compares the
//! record's revision, a failed or unanswered one makes the leader reload
//! the run), so a failed pass leaves nothing half-applied: result batches
//! are deleted in the same (or a later) txn as the record that applied
//! them, and SQL writes are idempotent.

use super::dispatch::Started;
use super::history::{self, alert, Emit};
use super::{put, Leader, LeaderError};
use crate::reconcile::{
    job_started, jobs_to_start, no_executor, reconcile_job, resolved_when_finished, settle_run,
    Effect, JobSnapshot, ReadBatch, RunEffect,
};
use crate::record::RunRecord;
use nightshift_coord::TxnOp;
use nightshift_core::ids::{DagName, ExecutorId, JobName, RunId};
use nightshift_core::keyspace::{self, ExecutorInfo, ResultBatch};
use nightshift_core::state::JobState;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// Writes collected during a run's pass (see `commit`).
type Writes = super::commit::RunOps;

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
        // Terminal jobs hold no assignments: the executors stop and forget
        // them; the run moves on or ends.
        let present: BTreeMap<JobName, BTreeSet<ExecutorId>> = rec
            .jobs
            .keys()
            .map(|job| (job.clone(), self.owned.of(run, job).into_keys().collect()))
            .collect();
        let (settled, effects) = settle_run(rec, &present, now);
        rec = settled;
        self.apply_run_effects(&rec, &effects, now, &mut w).await?;
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

    /// One running job: read its snapshot, decide ([`reconcile_job`]),
    /// carry the effects out. SQL rows are written here, before the run's
    /// commit (a failure aborts the run's pass: the batches stay and the
    /// next pass decides again); etcd ops join the run's writes; events and
    /// alerts go to the outbox.
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
        if !rec.jobs.contains_key(name) {
            return Ok(());
        }
        let run = rec.run.clone();
        let dag = rec.spec.name.clone();
        // Assignments were read at the start of the pass, BEFORE result
        // batches: an assignment found gone vanished with its lease, and the
        // executor could only write batches while the lease lived — so every
        // batch it ever wrote is visible to the read below, and none of its
        // finished items is taken for lost.
        let present = self.owned.of(&run, name);
        let batches = self.read_batches(&run, name).await?;
        let progress = if spec.item_timeout.is_some() {
            self.read_progress(&run, name).await?
        } else {
            Vec::new()
        };
        // Taken out of the record, not copied (a job's record can be large):
        // on any error below the pass drops this copy of the run anyway.
        let Some(job) = rec.jobs.remove(name) else {
            return Ok(());
        };
        let step = reconcile_job(JobSnapshot {
            run: &run,
            dag: &dag,
            name,
            spec: &spec,
            job,
            open_alerts: std::mem::take(&mut rec.open_alerts),
            present,
            batches,
            progress,
            executors,
            now,
        });
        self.apply_job_step(&run, &dag, name, &step.effects, now, w)
            .await?;
        rec.jobs.insert(name.clone(), step.job);
        rec.open_alerts = step.open_alerts;
        rec.lost_executors.extend(step.lost);
        Ok(())
    }

    /// A job's result batches, decoded (an undecodable one is reported and
    /// handed over empty, to be deleted).
    async fn read_batches(
        &mut self,
        run: &RunId,
        name: &JobName,
    ) -> Result<Vec<ReadBatch>, LeaderError> {
        let (kvs, _) = self
            .coord
            .get_prefix_paged(
                &keyspace::results_prefix(&self.config.prefix, run, name),
                nightshift_coord::PAGE_KEYS_ANY,
            )
            .await?;
        Ok(kvs
            .into_iter()
            .map(|kv| ReadBatch {
                batch: self
                    .decode_or_report::<ResultBatch>(&kv, "deleted: its results cannot be applied"),
                key: kv.key,
            })
            .collect())
    }

    /// A job's progress reports by executor (undecodable ones reported and
    /// left out).
    async fn read_progress(
        &mut self,
        run: &RunId,
        name: &JobName,
    ) -> Result<Vec<(ExecutorId, keyspace::ProgressRecord)>, LeaderError> {
        let prefix = self.config.prefix.clone();
        let (kvs, _) = self
            .coord
            .get_prefix_paged(
                &keyspace::progress_prefix(&prefix, run, name),
                nightshift_coord::PAGE_KEYS_ANY,
            )
            .await?;
        let mut out = Vec::new();
        for kv in kvs {
            let Some((_, _, exec)) = keyspace::parse_progress_key(&prefix, &kv.key) else {
                continue;
            };
            if let Some(progress) = self.decode_or_report::<keyspace::ProgressRecord>(
                &kv,
                "ignored: no stall detection from it",
            ) {
                out.push((exec, progress));
            }
        }
        Ok(out)
    }

    /// Carries a job step's effects out: SQL first (attempt rows, a
    /// thousand per statement, then logs), then the etcd ops into the
    /// run's writes and events and alerts into the outbox.
    async fn apply_job_step(
        &mut self,
        run: &RunId,
        dag: &DagName,
        name: &JobName,
        effects: &[Effect],
        now: i64,
        w: &mut Writes,
    ) -> Result<(), LeaderError> {
        for effect in effects {
            match effect {
                Effect::EndAttempts(rows) => self
                    .store
                    .record_ended_attempts_in_term(rows, self.term)
                    .await
                    .map_err(store_err)?,
                Effect::SaveLogs(logs) => self
                    .store
                    .record_attempt_logs(logs)
                    .await
                    .map_err(store_err)?,
                _ => {}
            }
        }
        let prefix = &self.config.prefix;
        let emit = Emit { actor: &self.actor };
        for effect in effects {
            match effect {
                Effect::EndAttempts(rows) => {
                    for row in rows {
                        super::telemetry::attempt(
                            dag.as_str(),
                            name.as_str(),
                            row.outcome,
                            std::time::Duration::from_millis(
                                u64::try_from(row.ended_at_ms - row.new.started_at_ms).unwrap_or(0),
                            ),
                        );
                    }
                }
                Effect::SaveLogs(_) => {}
                Effect::DeleteBatch { key } => w.after.push(TxnOp::Delete { key: key.clone() }),
                Effect::PutAssignment {
                    executor,
                    lease,
                    value,
                } => w.rewrites.push(put(
                    keyspace::assign_key(prefix, run, name, executor),
                    value,
                    Some(*lease),
                )?),
                Effect::OpenAlert(a) => self.outbox.push(alert(
                    a.rule,
                    a.key.clone(),
                    a.severity,
                    dag,
                    Some(run),
                    Some(name),
                    a.executor.as_ref(),
                    a.message.clone(),
                    now,
                )),
                Effect::ResolveAlert(key) => self
                    .outbox
                    .push(history::Pending::Resolve(key.clone(), now)),
                Effect::Event {
                    kind,
                    executor,
                    detail,
                } => self.outbox.push(emit.event(
                    now,
                    kind,
                    dag,
                    Some(run),
                    Some(name),
                    executor.as_ref(),
                    detail.clone(),
                )),
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
        let (to_start, mut effects) = jobs_to_start(rec, now);
        // Every start's activation rides in the record's txn: at most one
        // txn's worth of starts per pass (the rest start next pass).
        let most = self.fenced.max_ops.saturating_sub(1).max(1);
        for name in to_start.into_iter().take(most) {
            match self.start_job(rec, &name, executors, now).await? {
                Started::Assigned { staged, activate } => {
                    w.staged.extend(staged);
                    w.activate.extend(activate);
                    effects.extend(job_started(&rec.run, &name));
                }
                Started::NoExecutor => effects.extend(no_executor(rec, &name, now)),
            }
        }
        self.apply_run_effects(rec, &effects, now, w).await
    }

    /// Carries the end of a run's pass out: stopped attempts to SQL, then
    /// assignment deletes into the run's writes and alerts to the outbox.
    async fn apply_run_effects(
        &mut self,
        rec: &RunRecord,
        effects: &[RunEffect],
        now: i64,
        w: &mut Writes,
    ) -> Result<(), LeaderError> {
        for effect in effects {
            if let RunEffect::EndAttempts(rows) = effect {
                self.store
                    .record_ended_attempts_in_term(rows, self.term)
                    .await
                    .map_err(store_err)?;
            }
        }
        for effect in effects {
            match effect {
                RunEffect::EndAttempts(_) => {}
                RunEffect::DeleteAssignment { job, executor } => w.after.push(TxnOp::Delete {
                    key: keyspace::assign_key(&self.config.prefix, &rec.run, job, executor),
                }),
                RunEffect::OpenAlert { job, alert: a } => self.outbox.push(alert(
                    a.rule,
                    a.key.clone(),
                    a.severity,
                    &rec.spec.name,
                    Some(&rec.run),
                    job.as_ref(),
                    a.executor.as_ref(),
                    a.message.clone(),
                    now,
                )),
                RunEffect::ResolveAlert(key) => self
                    .outbox
                    .push(history::Pending::Resolve(key.clone(), now)),
                RunEffect::Event { kind, job, detail } => {
                    let emit = Emit { actor: &self.actor };
                    self.outbox.push(emit.event(
                        now,
                        kind,
                        &rec.spec.name,
                        Some(&rec.run),
                        job.as_ref(),
                        None,
                        detail.clone(),
                    ));
                }
            }
        }
        Ok(())
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
        // The run's last history is in SQL before its keys leave etcd: a
        // leader killed once they are gone has nothing left to write (its
        // successor no longer knows the run), and one killed before leaves
        // the run to its successor, which writes this again — resolutions
        // are idempotent and the end event is looked up first.
        let mut end = history::Outbox::default();
        let keys = resolved_when_finished(&live.rec)
            .into_iter()
            .chain(super::reopen::recovered_alerts(&live.rec));
        for key in keys {
            end.push(history::Pending::Resolve(key, now));
        }
        // By rule too: a predecessor killed between opening an alert and
        // committing what made it (a lost executor) left a key this record
        // does not name.
        end.push(history::Pending::ResolveRun(
            run.clone(),
            history::RULES_ENDED_WITH_THE_RUN,
            now,
        ));
        // What was queued before (the run's own events first) goes first.
        self.outbox.flush(&self.store).await.map_err(store_err)?;
        let kind = format!("run_{}", state.as_str());
        let ended_at = self
            .store
            .get_run(run)
            .await
            .map_err(store_err)?
            .and_then(|row| row.ended_at_ms)
            .unwrap_or(now);
        if !history::has_event(&self.store, run, &kind, ended_at)
            .await
            .map_err(store_err)?
        {
            let emit = Emit { actor: &self.actor };
            end.push(emit.event(ended_at, &kind, &dag, Some(run), None, None, json!({})));
        }
        end.flush(&self.store).await.map_err(store_err)?;
        if let Some(hook) = &self.config.test_hooks.before_run_removed {
            hook();
        }
        if let Err(e) = self.commit_run(run, ops, &mut rec, |_, _, _| {}).await {
            if self.runs.contains_key(run) || matches!(e, LeaderError::Deposed) {
                return Err(e);
            }
            tracing::info!(run = %run, "the run's keys were removed by a commit that went unanswered");
        }
        if let Some(hook) = &self.config.test_hooks.after_run_removed {
            hook();
        }
        self.runs.remove(run);
        tracing::info!(run = %run, state = %state, "run persisted; live keys removed");
        Ok(())
    }
}
