//! What makes runs exist and change from outside: applied DAGs, cron fires
//! (misfire and concurrency policies, [`crate::trigger`]) and operator
//! commands. Each command is carried out and deleted in one fenced txn with
//! the run record it changes, then recorded as an event with its actor.

use super::history::{Emit, Pending};
use super::{put, Leader, LeaderError, LiveRun};
use crate::commands::{self, RunCommand};
use crate::record::{self, CronRecord, JobRecord, RunRecord};
use crate::trigger::{admit, due_fires, Admission};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use nightshift_coord::TxnOp;
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::keyspace::{
    self, AppliedDag, Command, CommandOutcome, CommandRecord, Effect, Rejection,
};
use nightshift_core::schedule::{business_date_for, Schedule};
use nightshift_core::state::{RunState, TriggerSource};
use nightshift_store::{NewRun, StoreError};
use serde_json::json;
use std::collections::BTreeMap;

/// A run to create.
pub(super) struct RunRequest {
    pub run: RunId,
    pub dag: DagName,
    pub business_date: Option<NaiveDate>,
    pub params: serde_json::Value,
    pub source: TriggerSource,
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Redo generation of the run (0 unless a redo, or a retry of one).
    pub redo: u32,
}

impl Leader {
    /// Reads the applied DAGs.
    pub(super) async fn load_dags(&mut self) -> Result<(), LeaderError> {
        let (kvs, _) = self
            .coord
            .get_prefix_paged(
                &keyspace::dags_prefix(&self.config.prefix),
                nightshift_coord::PAGE_KEYS_ANY,
            )
            .await?;
        let mut dags = BTreeMap::new();
        for kv in kvs {
            let Some(name) = keyspace::parse_dag_key(&self.config.prefix, &kv.key) else {
                continue;
            };
            if let Some(dag) = self.decode_or_report::<AppliedDag>(
                &kv,
                "ignored: not scheduled until it is applied again",
            ) {
                dags.insert(name, dag);
            }
        }
        self.dags = dags;
        Ok(())
    }

    /// Creates a run: SQL row first (the unique run id makes a repeat a
    /// no-op), then the etcd record. Returns `None` if it already existed.
    pub(super) async fn create_run(
        &mut self,
        req: RunRequest,
        extra: Vec<TxnOp>,
    ) -> Result<Option<RunId>, LeaderError> {
        if self.runs.contains_key(&req.run) {
            return Ok(None);
        }
        let Some(applied) = self.dags.get(&req.dag).cloned() else {
            return Ok(None);
        };
        let jobs = applied
            .spec
            .jobs
            .iter()
            .map(|j| (j.name.clone(), JobRecord::pending(j.shards)))
            .collect();
        self.create_run_with(req, applied.spec, applied.version, jobs, extra)
            .await
    }

