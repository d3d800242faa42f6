//! Property tests of the pure job pass, on random running jobs: items
//! finished, owned, unowned or waiting for a retry; owners whose
//! assignment is present or gone (some of them re-registered under the
//! same id); result batches from owners and strangers, for current and
//! stale attempts, some undecodable; progress reports old enough to stall.

use super::*;
use crate::record::Owner;
use nightshift_core::ids::{HandlerName, ItemIndex};
use nightshift_core::keyspace::{ItemProgress, ItemResult};
use proptest::prelude::*;
use std::time::Duration;

const EXECS: usize = 4;

fn exec(i: usize) -> ExecutorId {
    ExecutorId::new(format!("e{i}"))
}

/// One random snapshot, owned (the [`JobSnapshot`] borrows from it).
#[derive(Debug, Clone)]
struct Case {
    run: RunId,
    dag: DagName,
    name: JobName,
    spec: JobSpec,
    job: JobRecord,
    open_alerts: BTreeSet<AlertKey>,
    present: BTreeMap<ExecutorId, i64>,
    batches: Vec<ReadBatch>,
    progress: Vec<(ExecutorId, ProgressRecord)>,
    executors: BTreeMap<ExecutorId, ExecutorInfo>,
    now: i64,
}

impl Case {
    fn step(&self) -> JobStep {
        reconcile_job(JobSnapshot {
            run: &self.run,
            dag: &self.dag,
            name: &self.name,
            spec: &self.spec,
            job: self.job.clone(),
            open_alerts: self.open_alerts.clone(),
            present: self.present.clone(),
            batches: self.batches.clone(),
            progress: self.progress.clone(),
            executors: &self.executors,
            now: self.now,
        })
    }

    /// The snapshot the next pass reads once `step`'s etcd effects
    /// committed: its record, consumed batches gone, every rewritten
    /// assignment present under a new revision that the record notes as
    /// the owner's token (what the leader does once the txn answered).
    /// With `keep_batches` the deletes are taken as lost (a delete that
    /// came after the record's txn and never happened).
    fn settled(&self, step: &JobStep, keep_batches: bool) -> Case {
        let mut next = self.clone();
        next.job = step.job.clone();
        next.open_alerts = step.open_alerts.clone();
        let mut revision = 1_000;
        for effect in &step.effects {
            match effect {
                Effect::DeleteBatch { key } if !keep_batches => {
                    next.batches.retain(|b| &b.key != key);
                }
                Effect::PutAssignment { executor, .. } => {
                    revision += 1;
                    next.present.insert(executor.clone(), revision);
                    if let Some(owner) = next.job.owners.get_mut(executor) {
                        owner.token = revision;
                    }
                }
                _ => {}
            }
        }
        next
    }
}

fn outcome(i: u8) -> ResultOutcome {
    match i % 5 {
        0 => ResultOutcome::Succeeded,
        1 => ResultOutcome::Failed,
        2 => ResultOutcome::Skipped,
        3 => ResultOutcome::Cancelled,
        _ => ResultOutcome::TimedOut,
    }
}

type BatchSeed = (usize, Vec<(u32, u32, u8, bool, bool)>, bool);

#[allow(clippy::type_complexity)]
fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec((0u8..8, 1u32..3, any::<bool>()), 1..24),
        (
            any::<bool>(),
            0u32..3,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        proptest::collection::vec((any::<bool>(), any::<bool>()), EXECS),
        proptest::collection::vec(
            (
                0..EXECS,
                proptest::collection::vec(
                    (0u32..24, 1u32..4, any::<u8>(), any::<bool>(), any::<bool>()),
                    0..6,
                ),
                any::<bool>(),
            ),
            0..4,
        ),
        proptest::collection::vec(proptest::option::of((0u32..24, 0i64..200)), EXECS),
        100i64..1_200,
    )
        .prop_map(
            |(
                items,
                (failover, retries, backoff, item_timeout, timeout),
                execs,
                batches,
                progress,
                now,
            )| {
                build(
                    items,
                    (failover, retries, backoff, item_timeout, timeout),
                    execs,
                    batches,
                    progress,
                    now,
                )
            },
        )
}

