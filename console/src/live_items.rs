//! Items in flight, from the coordination service rather than SQL.
//!
//! SQL learns of an attempt only when it ends (the leader records attempts
//! as it consumes result batches), so a view built from SQL alone shows a
//! running job's items as `pending`, with no executor, until they finish —
//! and a hung item looks exactly like a queued one. What is running *now*
//! is in the live keys: each executor's assignments
//! (`{p}owners/{executor}/{run}/{job}`, an [`AssignmentRecord`] attached to
//! the executor's lease) and the progress its handlers report
//! (`{p}runs/{run}/jobs/{job}/progress/{executor}`).
//!
//! [`merge_item`] is the rule (pure): an assigned item is running with its
//! executor and attempt unless SQL already holds that attempt's end — the
//! leader leaves finished items listed in an assignment until it next
//! rewrites the key — or the job is over. The reads are bounded: one job's
//! assignments are one `get` per live executor, batched into transactions
//! of at most [`MAX_TXN_OPS`] reads; the console-wide list of running items
//! reads the `owners/` prefix once (one key per executor and live job) and
//! SQL once per live job.
//!
//! Read-only, like [`crate::live`]: the console writes nothing here.

use crate::api::items::item_state;
use crate::error::ApiError;
use crate::AppState;
use nightshift_coord::{KeyValue, Txn, TxnOp, TxnOpResult};
use nightshift_core::ids::{ExecutorId, JobName, RunId};
use nightshift_core::keyspace::{
    assign_key, decode, owners_prefix, parse_assign_key, AssignmentRecord, ItemProgress,
};
use nightshift_core::state::JobState;
use nightshift_store::Attempt;
use std::collections::{BTreeMap, BTreeSet};

/// Most reads in one transaction (etcd's default `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// One item an executor owns now, from its assignment key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveItem {
    /// The owner.
    pub executor: ExecutorId,
    /// The attempt it runs (or is about to run).
    pub attempt: u32,
    /// The leader asked the owner to stop it.
    pub cancelling: bool,
}

/// An item's state once live assignments are taken into account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// `running`, or what [`item_state`] says from SQL.
    pub state: &'static str,
    /// Owner of the running attempt, else the executor of the latest
    /// recorded attempt.
    pub executor: Option<String>,
    /// The running attempt's number (only while running).
    pub attempt: Option<u32>,
    /// The leader asked the owner to stop it (only while running).
    pub cancelling: bool,
}

/// The state of one item from its job's SQL state, its SQL attempts and
/// its live assignment, if any.
///
/// A live assignment makes the item `running` unless the job is over (the
/// keys of a finished run are being deleted) or SQL already records the end
/// of that attempt or a later one (the assignment still lists items that
/// finished since it was written).
pub fn merge_item(job: JobState, attempts: &[Attempt], live: Option<&LiveItem>) -> Merged {
    let latest = attempts.iter().max_by_key(|a| a.attempt);
    let from_sql = || Merged {
        state: item_state(job, attempts),
        executor: latest.map(|a| a.executor.to_string()),
        attempt: None,
        cancelling: false,
    };
    let Some(live) = live else {
        return from_sql();
    };
    if job.is_terminal() {
        return from_sql();
    }
    let recorded_end = latest.is_some_and(|a| a.attempt >= live.attempt && a.outcome.is_some());
    if recorded_end {
        return from_sql();
    }
    Merged {
        state: "running",
        executor: Some(live.executor.to_string()),
        attempt: Some(live.attempt),
        cancelling: live.cancelling,
    }
}

/// The latest sign of life of a running item: its last progress report,
/// else the moment it was handed out at the earliest — the job's start, or
/// the end of the item's previous attempt (a retry or a failover), the later
/// of the two. `None` when nothing is known.
pub fn last_sign_of_life(
    progress_at_ms: Option<i64>,
    job_started_at_ms: Option<i64>,
    attempts: &[Attempt],
) -> Option<i64> {
    let previous_end = attempts.iter().filter_map(|a| a.ended_at_ms).max();
    [progress_at_ms, job_started_at_ms, previous_end]
        .into_iter()
        .flatten()
        .max()
}