    /// [`Self::create_run`] of a given DAG version with given job records
    /// (a retry of a finished run starts with its succeeded work done).
    pub(super) async fn create_run_with(
        &mut self,
        req: RunRequest,
        spec: nightshift_core::dag::DagSpec,
        version: u32,
        jobs: BTreeMap<nightshift_core::ids::JobName, JobRecord>,
        extra: Vec<TxnOp>,
    ) -> Result<Option<RunId>, LeaderError> {
        let now = self.clock.now_ms();
        let at = req.scheduled_for.unwrap_or_else(|| {
            Utc.timestamp_millis_opt(now)
                .single()
                .unwrap_or_else(Utc::now)
        });
        let day = req.business_date.unwrap_or_else(|| {
            business_date_for(
                at,
                spec.timezone,
                spec.business_date,
                spec.calendar.as_ref(),
            )
        });
        let new = NewRun {
            run_id: req.run.clone(),
            dag: req.dag.clone(),
            dag_version: version,
            business_date: day,
            trigger_source: req.source,
            params: if req.params.is_null() {
                json!({})
            } else {
                req.params.clone()
            },
            scheduled_for_ms: req.scheduled_for.map(|t| t.timestamp_millis()),
            created_at_ms: now,
        };
        self.fenced.check().await?;
        match self.store.insert_run(&new).await {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => match self.store.get_run(&req.run).await {
                // Created by a leader that crashed before writing etcd.
                Ok(Some(run)) if run.state == RunState::Pending => {}
                Ok(_) => return Ok(None),
                Err(e) => return Err(store_down(e)),
            },
            Err(e) => return Err(store_down(e)),
        }
        if req.redo > 0 {
            // Before the etcd record: a retry of this run reads it back.
            self.store
                .set_run_redo(&req.run, req.redo)
                .await
                .map_err(store_down)?;
        }
        let deadline_ms =
            crate::trigger::deadline_ms(spec.deadline, spec.timezone, req.source, day, at);
        // The "slower than usual" baseline; without it the run just gets
        // no such warning (never a failed trigger).
        let slow_after_ms = match self
            .store
            .recent_run_durations(&req.dag, crate::slow::BASELINE_RUNS)
            .await
        {
            Ok(durations) => crate::slow::slow_after_ms(&durations),
            Err(e) => {
                tracing::warn!(dag = %req.dag, error = %e, "no run-time baseline; no run_slow alert for this run");
                None
            }
        };
        let rec = RunRecord {
            run: req.run.clone(),
            dag: spec.name.clone(),
            dag_version: version,
            business_date: day,
            params: new.params.clone(),
            source: req.source,
            scheduled_for_ms: new.scheduled_for_ms,
            created_at_ms: now,
            state: RunState::Pending,
            deadline_ms,
            jobs,
            lost_executors: Default::default(),
            open_alerts: Default::default(),
            redo: req.redo,
            retry_of: None,
            slow_after_ms,
            spec,
        };
        // A new run's values: its head and one state per job (no items or
        // owners yet), so they fit in the creating txn.
        let written = crate::record_values::encode_run(&self.config.prefix, &rec)?;
        let mut ops: Vec<TxnOp> = written
            .iter()
            .map(|(key, value)| TxnOp::Put {
                key: key.clone(),
                value: value.clone(),
                lease: None,
            })
            .collect();
        ops.push(self.dag_version_put(&rec.spec, version)?);
        ops.extend(extra);
        let Some(revision) = self.commit_new_run(&rec.run, ops).await? else {
            return Ok(None);
        };
        tracing::info!(run = %rec.run, dag = %req.dag, source = %req.source, business_date = %day, "run created");
        let emit = Emit { actor: &self.actor };
        self.outbox.push(emit.event(
            now,
            "run_created",
            &req.dag,
            Some(&rec.run),
            None,
            None,
            json!({"source": req.source.as_str(), "business_date": day.to_string(), "redo": req.redo}),
        ));
        self.runs.insert(
            rec.run.clone(),
            LiveRun {
                rec,
                written,
                synced: Default::default(),
                revision,
                stale: false,
            },
        );
        Ok(Some(req.run))
    }

