//! Property tests of the orchestration rules: invariants 3 (every item of a
//! started job ends terminal) and 5 (a job starts only when its upstreams are
//! terminal and its trigger rule holds; a failure never lets an
//! `all_success` job run), on random DAGs driven to completion.

use super::*;
use crate::record::Owner;
use nightshift_core::dag::TriggerRule;
use nightshift_core::ids::ItemIndex;
use nightshift_core::keyspace::ItemSet;
use proptest::prelude::*;
use std::time::Duration;

const RULES: [TriggerRule; 4] = [
    TriggerRule::AllSuccess,
    TriggerRule::AllDone,
    TriggerRule::OneFailed,
    TriggerRule::NoneFailed,
];

/// A random DAG: job `i` may depend on any earlier job (so it is acyclic).
fn dag() -> impl Strategy<Value = DagSpec> {
    proptest::collection::vec(
        (
            proptest::collection::vec(any::<bool>(), 8),
            0usize..4,
            1u32..6,
            0u32..3,
        ),
        1..8,
    )
    .prop_map(|jobs| {
        let mut spec: DagSpec = serde_json::from_value(serde_json::json!({
            "name": "d", "description": null, "schedule": null, "timezone": "UTC", "calendar": null,
            "concurrency": "forbid", "misfire": "skip", "deadline": null, "jobs": []
        }))
        .unwrap();
        for (i, (deps, rule, shards, retries)) in jobs.into_iter().enumerate() {
            let mut job = JobSpec::new(format!("j{i}"));
            job.depends_on = (0..i)
                .filter(|&d| deps[d])
                .map(|d| JobName::new(format!("j{d}")))
                .collect();
            job.trigger_rule = RULES[rule];
            job.shards = shards;
            job.retries = retries;
            job.retry_backoff = Duration::from_millis(10);
            job.max_backoff = Duration::from_millis(40);
            spec.jobs.push(job);
        }
        spec
    })
}

fn result(item: u32, attempt: u32, outcome: ResultOutcome) -> ItemResult {
    ItemResult {
        item: ItemIndex(item),
        attempt,
        outcome,
        retryable: true,
        error: None,
        started_at_ms: 0,
        ended_at_ms: 0,
        log: None,
    }
}

fn started(job: &JobSpec, exec: &ExecutorId) -> JobRecord {
    let mut rec = JobRecord::pending(job.shards);
    rec.state = JobState::Running;
    rec.owners.insert(
        exec.clone(),
        Owner {
            lease: 1,
            items: ItemSet::range(0, job.shards),
            ..Owner::default()
        },
    );
    rec
}