/// The items of one assignment record as [`LiveItem`]s, added to `into`.
/// During a failover two owners can list an item for a moment: the higher
/// attempt (the new owner) wins.
pub fn add_assignment(
    into: &mut BTreeMap<u32, LiveItem>,
    executor: &ExecutorId,
    record: &AssignmentRecord,
) {
    for item in record.items.iter() {
        let live = LiveItem {
            executor: executor.clone(),
            attempt: record.attempt(item),
            cancelling: record.cancel.contains(item),
        };
        match into.get(&item) {
            Some(existing) if existing.attempt >= live.attempt => {}
            _ => {
                into.insert(item, live);
            }
        }
    }
}

fn decoded(kv: &KeyValue) -> Option<AssignmentRecord> {
    match decode::<AssignmentRecord>(&kv.value) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(key = %kv.key, error = %e, "skipping undecodable assignment");
            None
        }
    }
}

/// The items of `(run, job)` that live executors own now: one `get` per
/// registered executor (an assignment shares its executor's lease, so an
/// executor without a registration owns nothing), batched.
pub async fn job_assignments(
    state: &AppState,
    run: &RunId,
    job: &JobName,
) -> Result<BTreeMap<u32, LiveItem>, ApiError> {
    let executors: Vec<ExecutorId> = crate::live::executors(state)
        .await?
        .into_iter()
        .map(|e| e.id)
        .collect();
    let mut out = BTreeMap::new();
    for chunk in executors.chunks(MAX_TXN_OPS) {
        let txn = Txn {
            compares: vec![],
            success: chunk
                .iter()
                .map(|e| TxnOp::Get {
                    key: assign_key(&state.prefix, run, job, e),
                })
                .collect(),
            failure: vec![],
        };
        let response = state.coord.txn(txn).await?;
        for (executor, result) in chunk.iter().zip(response.results) {
            if let TxnOpResult::Get(Some(kv)) = result {
                if let Some(record) = decoded(&kv) {
                    add_assignment(&mut out, executor, &record);
                }
            }
        }
    }
    Ok(out)
}

/// Every live assignment, by `(run, job)`: the `owners/` prefix read once.
pub async fn all_assignments(
    state: &AppState,
) -> Result<BTreeMap<(RunId, JobName), BTreeMap<u32, LiveItem>>, ApiError> {
    let (kvs, _) = state
        .coord
        .get_prefix_paged(
            &owners_prefix(&state.prefix),
            nightshift_coord::PAGE_KEYS_ANY,
        )
        .await?;
    let mut out: BTreeMap<(RunId, JobName), BTreeMap<u32, LiveItem>> = BTreeMap::new();
    for kv in &kvs {
        let Some((run, job, executor)) = parse_assign_key(&state.prefix, &kv.key) else {
            continue;
        };
        if let Some(record) = decoded(kv) {
            add_assignment(out.entry((run, job)).or_default(), &executor, &record);
        }
    }
    Ok(out)
}

/// One item running now, anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningItem {
    /// Its run.
    pub run: RunId,
    /// Its job.
    pub job: JobName,
    /// Its index.
    pub item: u32,
    /// Its owner.
    pub executor: ExecutorId,
    /// The attempt it runs.
    pub attempt: u32,
    /// Latest sign of life ([`last_sign_of_life`]), epoch ms.
    pub last_seen_ms: Option<i64>,
    /// Latest progress report.
    pub progress: Option<ItemProgress>,
}

/// Attempts grouped by item index.
pub fn by_item(attempts: Vec<Attempt>) -> BTreeMap<u32, Vec<Attempt>> {
    let mut out: BTreeMap<u32, Vec<Attempt>> = BTreeMap::new();
    for a in attempts {
        out.entry(a.item.0).or_default().push(a);
    }
    out
}

