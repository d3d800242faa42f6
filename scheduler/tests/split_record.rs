//! The run record stored as many values (`record_values`), against a real
//! etcd: a job with many owners and a small ops-per-txn limit commits in
//! several txns and reads back — through the public reader and through a
//! new leader's recovery — to the record the leader holds; a staged owner
//! value of a start that was never activated is ignored and then deleted.
//! (A run reloaded after an unanswered commit: `ambiguous_commit.rs`.)

mod support;

use nightshift_core::ids::{ExecutorId, JobName, RunId};
use nightshift_core::keyspace::{self, Command, ItemSet};
use nightshift_core::state::TriggerSource;
use nightshift_scheduler::record::{Owner, RunRecord};
use nightshift_scheduler::record_values::{self, OwnerValue};
use nightshift_scheduler::SchedulerConfig;
use support::{Bed, PREFIX};

const DAG: &str = r#"
[jobs.wide]
handler = "noop"
shards = 400
strategy = "round_robin"
"#;

/// The leader's copy of `run`.
fn leaders(bed: &Bed, run: &RunId) -> RunRecord {
    bed.leader
        .live_runs()
        .find(|r| &r.run == run)
        .cloned()
        .expect("the leader leads the run")
}

/// `run` as the public reader finds it in etcd, with the leader's spec
/// (the reader leaves the DAG version unresolved).
async fn stored(bed: &Bed, run: &RunId, spec: &RunRecord) -> RunRecord {
    let found = record_values::read_run(&*bed.coord, PREFIX, run)
        .await
        .expect("the run reads")
        .expect("the run is live");
    found
        .rec
        .with_spec(spec.spec.clone())
        .expect("the run's DAG")
}

#[tokio::test]
async fn a_job_with_many_owners_commits_in_small_txns_and_reads_back_equal() {
    let (_etcd, coord) = support::etcd().await;
    let mut config = SchedulerConfig::new("s", PREFIX);
    // 40 owners, 40 assignments: a dozen txns at 8 ops.
    config.max_txn_ops = 8;
    let mut bed = Bed::with_config(coord, DAG, config.clone()).await;
    for i in 0..40 {
        bed.register(&ExecutorId::new(format!("e{i:02}"))).await;
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
    bed.leader.pass().await.unwrap();
    let run = bed.run_of(&id);
    let job = JobName::new("wide");
    let held = leaders(&bed, &run);
    assert_eq!(held.jobs[&job].owners.len(), 40, "{:?}", held.jobs[&job]);
    assert_eq!(stored(&bed, &run, &held).await, held);

    // Every owner is its own value, no value holds the whole job.
    let (kvs, _) = bed
        .coord
        .get_prefix(&keyspace::run_prefix(PREFIX, &run))
        .await
        .unwrap();
    let owners = kvs
        .iter()
        .filter(|kv| {
            matches!(
                keyspace::parse_run_value_key(PREFIX, &kv.key),
                Some(keyspace::RunValueKey::Owner(..))
            )
        })
        .count();
    assert_eq!(owners, 40);

    // A staged owner of a start that was never activated (another
    // generation) is not read as an owner, and the next commit deletes it.
    let generation = held.jobs[&job].generation.expect("started");
    let stale_key = keyspace::job_owner_key(PREFIX, &run, &job, &ExecutorId::new("ghost"));
    let stale = OwnerValue {
        generation: Some(generation + 1),
        owner: Owner {
            lease: 1,
            items: ItemSet::range(0, 400),
            ..Owner::default()
        },
    };
    bed.coord
        .put(&stale_key, keyspace::encode(&stale).unwrap(), None)
        .await
        .unwrap();
    let found = stored(&bed, &run, &held).await;
    assert!(!found.jobs[&job]
        .owners
        .contains_key(&ExecutorId::new("ghost")));
    assert_eq!(found, held);

    // A new leader recovers the same record from the split values.
    bed.recover(config).await;
    assert_eq!(leaders(&bed, &run), held);
    // Its next commit that changes the run drops the stale value: cancel.
    bed.command(2, Command::CancelRun { run: run.clone() })
        .await;
    bed.leader.pass().await.unwrap();
    assert!(
        bed.coord.get(&stale_key).await.unwrap().is_none()
            || bed
                .coord
                .get(&keyspace::run_state_key(PREFIX, &run))
                .await
                .unwrap()
                .is_none(),
        "the stale owner value outlived a commit of the run"
    );
}