    /// Fires due schedule instants of every unpaused scheduled DAG.
    pub(super) async fn run_cron(&mut self) -> Result<(), LeaderError> {
        let now_ms = self.clock.now_ms();
        let Some(now) = Utc.timestamp_millis_opt(now_ms).single() else {
            return Ok(());
        };
        let dags: Vec<(DagName, AppliedDag)> = self
            .dags
            .iter()
            .map(|(n, d)| (n.clone(), d.clone()))
            .collect();
        self.next_fire_ms = None;
        for (name, applied) in dags {
            let (Some(expr), false) = (applied.spec.schedule.as_deref(), applied.paused) else {
                continue;
            };
            let cron_key = record::cron_key(&self.config.prefix, &name);
            let Some(last) = self.cron.get(&name).copied() else {
                // First sight of this schedule: start from now, fire nothing past.
                let rec = CronRecord { last_ms: now_ms };
                self.fenced.commit(vec![put(cron_key, &rec, None)?]).await?;
                self.cron.insert(name, rec);
                continue;
            };
            let schedule = match applied
                .spec
                .cron_schedule()
                .unwrap_or_else(|| Schedule::new(expr, applied.spec.timezone))
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(dag = %name, error = %e, "bad schedule in applied dag");
                    continue;
                }
            };
            if let Some(next) = schedule.next_business_after(now, applied.spec.calendar.as_ref()) {
                let next_ms = next.timestamp_millis();
                self.next_fire_ms = Some(self.next_fire_ms.map_or(next_ms, |m| m.min(next_ms)));
            }
            let Some(last_at) = Utc.timestamp_millis_opt(last.last_ms).single() else {
                continue;
            };
            let decision = due_fires(
                &schedule,
                applied.spec.calendar.as_ref(),
                applied.spec.misfire,
                last_at,
                now,
                self.config.misfire_grace,
            );
            let Some(handled) = decision.handled else {
                continue;
            };
            let rec = CronRecord {
                last_ms: handled.timestamp_millis(),
            };
            // The cron record goes in the txn of the last run it fires (one
            // write instead of two on the trigger path); alone otherwise.
            let mut cron_put = Some(put(cron_key.clone(), &rec, None)?);
            let fires = decision.fires.len();
            for (i, fire) in decision.fires.into_iter().enumerate() {
                let live: Vec<RunId> = self
                    .runs
                    .values()
                    .filter(|r| r.rec.spec.name == name && !r.rec.state.is_terminal())
                    .map(|r| r.rec.run.clone())
                    .collect();
                match admit(applied.spec.concurrency, &live) {
                    Admission::Skip => {
                        tracing::info!(dag = %name, instant = %fire.instant, "concurrency forbid: a run is still going; not firing");
                        let emit = Emit { actor: &self.actor };
                        self.outbox.push(emit.event(now_ms, "fire_skipped", &name, None, None, None, json!({"instant_ms": fire.instant.timestamp_millis(), "reason": "concurrency_forbid"})));
                        continue;
                    }
                    Admission::Replace(old) => {
                        for run in old {
                            self.cancel_run(&run, now_ms);
                        }
                    }
                    Admission::Start => {}
                }
                let req = RunRequest {
                    run: RunId::new(format!("{name}-s{}", fire.instant.timestamp_millis())),
                    dag: name.clone(),
                    business_date: None,
                    params: json!({}),
                    source: fire.source,
                    scheduled_for: Some(fire.instant),
                    redo: 0,
                };
                let extra: Vec<TxnOp> = if i + 1 == fires {
                    cron_put.take().into_iter().collect()
                } else {
                    vec![]
                };
                let with_cron = !extra.is_empty();
                if self.create_run(req, extra).await?.is_none() && with_cron {
                    // Not created (it already existed): the record still goes.
                    cron_put = Some(put(cron_key.clone(), &rec, None)?);
                }
            }
            if let Some(op) = cron_put {
                self.fenced.commit(vec![op]).await?;
            }
            self.cron.insert(name, rec);
        }
        Ok(())
    }

    /// Marks a live run cancelled in memory (written by the run's pass).
    pub(super) fn cancel_run(&mut self, run: &RunId, now_ms: i64) -> bool {
        let Some(live) = self.runs.get_mut(run) else {
            return false;
        };
        commands::cancel(&mut live.rec, now_ms).is_ok()
    }

    /// Carries out and deletes every pending operator command, oldest first.
    pub(super) async fn run_commands(&mut self) -> Result<(), LeaderError> {
        let (kvs, _) = self
            .coord
            .get_prefix_paged(
                &keyspace::commands_prefix(&self.config.prefix),
                nightshift_coord::PAGE_KEYS_ANY,
            )
            .await?;
        for kv in kvs {
            let delete = TxnOp::Delete {
                key: kv.key.clone(),
            };
            let cmd = match keyspace::decode::<CommandRecord>(&kv.value) {
                Ok(c) => c,
                Err(e) => {
                    // Rejected once, not retried: it can never be carried out.
                    self.fenced.commit(vec![delete]).await?;
                    self.reject_unreadable_command(&kv, &e.to_string());
                    continue;
                }
            };
            let now = self.clock.now_ms();
            let (dag, run, outcome) = self.execute(&cmd, delete).await?;
            tracing::info!(command = %cmd.id, kind = cmd.command.kind(), by = %cmd.issued_by, outcome = %outcome, "command carried out");
            super::telemetry::command(cmd.command.kind(), outcome.is_rejected());
            self.outbox.push(Pending::Event(nightshift_store::NewEvent {
                at_ms: now,
                kind: keyspace::commands::outcome_event_kind(cmd.command.kind()),
                actor: cmd.issued_by.clone(),
                dag,
                run_id: run,
                job: None,
                item: None,
                executor: None,
                // `outcome` is the text shown to people; `result` the typed
                // outcome that followers read.
                detail: json!({"command_id": cmd.id.as_str(), "command": cmd.command, "outcome": outcome.to_string(), "result": outcome}),
            }));
        }
        Ok(())
    }

    /// Runs one command; its key is deleted in the same txn as its effect.
    /// Run commands go through the pure [`commands::apply`]; this is only
    /// the effect layer (find the record, write what it returns).
    async fn execute(
        &mut self,
        cmd: &CommandRecord,
        delete: TxnOp,
    ) -> Result<(Option<DagName>, Option<RunId>, CommandOutcome), LeaderError> {
        match &cmd.command {
            Command::Trigger {
                dag,
                business_date,
                params,
                rerun,
                source,
            } => {
                if !self.dags.contains_key(dag) {
                    self.fenced.commit(vec![delete]).await?;
                    let reason = Rejection::DagNotApplied { dag: dag.clone() };
                    return Ok((Some(dag.clone()), None, reason.into()));
                }
                let run_params = params.clone().unwrap_or(serde_json::Value::Null);
                if let Some(reason) = self.refuse_params(dag, &run_params).await? {
                    self.fenced.commit(vec![delete]).await?;
                    let reason = Rejection::ParamsMismatch { message: reason };
                    return Ok((Some(dag.clone()), None, reason.into()));
                }
                if let (Some(day), false) = (business_date, rerun) {
                    let runs = self
                        .store
                        .runs_for_business_date(dag, *day)
                        .await
                        .map_err(store_down)?;
                    if runs.iter().any(|r| r.state == RunState::Succeeded) {
                        self.fenced.commit(vec![delete]).await?;
                        let reason = Rejection::AlreadySucceeded {
                            business_date: *day,
                        };
                        return Ok((Some(dag.clone()), None, reason.into()));
                    }
                }
                let run = keyspace::commands::trigger_run_id(dag, &cmd.id);
                let req = RunRequest {
                    run: run.clone(),
                    dag: dag.clone(),
                    business_date: *business_date,
                    params: run_params,
                    source: *source,
                    scheduled_for: None,
                    redo: 0,
                };
                let created = self.create_run(req, vec![delete.clone()]).await?;
                if created.is_none() {
                    self.fenced.commit(vec![delete]).await?;
                }
                let effect = Effect::Triggered { run: run.clone() };
                Ok((Some(dag.clone()), Some(run), effect.into()))
            }
            Command::Redo {
                dag,
                business_date,
                params,
            } => {
                if !self.dags.contains_key(dag) {
                    self.fenced.commit(vec![delete]).await?;
                    let reason = Rejection::DagNotApplied { dag: dag.clone() };
                    return Ok((Some(dag.clone()), None, reason.into()));
                }
                let redo = self
                    .store
                    .max_redo(dag, *business_date)
                    .await
                    .map_err(store_down)?
                    .saturating_add(1);
                let run = keyspace::commands::trigger_run_id(dag, &cmd.id);
                let req = RunRequest {
                    run: run.clone(),
                    dag: dag.clone(),
                    business_date: Some(*business_date),
                    params: params.clone().unwrap_or(serde_json::Value::Null),
                    source: TriggerSource::Manual,
                    scheduled_for: None,
                    redo,
                };
                let created = self.create_run(req, vec![delete.clone()]).await?;
                if created.is_none() {
                    self.fenced.commit(vec![delete]).await?;
                }
                let effect = Effect::Redone {
                    run: run.clone(),
                    redo,
                    business_date: *business_date,
                };
                Ok((Some(dag.clone()), Some(run), effect.into()))
            }
            Command::CancelRun { run } => {
                self.run_command(run, RunCommand::Cancel, delete, false)
                    .await
            }
            Command::Retry { run, job } if self.runs.contains_key(run) => {
                let command = RunCommand::Retry { job: job.clone() };
                self.run_command(run, command, delete, false).await
            }
            Command::Retry { run, job } => {
                // A finished run: a new run redoes only what failed.
                let dag = run_dag_sql(self, run).await?;
                let new_run = RunId::new(format!(
                    "{}-{}",
                    dag.as_ref().map(|d| d.as_str()).unwrap_or_default(),
                    cmd.id
                ));
                let outcome = self
                    .retry_finished(run, job.as_ref(), new_run.clone(), delete.clone())
                    .await?;
                if outcome.is_rejected() {
                    self.fenced.commit(vec![delete]).await?;
                }
                Ok((dag, Some(new_run), outcome))
            }
            Command::MarkItemSucceeded { run, job, item } => {
                let command = RunCommand::MarkSucceeded {
                    job: job.clone(),
                    item: *item,
                };
                self.run_command(run, command, delete, true).await
            }
            Command::SkipJob { run, job } => {
                let command = RunCommand::Skip { job: job.clone() };
                self.run_command(run, command, delete, false).await
            }
            Command::Clear {
                run,
                jobs,
                items,
                downstream,
            } => {
                let command = RunCommand::Clear {
                    jobs: jobs.clone(),
                    items: items.clone(),
                    downstream: *downstream,
                };
                self.run_command(run, command, delete, true).await
            }
            Command::PauseDag { dag } | Command::ResumeDag { dag } => {
                let now = self.clock.now_ms();
                let paused = matches!(cmd.command, Command::PauseDag { .. });
                let Some(mut applied) = self.dags.get(dag).cloned() else {
                    self.fenced.commit(vec![delete]).await?;
                    let reason = Rejection::DagNotApplied { dag: dag.clone() };
                    return Ok((Some(dag.clone()), None, reason.into()));
                };
                self.store
                    .set_dag_paused(dag, paused, now)
                    .await
                    .map_err(store_down)?;
                applied.paused = paused;
                self.fenced
                    .commit(vec![
                        put(keyspace::dag_key(&self.config.prefix, dag), &applied, None)?,
                        delete,
                    ])
                    .await?;
                self.dags.insert(dag.clone(), applied);
                let effect = if paused {
                    Effect::Paused
                } else {
                    Effect::Resumed
                };
                Ok((Some(dag.clone()), None, effect.into()))
            }
        }
    }

    /// Applies a run command to the run's live record — or, with `reopen`,
    /// to the record of a finished run rebuilt from SQL (which becomes live
    /// again if the command re-opens it) — and writes the new record with
    /// the command's delete in one fenced txn.
    async fn run_command(
        &mut self,
        run: &RunId,
        command: RunCommand,
        delete: TxnOp,
        reopen: bool,
    ) -> Result<(Option<DagName>, Option<RunId>, CommandOutcome), LeaderError> {
        let now = self.clock.now_ms();
        let (current, is_live) = match self.runs.get(run) {
            Some(live) => (Ok(live.rec.clone()), true),
            None if reopen => (self.reopen_from_sql(run).await?, false),
            None => (Err(Rejection::RunNotLive), false),
        };
        let current = match current {
            Ok(rec) => rec,
            Err(reason) => {
                self.fenced.commit(vec![delete]).await?;
                let dag = run_dag_sql(self, run).await.ok().flatten();
                return Ok((dag, Some(run.clone()), reason.into()));
            }
        };
        let dag = Some(current.spec.name.clone());
        let (rec, outcome) = commands::apply(&current, &command, now);
        if outcome.is_rejected() {
            self.fenced.commit(vec![delete]).await?;
            return Ok((dag, Some(run.clone()), outcome));
        }
        // Re-opened jobs go back to `pending` in SQL first: the pass may
        // start them at once, and SQL takes `pending → running`, not a jump
        // from the job's old end (`succeeded → running`).
        let reopened: Vec<nightshift_store::JobRun> = rec
            .jobs
            .iter()
            .filter(|(name, job)| {
                !job.state.is_terminal()
                    && current
                        .jobs
                        .get(*name)
                        .is_some_and(|j| j.state.is_terminal())
            })
            .map(|(name, job)| super::history::job_row(run, name, job))
            .collect();
        for row in &reopened {
            match self.store.upsert_job_run_in_term(row, self.term).await {
                Ok(())
                | Err(nightshift_store::StoreError::IllegalTransition { .. })
                | Err(nightshift_store::StoreError::Superseded { .. }) => {}
                Err(e) => return Err(store_down(e)),
            }
        }
        let mut ops = vec![delete];
        if !is_live {
            // Its DAG version went with its keys when it ended.
            ops.push(self.dag_version_put(&rec.spec, rec.dag_version)?);
            tracing::info!(run = %run, "finished run re-opened by an operator command");
            let emit = Emit { actor: &self.actor };
            self.outbox.push(emit.event(
                now,
                "run_reopened",
                &rec.spec.name,
                Some(run),
                None,
                None,
                json!({"command": command_kind(&command), "previous_state": current.state.as_str()}),
            ));
            self.runs.insert(
                run.clone(),
                LiveRun {
                    rec,
                    written: Default::default(),
                    synced: Default::default(),
                    // Its keys were deleted when it ended: the record's
                    // revision is that of a missing key.
                    revision: 0,
                    stale: false,
                },
            );
        } else if let Some(live) = self.runs.get_mut(run) {
            live.rec = rec;
        }
        self.commit_run_with(run, ops).await?;
        Ok((dag, Some(run.clone()), outcome))
    }

    /// Writes a run's record (if live) together with `op`, guarded by the
    /// record's revision (see `commit`): when that fails the run is
    /// reloaded and the command, still in etcd, is carried out again.
    async fn commit_run_with(&mut self, run: &RunId, ops: Vec<TxnOp>) -> Result<(), LeaderError> {
        if !self.runs.contains_key(run) {
            self.fenced.commit(ops).await?;
            return Ok(());
        }
        let Some(mut rec) = self.runs.get(run).map(|l| l.rec.clone()) else {
            return Ok(());
        };
        let ops = super::commit::RunOps {
            rewrites: ops,
            ..Default::default()
        };
        self.commit_run(run, ops, &mut rec, |_, _, _| {}).await?;
        Ok(())
    }
}

/// The operator command's kind, for events.
fn command_kind(command: &RunCommand) -> &'static str {
    match command {
        RunCommand::Cancel => "cancel_run",
        RunCommand::Retry { .. } => "retry",
        RunCommand::Skip { .. } => "skip_job",
        RunCommand::MarkSucceeded { .. } => "mark_item_succeeded",
        RunCommand::Clear { .. } => "clear",
    }
}

/// The DAG of a stored run.
async fn run_dag_sql(l: &Leader, run: &RunId) -> Result<Option<DagName>, LeaderError> {
    Ok(l.store
        .get_run(run)
        .await
        .map_err(store_down)?
        .map(|r| r.dag))
}

/// A store failure that stops this step (it is retried on the next pass).
pub(super) fn store_down(e: StoreError) -> LeaderError {
    let text = super::health::describe(&e);
    tracing::warn!(error = %text, "sql store unavailable; will retry");
    LeaderError::Store(text)
}