fn build(
    items: Vec<(u8, u32, bool)>,
    (failover, retries, backoff, item_timeout, timeout): (bool, u32, bool, bool, bool),
    execs: Vec<(bool, bool)>,
    batches: Vec<BatchSeed>,
    progress: Vec<Option<(u32, i64)>>,
    now: i64,
) -> Case {
    let shards = u32::try_from(items.len()).unwrap_or(1);
    let mut spec = JobSpec::new("work");
    spec.shards = shards;
    spec.failover = failover;
    spec.retries = retries;
    spec.retry_backoff = if backoff {
        Duration::from_millis(100)
    } else {
        Duration::ZERO
    };
    spec.max_backoff = Duration::from_millis(400);
    spec.item_timeout = item_timeout.then(|| Duration::from_millis(50));
    spec.timeout = timeout.then(|| Duration::from_millis(1_000));
    let mut job = JobRecord::pending(shards);
    job.state = JobState::Running;
    job.started_at_ms = Some(0);
    job.generation = Some(3);
    for (i, &(state, attempt, retry_due)) in items.iter().enumerate() {
        let item = u32::try_from(i).unwrap_or(0);
        job.set_attempt(item, attempt);
        match state {
            0 => job.succeeded.insert(item),
            1 => job.failed.insert(item),
            2 => job.unowned.insert(item),
            s => {
                let owner = job
                    .owners
                    .entry(exec(usize::from(s - 3) % EXECS))
                    .or_default();
                owner.items.insert(item);
                if s == 7 {
                    job.retry_at
                        .insert(item, if retry_due { 50 } else { 5_000 });
                    job.set_failure_count(item, 1);
                }
            }
        }
    }
    let mut present = BTreeMap::new();
    let mut executors = BTreeMap::new();
    for (i, &(is_present, live)) in execs.iter().enumerate() {
        let id = exec(i);
        let lease = 100 + i64::try_from(i).unwrap_or(0);
        if let Some(owner) = job.owners.get_mut(&id) {
            owner.lease = lease;
            owner.token = 10;
            owner.assigned_at_ms = 1;
            if is_present {
                present.insert(id.clone(), 10);
            }
        }
        if live || present.contains_key(&id) {
            executors.insert(
                id.clone(),
                ExecutorInfo {
                    id: id.clone(),
                    // A vanished owner that is live again re-registered
                    // under a new lease.
                    lease: if present.contains_key(&id) {
                        lease
                    } else {
                        lease + 50
                    },
                    handlers: vec![HandlerName::new("work")],
                    capacity: 2,
                    labels: BTreeMap::new(),
                    host: "h".into(),
                    pid: 1,
                    version: "t".into(),
                    started_at_ms: 0,
                    handler_capacity: BTreeMap::new(),
                    params_schemas: BTreeMap::new(),
                },
            );
        }
    }
    let batches = batches
        .into_iter()
        .enumerate()
        .map(|(n, (from, results, decodes))| ReadBatch {
            key: format!("batch-{n}"),
            batch: decodes.then(|| ResultBatch {
                executor: exec(from),
                token: FencingToken(10),
                results: results
                    .into_iter()
                    .map(|(item, attempt, o, retryable, log)| ItemResult {
                        item: ItemIndex(item % shards),
                        attempt,
                        outcome: outcome(o),
                        retryable,
                        error: (o % 5 == 1).then(|| "boom".into()),
                        started_at_ms: 20,
                        ended_at_ms: 30,
                        log: log.then(|| "a line\n".into()),
                    })
                    .collect(),
            }),
        })
        .collect();
    let progress = progress
        .into_iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let (item, at_ms) = p?;
            let report = ProgressRecord {
                items: BTreeMap::from([(
                    item % shards,
                    ItemProgress {
                        done: 1,
                        total: 2,
                        message: None,
                        at_ms,
                    },
                )]),
            };
            Some((exec(i), report))
        })
        .collect();
    Case {
        run: RunId::new("daily-s1"),
        dag: DagName::new("daily"),
        name: JobName::new("work"),
        spec,
        job,
        open_alerts: BTreeSet::new(),
        present,
        batches,
        progress,
        executors,
        now,
    }
}

/// Every item of a running job is terminal, owned by exactly one
/// executor, waiting unowned, or waiting for its retry; no item has two
/// owners.
fn accounted_for(job: &JobRecord) -> Result<(), TestCaseError> {
    let done = job.done();
    for item in 0..job.shards {
        let owners = job
            .owners
            .values()
            .filter(|o| o.items.contains(item))
            .count();
        prop_assert!(owners <= 1, "item {} has {} owners", item, owners);
        if job.state == JobState::Running {
            prop_assert!(
                done.contains(item)
                    || owners == 1
                    || job.unowned.contains(item)
                    || job.retry_at.contains(item),
                "item {} of a running job is nowhere: {:?}",
                item,
                job
            );
        }
    }
    Ok(())
}

