//! Property tests of the command semantics on random DAGs driven to an end:
//! a rejection changes nothing, a command applied twice changes nothing
//! more, item sets stay disjoint, cleared work runs again at a new attempt
//! in the same run, and marking every failed item succeeded lets the run
//! succeed.

use super::*;
use crate::orchestration::{ready_jobs, run_outcome, JobDecision};
use chrono::NaiveDate;
use nightshift_core::dag::{JobSpec, TriggerRule};
use nightshift_core::ids::RunId;
use nightshift_core::state::TriggerSource;
use proptest::prelude::*;

const RULES: [TriggerRule; 4] = [
    TriggerRule::AllSuccess,
    TriggerRule::AllDone,
    TriggerRule::OneFailed,
    TriggerRule::NoneFailed,
];

/// A random DAG: job `i` may depend on any earlier job (so it is acyclic
/// and the spec order is a topological order).
fn dag() -> impl Strategy<Value = DagSpec> {
    proptest::collection::vec(
        (
            proptest::collection::vec(any::<bool>(), 6),
            0usize..4,
            1u32..5,
        ),
        1..6,
    )
    .prop_map(|jobs| {
        let mut spec: DagSpec = serde_json::from_value(serde_json::json!({
            "name": "d", "description": null, "schedule": null, "timezone": "UTC", "calendar": null,
            "concurrency": "forbid", "misfire": "skip", "deadline": null, "jobs": []
        }))
        .unwrap();
        for (i, (deps, rule, shards)) in jobs.into_iter().enumerate() {
            let mut job = JobSpec::new(format!("j{i}"));
            job.depends_on = (0..i)
                .filter(|&d| deps[d])
                .map(|d| JobName::new(format!("j{d}")))
                .collect();
            job.trigger_rule = RULES[rule];
            job.shards = shards;
            spec.jobs.push(job);
        }
        spec
    })
}

fn new_run(spec: &DagSpec) -> RunRecord {
    RunRecord {
        redo: 0,
        run: RunId::new("r"),
        jobs: spec
            .jobs
            .iter()
            .map(|j| (j.name.clone(), JobRecord::pending(j.shards)))
            .collect(),
        dag: spec.name.clone(),
        spec: spec.clone(),
        dag_version: 1,
        business_date: NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
        params: serde_json::Value::Null,
        source: TriggerSource::Manual,
        scheduled_for_ms: None,
        created_at_ms: 0,
        state: RunState::Pending,
        deadline_ms: None,
        lost_executors: Default::default(),
        open_alerts: Default::default(),
        retry_of: None,
        slow_after_ms: None,
    }
}

/// Drives the run as the leader would until nothing changes: ready jobs
/// start and each open item ends as `fails` says (item `i` of job `j`
/// fails when `fails[j * 8 + i]`); resolutions follow the trigger rules.
/// Stops early (a live run) after `steps` job starts when given.
fn drive(rec: &mut RunRecord, fails: &[bool], steps: Option<usize>) {
    let mut started = 0;
    loop {
        let states = rec.jobs.iter().map(|(n, j)| (n.clone(), j.state)).collect();
        let decisions = ready_jobs(&rec.spec, &states);
        if decisions.is_empty() {
            break;
        }
        for d in decisions {
            match d {
                JobDecision::Resolve(name, to) => {
                    let job = rec.jobs.get_mut(&name).unwrap();
                    job.state = to;
                    job.ended_at_ms = Some(1);
                }
                JobDecision::Start(name) => {
                    if steps.is_some_and(|s| started >= s) {
                        return;
                    }
                    started += 1;
                    rec.state = RunState::Running;
                    let j = rec.spec.jobs.iter().position(|s| s.name == name).unwrap();
                    let job = rec.jobs.get_mut(&name).unwrap();
                    job.started_at_ms = Some(1);
                    let open = ItemSet::range(0, job.shards).difference(&job.done());
                    for i in open.iter() {
                        if fails[(j * 8 + i as usize) % fails.len()] {
                            job.failed.insert(i);
                        } else {
                            job.succeeded.insert(i);
                        }
                    }
                    job.state = job_outcome(job).unwrap();
                    job.ended_at_ms = Some(2);
                }
            }
        }
    }
    if let Some(end) = run_outcome(rec.jobs.values().map(|j| &j.state)) {
        rec.state = end;
    }
}

