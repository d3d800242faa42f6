//! The leader's SQL writes: attempts, job runs, run states, events and
//! alerts, each written so that repeating it is harmless — a new leader may
//! redo what a crashed one had half done.
//!
//! etcd is the source of truth until a run is persisted: when SQL is down,
//! result batches stay unconsumed in etcd, job and run rows are re-synced on
//! the next pass, and alert and event writes wait in an in-memory outbox. A
//! run's etcd keys are only deleted once its final rows are stored, the
//! outbox is flushed, and its end event and alert resolutions are written
//! (`finish_run`): what a leader had queued about a run dies with it only
//! while the run's keys are still there for its successor.

use crate::alert_key::AlertKey;
use crate::record::{JobRecord, RunRecord};
use nightshift_core::ids::{DagName, ExecutorId, JobName, RunId};
use nightshift_core::state::{AlertRule, AlertSeverity};
use nightshift_store::{JobRun, NewAlert, NewEvent, Store, StoreError};
use std::collections::{BTreeMap, VecDeque};

pub use crate::reconcile::STOPPED_BY_LEADER;

/// The job row a job record stands for.
pub fn job_row(run: &RunId, job: &JobName, rec: &JobRecord) -> JobRun {
    let count = |s: &nightshift_core::keyspace::ItemSet| u32::try_from(s.len()).unwrap_or(u32::MAX);
    JobRun {
        run_id: run.clone(),
        job: job.clone(),
        state: rec.state,
        shards: rec.shards,
        succeeded: count(&rec.succeeded),
        failed: count(&rec.failed),
        skipped: count(&rec.skipped),
        cancelled: count(&rec.cancelled),
        started_at_ms: rec.started_at_ms,
        ended_at_ms: rec.ended_at_ms,
        error: rec.error.clone(),
    }
}

/// What this leader last stored for a run, so unchanged rows are not
/// rewritten each pass. Empty after a leader change: everything is re-synced
/// once (every write is idempotent).
#[derive(Debug, Default)]
pub struct Synced {
    run_state: Option<nightshift_core::state::RunState>,
    jobs: BTreeMap<JobName, JobRun>,
}

/// Brings the run's SQL rows up to its record, as the leader of `term`: a
/// row a later leader wrote is left alone (this leader is deposed and its
/// next commit will fail). Returns whether all is stored.
pub async fn sync_run(
    store: &Store,
    rec: &RunRecord,
    synced: &mut Synced,
    now_ms: i64,
    term: i64,
) -> Result<(), StoreError> {
    for (name, job) in &rec.jobs {
        let row = job_row(&rec.run, name, job);
        if synced.jobs.get(name) == Some(&row) {
            continue;
        }
        match store.upsert_job_run_in_term(&row, term).await {
            Ok(()) => {}
            // Already past this state in SQL (a previous leader wrote more):
            // nothing to do, the next change will move it on.
            Err(StoreError::IllegalTransition { .. }) => {}
            Err(e @ StoreError::Superseded { .. }) => {
                tracing::warn!(error = %e, "a later leader stored this job; leaving it");
            }
            Err(e) => return Err(e),
        }
        synced.jobs.insert(name.clone(), row);
    }
    if synced.run_state != Some(rec.state) {
        let current = store.get_run(&rec.run).await?.map(|r| r.state);
        if current != Some(rec.state) {
            let error =
                (rec.state == nightshift_core::state::RunState::Failed).then(|| failed_jobs(rec));
            if rec.state.is_terminal() && current == Some(nightshift_core::state::RunState::Pending)
            {
                // Pending → terminal directly is allowed only for failures and
                // cancels; pass through running so that history shows a start.
                let _ = store
                    .update_run_state_in_term(
                        &rec.run,
                        nightshift_core::state::RunState::Running,
                        now_ms,
                        None,
                        term,
                    )
                    .await;
            }
            match store
                .update_run_state_in_term(&rec.run, rec.state, now_ms, error.as_deref(), term)
                .await
            {
                Ok(_) | Err(StoreError::IllegalTransition { .. }) => {}
                Err(e @ StoreError::Superseded { .. }) => {
                    tracing::warn!(error = %e, "a later leader stored this run; leaving it");
                }
                Err(e) => return Err(e),
            }
        }
        synced.run_state = Some(rec.state);
    }
    Ok(())
}

/// The run's error: its failed jobs, and the first error line of the
/// first of them that has one, so the run summary says why.
fn failed_jobs(rec: &RunRecord) -> String {
    let failed: Vec<(&JobName, &JobRecord)> = rec
        .jobs
        .iter()
        .filter(|(_, j)| j.state == nightshift_core::state::JobState::Failed)
        .collect();
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    let first = failed
        .iter()
        .find_map(|(n, j)| j.first_error.as_deref().map(|e| format!("{n} {e}")));
    match first {
        Some(first) => format!("failed jobs: {}; first error: {first}", names.join(", ")),
        None => format!("failed jobs: {}", names.join(", ")),
    }
}

