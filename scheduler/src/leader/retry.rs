//! Retrying a finished run ("resume from the failed job"): its live state is
//! gone from etcd, so a new run (trigger source `retry`) is built from SQL —
//! the same DAG version, business date and params — in which the jobs that
//! succeeded or were skipped stay done, the items that succeeded stay
//! succeeded, and only the rest runs again.

use super::intake::{store_down, RunRequest};
use super::{Leader, LeaderError};
use crate::record::JobRecord;
use nightshift_coord::TxnOp;
use nightshift_core::dag::DagSpec;
use nightshift_core::ids::{JobName, RunId};
use nightshift_core::keyspace::{CommandOutcome, Effect, ItemSet, Rejection};
use nightshift_core::state::{AttemptOutcome, JobState, TriggerSource};
use std::collections::BTreeMap;

impl Leader {
    /// Starts `new_run` redoing the unfinished work of the finished `run`
    /// (of every job, or of `job` and what was never run). Returns the outcome
    /// for the command's event.
    pub(super) async fn retry_finished(
        &mut self,
        run: &RunId,
        job: Option<&JobName>,
        new_run: RunId,
        delete: TxnOp,
    ) -> Result<CommandOutcome, LeaderError> {
        let Some(old) = self.store.get_run(run).await.map_err(store_down)? else {
            return Ok(Rejection::NoRun.into());
        };
        if !old.state.is_terminal() || old.state == nightshift_core::state::RunState::Succeeded {
            return Ok(Rejection::RunState { state: old.state }.into());
        }
        let Some(version) = self
            .store
            .dag_version(&old.dag, old.dag_version)
            .await
            .map_err(store_down)?
        else {
            return Ok(Rejection::DagVersionGone {
                dag: old.dag.clone(),
                version: old.dag_version,
            }
            .into());
        };
        let spec: DagSpec = match serde_json::from_str(&version.spec_json) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(run = %run, error = %e, "stored dag spec unreadable");
                return Ok(Rejection::SpecUnreadable.into());
            }
        };
        if let Some(job) = job {
            if !spec.jobs.iter().any(|j| &j.name == job) {
                return Ok(Rejection::NoJob { job: job.clone() }.into());
            }
        }
        let rows: BTreeMap<JobName, JobState> = self
            .store
            .job_runs(run)
            .await
            .map_err(store_down)?
            .into_iter()
            .map(|j| (j.job, j.state))
            .collect();
        let mut jobs = BTreeMap::new();
        for js in &spec.jobs {
            let state = rows.get(&js.name).copied().unwrap_or(JobState::Pending);
            let mut rec = JobRecord::pending(js.shards);
            let all = ItemSet::range(0, js.shards);
            let reopen = match state {
                JobState::Succeeded | JobState::Skipped => false,
                JobState::Failed => job.is_none_or(|j| j == &js.name),
                _ => true,
            };
            let succeeded: ItemSet = self
                .store
                .attempts(run, &js.name, None)
                .await
                .map_err(store_down)?
                .into_iter()
                .filter(|a| a.outcome == Some(AttemptOutcome::Succeeded))
                .map(|a| a.item.0)
                .collect();
            match state {
                JobState::Succeeded => rec.succeeded = all,
                JobState::Skipped => rec.skipped = all,
                _ if reopen => rec.succeeded = succeeded,
                _ => {
                    rec.failed = all.difference(&succeeded);
                    rec.succeeded = succeeded;
                }
            }
            if !reopen {
                rec.state = state;
            }
            jobs.insert(js.name.clone(), rec);
        }
        let req = RunRequest {
            run: new_run.clone(),
            dag: old.dag.clone(),
            business_date: Some(old.business_date),
            params: old.params.clone(),
            source: TriggerSource::Retry,
            scheduled_for: None,
            // A retry finishes the same work: a redo's retry stays that redo.
            redo: self.store.run_redo(run).await.map_err(store_down)?,
        };
        match self
            .create_run_with(req, spec, old.dag_version, jobs, vec![delete])
            .await?
        {
            Some(_) => {
                self.store
                    .link_retry(&new_run, run)
                    .await
                    .map_err(store_down)?;
                if let Some(live) = self.runs.get_mut(&new_run) {
                    // Written with the run's next pass.
                    live.rec.retry_of = Some(run.clone());
                }
                Ok(Effect::RetriedAs { run: new_run }.into())
            }
            None => Ok(Rejection::RunExists { run: new_run }.into()),
        }
    }
}
