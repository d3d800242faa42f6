//! What a chaos run must leave behind, as pure checks over the history the
//! scheduler stored: every run and item terminal, no two attempts of an item
//! overlapping, every succeeded item recorded once, no alert open without a
//! cause. (The ledger check is the demo's own, [`nightshift_demo::LedgerCheck`].)
//!
//! Each check returns its violations with the evidence, empty when it holds.

use nightshift_core::ids::{ItemIndex, JobName, RunId};
use nightshift_core::state::{AlertRule, AlertState, AttemptOutcome, JobState, RunState};
use nightshift_executor::builtin::journal::{self, JournalStep};
use nightshift_scheduler::leader::history::STOPPED_BY_LEADER;
use nightshift_store::{Alert, Attempt, JobRun, Run};
use std::collections::{BTreeMap, BTreeSet};

/// The history of one run.
#[derive(Debug, Clone)]
pub struct RunHistory {
    /// The run row.
    pub run: Run,
    /// Its job rows.
    pub jobs: Vec<JobRun>,
    /// Every attempt of every item.
    pub attempts: Vec<Attempt>,
}

/// Every triggered run exists and ended; every job ended with each item
/// counted once in a terminal bucket.
pub fn all_terminal(triggered: &[RunId], histories: &[RunHistory]) -> Vec<String> {
    let mut out = Vec::new();
    let known: BTreeMap<&RunId, &RunHistory> =
        histories.iter().map(|h| (&h.run.run_id, h)).collect();
    for run in triggered {
        if !known.contains_key(run) {
            out.push(format!("run {run} was triggered but never recorded"));
        }
    }
    for h in histories {
        if !h.run.state.is_terminal() {
            out.push(format!("run {} is still {}", h.run.run_id, h.run.state));
        }
        for j in &h.jobs {
            if !matches!(
                j.state,
                JobState::Succeeded | JobState::Failed | JobState::Skipped | JobState::Cancelled
            ) {
                out.push(format!(
                    "job {} of run {} is still {}",
                    j.job, h.run.run_id, j.state
                ));
            }
            let counted = j.succeeded + j.failed + j.skipped + j.cancelled;
            if counted != j.shards && j.state != JobState::Skipped {
                out.push(format!(
                    "job {} of run {}: {} items but {} succeeded + {} failed + {} skipped + {} cancelled",
                    j.job, h.run.run_id, j.shards, j.succeeded, j.failed, j.skipped, j.cancelled
                ));
            }
        }
    }
    out
}

/// Every run succeeded (the chaos workload has retries enough to ride out
/// every fault; a failed run is evidence that something was lost).
pub fn all_succeeded(histories: &[RunHistory]) -> Vec<String> {
    histories
        .iter()
        .filter(|h| h.run.state != RunState::Succeeded)
        .map(|h| {
            format!(
                "run {} ended {}: {}",
                h.run.run_id,
                h.run.state,
                h.run.error.as_deref().unwrap_or("no error recorded")
            )
        })
        .collect()
}

/// No two attempts of one item overlap in time, and an attempt the
/// executor reported never carries an older fencing token than the attempt
/// before it (a new owner always holds a newer assignment). An attempt
/// without an end is a violation too: nothing is left running.
///
/// Attempts the leader closed itself (lost with their owner's lease, or
/// stopped by the leader) carry the last token the leader saw for that
/// owner, which can predate the owner's latest assignment when leadership
/// changed in between; their tokens are not compared, their times are.
pub fn no_overlapping_attempts(histories: &[RunHistory]) -> Vec<String> {
    let mut out = Vec::new();
    for h in histories {
        let mut by_item: BTreeMap<(&JobName, ItemIndex), Vec<&Attempt>> = BTreeMap::new();
        for a in &h.attempts {
            by_item.entry((&a.job, a.item)).or_default().push(a);
        }
        for ((job, item), mut attempts) in by_item {
            attempts.sort_by_key(|a| (a.started_at_ms, a.attempt));
            for a in &attempts {
                if a.ended_at_ms.is_none() {
                    out.push(format!(
                        "run {} job {job} item {item}: attempt {} by {} never ended",
                        h.run.run_id, a.attempt, a.executor
                    ));
                }
            }
            for pair in attempts.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let a_end = a.ended_at_ms.unwrap_or(i64::MAX);
                if b.started_at_ms < a_end {
                    out.push(format!(
                        "run {} job {job} item {item}: attempt {} by {} (token {}, {}..{}) overlaps attempt {} by {} (token {}, from {})",
                        h.run.run_id,
                        a.attempt,
                        a.executor,
                        a.fencing_token.0,
                        a.started_at_ms,
                        a.ended_at_ms.map_or_else(|| "open".to_owned(), |e| e.to_string()),
                        b.attempt,
                        b.executor,
                        b.fencing_token.0,
                        b.started_at_ms
                    ));
                }
                let newer = b.fencing_token > a.fencing_token
                    || (b.executor == a.executor && b.fencing_token == a.fencing_token);
                if reported_by_executor(b) && !newer {
                    out.push(format!(
                        "run {} job {job} item {item}: attempt {} by {} has token {}, not newer than attempt {} by {} (token {})",
                        h.run.run_id, b.attempt, b.executor, b.fencing_token.0, a.attempt, a.executor, a.fencing_token.0
                    ));
                }
            }
        }
    }
    out
}