fn job_name(spec: &DagSpec, i: usize) -> JobName {
    spec.jobs[i % spec.jobs.len()].name.clone()
}

/// A random command on the run's jobs (sometimes on a job or item that
/// does not exist).
fn command(spec: &DagSpec, pick: (u8, usize, u32, bool, bool)) -> RunCommand {
    let (kind, j, item, flag, unknown) = pick;
    let job = if unknown {
        JobName::new("nope")
    } else {
        job_name(spec, j)
    };
    match kind % 5 {
        0 => RunCommand::Cancel,
        1 => RunCommand::Retry {
            job: flag.then_some(job),
        },
        2 => RunCommand::Skip { job },
        3 => RunCommand::MarkSucceeded {
            job,
            item: ItemIndex(item),
        },
        _ => {
            let (jobs, items) = if flag {
                (vec![job], BTreeMap::new())
            } else {
                (Vec::new(), BTreeMap::from([(job, vec![ItemIndex(item)])]))
            };
            RunCommand::Clear {
                jobs,
                items,
                downstream: item % 2 == 0,
            }
        }
    }
}

fn assert_well_formed(rec: &RunRecord) -> Result<(), TestCaseError> {
    for (name, job) in &rec.jobs {
        let sets = [&job.succeeded, &job.failed, &job.skipped, &job.cancelled];
        let total: u64 = sets.iter().map(|s| s.len()).sum();
        prop_assert_eq!(total, job.done().len(), "overlapping item sets in {}", name);
        prop_assert!(job.done().iter().all(|i| i < job.shards), "{}", name);
        if job.state == JobState::Succeeded {
            prop_assert!(
                job.failed.is_empty(),
                "succeeded {} with failed items",
                name
            );
        }
    }
    Ok(())
}

fn pick() -> impl Strategy<Value = (u8, usize, u32, bool, bool)> {
    (
        any::<u8>(),
        0usize..8,
        0u32..6,
        any::<bool>(),
        prop::bool::weighted(0.1),
    )
}