/// `(item, attempt)` of every attempt row that came from a result.
fn reported(step: &JobStep) -> BTreeSet<(u32, u32)> {
    step.effects
        .iter()
        .filter_map(|e| match e {
            Effect::EndAttempts(rows) => Some(rows),
            _ => None,
        })
        .flatten()
        .filter(|r| r.outcome != AttemptOutcome::Lost)
        .map(|r| (r.new.item.0, r.new.attempt))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Reconcile twice changes nothing: on the snapshot the first call's
    /// effects leave (its record as committed, with the new assignments'
    /// tokens noted), a second call returns the same record and no new
    /// effect. The one thing it repeats is the open of a stalled item's
    /// alert, level-triggered on purpose (the store dedupes it into the
    /// open alert, bumping when it was last seen).
    #[test]
    fn reconcile_twice_changes_nothing(case in case()) {
        let first = case.step();
        let settled = case.settled(&first, false);
        let again = settled.step();
        prop_assert_eq!(&again.job, &settled.job);
        prop_assert_eq!(&again.open_alerts, &first.open_alerts);
        prop_assert!(again.lost.is_empty(), "lost again: {:?}", again.lost);
        for effect in &again.effects {
            let repeat_of_open_stall = matches!(effect, Effect::OpenAlert(AlertOpen { key: key @ AlertKey::ItemStalled { .. }, .. }) if first.open_alerts.contains(key));
            prop_assert!(repeat_of_open_stall, "a second call did more: {:?}", effect);
        }
    }

    /// A result is applied at most once per `(item, attempt)`: the same
    /// batches seen again (their delete lost) record no attempt twice.
    #[test]
    fn a_result_already_applied_is_ignored(case in case()) {
        let first = case.step();
        let again = case.settled(&first, true).step();
        let twice: Vec<_> = reported(&first).intersection(&reported(&again)).copied().collect();
        prop_assert!(twice.is_empty(), "applied twice: {:?}", twice);
    }

    /// Failover moves only the departed executors' unfinished items: an
    /// unfinished item whose owner's assignment is present stays with it,
    /// and a departed executor's unfinished items end at their next
    /// attempt (moved) or failed (a job without failover).
    #[test]
    fn failover_moves_only_the_departed_executors_unfinished_items(case in case()) {
        let step = case.step();
        let after = &step.job;
        for (id, before) in &case.job.owners {
            if case.present.contains_key(id) {
                let kept = before.items.difference(&after.done());
                let now = after.owners.get(id).map(|o| o.items.clone()).unwrap_or_default();
                prop_assert!(kept.difference(&now).is_empty(), "{} lost items {}", id, kept.difference(&now));
            } else {
                let unfinished = before.items.difference(&case.job.done());
                // Its last results counted first; what was still open moved on.
                for item in unfinished.difference(&after.done()).iter() {
                    prop_assert!(case.spec.failover);
                    prop_assert!(after.attempt(item) > case.job.attempt(item), "item {} moved without a new attempt", item);
                    prop_assert_eq!(after.moved_from.get(item), Some(id));
                }
            }
        }
        // Nothing moved to an owner that was not a live executor.
        for (id, owner) in &after.owners {
            let gained = owner.items.difference(&case.job.owners.get(id).map(|o| o.items.clone()).unwrap_or_default());
            if !gained.is_empty() {
                prop_assert!(case.executors.contains_key(id), "{} is not live but got {}", id, gained);
            }
        }
    }

    /// No item is owned by two executors, and every item of a running job
    /// is terminal, owned, waiting unowned or waiting for its retry —
    /// before and after a pass.
    #[test]
    fn every_item_is_accounted_for(case in case()) {
        accounted_for(&case.job)?;
        let step = case.step();
        accounted_for(&step.job)?;
        // And what the record says is what the executors are told.
        for effect in &step.effects {
            if let Effect::PutAssignment { executor, value, lease } = effect {
                let owner = &step.job.owners[executor];
                prop_assert_eq!(*lease, owner.lease);
                prop_assert_eq!(&value.items, &owner.items.difference(&step.job.done()));
            }
        }
    }
}