proptest! {
    /// Drives a whole run with random item outcomes (`fails[k]` decides the
    /// k-th report) and checks every decision on the way.
    #[test]
    fn runs_respect_upstreams_and_end_with_every_item_terminal(spec in dag(), fails in proptest::collection::vec(any::<bool>(), 200)) {
        let exec = ExecutorId::new("e");
        let mut jobs: BTreeMap<JobName, JobRecord> = spec.jobs.iter().map(|j| (j.name.clone(), JobRecord::pending(j.shards))).collect();
        let mut now = 0i64;
        let mut k = 0usize;
        let mut ran = Vec::new();
        for _round in 0..500 {
            let states: BTreeMap<JobName, JobState> = jobs.iter().map(|(n, j)| (n.clone(), j.state)).collect();
            for decision in ready_jobs(&spec, &states) {
                let name = match &decision { JobDecision::Start(n) | JobDecision::Resolve(n, _) => n.clone() };
                let job = spec.jobs.iter().find(|j| j.name == name).unwrap();
                // The decision's own view: upstreams as they are now, or as resolved in this call.
                let upstream: Vec<JobState> = job.depends_on.iter().map(|d| jobs[d].state).collect();
                match decision {
                    JobDecision::Start(_) => {
                        prop_assert!(upstream.iter().all(|s| s.is_terminal()), "{} started before its upstreams ended", name);
                        if job.trigger_rule == TriggerRule::AllSuccess {
                            prop_assert!(upstream.iter().all(|&s| s == JobState::Succeeded));
                        }
                        if job.trigger_rule == TriggerRule::NoneFailed {
                            prop_assert!(!upstream.iter().any(|&s| failed(s)));
                        }
                        jobs.insert(name.clone(), started(job, &exec));
                        ran.push(name);
                    }
                    JobDecision::Resolve(_, to) => {
                        prop_assert!(matches!(to, JobState::UpstreamFailed | JobState::Skipped));
                        jobs.get_mut(&name).unwrap().state = to;
                    }
                }
            }
            // Report one outcome for each running job's first unfinished item.
            for job in &spec.jobs {
                let rec = jobs.get_mut(&job.name).unwrap();
                if rec.state != JobState::Running { continue; }
                take_due_retries(rec, now);
                let open = ItemSet::range(0, rec.shards).difference(&rec.done());
                if let Some(item) = open.iter().find(|&i| !rec.retry_at.contains(i)) {
                    let outcome = if fails[k % fails.len()] { ResultOutcome::Failed } else { ResultOutcome::Succeeded };
                    k += 1;
                    let r = result(item, rec.attempt(item), outcome);
                    apply_result(rec, job, &exec, &r, now);
                    // The same report seen again changes nothing.
                    let before = rec.clone();
                    prop_assert_eq!(apply_result(rec, job, &exec, &r, now), ItemEffect::Ignored);
                    prop_assert_eq!(&before, &*rec);
                }
                if let Some(end) = job_outcome(rec) {
                    rec.state = end;
                }
            }
            now += 10;
            if run_outcome(jobs.values().map(|j| &j.state)).is_some() { break; }
        }
        let end = run_outcome(jobs.values().map(|j| &j.state));
        prop_assert!(end.is_some(), "run never ended: {:?}", jobs.values().map(|j| j.state).collect::<Vec<_>>());
        for name in &ran {
            let rec = &jobs[name];
            prop_assert_eq!(rec.done().len(), u64::from(rec.shards), "job {} has unfinished items", name);
            prop_assert!(rec.retry_at.is_empty());
            for (item, &f) in rec.failures.iter() {
                let retries = spec.jobs.iter().find(|j| &j.name == name).unwrap().retries;
                prop_assert!(f <= retries + 1, "item {} failed {} times", item, f);
            }
        }
        let any_failed = jobs.values().any(|j| failed(j.state));
        prop_assert_eq!(end == Some(RunState::Failed), any_failed);
    }

    #[test]
    fn verdict_waits_for_every_upstream(rule in 0usize..4, states in proptest::collection::vec(0usize..8, 0..6)) {
        let upstream: Vec<JobState> = states.iter().map(|&s| JobState::ALL[s]).collect();
        let v = verdict(RULES[rule], &upstream);
        prop_assert_eq!(v.is_some(), upstream.iter().all(|s| s.is_terminal()));
        if v == Some(Verdict::Run) && RULES[rule] == TriggerRule::AllSuccess {
            prop_assert!(upstream.iter().all(|&s| s == JobState::Succeeded));
        }
    }
}

#[test]
fn failed_item_is_retried_then_fails_for_good_with_backoff() {
    let exec = ExecutorId::new("e");
    let mut job = JobSpec::new("j");
    job.shards = 1;
    job.retries = 2;
    job.retry_backoff = Duration::from_millis(100);
    job.max_backoff = Duration::from_secs(1);
    let mut rec = started(&job, &exec);
    assert_eq!(
        apply_result(
            &mut rec,
            &job,
            &exec,
            &result(0, 1, ResultOutcome::Failed),
            1000
        ),
        ItemEffect::RetryAt(1100)
    );
    assert!(take_due_retries(&mut rec, 1099).is_empty());
    assert_eq!(take_due_retries(&mut rec, 1100), vec![0]);
    assert_eq!(
        apply_result(
            &mut rec,
            &job,
            &exec,
            &result(0, 2, ResultOutcome::TimedOut),
            2000
        ),
        ItemEffect::RetryAt(2200)
    );
    take_due_retries(&mut rec, 5000);
    // A late report of an old attempt is ignored.
    assert_eq!(
        apply_result(
            &mut rec,
            &job,
            &exec,
            &result(0, 1, ResultOutcome::Succeeded),
            5000
        ),
        ItemEffect::Ignored
    );
    assert_eq!(
        apply_result(
            &mut rec,
            &job,
            &exec,
            &result(0, 3, ResultOutcome::Failed),
            5000
        ),
        ItemEffect::FailedForGood
    );
    assert_eq!(job_outcome(&rec), Some(JobState::Failed));
    assert_eq!(rec.failure_count(0), 3);
}