/// Whether the attempt's outcome came from its executor's fenced result
/// (its token is the assignment revision the executor held).
fn reported_by_executor(a: &Attempt) -> bool {
    a.outcome != Some(AttemptOutcome::Lost) && a.error.as_deref() != Some(STOPPED_BY_LEADER)
}

/// Each item has at most one succeeded attempt, and a job's succeeded count
/// is exactly its items with one.
pub fn succeeded_once(histories: &[RunHistory]) -> Vec<String> {
    let mut out = Vec::new();
    for h in histories {
        let mut succeeded: BTreeMap<(&JobName, ItemIndex), usize> = BTreeMap::new();
        for a in h
            .attempts
            .iter()
            .filter(|a| a.outcome == Some(AttemptOutcome::Succeeded))
        {
            *succeeded.entry((&a.job, a.item)).or_default() += 1;
        }
        for ((job, item), n) in &succeeded {
            if *n > 1 {
                out.push(format!(
                    "run {} job {job} item {item}: {n} succeeded attempts",
                    h.run.run_id
                ));
            }
        }
        for j in &h.jobs {
            let items = succeeded.keys().filter(|(job, _)| **job == j.job).count();
            if u32::try_from(items).ok() != Some(j.succeeded) {
                out.push(format!(
                    "job {} of run {}: {} items succeeded but {items} have a succeeded attempt",
                    j.job, h.run.run_id, j.succeeded
                ));
            }
        }
    }
    out
}

/// Alerts still open (or acknowledged) once everything is healed must have
/// a cause that still holds: only a failed job of a failed run qualifies.
pub fn no_alert_without_cause(alerts: &[Alert], histories: &[RunHistory]) -> Vec<String> {
    let failed: BTreeSet<&RunId> = histories
        .iter()
        .filter(|h| h.run.state == RunState::Failed)
        .map(|h| &h.run.run_id)
        .collect();
    alerts
        .iter()
        .filter(|a| a.state != AlertState::Resolved)
        .filter(|a| {
            !(a.rule == AlertRule::ItemFailed
                && a.run_id.as_ref().is_some_and(|r| failed.contains(r)))
        })
        .map(|a| {
            format!(
                "alert {} ({}, {}) still {} without cause: {}",
                a.id, a.rule, a.dedupe_key, a.state, a.message
            )
        })
        .collect()
}