/// The snapshot of one running job owned by `e0` (present) and `e1`
/// (gone), both with items 0..4 between them.
fn two_owners() -> Case {
    build(
        vec![(3, 1, false), (3, 1, false), (4, 1, false), (4, 1, false)],
        (true, 1, false, false, false),
        vec![(true, true), (false, false), (false, true), (false, false)],
        Vec::new(),
        vec![None; EXECS],
        500,
    )
}

#[test]
fn a_lost_executors_last_results_count_before_its_items_move() {
    let mut case = two_owners();
    case.batches.push(ReadBatch {
        key: "last".into(),
        batch: Some(ResultBatch {
            executor: exec(1),
            token: FencingToken(10),
            results: vec![ItemResult {
                item: ItemIndex(2),
                attempt: 1,
                outcome: ResultOutcome::Succeeded,
                retryable: false,
                error: None,
                started_at_ms: 20,
                ended_at_ms: 30,
                log: None,
            }],
        }),
    });
    let step = case.step();
    assert!(step.job.succeeded.contains(2));
    // Item 3 alone was lost and moved, to a live executor, at attempt 2.
    let lost: Vec<(u32, u32)> = step
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::EndAttempts(rows) => Some(rows),
            _ => None,
        })
        .flatten()
        .filter(|r| r.outcome == AttemptOutcome::Lost)
        .map(|r| (r.new.item.0, r.new.attempt))
        .collect();
    assert_eq!(lost, vec![(3, 1)]);
    assert_eq!(step.job.attempt(3), 2);
    assert!(matches!(step.job.owner_of(3), Some(e) if *e == exec(0) || *e == exec(2)));
    assert!(step.lost.contains(&exec(1)));
    assert!(step.effects.iter().any(|e| matches!(e,
        Effect::OpenAlert(AlertOpen { key: AlertKey::ExecutorLost { executor, .. }, .. }) if executor == &exec(1))));
    assert!(step
        .effects
        .contains(&Effect::DeleteBatch { key: "last".into() }));
}

#[test]
fn a_stalled_items_alert_resolves_when_the_item_ends() {
    let mut case = two_owners();
    case.spec.item_timeout = Some(Duration::from_millis(50));
    case.present.insert(exec(1), 10);
    case.progress = vec![(
        exec(0),
        ProgressRecord {
            items: BTreeMap::from([(
                0,
                ItemProgress {
                    done: 0,
                    total: 0,
                    message: None,
                    at_ms: 10,
                },
            )]),
        },
    )];
    let step = case.step();
    let key = AlertKey::ItemStalled {
        run: case.run.clone(),
        job: case.name.clone(),
        item: 0,
    };
    assert!(step.open_alerts.contains(&key));
    assert!(step.job.owners[&exec(0)].cancel.contains(0));
    assert!(step.job.timed_out.contains(0));
    let mut next = case.settled(&step, false);
    next.progress.clear();
    next.batches.push(ReadBatch {
        key: "cancelled".into(),
        batch: Some(ResultBatch {
            executor: exec(0),
            token: FencingToken(10),
            results: vec![ItemResult {
                item: ItemIndex(0),
                attempt: 1,
                outcome: ResultOutcome::Cancelled,
                retryable: false,
                error: None,
                started_at_ms: 20,
                ended_at_ms: 30,
                log: None,
            }],
        }),
    });
    // The cancel counts as a timed-out attempt: its one retry follows at
    // once (no backoff), and the item is still open.
    let step = next.step();
    assert_eq!(step.job.attempt(0), 2);
    assert_eq!(step.job.failure_count(0), 1);
    assert!(step.open_alerts.contains(&key));
    let mut done = next.settled(&step, false);
    done.job.succeeded.insert(0);
    let step = done.step();
    assert!(!step.open_alerts.contains(&key));
    assert!(step.effects.contains(&Effect::ResolveAlert(key)));
}

