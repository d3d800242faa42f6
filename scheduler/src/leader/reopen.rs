//! Re-opening a finished run (a clear, or a mark-succeeded on a failed
//! job, after the run ended): once a run is persisted its etcd keys are
//! deleted, so its live record is rebuilt from SQL — the run row, its DAG
//! version, its job rows and every attempt — and the command is applied to
//! that ([`crate::commands::apply`]). The rebuilt record keeps each item's
//! highest attempt number, so re-run items get new attempts.

use super::intake::store_down;
use super::{Leader, LeaderError};
use crate::record::{JobRecord, RunRecord};
use nightshift_core::dag::DagSpec;
use nightshift_core::ids::{JobName, RunId};
use nightshift_core::keyspace::{ItemSet, Rejection};
use nightshift_core::state::{AttemptOutcome, JobState};
use nightshift_store::{Attempt, JobRun, Run};
use std::collections::BTreeMap;

impl Leader {
    /// The live record of the finished `run`, rebuilt from SQL; a
    /// rejection when there is no such run, it has not ended (it is then
    /// live elsewhere or being created), or its DAG version is unreadable.
    pub(super) async fn reopen_from_sql(
        &mut self,
        run: &RunId,
    ) -> Result<Result<RunRecord, Rejection>, LeaderError> {
        let Some(row) = self.store.get_run(run).await.map_err(store_down)? else {
            return Ok(Err(Rejection::NoRun));
        };
        if !row.state.is_terminal() {
            return Ok(Err(Rejection::RunNotLive));
        }
        let Some(version) = self
            .store
            .dag_version(&row.dag, row.dag_version)
            .await
            .map_err(store_down)?
        else {
            return Ok(Err(Rejection::DagVersionGone {
                dag: row.dag.clone(),
                version: row.dag_version,
            }));
        };
        let Ok(spec) = serde_json::from_str::<DagSpec>(&version.spec_json) else {
            return Ok(Err(Rejection::SpecUnreadable));
        };
        let jobs = self.store.job_runs(run).await.map_err(store_down)?;
        let mut attempts = BTreeMap::new();
        for js in &spec.jobs {
            let list = self
                .store
                .attempts(run, &js.name, None)
                .await
                .map_err(store_down)?;
            attempts.insert(js.name.clone(), list);
        }
        let retry_of = self.store.retry_of(run).await.map_err(store_down)?;
        let mut rec = rebuild(&row, spec, &jobs, &attempts);
        rec.retry_of = retry_of;
        Ok(Ok(rec))
    }
}

/// Dedupe keys of the failure alerts a finished run's success settles
/// (pure): `job_failed` of each job that succeeded in the end — after a
/// clear, a mark-succeeded or a retry within the run — and, for a retry
/// run, the same alerts of the run it retries. Resolving an alert that is
/// not open changes nothing, so the keys need not be known to be open.
pub fn recovered_alerts(rec: &RunRecord) -> Vec<String> {
    let mut keys = Vec::new();
    for (name, job) in &rec.jobs {
        if job.state != JobState::Succeeded {
            continue;
        }
        keys.push(format!("job_failed:{}:{name}", rec.run));
        if let Some(origin) = &rec.retry_of {
            keys.push(format!("job_failed:{origin}:{name}"));
        }
    }
    keys
}

/// The record of a finished run from its SQL history (pure). Items take
/// their state from their last attempt; a succeeded or skipped job counts
/// all its items so (mark-succeeded items have no attempt); a job that
/// never ran is left with no item done, so a re-evaluation runs it afresh.
pub fn rebuild(
    row: &Run,
    spec: DagSpec,
    jobs: &[JobRun],
    attempts: &BTreeMap<JobName, Vec<Attempt>>,
) -> RunRecord {
    let rows: BTreeMap<&JobName, &JobRun> = jobs.iter().map(|j| (&j.job, j)).collect();
    let mut out = BTreeMap::new();
    for js in &spec.jobs {
        let mut rec = JobRecord::pending(js.shards);
        let Some(jr) = rows.get(&js.name) else {
            out.insert(js.name.clone(), rec);
            continue;
        };
        rec.state = jr.state;
        rec.started_at_ms = jr.started_at_ms;
        rec.ended_at_ms = jr.ended_at_ms;
        rec.error = jr.error.clone();
        let mut last: BTreeMap<u32, (u32, Option<AttemptOutcome>)> = BTreeMap::new();
        for a in attempts.get(&js.name).into_iter().flatten() {
            let e = last.entry(a.item.0).or_insert((0, None));
            if a.attempt >= e.0 {
                *e = (a.attempt, a.outcome);
            }
        }
        for (&item, &(attempt, _)) in &last {
            if attempt > 1 {
                rec.attempts.insert(item, attempt);
            }
        }
        let all = ItemSet::range(0, js.shards);
        let with = |want: &dyn Fn(Option<AttemptOutcome>) -> bool| -> ItemSet {
            last.iter()
                .filter(|(_, (_, o))| want(*o))
                .map(|(&i, _)| i)
                .collect()
        };
        let succeeded = with(&|o| o == Some(AttemptOutcome::Succeeded));
        match jr.state {
            JobState::Succeeded => rec.succeeded = all,
            JobState::Skipped if jr.skipped == 0 && jr.started_at_ms.is_none() => {}
            JobState::Skipped => {
                rec.skipped = all.difference(&succeeded);
                rec.succeeded = succeeded;
            }
            JobState::Failed => {
                rec.cancelled = with(&|o| o == Some(AttemptOutcome::Cancelled));
                rec.failed = all.difference(&succeeded).difference(&rec.cancelled);
                rec.succeeded = succeeded;
            }
            JobState::Cancelled => {
                rec.cancelled = all.difference(&succeeded);
                rec.succeeded = succeeded;
            }
            // Never ran (upstream failed) or never ended: nothing done.
            _ => {}
        }
        out.insert(js.name.clone(), rec);
    }
    RunRecord {
        run: row.run_id.clone(),
        spec,
        dag_version: row.dag_version,
        business_date: row.business_date,
        params: row.params.clone(),
        source: row.trigger_source,
        scheduled_for_ms: row.scheduled_for_ms,
        created_at_ms: row.created_at_ms,
        state: row.state,
        // The deadline was the first night's; a re-run does not page for it.
        deadline_ms: None,
        jobs: out,
        lost_executors: Default::default(),
        open_alerts: Default::default(),
        retry_of: None,
        slow_after_ms: None,
    }
}