#[test]
fn permanent_failure_is_not_retried_and_strangers_are_ignored() {
    let exec = ExecutorId::new("e");
    let mut job = JobSpec::new("j");
    job.shards = 2;
    job.retries = 5;
    let mut rec = started(&job, &exec);
    let mut r = result(0, 1, ResultOutcome::Failed);
    r.retryable = false;
    assert_eq!(
        apply_result(&mut rec, &job, &ExecutorId::new("other"), &r, 0),
        ItemEffect::Ignored
    );
    assert_eq!(
        apply_result(&mut rec, &job, &exec, &r, 0),
        ItemEffect::FailedForGood
    );
    assert_eq!(job_outcome(&rec), None);
    assert_eq!(
        apply_result(
            &mut rec,
            &job,
            &exec,
            &result(1, 1, ResultOutcome::Succeeded),
            0
        ),
        ItemEffect::Succeeded
    );
    assert_eq!(job_outcome(&rec), Some(JobState::Failed));
}

#[test]
fn failure_cascades_upstream_failed_down_the_dag() {
    let mut spec: DagSpec = serde_json::from_value(serde_json::json!({
        "name": "d", "description": null, "schedule": null, "timezone": "UTC", "calendar": null,
        "concurrency": "forbid", "misfire": "skip", "deadline": null, "jobs": []
    }))
    .unwrap();
    let a = JobSpec::new("a");
    let mut b = JobSpec::new("b");
    b.depends_on = vec![JobName::new("a")];
    let mut c = JobSpec::new("c");
    c.depends_on = vec![JobName::new("b")];
    let mut cleanup = JobSpec::new("cleanup");
    cleanup.depends_on = vec![JobName::new("b")];
    cleanup.trigger_rule = TriggerRule::OneFailed;
    spec.jobs = vec![a, b, c, cleanup];
    let states: BTreeMap<JobName, JobState> = [
        ("a", JobState::Failed),
        ("b", JobState::Pending),
        ("c", JobState::Pending),
        ("cleanup", JobState::Pending),
    ]
    .into_iter()
    .map(|(n, s)| (JobName::new(n), s))
    .collect();
    assert_eq!(
        ready_jobs(&spec, &states),
        vec![
            JobDecision::Resolve(JobName::new("b"), JobState::UpstreamFailed),
            JobDecision::Resolve(JobName::new("c"), JobState::UpstreamFailed),
            JobDecision::Start(JobName::new("cleanup")),
        ]
    );
}

#[test]
fn a_stalled_item_cancelled_by_the_leader_counts_as_a_timed_out_attempt() {
    let exec = ExecutorId::new("e");
    let mut job = JobSpec::new("j");
    job.shards = 2;
    job.retries = 1;
    job.retry_backoff = Duration::from_millis(10);
    let mut rec = started(&job, &exec);
    // Item 0 stalled: the leader asked for it to stop.
    rec.owners.get_mut(&exec).unwrap().cancel.insert(0);
    rec.timed_out.insert(0);
    assert_eq!(
        apply_result(
            &mut rec,
            &job,
            &exec,
            &result(0, 1, ResultOutcome::Cancelled),
            100
        ),
        ItemEffect::RetryAt(110)
    );
    assert_eq!(rec.failure_count(0), 1);
    assert_eq!(take_due_retries(&mut rec, 110), vec![0]);
    assert!(
        rec.owners[&exec].cancel.is_empty(),
        "the retry must not be cancelled again"
    );
    // Item 1: cancelled for another reason (run cancel): final, no retry.
    rec.owners.get_mut(&exec).unwrap().cancel.insert(1);
    assert_eq!(
        apply_result(
            &mut rec,
            &job,
            &exec,
            &result(1, 1, ResultOutcome::Cancelled),
            100
        ),
        ItemEffect::Cancelled
    );
    assert!(rec.cancelled.contains(1));
}
