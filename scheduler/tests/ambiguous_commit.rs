//! Issue 13, "commits that cannot lose outcomes": the txn that absorbs a
//! job's result batches into the run record (and, in the same pass, starts
//! the next job) fails — either it committed and the answer was lost
//! (`Unavailable` after an etcd leader change or a timeout), or it never
//! committed. Either way no outcome is lost, none is applied twice, the
//! run ends, and the next job's start is visible to executors only once
//! the record shows it (its assignments' generation is on the spec only
//! then).
//!
//! The leader runs in-process against a real etcd behind a coordinator
//! decorator that fails exactly one txn: the first that writes the run's
//! record after it is armed. Run with etcd's txn limit and with a small
//! ops-per-txn limit, so that the start and the consumed batches need
//! several txns.

mod support;

use async_trait::async_trait;
use nightshift_coord::{
    CoordError, Coordinator, Decorated, Intercept, LeaseId, Txn, TxnOp, TxnResponse,
};
use nightshift_core::ids::{ExecutorId, FencingToken, ItemIndex, JobName, RunId};
use nightshift_core::keyspace::{
    self, AssignmentRecord, Command, ItemResult, JobRunSpec, ResultBatch, ResultOutcome,
};
use nightshift_core::state::{AttemptOutcome, RunState, TriggerSource};
use nightshift_scheduler::SchedulerConfig;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use support::{Bed, PREFIX};

const DAG: &str = r#"
[jobs.a]
handler = "noop"
shards = 6

[jobs.b]
handler = "noop"
shards = 6
depends_on = ["a"]
"#;

/// One armed fault: fail the next txn that puts `key`.
struct Fault {
    key: String,
    /// Let the txn commit, then answer `Unavailable` (else: fail it unsent).
    committed: bool,
}

/// Passes everything through to etcd, except the one txn the armed fault
/// picks.
struct Lossy {
    inner: Arc<dyn Coordinator>,
    fault: Mutex<Option<Fault>>,
    fired: Mutex<u32>,
}

impl Lossy {
    fn arm(&self, key: String, committed: bool) {
        *self.fault.lock().unwrap() = Some(Fault { key, committed });
    }

    fn fired(&self) -> u32 {
        *self.fired.lock().unwrap()
    }
}

