//! Re-opening a finished run (a clear, or a mark-succeeded on a failed
//! job, after the run ended): once a run is persisted its etcd keys are
//! deleted, so its live record is rebuilt from SQL — the run row, its DAG
//! version, its job rows and every attempt — and the command is applied to
//! that ([`crate::commands::apply`]). The rebuilt record keeps each item's
//! highest attempt number, so re-run items get new attempts.

use super::intake::store_down;
use super::{Leader, LeaderError};
use crate::alert_key::AlertKey;
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
        let redo = self.store.run_redo(run).await.map_err(store_down)?;
        let mut rec = rebuild(&row, spec, &jobs, &attempts);
        rec.retry_of = retry_of;
        // Re-run items keep the run's work keys, redo generation included.
        rec.redo = redo;
        Ok(Ok(rec))
    }
}

/// Dedupe keys of the failure alerts a finished run's success settles
/// (pure): `job_failed` of each job that succeeded in the end — after a
/// clear, a mark-succeeded or a retry within the run — and, for a retry
/// run, the same alerts of the run it retries. Resolving an alert that is
/// not open changes nothing, so the keys need not be known to be open.
pub fn recovered_alerts(rec: &RunRecord) -> Vec<AlertKey> {
    let mut keys = Vec::new();
    for (name, job) in &rec.jobs {
        if job.state != JobState::Succeeded {
            continue;
        }
        keys.push(AlertKey::JobFailed {
            run: rec.run.clone(),
            job: name.clone(),
        });
        if let Some(origin) = &rec.retry_of {
            keys.push(AlertKey::JobFailed {
                run: origin.clone(),
                job: name.clone(),
            });
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
                rec.set_attempt(item, attempt);
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
        // The caller sets it from SQL (`runs.redo`).
        redo: 0,
        run: row.run_id.clone(),
        dag: spec.name.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use nightshift_core::dag::JobSpec;
    use nightshift_core::ids::{DagName, ExecutorId, FencingToken, ItemIndex};
    use nightshift_core::state::{RunState, TriggerSource};
    use nightshift_store::AttemptId;

    fn spec() -> DagSpec {
        let mut spec: DagSpec = serde_json::from_value(serde_json::json!({
            "name": "d", "description": null, "schedule": null, "timezone": "UTC", "calendar": null,
            "concurrency": "forbid", "misfire": "skip", "deadline": null, "jobs": []
        }))
        .unwrap();
        let mut work = JobSpec::new("work");
        work.shards = 3;
        let mut after = JobSpec::new("after");
        after.depends_on = vec![JobName::new("work")];
        spec.jobs = vec![work, after];
        spec
    }

    fn job_row(job: &str, state: JobState, succeeded: u32, failed: u32) -> JobRun {
        JobRun {
            run_id: RunId::new("r"),
            job: JobName::new(job),
            state,
            shards: 3,
            succeeded,
            failed,
            skipped: 0,
            cancelled: 0,
            started_at_ms: (state == JobState::Failed).then_some(10),
            ended_at_ms: Some(20),
            error: None,
        }
    }

    fn attempt(item: u32, n: u32, outcome: AttemptOutcome) -> Attempt {
        Attempt {
            id: AttemptId(i64::from(item * 10 + n)),
            run_id: RunId::new("r"),
            job: JobName::new("work"),
            item: ItemIndex(item),
            attempt: n,
            executor: ExecutorId::new("e"),
            fencing_token: FencingToken(1),
            started_at_ms: 10,
            ended_at_ms: Some(11),
            outcome: Some(outcome),
            error: None,
            moved_from: None,
        }
    }

    #[test]
    fn a_failed_run_is_rebuilt_from_its_last_attempts() {
        let row = Run {
            run_id: RunId::new("r"),
            dag: DagName::new("d"),
            dag_version: 2,
            business_date: NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
            state: RunState::Failed,
            trigger_source: TriggerSource::Schedule,
            params: serde_json::json!({"k": 1}),
            scheduled_for_ms: Some(5),
            created_at_ms: 5,
            started_at_ms: Some(6),
            ended_at_ms: Some(30),
            error: Some("failed jobs: work".into()),
        };
        let jobs = [
            job_row("work", JobState::Failed, 2, 1),
            job_row("after", JobState::UpstreamFailed, 0, 0),
        ];
        let attempts = BTreeMap::from([(
            JobName::new("work"),
            vec![
                attempt(0, 1, AttemptOutcome::Succeeded),
                attempt(1, 1, AttemptOutcome::Failed),
                attempt(1, 2, AttemptOutcome::Succeeded),
                attempt(2, 1, AttemptOutcome::Lost),
                attempt(2, 2, AttemptOutcome::Failed),
            ],
        )]);
        let rec = rebuild(&row, spec(), &jobs, &attempts);
        assert_eq!((rec.state, rec.dag_version), (RunState::Failed, 2));
        assert_eq!(
            rec.deadline_ms, None,
            "a re-run does not page for the old deadline"
        );
        let work = &rec.jobs[&JobName::new("work")];
        assert_eq!(work.state, JobState::Failed);
        assert_eq!(work.succeeded.iter().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(work.failed.iter().collect::<Vec<_>>(), vec![2]);
        // The highest attempt is kept: a re-run item gets attempt 3.
        assert_eq!(
            (work.attempt(0), work.attempt(1), work.attempt(2)),
            (1, 2, 2)
        );
        let after = &rec.jobs[&JobName::new("after")];
        assert_eq!(after.state, JobState::UpstreamFailed);
        assert!(after.done().is_empty());
    }

    #[test]
    fn a_retry_run_that_succeeds_settles_its_origin_alerts() {
        let row = Run {
            run_id: RunId::new("r2"),
            dag: DagName::new("d"),
            dag_version: 1,
            business_date: NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
            state: RunState::Succeeded,
            trigger_source: TriggerSource::Retry,
            params: serde_json::Value::Null,
            scheduled_for_ms: None,
            created_at_ms: 5,
            started_at_ms: Some(6),
            ended_at_ms: Some(30),
            error: None,
        };
        let mut rec = rebuild(&row, spec(), &[], &BTreeMap::new());
        for job in rec.jobs.values_mut() {
            job.state = JobState::Succeeded;
        }
        rec.jobs.get_mut(&JobName::new("after")).unwrap().state = JobState::Failed;
        let texts = |rec: &RunRecord| -> Vec<String> {
            recovered_alerts(rec)
                .iter()
                .map(|k| k.to_string())
                .collect()
        };
        assert_eq!(texts(&rec), vec!["job_failed:r2:work".to_owned()]);
        rec.retry_of = Some(RunId::new("r1"));
        assert_eq!(
            texts(&rec),
            vec![
                "job_failed:r2:work".to_owned(),
                "job_failed:r1:work".to_owned()
            ]
        );
    }
}