/// The running items of one job from what was read: its SQL state and
/// start, its attempts by item, its live assignments and progress.
pub fn running_of_job(
    run: &RunId,
    job: &JobName,
    job_state: JobState,
    job_started_at_ms: Option<i64>,
    attempts: &BTreeMap<u32, Vec<Attempt>>,
    live: &BTreeMap<u32, LiveItem>,
    progress: &BTreeMap<u32, (ExecutorId, ItemProgress)>,
) -> Vec<RunningItem> {
    let none = Vec::new();
    live.iter()
        .filter_map(|(&item, l)| {
            let tried = attempts.get(&item).unwrap_or(&none);
            let merged = merge_item(job_state, tried, Some(l));
            (merged.state == "running").then(|| {
                let progress = progress
                    .get(&item)
                    .filter(|(e, _)| e == &l.executor)
                    .map(|(_, p)| p.clone());
                RunningItem {
                    run: run.clone(),
                    job: job.clone(),
                    item,
                    executor: l.executor.clone(),
                    attempt: l.attempt,
                    last_seen_ms: last_sign_of_life(
                        progress.as_ref().map(|p| p.at_ms),
                        job_started_at_ms,
                        tried,
                    ),
                    progress,
                }
            })
        })
        .collect()
}

/// Every item running now: live assignments less what SQL says ended, for
/// jobs SQL does not hold as over. Stalest first (oldest sign of life), so
/// a stuck item heads the list.
pub async fn running_items(state: &AppState) -> Result<Vec<RunningItem>, ApiError> {
    let mut out = Vec::new();
    let assignments = all_assignments(state).await?;
    let runs: BTreeSet<&RunId> = assignments.keys().map(|(r, _)| r).collect();
    let mut job_runs = BTreeMap::new();
    for run in runs {
        for jr in state.store.job_runs(run).await? {
            job_runs.insert((jr.run_id.clone(), jr.job.clone()), jr);
        }
    }
    for ((run, job), live) in &assignments {
        let jr = job_runs.get(&(run.clone(), job.clone()));
        let job_state = jr.map_or(JobState::Pending, |j| j.state);
        if job_state.is_terminal() {
            continue;
        }
        let attempts = by_item(state.store.attempts(run, job, None).await?);
        let progress = crate::live::progress(state, run, job).await?;
        out.extend(running_of_job(
            run,
            job,
            job_state,
            jr.and_then(|j| j.started_at_ms),
            &attempts,
            live,
            &progress,
        ));
    }
    out.sort_by_key(|r| (r.last_seen_ms.unwrap_or(i64::MIN), r.item));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift_core::ids::{FencingToken, ItemIndex};
    use nightshift_core::keyspace::ItemSet;
    use nightshift_core::state::AttemptOutcome;
    use nightshift_store::AttemptId;

    fn attempt(item: u32, n: u32, outcome: Option<AttemptOutcome>, end: i64) -> Attempt {
        Attempt {
            id: AttemptId(i64::from(n)),
            run_id: RunId::new("r"),
            job: JobName::new("j"),
            item: ItemIndex(item),
            attempt: n,
            executor: ExecutorId::new("old"),
            fencing_token: FencingToken(1),
            started_at_ms: 0,
            ended_at_ms: outcome.map(|_| end),
            outcome,
            error: None,
            moved_from: None,
        }
    }

    fn live(executor: &str, attempt: u32) -> LiveItem {
        LiveItem {
            executor: ExecutorId::new(executor),
            attempt,
            cancelling: false,
        }
    }

    #[test]
    fn an_assigned_item_without_a_recorded_end_is_running_on_its_owner() {
        let m = merge_item(JobState::Running, &[], Some(&live("e1", 1)));
        assert_eq!(m.state, "running");
        assert_eq!(m.executor.as_deref(), Some("e1"));
        assert_eq!(m.attempt, Some(1));
        // SQL may not have the job yet (its row lags the dispatch).
        let m = merge_item(JobState::Pending, &[], Some(&live("e1", 1)));
        assert_eq!(m.state, "running");
    }

    #[test]
    fn sql_wins_once_it_holds_the_end_of_the_assigned_attempt() {
        use AttemptOutcome::*;
        let done = [attempt(0, 1, Some(Succeeded), 5)];
        let m = merge_item(JobState::Running, &done, Some(&live("e1", 1)));
        assert_eq!(m.state, "succeeded");
        assert_eq!(m.executor.as_deref(), Some("old"));
        assert_eq!(m.attempt, None);
        // A retry: attempt 1 failed, attempt 2 is assigned and running.
        let failed = [attempt(0, 1, Some(Failed), 5)];
        let m = merge_item(JobState::Running, &failed, Some(&live("e2", 2)));
        assert_eq!(
            (m.state, m.executor.as_deref(), m.attempt),
            ("running", Some("e2"), Some(2))
        );
    }

    #[test]
    fn a_finished_job_ignores_leftover_assignments() {
        let m = merge_item(JobState::Cancelled, &[], Some(&live("e1", 1)));
        assert_eq!(m.state, "cancelled");
        let m = merge_item(JobState::Succeeded, &[], Some(&live("e1", 1)));
        assert_eq!(m.state, "pending");
    }

    #[test]
    fn without_an_assignment_sql_decides() {
        use AttemptOutcome::*;
        let m = merge_item(JobState::Running, &[], None);
        assert_eq!((m.state, m.executor), ("pending", None));
        let lost = [attempt(0, 1, Some(Lost), 5)];
        let m = merge_item(JobState::Running, &lost, None);
        assert_eq!(m.state, "pending");
    }

    #[test]
    fn the_new_owner_wins_when_two_list_an_item() {
        let mut items = BTreeMap::new();
        let old = AssignmentRecord {
            items: ItemSet::range(0, 2),
            ..AssignmentRecord::default()
        };
        let new = AssignmentRecord {
            items: [1].into_iter().collect(),
            attempts: BTreeMap::from([(1, 2)]),
            cancel: ItemSet::new(),
            generation: None,
        };
        add_assignment(&mut items, &ExecutorId::new("new"), &new);
        add_assignment(&mut items, &ExecutorId::new("old"), &old);
        assert_eq!(items[&0], live("old", 1));
        assert_eq!(items[&1], live("new", 2));
    }

    #[test]
    fn cancelled_items_are_flagged() {
        let mut items = BTreeMap::new();
        let rec = AssignmentRecord {
            items: ItemSet::range(0, 2),
            attempts: BTreeMap::new(),
            cancel: [1].into_iter().collect(),
            generation: None,
        };
        add_assignment(&mut items, &ExecutorId::new("e"), &rec);
        assert!(!items[&0].cancelling);
        assert!(items[&1].cancelling);
        let m = merge_item(JobState::Running, &[], items.get(&1));
        assert!(m.cancelling);
    }

    #[test]
    fn the_latest_sign_of_life_is_progress_else_the_hand_out() {
        use AttemptOutcome::*;
        assert_eq!(last_sign_of_life(None, None, &[]), None);
        assert_eq!(last_sign_of_life(None, Some(100), &[]), Some(100));
        let failed = [attempt(0, 1, Some(Failed), 400)];
        assert_eq!(last_sign_of_life(None, Some(100), &failed), Some(400));
        assert_eq!(last_sign_of_life(Some(900), Some(100), &failed), Some(900));
    }

    #[test]
    fn running_items_of_a_job_leave_out_what_ended_and_foreign_progress() {
        use AttemptOutcome::*;
        let (run, job) = (RunId::new("r"), JobName::new("j"));
        let mut live_items = BTreeMap::new();
        add_assignment(
            &mut live_items,
            &ExecutorId::new("e1"),
            &AssignmentRecord {
                items: ItemSet::range(0, 3),
                ..AssignmentRecord::default()
            },
        );
        let attempts = by_item(vec![attempt(1, 1, Some(Succeeded), 50)]);
        let progress = BTreeMap::from([
            (
                0,
                (
                    ExecutorId::new("e1"),
                    ItemProgress {
                        done: 1,
                        total: 2,
                        message: None,
                        at_ms: 70,
                    },
                ),
            ),
            (
                2,
                (
                    ExecutorId::new("someone-else"),
                    ItemProgress {
                        done: 1,
                        total: 2,
                        message: None,
                        at_ms: 90,
                    },
                ),
            ),
        ]);
        let running = running_of_job(
            &run,
            &job,
            JobState::Running,
            Some(10),
            &attempts,
            &live_items,
            &progress,
        );
        let items: Vec<(u32, Option<i64>, bool)> = running
            .iter()
            .map(|r| (r.item, r.last_seen_ms, r.progress.is_some()))
            .collect();
        assert_eq!(items, [(0, Some(70), true), (2, Some(10), false)]);
    }
}