/// A run of three jobs in the given states, each of 6 items owned by
/// `e0`/`e1` in halves, some cancelled or skipped, the run due by `deadline`.
fn run_of(
    states: [JobState; 3],
    stopped: [bool; 6],
    deadline: Option<i64>,
) -> crate::record::RunRecord {
    use crate::record::RunRecord;
    use nightshift_core::state::{RunState, TriggerSource};
    let mut spec: nightshift_core::dag::DagSpec = serde_json::from_value(serde_json::json!({
        "name": "daily", "description": null, "schedule": null, "timezone": "UTC", "calendar": null,
        "concurrency": "forbid", "misfire": "skip", "deadline": null, "jobs": []
    }))
    .unwrap();
    let mut jobs = BTreeMap::new();
    for (i, state) in states.into_iter().enumerate() {
        let mut js = JobSpec::new(format!("j{i}"));
        js.shards = 6;
        spec.jobs.push(js);
        let mut job = JobRecord::pending(6);
        job.state = state;
        if state != JobState::Pending {
            for (e, items) in [(0, ItemSet::range(0, 3)), (1, ItemSet::range(3, 6))] {
                job.owners.insert(
                    exec(e),
                    Owner {
                        lease: 7,
                        items,
                        token: 40,
                        assigned_at_ms: 5,
                        ..Owner::default()
                    },
                );
            }
            for (item, &s) in stopped.iter().enumerate() {
                let item = u32::try_from(item).unwrap();
                match (s, item % 2) {
                    (true, 0) => job.cancelled.insert(item),
                    (true, _) => job.skipped.insert(item),
                    (false, _) if state.is_terminal() => job.succeeded.insert(item),
                    _ => {}
                }
            }
        }
        jobs.insert(JobName::new(format!("j{i}")), job);
    }
    RunRecord {
        redo: 0,
        run: RunId::new("daily-s1"),
        jobs,
        dag: spec.name.clone(),
        spec,
        dag_version: 1,
        business_date: chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
        params: serde_json::Value::Null,
        source: TriggerSource::Manual,
        scheduled_for_ms: None,
        created_at_ms: 0,
        state: RunState::Pending,
        deadline_ms: deadline,
        lost_executors: Default::default(),
        open_alerts: Default::default(),
        retry_of: None,
        slow_after_ms: None,
    }
}

fn job_state() -> impl Strategy<Value = JobState> {
    prop_oneof![
        Just(JobState::Pending),
        Just(JobState::Running),
        Just(JobState::Succeeded),
        Just(JobState::Failed),
        Just(JobState::Cancelled),
        Just(JobState::Skipped),
    ]
}

proptest! {
    /// The end of a pass: every ended job lets go of every assignment key
    /// (its owners' and any leftover), its stopped items' attempts end
    /// once, running jobs keep theirs; and settling again changes nothing.
    #[test]
    fn ended_jobs_let_go_of_their_assignments_once(
        states in [job_state(), job_state(), job_state()],
        stopped in any::<[bool; 6]>(),
        leftover in any::<[bool; 3]>(),
        deadline in proptest::option::of(0i64..200),
    ) {
        let rec = run_of(states, stopped, deadline);
        let present: BTreeMap<JobName, BTreeSet<ExecutorId>> = rec
            .jobs
            .keys()
            .enumerate()
            .map(|(i, name)| {
                let mut keys: BTreeSet<ExecutorId> = rec.jobs[name].owners.keys().cloned().collect();
                if leftover[i] {
                    keys.insert(exec(3));
                }
                (name.clone(), keys)
            })
            .collect();
        let (after, effects) = settle_run(rec.clone(), &present, 100);
        for (name, job) in &after.jobs {
            let deleted: BTreeSet<&ExecutorId> = effects.iter().filter_map(|e| match e {
                RunEffect::DeleteAssignment { job, executor } if job == name => Some(executor),
                _ => None,
            }).collect();
            if job.state.is_terminal() {
                prop_assert!(job.owners.is_empty());
                prop_assert_eq!(deleted, present[name].iter().collect::<BTreeSet<_>>());
            } else {
                prop_assert_eq!(&job.owners, &rec.jobs[name].owners);
                prop_assert!(deleted.is_empty());
            }
        }
        let stopped_rows: usize = effects.iter().map(|e| match e {
            RunEffect::EndAttempts(rows) => rows.len(),
            _ => 0,
        }).sum();
        let expected: u64 = rec.jobs.values().filter(|j| j.state.is_terminal()).map(|j| j.cancelled.union(&j.skipped).len()).sum();
        prop_assert_eq!(u64::try_from(stopped_rows).unwrap(), expected);
        let alerted = effects.iter().any(|e| matches!(e, RunEffect::OpenAlert { alert, .. } if alert.key == AlertKey::DeadlineMissed { run: rec.run.clone() }));
        prop_assert_eq!(alerted, deadline.is_some_and(|d| 100 > d) && !after.state.is_terminal());
        // Again, with the deleted keys gone: only the deadline's level-triggered alert repeats.
        let none = BTreeMap::new();
        let (again, more) = settle_run(after.clone(), &none, 100);
        prop_assert_eq!(&again, &after);
        prop_assert!(more.iter().all(|e| matches!(e, RunEffect::OpenAlert { .. })), "{:?}", more);
    }
}

