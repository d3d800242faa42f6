//! The terminal lines `nightshift dev` prints for the runs it triggered: one
//! line per state change — the run started, each job ended (with its item
//! counts), the run ended (with its duration and a console link) — and
//! nothing else, so a newcomer's first screen stays readable while the full
//! log goes to a file.
//!
//! [`Narrator`] is pure: it compares what the store says now with what it
//! said before and returns the lines to print. [`follow`] is the thin loop
//! that polls the store for one run and prints them.

use nightshift_core::ids::{JobName, RunId};
use nightshift_core::keyspace::CommandId;
use nightshift_core::state::{JobState, RunState};
use nightshift_store::{EventFilter, JobRun, Run, Store};
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
    /// console's base URL (`http://addr`), used for the link to the run.
    pub fn observe(&mut self, run: &Run, jobs: &[JobRun], console: &str) -> Vec<String> {
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
            lines.push(format!(
                "run {} {} {}{took}{why} — {console}/runs/{}",
                run.dag, run.business_date, run.state, run.run_id
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

/// Prints the progress of the run a trigger `command` creates until it ends,
/// the leader rejects the trigger, or `stop` is raised. Store errors are
/// logged and retried: this is a view, it must never stop `dev`.
pub async fn follow(
    store: Store,
    dag: String,
    command: CommandId,
    run: RunId,
    console: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut narrator = Narrator::default();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        match store.get_run(&run).await {
            Ok(Some(row)) => {
                let jobs = match store.job_runs(&run).await {
                    Ok(jobs) => jobs,
                    Err(e) => {
                        tracing::warn!(error = %e, run = %run, "reading job runs for the terminal");
                        continue;
                    }
                };
                for line in narrator.observe(&row, &jobs, &console) {
                    println!("{line}");
                }
                if row.state.is_terminal() {
                    return;
                }
            }
            Ok(None) => {
                if let Some(reason) = rejection(&store, &command).await {
                    println!("trigger of {dag} {reason}");
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, run = %run, "reading the run for the terminal"),
        }
    }
}

/// The leader's reason if it rejected the trigger `command`.
async fn rejection(store: &Store, command: &CommandId) -> Option<String> {
    let filter = EventFilter {
        kind: Some("command_trigger".into()),
        newest_first: true,
        limit: Some(50),
        ..EventFilter::default()
    };
    let events = store.events(&filter).await.ok()?;
    events.into_iter().find_map(|e| {
        let detail = &e.event.detail;
        if detail["command_id"].as_str() != Some(command.as_str()) {
            return None;
        }
        detail["outcome"]
            .as_str()
            .filter(|o| o.starts_with("rejected"))
            .map(str::to_owned)
    })
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
        let console = "http://127.0.0.1:8080";
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
            "http://x",
        );
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("started"));
        assert!(lines[2].starts_with("run eod 2026-03-05 succeeded in 2.0 s"));
    }
}