/// The stubborn items' journal: steps of two different owners of one item
/// never interleave in time (an owner that lost its item stopped before
/// the next one started). A run that succeeded must have journaled steps:
/// an empty journal means the check saw nothing.
pub fn stubborn_never_interleaved(steps: &[JournalStep], histories: &[RunHistory]) -> Vec<String> {
    let mut out = journal::interleavings(steps);
    let journaled: BTreeSet<&str> = steps.iter().map(|s| s.run.as_str()).collect();
    for h in histories
        .iter()
        .filter(|h| h.run.state == RunState::Succeeded)
    {
        if !journaled.contains(h.run.run_id.as_str()) {
            out.push(format!(
                "run {} succeeded but journaled no stubborn step",
                h.run.run_id
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift_core::ids::{DagName, ExecutorId, FencingToken};
    use nightshift_core::state::{AlertSeverity, TriggerSource};
    use nightshift_store::{AlertId, AttemptId};

    fn run(id: &str, state: RunState) -> Run {
        Run {
            run_id: RunId::new(id),
            dag: DagName::new("d"),
            dag_version: 1,
            business_date: chrono::NaiveDate::from_ymd_opt(2027, 1, 4).unwrap(),
            state,
            trigger_source: TriggerSource::Manual,
            params: serde_json::json!({}),
            scheduled_for_ms: None,
            created_at_ms: 0,
            started_at_ms: Some(0),
            ended_at_ms: Some(100),
            error: None,
        }
    }

    fn job(run: &str, shards: u32, succeeded: u32) -> JobRun {
        JobRun {
            run_id: RunId::new(run),
            job: JobName::new("a"),
            state: JobState::Succeeded,
            shards,
            succeeded,
            failed: 0,
            skipped: 0,
            cancelled: 0,
            started_at_ms: Some(0),
            ended_at_ms: Some(100),
            error: None,
        }
    }

    fn attempt(
        item: u32,
        n: u32,
        exec: &str,
        token: i64,
        span: (i64, i64),
        outcome: AttemptOutcome,
    ) -> Attempt {
        Attempt {
            id: AttemptId(i64::from(item * 100 + n)),
            run_id: RunId::new("r"),
            job: JobName::new("a"),
            item: ItemIndex(item),
            attempt: n,
            executor: ExecutorId::new(exec),
            fencing_token: FencingToken(token),
            started_at_ms: span.0,
            ended_at_ms: Some(span.1),
            outcome: Some(outcome),
            error: None,
            moved_from: None,
        }
    }

    fn history(attempts: Vec<Attempt>, succeeded: u32) -> Vec<RunHistory> {
        vec![RunHistory {
            run: run("r", RunState::Succeeded),
            jobs: vec![job("r", 2, succeeded)],
            attempts,
        }]
    }

    #[test]
    fn a_failover_in_order_passes_every_check() {
        let h = history(
            vec![
                attempt(0, 1, "e1", 10, (0, 50), AttemptOutcome::Lost),
                attempt(0, 2, "e2", 20, (60, 90), AttemptOutcome::Succeeded),
                attempt(1, 1, "e2", 20, (0, 40), AttemptOutcome::Succeeded),
            ],
            2,
        );
        assert!(all_terminal(&[RunId::new("r")], &h).is_empty());
        assert!(no_overlapping_attempts(&h).is_empty());
        assert!(succeeded_once(&h).is_empty());
        assert!(all_succeeded(&h).is_empty());
    }

    #[test]
    fn overlapping_attempts_are_reported_with_their_owners() {
        let h = history(
            vec![
                attempt(0, 1, "e1", 10, (0, 80), AttemptOutcome::Lost),
                attempt(0, 2, "e2", 20, (60, 90), AttemptOutcome::Succeeded),
                attempt(1, 1, "e2", 20, (0, 40), AttemptOutcome::Succeeded),
            ],
            2,
        );
        let v = no_overlapping_attempts(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("by e1") && v[0].contains("by e2"), "{v:?}");
    }

    #[test]
    fn a_new_owner_with_an_old_token_is_reported() {
        let h = history(
            vec![
                attempt(0, 1, "e1", 10, (0, 50), AttemptOutcome::Lost),
                attempt(0, 2, "e2", 10, (60, 90), AttemptOutcome::Succeeded),
            ],
            1,
        );
        assert_eq!(no_overlapping_attempts(&h).len(), 1);
    }

    #[test]
    fn tokens_of_attempts_the_leader_closed_are_not_compared_but_their_times_are() {
        // Moved to e2, then e2 lost too before the leader saw its new
        // assignment's revision: the leader-recorded token is e2's older one.
        let mut h = history(
            vec![
                attempt(0, 1, "e1", 10, (0, 50), AttemptOutcome::Lost),
                attempt(0, 2, "e2", 10, (50, 80), AttemptOutcome::Lost),
                attempt(0, 3, "e1", 20, (85, 90), AttemptOutcome::Succeeded),
                attempt(1, 1, "e2", 20, (0, 40), AttemptOutcome::Succeeded),
            ],
            2,
        );
        assert!(
            no_overlapping_attempts(&h).is_empty(),
            "{:?}",
            no_overlapping_attempts(&h)
        );
        h[0].attempts[1].started_at_ms = 40;
        assert_eq!(no_overlapping_attempts(&h).len(), 1, "times still count");
        h[0].attempts[1].started_at_ms = 50;
        h[0].attempts[2].fencing_token = FencingToken(10);
        assert_eq!(
            no_overlapping_attempts(&h).len(),
            1,
            "a reported attempt's token still counts"
        );
    }

    #[test]
    fn an_item_succeeding_twice_is_reported() {
        let h = history(
            vec![
                attempt(0, 1, "e1", 10, (0, 50), AttemptOutcome::Succeeded),
                attempt(0, 2, "e2", 20, (60, 90), AttemptOutcome::Succeeded),
                attempt(1, 1, "e2", 20, (0, 40), AttemptOutcome::Succeeded),
            ],
            2,
        );
        let v = succeeded_once(&h);
        assert!(
            v.iter().any(|m| m.contains("2 succeeded attempts")),
            "{v:?}"
        );
    }

    #[test]
    fn a_missing_success_and_a_lost_run_are_reported() {
        let h = history(
            vec![attempt(0, 1, "e1", 10, (0, 50), AttemptOutcome::Succeeded)],
            2,
        );
        assert_eq!(succeeded_once(&h).len(), 1);
        let lost = all_terminal(&[RunId::new("r"), RunId::new("gone")], &h);
        assert_eq!(
            lost,
            vec!["run gone was triggered but never recorded".to_owned()]
        );
        let mut running = h.clone();
        running[0].run.state = RunState::Running;
        running[0].jobs[0].state = JobState::Running;
        running[0].jobs[0].succeeded = 1;
        assert_eq!(
            all_terminal(&[], &running).len(),
            3,
            "{:?}",
            all_terminal(&[], &running)
        );
        assert_eq!(all_succeeded(&running).len(), 1);
    }

    fn alert(rule: AlertRule, state: AlertState, run: &str) -> Alert {
        Alert {
            id: AlertId(1),
            rule,
            dedupe_key: format!("{rule}:{run}"),
            severity: AlertSeverity::Warning,
            state,
            dag: None,
            run_id: Some(RunId::new(run)),
            job: None,
            item: None,
            executor: None,
            message: "m".into(),
            opened_at_ms: 0,
            last_seen_at_ms: 0,
            acked_at_ms: None,
            acked_by: None,
            resolved_at_ms: None,
            notified_at_ms: None,
        }
    }

    #[test]
    fn only_a_failed_run_keeps_an_alert_open() {
        let mut h = history(vec![], 0);
        h.push(RunHistory {
            run: run("f", RunState::Failed),
            jobs: vec![],
            attempts: vec![],
        });
        let alerts = vec![
            alert(AlertRule::ItemFailed, AlertState::Open, "f"),
            alert(AlertRule::ExecutorLost, AlertState::Resolved, "r"),
        ];
        assert!(no_alert_without_cause(&alerts, &h).is_empty());
        let stale = vec![
            alert(AlertRule::ExecutorLost, AlertState::Open, "r"),
            alert(AlertRule::ItemFailed, AlertState::Acknowledged, "r"),
        ];
        assert_eq!(no_alert_without_cause(&stale, &h).len(), 2);
    }

    #[test]
    fn stubborn_steps_of_two_owners_must_not_interleave_and_must_exist() {
        let h = history(vec![], 0);
        let text = |late: i64| {
            format!(
                "r stubborn 0 1 e1 1 100\nr stubborn 0 2 e2 1 300\nr stubborn 0 1 e1 2 {late}\n"
            )
        };
        let fine = nightshift_executor::builtin::journal::parse(&text(200));
        assert!(stubborn_never_interleaved(&fine, &h).is_empty());
        let late = nightshift_executor::builtin::journal::parse(&text(350));
        assert_eq!(stubborn_never_interleaved(&late, &h).len(), 1);
        let v = stubborn_never_interleaved(&[], &h);
        assert_eq!(
            v,
            vec!["run r succeeded but journaled no stubborn step".to_owned()]
        );
    }
}