/// A SQL write that may wait for the database.
#[derive(Debug, Clone)]
pub enum Pending {
    /// Append an event.
    Event(NewEvent),
    /// Open (or bump) an alert.
    Open(NewAlert),
    /// Resolve the alert with this dedupe key.
    Resolve(AlertKey, i64),
    /// Resolve every active alert of the run raised by one of the rules,
    /// whatever its key (see [`RULES_ENDED_WITH_THE_RUN`]).
    ResolveRun(RunId, &'static [AlertRule], i64),
}

/// Rules whose alerts describe a live run and end with it: an
/// `item_failed` alert stays until a retry redoes the item.
pub const RULES_ENDED_WITH_THE_RUN: &[AlertRule] = &[
    AlertRule::ExecutorLost,
    AlertRule::ItemStalled,
    AlertRule::RunDeadlineMissed,
    AlertRule::NoExecutor,
    AlertRule::RunSlow,
];

/// Events and alerts waiting to be written, in order.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: VecDeque<Pending>,
    /// Whether the last flush failed (SQL unavailable), for the log.
    pub failing: bool,
}

impl Outbox {
    /// Queues a write.
    pub fn push(&mut self, p: Pending) {
        self.queue.push_back(p);
    }

    /// Number of queued writes.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Writes what it can, in order; stops at the first failure, which it
    /// returns (the writes wait for the next flush).
    pub async fn flush(&mut self, store: &Store) -> Result<(), StoreError> {
        while let Some(p) = self.queue.front() {
            let result = match p {
                Pending::Event(e) => store.append_event(e).await.map(|_| ()),
                Pending::Open(a) => store.open_alert(a).await.map(|_| ()),
                Pending::Resolve(key, at) => {
                    store.resolve_alert(&key.to_string(), *at).await.map(|_| ())
                }
                Pending::ResolveRun(run, rules, at) => {
                    store.resolve_run_alerts(run, rules, *at).await.map(|_| ())
                }
            };
            match result {
                Ok(()) => {
                    self.queue.pop_front();
                    if self.failing {
                        tracing::info!("sql store reachable again; outbox flushing");
                        self.failing = false;
                    }
                }
                // The database answered and refused this write: retrying it
                // cannot help, and it must not hold up the writes behind it.
                Err(
                    e @ (StoreError::Conflict { .. }
                    | StoreError::NotFound { .. }
                    | StoreError::IllegalTransition { .. }
                    | StoreError::Corrupt { .. }),
                ) => {
                    tracing::error!(error = %e, write = ?p, "history write refused; dropping it");
                    self.queue.pop_front();
                }
                Err(e) => {
                    if !self.failing {
                        tracing::error!(error = %e, queued = self.queue.len(), "sql store unavailable; keeping history in memory until it is back");
                    }
                    self.failing = true;
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Whether the run's end event `kind` (`run_succeeded`, ...) stamped
/// `at_ms` — the end the run's row records — is stored: a leader that
/// finishes a run again (its predecessor wrote the history and died
/// before removing the run's keys) writes it only once. A run re-opened
/// and ended again has another end time, so another event.
pub async fn has_event(
    store: &Store,
    run: &RunId,
    kind: &str,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let found = store
        .events(&nightshift_store::EventFilter {
            run_id: Some(run.clone()),
            kind: Some(kind.to_owned()),
            from_ms: Some(at_ms),
            to_ms: Some(at_ms.saturating_add(1)),
            limit: Some(1),
            ..Default::default()
        })
        .await?;
    Ok(!found.is_empty())
}

/// Builders of the events and alerts the leader emits.
pub struct Emit<'a> {
    /// `scheduler:<id>`.
    pub actor: &'a str,
}

impl Emit<'_> {
    /// An event about a run (and optionally a job / executor).
    #[allow(clippy::too_many_arguments)]
    pub fn event(
        &self,
        at_ms: i64,
        kind: &str,
        dag: &DagName,
        run: Option<&RunId>,
        job: Option<&JobName>,
        executor: Option<&ExecutorId>,
        detail: serde_json::Value,
    ) -> Pending {
        Pending::Event(NewEvent {
            at_ms,
            kind: kind.to_owned(),
            actor: self.actor.to_owned(),
            dag: Some(dag.clone()),
            run_id: run.cloned(),
            job: job.cloned(),
            item: None,
            executor: executor.cloned(),
            detail,
        })
    }

    /// An event about the scheduler itself, not about a DAG or run (a bad
    /// key, a store outage ending).
    pub fn system(&self, at_ms: i64, kind: &str, detail: serde_json::Value) -> Pending {
        Pending::Event(NewEvent {
            at_ms,
            kind: kind.to_owned(),
            actor: self.actor.to_owned(),
            dag: None,
            run_id: None,
            job: None,
            item: None,
            executor: None,
            detail,
        })
    }
}

/// An alert to open.
#[allow(clippy::too_many_arguments)]
pub fn alert(
    rule: AlertRule,
    key: AlertKey,
    severity: AlertSeverity,
    dag: &DagName,
    run: Option<&RunId>,
    job: Option<&JobName>,
    executor: Option<&ExecutorId>,
    message: String,
    at_ms: i64,
) -> Pending {
    Pending::Open(NewAlert {
        rule,
        dedupe_key: key.to_string(),
        severity,
        dag: Some(dag.clone()),
        run_id: run.cloned(),
        job: job.cloned(),
        item: None,
        executor: executor.cloned(),
        message,
        at_ms,
    })
}

/// A new attempt row for `item` (defined with the pure pass that builds
/// most of them).
pub use crate::reconcile::attempt_row as attempt;
