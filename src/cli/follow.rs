//! Following what an operator asked for: the outcome the leader recorded for
//! a command, and the progress of a run, one terminal line per state change —
//! the run started, each job ended (with its item counts), the run ended
//! (with its duration and a console link). `nightshift dev` prints these for
//! the run it triggers, `trigger --wait` and the `runs` verbs for theirs.
//!
//! [`Narrator`] is pure: it compares what the store says now with what it
//! said before and returns the lines to print. [`follow_run`] is the thin
//! loop that polls the store for one run and prints them;
//! [`follow_run_remote`] the same through a console's API (`--server`).

use crate::cli::remote::{self, ApiRunDetail};
use nightshift_client::{Issued, ServerClient};
use nightshift_core::ids::{DagName, JobName, RunId};
use nightshift_core::keyspace::CommandId;
use nightshift_core::state::{JobState, RunState};
use nightshift_store::RecordedOutcome;
use nightshift_store::{JobRun, Run, Store, StoreError};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

/// What has been told about one run so far.
#[derive(Debug, Default)]
pub struct Narrator {
    run: Option<RunState>,
    jobs: BTreeMap<JobName, JobState>,
}

impl Narrator {
    /// The lines that tell what changed since the last call. `console` is the
    /// console's base URL (`http://addr`), for a link to the run.
    pub fn observe(&mut self, run: &Run, jobs: &[JobRun], console: Option<&str>) -> Vec<String> {
        let mut lines = Vec::new();
        let started = matches!(run.state, RunState::Running) || run.state.is_terminal();
        if self.run.is_none() && started {
            lines.push(format!(
                "run {} {} started ({})",
                run.dag, run.business_date, run.run_id
            ));
        }
        for job in jobs {
            let before = self.jobs.insert(job.job.clone(), job.state);
            if job.state.is_terminal() && before != Some(job.state) {
                lines.push(job_line(job));
            }
        }
        if run.state.is_terminal() && self.run != Some(run.state) {
            let took = match (run.started_at_ms, run.ended_at_ms) {
                (Some(start), Some(end)) => format!(" in {}", seconds(end - start)),
                _ => String::new(),
            };
            let why = run
                .error
                .as_deref()
                .map(|e| format!(": {}", first_line(e)))
                .unwrap_or_default();
            let link = console
                .map(|c| format!(" — {c}/runs/{}", run.run_id))
                .unwrap_or_default();
            lines.push(format!(
                "run {} {} {}{took}{why}{link}",
                run.dag, run.business_date, run.state
            ));
        }
        if started {
            self.run = Some(run.state);
        }
        lines
    }
}

fn job_line(job: &JobRun) -> String {
    let mut counts = format!("{}/{} items succeeded", job.succeeded, job.shards);
    for (n, what) in [
        (job.failed, "failed"),
        (job.skipped, "skipped"),
        (job.cancelled, "cancelled"),
    ] {
        if n > 0 {
            counts.push_str(&format!(", {n} {what}"));
        }
    }
    let took = match (job.started_at_ms, job.ended_at_ms) {
        (Some(start), Some(end)) => format!(" in {}", seconds(end - start)),
        _ => String::new(),
    };
    let why = job
        .error
        .as_deref()
        .map(|e| format!(": {}", first_line(e)))
        .unwrap_or_default();
    format!("  job {} {}{took} ({counts}){why}", job.job, job.state)
}

fn seconds(ms: i64) -> String {
    format!("{:.1} s", ms.max(0) as f64 / 1000.0)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// How following a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// The run reached this terminal state.
    Ended(RunState),
    /// The leader rejected the trigger (its reason); no run was created.
    Rejected(String),
    /// Following stopped first (`stop` was raised).
    Stopped,
}

/// Tells `print` the progress of `run` — created by the trigger `command` —
/// until it ends, the leader rejects the trigger, or `stop` is raised. Store
/// errors are logged and retried: this is a view, it never gives up on its
/// own.
pub async fn follow_run(
    store: &Store,
    dag: &DagName,
    command: &CommandId,
    run: &RunId,
    console: Option<&str>,
    mut stop: watch::Receiver<bool>,
    mut print: impl FnMut(&str),
) -> RunEnd {
    let mut narrator = Narrator::default();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return RunEnd::Stopped,
            _ = tick.tick() => {}
        }
        match store.get_run(run).await {
            Ok(Some(row)) => {
                let jobs = match store.job_runs(run).await {
                    Ok(jobs) => jobs,
                    Err(e) => {
                        tracing::warn!(error = %e, run = %run, "reading job runs to follow a run");
                        continue;
                    }
                };
                for line in narrator.observe(&row, &jobs, console) {
                    print(&line);
                }
                if row.state.is_terminal() {
                    return RunEnd::Ended(row.state);
                }
            }
            Ok(None) => match command_outcome(store, "trigger", Some(dag), command).await {
                Ok(Some(outcome)) if outcome.rejected() => return RunEnd::Rejected(outcome.text),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading command outcomes"),
            },
            Err(e) => tracing::warn!(error = %e, run = %run, "reading a run to follow it"),
        }
    }
}