#[async_trait]
impl Intercept for Lossy {
    fn inner(&self) -> &dyn Coordinator {
        self.inner.as_ref()
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, CoordError> {
        let hit = {
            let mut fault = self.fault.lock().unwrap();
            let hit = fault.as_ref().is_some_and(|f| {
                txn.success
                    .iter()
                    .any(|op| matches!(op, TxnOp::Put { key, .. } if *key == f.key))
            });
            if hit {
                fault.take()
            } else {
                None
            }
        };
        let Some(fault) = hit else {
            return self.inner.txn(txn).await;
        };
        *self.fired.lock().unwrap() += 1;
        if fault.committed {
            let resp = self.inner.txn(txn).await?;
            assert!(resp.succeeded, "the faulted txn's compares failed");
        }
        Err(CoordError::Unavailable(
            "test: the response was lost".into(),
        ))
    }
}

/// Reports every item of every assignment of `job` as succeeded, in one
/// fenced batch per executor, as the SDK would.
async fn report_all(
    bed: &Bed,
    run: &RunId,
    job: &JobName,
    leases: &BTreeMap<ExecutorId, LeaseId>,
) -> usize {
    let mut reported = 0;
    for (exec, lease) in leases {
        let Some((record, revision, _)) = bed.assignment(run, job, exec).await else {
            continue;
        };
        let batch = ResultBatch {
            executor: exec.clone(),
            token: FencingToken(revision),
            results: record
                .items
                .iter()
                .map(|item| ItemResult {
                    item: ItemIndex(item),
                    attempt: record.attempt(item),
                    outcome: ResultOutcome::Succeeded,
                    retryable: false,
                    error: None,
                    started_at_ms: 10,
                    ended_at_ms: 20,
                    log: None,
                })
                .collect(),
        };
        reported += batch.results.len();
        let assign_key = keyspace::assign_key(PREFIX, run, job, exec);
        let put = bed
            .coord
            .txn(Txn {
                compares: vec![
                    nightshift_coord::Compare::mod_revision(assign_key.clone(), revision),
                    nightshift_coord::Compare::lease(assign_key, *lease),
                ],
                success: vec![TxnOp::Put {
                    key: keyspace::result_key(
                        PREFIX,
                        run,
                        job,
                        exec,
                        &keyspace::result_seq(lease.0, u64::try_from(revision).unwrap()),
                    ),
                    value: keyspace::encode(&batch).unwrap(),
                    lease: None,
                }],
                failure: vec![],
            })
            .await
            .unwrap();
        assert!(put.succeeded, "result batch of {exec} fenced out");
    }
    reported
}

/// The spec of `job` and every assignment of it, as etcd has them now.
async fn start_of(
    bed: &Bed,
    run: &RunId,
    job: &JobName,
) -> (Option<JobRunSpec>, Vec<AssignmentRecord>) {
    let spec = bed
        .coord
        .get(&keyspace::spec_key(PREFIX, run, job))
        .await
        .unwrap()
        .map(|kv| keyspace::decode::<JobRunSpec>(&kv.value).unwrap());
    let (kvs, _) = bed
        .coord
        .get_prefix(&keyspace::owners_prefix(PREFIX))
        .await
        .unwrap();
    let assignments = kvs
        .iter()
        .filter(|kv| {
            keyspace::parse_assign_key(PREFIX, &kv.key)
                .is_some_and(|(r, j, _)| r == *run && j == *job)
        })
        .map(|kv| keyspace::decode::<AssignmentRecord>(&kv.value).unwrap())
        .collect();
    (spec, assignments)
}

async fn no_outcome_is_lost(committed: bool, max_txn_ops: usize) {
    let (_etcd, etcd) = support::etcd().await;
    let lossy = Arc::new(Decorated::new(Lossy {
        inner: etcd,
        fault: Mutex::new(None),
        fired: Mutex::new(0),
    }));
    let mut config = SchedulerConfig::new("s", PREFIX);
    config.max_txn_ops = max_txn_ops;
    let mut bed = Bed::with_config(lossy.clone(), DAG, config).await;
    let mut leases = BTreeMap::new();
    for id in ["e1", "e2"] {
        let exec = ExecutorId::new(id);
        let lease = bed.register(&exec).await;
        leases.insert(exec, lease);
    }
    let id = bed
        .command(
            1,
            Command::Trigger {
                dag: bed.dag.clone(),
                business_date: None,
                params: None,
                rerun: false,
                source: TriggerSource::Manual,
            },
        )
        .await;
    bed.leader.pass().await.unwrap();
    let run = bed.run_of(&id);
    let (a, b) = (JobName::new("a"), JobName::new("b"));
    assert_eq!(report_all(&bed, &run, &a, &leases).await, 6);

    // The pass that absorbs a's outcomes and starts b: its record txn fails.
    lossy.arm(keyspace::run_state_key(PREFIX, &run), committed);
    bed.leader.pass().await.unwrap();
    assert_eq!(lossy.fired(), 1, "the fault never fired");
    // The leader reloaded the run: its copy is what etcd holds, whether
    // the txn committed or not (read with the public reader).
    let held = bed
        .leader
        .live_runs()
        .find(|r| r.run == run)
        .cloned()
        .expect("the run is still led");
    let in_etcd = nightshift_scheduler::record_values::read_run(&*bed.coord, PREFIX, &run)
        .await
        .unwrap()
        .expect("the run is live in etcd")
        .rec
        .with_spec(held.spec.clone())
        .expect("the run's DAG");
    assert_eq!(held, in_etcd, "the reloaded run is not what etcd holds");
    let (spec, assignments) = start_of(&bed, &run, &b).await;
    if committed {
        // The start is recorded: its assignments are activated.
        let spec = spec.expect("b's spec is written with the record");
        assert!(!assignments.is_empty());
        for a in &assignments {
            assert_eq!(a.generation, spec.generation, "{a:?} vs {spec:?}");
        }
    } else {
        // The record does not show b started: nothing of it is activated.
        for a in &assignments {
            assert!(
                spec.as_ref().is_none_or(|s| s.generation != a.generation),
                "an assignment the run does not show is activated: {a:?} {spec:?}"
            );
        }
    }

    // From here on, passes without faults; b's executors report once b's
    // start is activated.
    let mut reported_b = false;
    for _ in 0..20 {
        bed.leader.pass().await.unwrap();
        if bed
            .store
            .get_run(&run)
            .await
            .unwrap()
            .is_some_and(|r| r.state.is_terminal())
        {
            break;
        }
        let (spec, assignments) = start_of(&bed, &run, &b).await;
        let activated = spec.is_some_and(|s| {
            !assignments.is_empty() && assignments.iter().all(|a| a.generation == s.generation)
        });
        if activated && !reported_b {
            assert_eq!(report_all(&bed, &run, &b, &leases).await, 6);
            reported_b = true;
        }
    }
    let stored = bed.store.get_run(&run).await.unwrap().expect("run stored");
    assert_eq!(
        stored.state,
        RunState::Succeeded,
        "the run did not end: an outcome was lost"
    );
    for job in [&a, &b] {
        let attempts = bed.store.attempts(&run, job, None).await.unwrap();
        for item in 0..6 {
            let mine: Vec<_> = attempts.iter().filter(|a| a.item.0 == item).collect();
            assert_eq!(mine.len(), 1, "{job} item {item}: {mine:#?}");
            assert_eq!(mine[0].outcome, Some(AttemptOutcome::Succeeded));
        }
    }
    let (left, _) = bed.coord.get_prefix(PREFIX).await.unwrap();
    let left: Vec<&str> = left
        .iter()
        .map(|kv| kv.key.as_str())
        .filter(|k| k.contains(run.as_str()))
        .collect();
    assert!(left.is_empty(), "keys of the ended run left: {left:?}");
}

#[tokio::test]
async fn committed_but_unanswered_loses_nothing() {
    no_outcome_is_lost(true, nightshift_scheduler::leader::MAX_OPS).await;
}

#[tokio::test]
async fn never_committed_loses_nothing() {
    no_outcome_is_lost(false, nightshift_scheduler::leader::MAX_OPS).await;
}

#[tokio::test]
async fn committed_but_unanswered_loses_nothing_across_several_txns() {
    no_outcome_is_lost(true, 3).await;
}

#[tokio::test]
async fn never_committed_loses_nothing_across_several_txns() {
    no_outcome_is_lost(false, 3).await;
}