proptest! {
    /// Every command, on a live or an ended run: a rejection changes
    /// nothing; a second application changes nothing more; sets stay disjoint.
    #[test]
    fn commands_are_idempotent_and_rejections_change_nothing(
        spec in dag(),
        fails in proptest::collection::vec(prop::bool::weighted(0.3), 1..48),
        steps in proptest::option::of(0usize..4),
        pick in pick(),
    ) {
        let mut rec = new_run(&spec);
        drive(&mut rec, &fails, steps);
        let cmd = command(&spec, pick);
        let (once, outcome) = apply(&rec, &cmd, 10);
        if outcome.is_rejected() {
            prop_assert_eq!(&once, &rec);
        }
        assert_well_formed(&once)?;
        let (twice, _) = apply(&once, &cmd, 10);
        prop_assert_eq!(&twice, &once, "{:?} applied twice changed more", cmd);
    }

    /// Clear with downstream on an ended run: the run runs again, cleared
    /// items are open at a new attempt, every downstream job is pending;
    /// driven again with every item succeeding, the cleared items succeed
    /// in the same run.
    #[test]
    fn clear_reruns_work_at_new_attempts_in_the_same_run(
        spec in dag(),
        fails in proptest::collection::vec(prop::bool::weighted(0.2), 1..48),
        j in 0usize..8,
        downstream in any::<bool>(),
    ) {
        let mut rec = new_run(&spec);
        drive(&mut rec, &fails, None);
        prop_assert!(rec.state.is_terminal());
        let job = job_name(&spec, j);
        let before = rec.clone();
        let cmd = RunCommand::Clear { jobs: vec![job.clone()], items: BTreeMap::new(), downstream };
        let (mut after, outcome) = apply(&rec, &cmd, 10);
        prop_assert!(!outcome.is_rejected(), "{}", outcome);
        prop_assert_eq!(after.state, RunState::Running);
        let cleared = &after.jobs[&job];
        prop_assert_eq!(cleared.state, JobState::Pending);
        for i in before.jobs[&job].done().iter() {
            prop_assert!(!cleared.done().contains(i));
            prop_assert_eq!(cleared.attempt(i), before.jobs[&job].attempt(i) + 1);
        }
        if downstream {
            for name in downstream_of(&spec, &BTreeSet::from([job.clone()])) {
                prop_assert_eq!(after.jobs[&name].state, JobState::Pending, "{}", name);
            }
        }
        // Untouched: jobs neither cleared nor downstream of it.
        let reach = downstream_of(&spec, &BTreeSet::from([job.clone()]));
        for (name, j) in &after.jobs {
            if name != &job && !reach.contains(name) {
                prop_assert_eq!(j, &before.jobs[name]);
            }
        }
        drive(&mut after, &[false], None);
        prop_assert!(after.state.is_terminal());
        prop_assert_eq!(after.run.clone(), before.run.clone());
        if !matches!(before.jobs[&job].state, JobState::UpstreamFailed) {
            // It ran again (its upstreams are as they were) and succeeded.
            let upstream_ok = spec.jobs.iter().find(|s| s.name == job).unwrap().depends_on.iter()
                .all(|d| after.jobs[d].state == before.jobs[d].state);
            if upstream_ok && before.jobs[&job].started_at_ms.is_some() {
                prop_assert!(after.jobs[&job].succeeded.len() >= before.jobs[&job].succeeded.len());
            }
        }
    }

    /// Marking every failed item succeeded, job by job in DAG order, turns a
    /// failed run into a succeeded one once it is driven again: the jobs the
    /// failures had resolved `upstream_failed` run.
    #[test]
    fn mark_succeeded_on_failed_jobs_lets_the_run_succeed(
        spec in dag(),
        fails in proptest::collection::vec(prop::bool::weighted(0.3), 1..48),
    ) {
        let mut rec = new_run(&spec);
        drive(&mut rec, &fails, None);
        for js in &spec.jobs {
            let failed: Vec<u32> = rec.jobs[&js.name].failed.iter().collect();
            for i in failed {
                let cmd = RunCommand::MarkSucceeded { job: js.name.clone(), item: ItemIndex(i) };
                let (next, outcome) = apply(&rec, &cmd, 10);
                prop_assert!(!outcome.is_rejected(), "{}", outcome);
                rec = next;
            }
            // Downstream jobs re-opened by it run before the next job's marks.
            drive(&mut rec, &[false], None);
        }
        prop_assert!(rec.jobs.values().all(|j| !matches!(j.state, JobState::Failed | JobState::UpstreamFailed)));
        prop_assert_eq!(rec.state, RunState::Succeeded);
    }
}

#[test]
fn mark_succeeded_is_refused_for_unknown_items_and_ended_jobs() {
    let mut spec: DagSpec = serde_json::from_value(serde_json::json!({
        "name": "d", "description": null, "schedule": null, "timezone": "UTC", "calendar": null,
        "concurrency": "forbid", "misfire": "skip", "deadline": null, "jobs": []
    }))
    .unwrap();
    let mut a = JobSpec::new("a");
    a.shards = 2;
    spec.jobs.push(a);
    let mut rec = new_run(&spec);
    drive(&mut rec, &[false], None);
    let a = JobName::new("a");
    let (_, o) = apply(
        &rec,
        &RunCommand::MarkSucceeded {
            job: a.clone(),
            item: ItemIndex(2),
        },
        1,
    );
    assert_eq!(
        o,
        Rejection::NoItem {
            job: a.clone(),
            item: ItemIndex(2),
            shards: 2
        }
        .into()
    );
    let (_, o) = apply(
        &rec,
        &RunCommand::MarkSucceeded {
            job: a.clone(),
            item: ItemIndex(1),
        },
        1,
    );
    assert_eq!(
        o,
        Rejection::ItemSucceeded {
            job: a.clone(),
            item: ItemIndex(1)
        }
        .into()
    );
    let (_, o) = apply(
        &rec,
        &RunCommand::Clear {
            jobs: vec![],
            items: BTreeMap::new(),
            downstream: true,
        },
        1,
    );
    assert_eq!(o, Rejection::NothingToClear.into());
}