/// [`follow_run`] through a console's API (`--server`): polls
/// `GET /api/v1/runs/{run}` and, while the run does not exist yet, the
/// trigger's outcome. An unreachable console is logged and retried, like
/// a store error; a refusal the operator must fix (a revoked token) ends
/// the follow with an error.
pub async fn follow_run_remote(
    server: &ServerClient,
    issued: &Issued,
    run: &RunId,
    mut print: impl FnMut(&str),
) -> anyhow::Result<RunEnd> {
    let mut narrator = Narrator::default();
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    loop {
        tick.tick().await;
        match server
            .get_json::<ApiRunDetail>(&format!("/runs/{run}"))
            .await
        {
            Ok(detail) => {
                let row = detail.run.to_run()?;
                let jobs = detail
                    .jobs
                    .iter()
                    .map(|j| j.to_job_run(run))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                for line in narrator.observe(&row, &jobs, Some(server.base())) {
                    print(&line);
                }
                if row.state.is_terminal() {
                    return Ok(RunEnd::Ended(row.state));
                }
            }
            Err(e) if remote::is_not_found(&e) => match server.outcome(issued).await {
                Ok(Some(outcome)) if outcome.rejected() => {
                    return Ok(RunEnd::Rejected(outcome.text))
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading the trigger's outcome"),
            },
            Err(e)
                if e.status()
                    .is_some_and(|s| (400..500).contains(&s) && s != 429) =>
            {
                return Err(remote::error(e))
            }
            Err(e) => tracing::warn!(error = %e, run = %run, "reading a run to follow it"),
        }
    }
}

/// The outcome the leader recorded for `command` of `kind` (the `outcome` of
/// its `command_{kind}` event), if it has recorded one yet. The console
/// reads it through the same [`Store::command_outcome`].
pub async fn command_outcome(
    store: &Store,
    kind: &str,
    dag: Option<&DagName>,
    command: &CommandId,
) -> Result<Option<RecordedOutcome>, StoreError> {
    store.command_outcome(command, Some(kind), dag).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use nightshift_core::ids::DagName;
    use nightshift_core::state::TriggerSource;

    fn run(state: RunState, ended: Option<i64>) -> Run {
        Run {
            run_id: RunId::new("r1"),
            dag: DagName::new("eod"),
            dag_version: 1,
            business_date: NaiveDate::from_ymd_opt(2026, 3, 5).unwrap(),
            state,
            trigger_source: TriggerSource::Manual,
            params: serde_json::json!({}),
            scheduled_for_ms: None,
            created_at_ms: 0,
            started_at_ms: Some(1_000),
            ended_at_ms: ended,
            error: None,
        }
    }

    fn job(name: &str, state: JobState, succeeded: u32, failed: u32) -> JobRun {
        JobRun {
            run_id: RunId::new("r1"),
            job: JobName::new(name),
            state,
            shards: 4,
            succeeded,
            failed,
            skipped: 0,
            cancelled: 0,
            started_at_ms: Some(1_000),
            ended_at_ms: state.is_terminal().then_some(2_500),
            error: (failed > 0).then(|| "boom\nstack".to_owned()),
        }
    }

    #[test]
    fn each_change_is_told_once() {
        let mut n = Narrator::default();
        let console = Some("http://127.0.0.1:8080");
        assert!(n
            .observe(&run(RunState::Pending, None), &[], console)
            .is_empty());
        let running = run(RunState::Running, None);
        let a_running = [job("a", JobState::Running, 1, 0)];
        assert_eq!(
            n.observe(&running, &a_running, console),
            ["run eod 2026-03-05 started (r1)"]
        );
        assert!(n.observe(&running, &a_running, console).is_empty());
        let a_done = [job("a", JobState::Succeeded, 4, 0)];
        assert_eq!(
            n.observe(&running, &a_done, console),
            ["  job a succeeded in 1.5 s (4/4 items succeeded)"]
        );
        let both = [
            job("a", JobState::Succeeded, 4, 0),
            job("b", JobState::Failed, 3, 1),
        ];
        let mut failed = run(RunState::Failed, Some(7_250));
        failed.error = Some("job b failed".into());
        assert_eq!(
            n.observe(&failed, &both, console),
            [
                "  job b failed in 1.5 s (3/4 items succeeded, 1 failed): boom",
                "run eod 2026-03-05 failed in 6.2 s: job b failed — http://127.0.0.1:8080/runs/r1",
            ]
        );
        assert!(n.observe(&failed, &both, console).is_empty());
    }

    #[test]
    fn a_run_seen_only_when_it_has_ended_is_still_told_whole() {
        let mut n = Narrator::default();
        let lines = n.observe(
            &run(RunState::Succeeded, Some(3_000)),
            &[job("a", JobState::Succeeded, 4, 0)],
            None,
        );
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("started"));
        assert_eq!(lines[2], "run eod 2026-03-05 succeeded in 2.0 s");
    }
}
