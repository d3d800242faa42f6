//! A run names its DAG version instead of copying the DAG: the version's
//! spec is written once under `{p}dag_versions/{dag}/{version}` with the
//! run, a new leader reads it back to lead the run, and it is deleted with
//! the last live run that names it.
//!
//! Run against the in-process backend and a real etcd.

mod support;

use nightshift_coord::Coordinator;
use nightshift_core::ids::{ExecutorId, JobName};
use nightshift_core::keyspace::{self, Command, DagVersionRecord};
use nightshift_core::state::{JobState, TriggerSource};
use nightshift_scheduler::record::run_state_key;
use nightshift_scheduler::SchedulerConfig;
use std::sync::Arc;
use support::{Bed, PREFIX};

async fn a_run_names_its_dag_version_which_lives_as_long_as_it(coord: Arc<dyn Coordinator>) {
    let source = "[jobs.a]\nhandler = \"noop\"\nshards = 2\n\n[jobs.b]\nhandler = \"noop\"\nshards = 2\ndepends_on = [\"a\"]\n";
    let mut bed = Bed::new(coord.clone(), source).await;
    bed.register(&ExecutorId::new("e1")).await;
    let trigger = |seq| {
        (
            seq,
            Command::Trigger {
                dag: bed.dag.clone(),
                business_date: None,
                params: None,
                rerun: false,
                source: TriggerSource::Manual,
            },
        )
    };
    let (seq, cmd) = trigger(1);
    let id = bed.command(seq, cmd).await;
    bed.leader.pass().await.unwrap();
    let run = bed.run_of(&id);

    // The version is stored once; the run record names it and holds no DAG.
    let version_key = keyspace::dag_version_key(PREFIX, &bed.dag, 1);
    let stored = coord
        .get(&version_key)
        .await
        .unwrap()
        .expect("the run's DAG version");
    let version: DagVersionRecord = keyspace::decode(&stored.value).unwrap();
    assert_eq!(version.spec.name, bed.dag);
    assert_eq!(version.spec.jobs.len(), 2);
    let state = coord
        .get(&run_state_key(PREFIX, &run))
        .await
        .unwrap()
        .expect("run record");
    let json: serde_json::Value = serde_json::from_slice(&state.value).unwrap();
    assert_eq!(json["dag"], "d");
    assert_eq!(json["dag_version"], 1);
    assert!(
        json.get("spec").is_none(),
        "the record copies the DAG: {json}"
    );

    // A new leader leads the run from the stored version: skipping both
    // jobs ends it, which needs the DAG's jobs and their order.
    bed.recover(SchedulerConfig::new("s", PREFIX)).await;
    for (seq, job) in [(2, "a"), (3, "b")] {
        bed.command(
            seq,
            Command::SkipJob {
                run: run.clone(),
                job: JobName::new(job),
            },
        )
        .await;
        bed.leader.pass().await.unwrap();
    }
    bed.leader.pass().await.unwrap();
    let rows = bed.store.job_runs(&run).await.unwrap();
    assert!(
        rows.iter().all(|r| r.state == JobState::Skipped),
        "{rows:?}"
    );
    assert!(
        coord
            .get(&run_state_key(PREFIX, &run))
            .await
            .unwrap()
            .is_none(),
        "the run did not end"
    );
    assert!(
        coord.get(&version_key).await.unwrap().is_none(),
        "the DAG version outlived its last run"
    );
}

#[tokio::test]
async fn memory_a_run_names_its_dag_version_which_lives_as_long_as_it() {
    a_run_names_its_dag_version_which_lives_as_long_as_it(Arc::new(
        nightshift_coord::memory::MemoryCoordinator::new(),
    ))
    .await;
}

#[tokio::test]
async fn etcd_a_run_names_its_dag_version_which_lives_as_long_as_it() {
    let (_etcd, coord) = support::etcd().await;
    a_run_names_its_dag_version_which_lives_as_long_as_it(coord).await;
}
