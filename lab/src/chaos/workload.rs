//! The work the cluster does while faults rain on it: the chaos DAG (the
//! finance demo's ledger jobs, slow items to be caught mid-flight, and
//! stubborn items that ignore cancellation and journal every step),
//! triggered for one business date after another, each run waited for
//! before the next (the ledger of a day is only checkable once it is done).

use nightshift_client::issue;
use nightshift_coord::Coordinator;
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::keyspace::commands::trigger_run_id;
use nightshift_core::keyspace::Command;
use nightshift_core::state::{RunState, TriggerSource};
use nightshift_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Name of the chaos DAG.
pub const DAG: &str = "chaos-settlement";

/// The chaos DAG. Retries are generous and short so that items ride out
/// every fault (a database cut fails items retryably for a few seconds); a
/// run that still fails is evidence of loss, not bad luck.
pub const DAG_TOML: &str = r#"description = "chaos workload: the demo ledger jobs, plus slow items to kill mid-flight"
concurrency = "forbid"

[defaults]
retries       = 30
retry_backoff = "500ms"
max_backoff   = "2s"
failover      = true

[jobs.interest-accrual]
shards = 8

[jobs.slow-revaluation]
handler = "sleep"
shards = 8
params = { millis = 800 }

# Stubborn items: they ignore cancellation and journal each step (executors
# get --sleep-journal-dir), so the journal shows whether an old owner kept
# running once its item moved (it must not).
[jobs.stubborn-settlement]
handler = "sleep"
shards = 4
params = { millis = 3000, steps = 30, ignore_cancel = true, journal = "stubborn.log" }

[jobs.nightly-debits]
depends_on = ["interest-accrual"]
shards = 8

[jobs.ledger-postings]
depends_on = ["nightly-debits", "slow-revaluation"]
shards = 8

[jobs.reconciliation]
depends_on = ["ledger-postings"]
shards = 1
"#;

/// Jobs whose items write the ledger exactly once each, and their shards.
pub const LEDGER_JOBS: [(&str, i64); 3] = [
    ("interest-accrual", 8),
    ("nightly-debits", 8),
    ("ledger-postings", 8),
];

/// The job of stubborn journaling items.
pub const STUBBORN_JOB: &str = "stubborn-settlement";

/// The journal file (in the executors' journal dir) of every stubborn step
/// of every run; each line names its run, job, item, attempt and executor.
pub const STUBBORN_JOURNAL: &str = "stubborn.log";

/// What the workload asked for.
#[derive(Debug, Default)]
pub struct Triggered {
    /// Runs whose trigger was accepted, with their business dates.
    pub runs: Vec<(RunId, chrono::NaiveDate)>,
    /// Triggers that never became runs (rejected or lost), for the report.
    pub unanswered: Vec<String>,
}

/// Triggers runs one after another until `stop` turns true, then waits for
/// the last one to end; `succeeded` counts the runs that ended succeeded,
/// as they end. Failures to reach etcd or SQL are retried: the workload
/// is a client, and clients see the faults too.
pub async fn drive(
    coord: Arc<dyn Coordinator>,
    store: Store,
    prefix: String,
    mut stop: watch::Receiver<bool>,
    succeeded: watch::Sender<usize>,
) -> Triggered {
    let dag = DagName::new(DAG);
    let first = chrono::NaiveDate::from_ymd_opt(2027, 1, 4).unwrap_or_default();
    let mut out = Triggered::default();
    let mut day = 0u64;
    while !*stop.borrow() {
        let date = first + chrono::Days::new(day);
        day += 1;
        let command = Command::Trigger {
            dag: dag.clone(),
            business_date: Some(date),
            params: None,
            rerun: false,
            source: TriggerSource::Manual,
        };
        let id = loop {
            match issue(coord.as_ref(), &prefix, "chaos", command.clone()).await {
                Ok(id) => break Some(id),
                Err(e) => {
                    tracing::info!(error = %e, "chaos workload: trigger failed; retrying");
                    if *stop.borrow() {
                        break None;
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(500), stop.changed()).await;
                }
            }
        };
        let Some(id) = id else { break };
        let run = trigger_run_id(&dag, &id);
        match wait_terminal(&store, &run).await {
            Some(state) => {
                tracing::debug!(run = %run, %date, %state, "chaos workload: run ended");
                if state == RunState::Succeeded {
                    succeeded.send_modify(|n| *n += 1);
                }
                out.runs.push((run, date));
            }
            None => out
                .unanswered
                .push(format!("trigger {id} for {date}: no run {run} appeared")),
        }
    }
    out
}

/// Waits until `run` ends; `None` if it never appears within a minute of
/// the trigger (a rejected trigger creates no run).
async fn wait_terminal(store: &Store, run: &RunId) -> Option<RunState> {
    let appear_by = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match store.get_run(run).await {
            Ok(Some(r)) if r.state.is_terminal() => return Some(r.state),
            Ok(Some(_)) => {}
            Ok(None) if tokio::time::Instant::now() > appear_by => return None,
            Ok(None) => {}
            // The database is being cut by the chaos run itself: keep asking.
            Err(e) => tracing::debug!(error = %e, "chaos workload: reading the run failed"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift_core::dag::{parse_dag, CalendarSet};
    use nightshift_core::ids::JobName;
    use std::path::Path;

    #[test]
    fn the_chaos_dag_is_valid_and_its_ledger_jobs_match_the_checks() {
        let spec = parse_dag(
            Path::new("chaos-settlement.toml"),
            DAG_TOML,
            &CalendarSet::new(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        for (job, shards) in LEDGER_JOBS {
            let found = spec
                .job(&JobName::new(job))
                .unwrap_or_else(|| panic!("no job {job}"));
            assert_eq!(i64::from(found.shards), shards, "{job}");
            assert_eq!(
                found.handler.as_str(),
                job,
                "{job} must run the demo's own handler"
            );
        }
        let stubborn = spec
            .job(&JobName::new(STUBBORN_JOB))
            .unwrap_or_else(|| panic!("no job {STUBBORN_JOB}"));
        assert_eq!(stubborn.handler.as_str(), "sleep");
        assert_eq!(stubborn.params["ignore_cancel"], true);
        assert_eq!(stubborn.params["journal"], STUBBORN_JOURNAL);
        assert!(stubborn.params["steps"].as_u64().unwrap_or(0) > 1);
        let handlers: Vec<&str> = spec.jobs.iter().map(|j| j.handler.as_str()).collect();
        assert!(
            handlers.contains(&"sleep"),
            "slow items for faults to catch: {handlers:?}"
        );
        for h in handlers {
            assert!(
                nightshift_demo::HANDLERS.contains(&h) || h == "sleep",
                "the demo executor does not serve {h}"
            );
        }
    }
}
