//! Issue 12, item 3: etcd full. A real etcd with a tiny backend quota
//! raises its NOSPACE alarm ("database space exceeded") while a run is in
//! flight. The client reports it as `CoordError::Full` (not a plain outage);
//! the leader keeps passing — it still reads, and records the finished
//! items' attempts in SQL — and opens one critical `coordination_full`
//! alert saying what to do. Once an operator frees space (delete, compact,
//! defragment, disarm), the next pass proves etcd takes writes again,
//! resolves the alert, and the run finishes.

mod support;

use nightshift_coord::{Compare, CoordError, Coordinator, LeaseId, Txn, TxnOp};
use nightshift_core::ids::{ExecutorId, FencingToken, ItemIndex, JobName};
use nightshift_core::keyspace::{self, Command, ItemResult, ResultBatch, ResultOutcome};
use nightshift_core::state::{
    AlertRule, AlertSeverity, AlertState, AttemptOutcome, RunState, TriggerSource,
};
use nightshift_store::AlertFilter;
use nightshift_testkit::etcd::{EtcdOptions, EtcdServer};
use std::sync::Arc;
use support::{Bed, PREFIX};

/// Small enough to fill in a few dozen puts.
const QUOTA: u64 = 1024 * 1024;

async fn coordination_alerts(bed: &Bed) -> Vec<nightshift_store::Alert> {
    bed.store
        .list_alerts(&AlertFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.rule == AlertRule::CoordinationFull)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_etcd_raises_coordination_full_and_the_leader_keeps_serving() {
    let etcd = EtcdServer::start_with(EtcdOptions {
        quota_backend_bytes: Some(QUOTA),
        ..Default::default()
    })
    .await
    .unwrap();
    let coord: Arc<dyn Coordinator> = Arc::new(
        nightshift_coord::etcd::EtcdCoordinator::connect(nightshift_coord::etcd::EtcdConfig::new(
            etcd.endpoints(),
        ))
        .await
        .unwrap(),
    );
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
    let (_, token, _) = bed.assignment(&run, &job, &exec).await.expect("assigned");

    // The executor records all four items, fenced as the SDK does.
    let batch = ResultBatch {
        executor: exec.clone(),
        token: FencingToken(token),
        results: (0..4)
            .map(|i| ItemResult {
                item: ItemIndex(i),
                attempt: 1,
                outcome: ResultOutcome::Succeeded,
                retryable: false,
                error: None,
                started_at_ms: 10,
                ended_at_ms: 20,
                log: None,
            })
            .collect(),
    };
    let assign = keyspace::assign_key(PREFIX, &run, &job, &exec);
    let written = coord
        .txn(Txn {
            compares: vec![
                Compare::mod_revision(assign.clone(), token),
                Compare::lease(assign, LeaseId(lease.0)),
            ],
            success: vec![TxnOp::Put {
                key: keyspace::result_key(PREFIX, &run, &job, &exec, "s1"),
                value: keyspace::encode(&batch).unwrap(),
                lease: None,
            }],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(written.succeeded);

    // Something else fills etcd up: writes are refused as Full.
    let mut refused = None;
    for n in 0..200 {
        match coord
            .put(&format!("/filler/{n}"), vec![b'x'; 64 * 1024], None)
            .await
        {
            Ok(_) => continue,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("etcd never refused a write under a 1 MiB quota");
    assert!(matches!(refused, CoordError::Full(_)), "{refused:?}");
    assert!(
        refused.is_transient(),
        "kept and retried once space is freed"
    );

    // The leader keeps passing: no error, the finished items' attempts reach
    // SQL, and one critical alert says what to do.
    bed.leader.pass().await.unwrap();
    bed.leader.pass().await.unwrap();
    let alerts = coordination_alerts(&bed).await;
    assert_eq!(alerts.len(), 1, "one alert per episode: {alerts:?}");
    let alert = &alerts[0];
    assert_eq!(alert.severity, AlertSeverity::Critical);
    assert_eq!(alert.state, AlertState::Open);
    for step in ["etcdctl compact", "etcdctl defrag", "etcdctl alarm disarm"] {
        assert!(
            alert.message.contains(step),
            "{step} missing from: {}",
            alert.message
        );
    }
    let attempts = bed.store.attempts(&run, &job, None).await.unwrap();
    assert_eq!(
        attempts
            .iter()
            .filter(|a| a.outcome == Some(AttemptOutcome::Succeeded))
            .count(),
        4,
        "{attempts:?}"
    );
    assert!(
        bed.leader.live_runs().any(|r| r.run == run),
        "the run cannot end while etcd refuses its state"
    );

    // The operator frees space; the leader notices, resolves the alert and
    // the run ends.
    coord.delete_prefix("/filler/").await.unwrap();
    etcd.free_space().await.unwrap();
    let mut passes = 0;
    while bed.leader.live_runs().any(|r| r.run == run) {
        passes += 1;
        assert!(passes <= 5, "the run did not end after space was freed");
        bed.leader.pass().await.unwrap();
    }
    let alerts = coordination_alerts(&bed).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].state, AlertState::Resolved);
    assert_eq!(
        bed.store.get_run(&run).await.unwrap().unwrap().state,
        RunState::Succeeded
    );
    assert!(
        coord
            .get(&keyspace::coord_probe_key(PREFIX))
            .await
            .unwrap()
            .is_none(),
        "the probe key is deleted"
    );
}