#[test]
fn a_finished_run_resolves_what_it_opened() {
    let mut rec = run_of([JobState::Succeeded; 3], [false; 6], None);
    rec.lost_executors.insert(exec(1));
    rec.open_alerts.insert(AlertKey::RunSlow {
        run: rec.run.clone(),
    });
    let keys: Vec<String> = resolved_when_finished(&rec)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        keys,
        [
            "deadline:daily-s1",
            "no_executor:daily-s1:j0",
            "no_executor:daily-s1:j1",
            "no_executor:daily-s1:j2",
            "run_slow:daily-s1",
            "executor_lost:e1:daily-s1",
        ]
    );
}

#[test]
fn a_job_without_executor_waits_alerting_then_fails_past_its_timeout() {
    let mut rec = run_of([JobState::Pending; 3], [false; 6], None);
    let j0 = JobName::new("j0");
    rec.spec.jobs[0].timeout = Some(Duration::from_millis(100));
    rec.spec.jobs[1].depends_on = vec![j0.clone()];
    rec.spec.jobs[2].depends_on = vec![j0.clone()];
    let (to_start, effects) = jobs_to_start(&mut rec, 10);
    // j0 has no upstream: it starts; the others wait for it.
    assert_eq!(to_start, vec![j0.clone()]);
    assert!(effects.is_empty());
    let effects = no_executor(&mut rec, &j0, 10);
    assert_eq!(rec.jobs[&j0].state, JobState::Waiting);
    assert_eq!(rec.jobs[&j0].waiting_since_ms, Some(10));
    assert!(
        matches!(&effects[..], [RunEffect::OpenAlert { alert, .. }] if alert.key == AlertKey::NoExecutor { run: rec.run.clone(), job: j0.clone() })
    );
    // Still within its timeout, the next pass tries it again first.
    let (to_start, _) = jobs_to_start(&mut rec, 110);
    assert_eq!(to_start, vec![j0.clone()]);
    assert_eq!(no_executor(&mut rec, &j0, 110).len(), 1);
    assert_eq!(rec.jobs[&j0].waiting_since_ms, Some(10));
    // Past it: every open item fails, and so does the job.
    let effects = no_executor(&mut rec, &j0, 111);
    assert_eq!(rec.jobs[&j0].state, JobState::Failed);
    assert_eq!(rec.jobs[&j0].failed, ItemSet::range(0, 6));
    assert!(effects.iter().any(|e| matches!(e, RunEffect::OpenAlert { alert, .. } if alert.key == AlertKey::JobFailed { run: rec.run.clone(), job: j0.clone() })));
    // Its downstream jobs follow by their trigger rule; an ended run
    // starts nothing.
    let (to_start, ended) = jobs_to_start(&mut rec, 111);
    assert!(to_start.is_empty());
    assert_eq!(ended.len(), 2);
    rec.state = nightshift_core::state::RunState::Failed;
    assert_eq!(jobs_to_start(&mut rec, 200).0, Vec::<JobName>::new());
}

#[test]
fn jobs_the_trigger_rule_rules_out_end_at_once() {
    let mut rec = run_of(
        [JobState::Failed, JobState::Pending, JobState::Pending],
        [false; 6],
        None,
    );
    rec.spec.jobs[1].depends_on = vec![JobName::new("j0")];
    rec.spec.jobs[2].depends_on = vec![JobName::new("j1")];
    let (to_start, effects) = jobs_to_start(&mut rec, 10);
    assert!(to_start.is_empty());
    for job in ["j1", "j2"] {
        let job = &rec.jobs[&JobName::new(job)];
        assert_eq!(job.state, JobState::UpstreamFailed);
        assert_eq!(job.ended_at_ms, Some(10));
    }
    assert_eq!(effects.len(), 2);
}
