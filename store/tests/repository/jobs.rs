//! Cases for the job rows of a run.

use crate::fixtures::{seed_dag, seed_run};
use nightshift_core::ids::{JobName, RunId};
use nightshift_core::state::JobState;
use nightshift_store::{JobRun, Store, StoreError};

fn job(run: &RunId, name: &str, state: JobState) -> JobRun {
    JobRun {
        run_id: run.clone(),
        job: JobName::new(name),
        state,
        shards: 8,
        succeeded: 0,
        failed: 0,
        skipped: 0,
        cancelled: 0,
        started_at_ms: None,
        ended_at_ms: None,
        error: None,
    }
}

pub async fn job_runs_track_tallies_and_legal_moves(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let run = seed_run(store, &dag, "r1", 1).await.run_id;

    store
        .upsert_job_run(&job(&run, "post", JobState::Pending))
        .await
        .unwrap();
    store
        .upsert_job_run(&job(&run, "accrue", JobState::Pending))
        .await
        .unwrap();

    let mut accrue = job(&run, "accrue", JobState::Running);
    accrue.started_at_ms = Some(100);
    accrue.succeeded = 3;
    store.upsert_job_run(&accrue).await.unwrap();
    // Same state again: tallies move; the first start time is kept.
    accrue.succeeded = 6;
    accrue.failed = 1;
    accrue.started_at_ms = Some(150);
    store.upsert_job_run(&accrue).await.unwrap();
    let stored = store.job_run(&run, &accrue.job).await.unwrap().unwrap();
    assert_eq!(
        (stored.succeeded, stored.failed, stored.started_at_ms),
        (6, 1, Some(100))
    );

    accrue.state = JobState::Failed;
    accrue.ended_at_ms = Some(200);
    accrue.error = Some("item 3 failed".into());
    store.upsert_job_run(&accrue).await.unwrap();

    // Failed is terminal: only the re-opening moves (back to pending, or
    // settled succeeded by a mark-succeeded) may move it.
    let mut succeeded = accrue.clone();
    succeeded.state = JobState::Running;
    let err = store.upsert_job_run(&succeeded).await.unwrap_err();
    assert!(
        matches!(err, StoreError::IllegalTransition { ref from, .. } if from == "failed"),
        "{err}"
    );
    let unchanged = store.job_run(&run, &accrue.job).await.unwrap().unwrap();
    assert_eq!(unchanged.state, JobState::Failed);
    assert_eq!(unchanged.error.as_deref(), Some("item 3 failed"));
    assert_eq!(unchanged.ended_at_ms, Some(200));

    let mut retried = accrue.clone();
    retried.state = JobState::Pending;
    retried.ended_at_ms = None;
    retried.error = None;
    store.upsert_job_run(&retried).await.unwrap();
    let reopened = store.job_run(&run, &accrue.job).await.unwrap().unwrap();
    assert_eq!(
        (reopened.state, reopened.ended_at_ms),
        (JobState::Pending, None)
    );

    let all = store.job_runs(&run).await.unwrap();
    let names: Vec<&str> = all.iter().map(|j| j.job.as_str()).collect();
    assert_eq!(names, ["accrue", "post"]);
    assert_eq!(all[1], job(&run, "post", JobState::Pending));
    assert!(store
        .job_runs(&RunId::new("ghost"))
        .await
        .unwrap()
        .is_empty());

    let orphan = job(&RunId::new("ghost"), "x", JobState::Pending);
    assert!(matches!(
        store.upsert_job_run(&orphan).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A job row last written in a later term refuses an earlier term's write
/// (a deposed leader's late pass) and keeps taking its own leader's.
pub async fn a_job_row_written_by_a_later_leader_refuses_an_earlier_one(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let run = seed_run(store, &dag, "r1", 1).await.run_id;
    let mut running = job(&run, "post", JobState::Running);
    running.succeeded = 2;
    store.upsert_job_run_in_term(&running, 7).await.unwrap();
    let mut stale = job(&run, "post", JobState::Failed);
    stale.failed = 8;
    let err = store.upsert_job_run_in_term(&stale, 6).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Superseded {
                term: 6,
                current: 7,
                ..
            }
        ),
        "{err}"
    );
    let kept = store
        .job_run(&run, &JobName::new("post"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (kept.state, kept.succeeded, kept.failed),
        (JobState::Running, 2, 0)
    );
    let mut done = job(&run, "post", JobState::Succeeded);
    done.succeeded = 8;
    store.upsert_job_run_in_term(&done, 7).await.unwrap();
    let stored = store
        .job_run(&run, &JobName::new("post"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.state, stored.succeeded), (JobState::Succeeded, 8));
}
