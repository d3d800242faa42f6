//! An operator skips a job whose items are running: the items the executors
//! never reported end their attempts as cancelled, so the history has no
//! attempt left open; items that did report keep their recorded outcome.
//!
//! Run against the in-process backend and a real etcd.

mod support;

use nightshift_coord::{Compare, Coordinator, LeaseId, Txn, TxnOp};
use nightshift_core::ids::{ExecutorId, FencingToken, ItemIndex, JobName};
use nightshift_core::keyspace::{self, Command, ItemResult, ResultBatch, ResultOutcome};
use nightshift_core::state::{AttemptOutcome, JobState, TriggerSource};
use std::sync::Arc;
use support::{Bed, PREFIX};

async fn skipping_a_running_job_ends_its_open_attempts(coord: Arc<dyn Coordinator>) {
    let mut bed = Bed::new(coord.clone(), "[jobs.a]\nhandler = \"noop\"\nshards = 4\n").await;
    let exec = ExecutorId::new("e1");
    let lease = bed.register(&exec).await;
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
    let job = JobName::new("a");
    let (record, revision, _) = bed.assignment(&run, &job, &exec).await.expect("assigned");
    assert_eq!(record.items.len(), 4);

    // Item 0 reports success; items 1..3 are still running when the job is skipped.
    let batch = ResultBatch {
        executor: exec.clone(),
        token: FencingToken(revision),
        results: vec![ItemResult {
            item: ItemIndex(0),
            attempt: 1,
            outcome: ResultOutcome::Succeeded,
            retryable: false,
            error: None,
            started_at_ms: 10,
            ended_at_ms: 20,
            log: None,
        }],
    };
    let assign_key = keyspace::assign_key(PREFIX, &run, &job, &exec);
    let put = coord
        .txn(Txn {
            compares: vec![
                Compare::mod_revision(assign_key.clone(), revision),
                Compare::lease(assign_key, LeaseId(lease.0)),
            ],
            success: vec![TxnOp::Put {
                key: keyspace::result_key(
                    PREFIX,
                    &run,
                    &job,
                    &exec,
                    &keyspace::result_seq(lease.0, 0),
                ),
                value: keyspace::encode(&batch).unwrap(),
                lease: None,
            }],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(put.succeeded);
    bed.leader.pass().await.unwrap();
    bed.command(
        2,
        Command::SkipJob {
            run: run.clone(),
            job: job.clone(),
        },
    )
    .await;
    bed.leader.pass().await.unwrap();
    bed.leader.pass().await.unwrap();

    let rows = bed.store.job_runs(&run).await.unwrap();
    assert_eq!(rows[0].state, JobState::Skipped, "{rows:?}");
    let attempts = bed.store.attempts(&run, &job, None).await.unwrap();
    assert_eq!(attempts.len(), 4, "{attempts:#?}");
    assert!(
        attempts.iter().all(|a| a.ended_at_ms.is_some()),
        "an attempt was left open: {attempts:#?}"
    );
    assert_eq!(
        attempts[0].outcome,
        Some(AttemptOutcome::Succeeded),
        "the reported item keeps its outcome"
    );
    for a in &attempts[1..] {
        assert_eq!(
            (a.outcome, a.executor.as_str(), a.fencing_token.0),
            (Some(AttemptOutcome::Cancelled), "e1", revision),
            "{a:?}"
        );
    }
    assert!(
        bed.assignment(&run, &job, &exec).await.is_none(),
        "a skipped job holds no assignment"
    );
}

#[tokio::test]
async fn memory_skipping_a_running_job_ends_its_open_attempts() {
    skipping_a_running_job_ends_its_open_attempts(Arc::new(
        nightshift_coord::memory::MemoryCoordinator::new(),
    ))
    .await;
}

#[tokio::test]
async fn etcd_skipping_a_running_job_ends_its_open_attempts() {
    let (_etcd, coord) = support::etcd().await;
    skipping_a_running_job_ends_its_open_attempts(coord).await;
}
