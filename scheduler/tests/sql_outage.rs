//! In-process (memory coordination backend, SQLite): the leader against a
//! simulated executor that speaks the keyspace protocol by hand. While the
//! SQL store is unavailable nothing is lost — result batches stay in etcd
//! and the run waits; once the store is back the run completes with its
//! full history.

use nightshift_coord::election::Election;
use nightshift_coord::memory::MemoryCoordinator;
use nightshift_coord::{Compare, Coordinator, LeaseId, Txn, TxnOp};
use nightshift_core::dag::{parse_dag, CalendarSet};
use nightshift_core::ids::{
    DagName, ExecutorId, FencingToken, HandlerName, ItemIndex, JobName, RunId,
};
use nightshift_core::keyspace::{
    self, AppliedDag, AssignmentRecord, Command, CommandId, CommandRecord, ExecutorInfo,
    ItemResult, ResultBatch, ResultOutcome,
};
use nightshift_core::state::{AttemptOutcome, RunState, TriggerSource};
use nightshift_scheduler::leader::Leader;
use nightshift_scheduler::{SchedulerConfig, SystemClock};
use nightshift_store::{NewDagVersion, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const PREFIX: &str = "/outage/";

#[tokio::test]
async fn results_wait_in_etcd_while_sql_is_down_and_nothing_is_lost() {
    let coord: Arc<dyn Coordinator> = Arc::new(MemoryCoordinator::new());
    let db = nightshift_testkit::db::fresh_sqlite();
    let store = Store::connect(&db.url).await.unwrap();
    let source = "[jobs.a]\nhandler = \"noop\"\nshards = 4\n";
    let spec = parse_dag(Path::new("d.toml"), source, &CalendarSet::new()).unwrap();
    let checksum = keyspace::dag_checksum(source, &spec);
    let spec_json = serde_json::to_string(&spec).unwrap();
    let dag = DagName::new("d");
    let v = store
        .record_dag_version(&NewDagVersion {
            dag: &dag,
            spec_json: &spec_json,
            source_toml: source,
            checksum: &checksum,
            applied_by: "t",
            at_ms: 1,
        })
        .await
        .unwrap();
    let applied = AppliedDag {
        spec,
        source_toml: source.into(),
        checksum,
        version: v.version,
        applied_at_ms: 1,
        applied_by: "t".into(),
        paused: false,
    };
    coord
        .put(
            &keyspace::dag_key(PREFIX, &dag),
            keyspace::encode(&applied).unwrap(),
            None,
        )
        .await
        .unwrap();
    // A simulated executor serving noop.
    let exec = ExecutorId::new("e1");
    let lease = coord.grant_lease(Duration::from_secs(60)).await.unwrap();
    let info = ExecutorInfo {
        id: exec.clone(),
        lease: lease.0,
        handlers: vec![HandlerName::new("noop")],
        capacity: 4,
        labels: Default::default(),
        host: "h".into(),
        pid: 1,
        version: "t".into(),
        started_at_ms: 1,
        handler_capacity: Default::default(),
        params_schemas: Default::default(),
    };
    coord
        .put(
            &keyspace::executor_key(PREFIX, &exec),
            keyspace::encode(&info).unwrap(),
            Some(lease),
        )
        .await
        .unwrap();
    let id = CommandId::new(1_700_000_000_000, 9);
    let cmd = CommandRecord {
        id: id.clone(),
        issued_at_ms: 1,
        issued_by: "ops".into(),
        command: Command::Trigger {
            dag: dag.clone(),
            business_date: None,
            params: None,
            rerun: false,
            source: TriggerSource::Manual,
        },
    };
    coord
        .put(
            &keyspace::command_key(PREFIX, &id),
            keyspace::encode(&cmd).unwrap(),
            None,
        )
        .await
        .unwrap();

    let election = Election::new(coord.clone(), keyspace::leader_prefix(PREFIX));
    let leader_lease = coord.grant_lease(Duration::from_secs(60)).await.unwrap();
    let leadership = election
        .campaign(b"s".to_vec(), leader_lease)
        .await
        .unwrap();
    let config = SchedulerConfig::new("s", PREFIX);
    let mut leader = Leader::recover(
        coord.clone(),
        store.clone(),
        Arc::new(SystemClock),
        config.clone(),
        &leadership,
    )
    .await
    .unwrap();
    leader.pass().await.unwrap(); // creates the run and dispatches job a
    let run = RunId::new(format!("d-{id}"));
    let job = JobName::new("a");
    let assign = coord
        .get(&keyspace::assign_key(PREFIX, &run, &job, &exec))
        .await
        .unwrap()
        .expect("assignment for e1");
    assert_eq!(
        assign.lease,
        Some(lease),
        "the assignment is attached to the executor's lease"
    );
    let record: AssignmentRecord = keyspace::decode(&assign.value).unwrap();
    assert_eq!(record.items.len(), 4);

    // The executor records all four items, fenced by its token.
    let results = (0..4)
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
        .collect();
    let batch = ResultBatch {
        executor: exec.clone(),
        token: FencingToken(assign.mod_revision),
        results,
    };
    let result_key =
        keyspace::result_key(PREFIX, &run, &job, &exec, &keyspace::result_seq(lease.0, 0));
    let put = coord
        .txn(Txn {
            compares: vec![
                Compare::mod_revision(assign.key.clone(), assign.mod_revision),
                Compare::lease(assign.key.clone(), LeaseId(lease.0)),
            ],
            success: vec![TxnOp::Put {
                key: result_key.clone(),
                value: keyspace::encode(&batch).unwrap(),
                lease: None,
            }],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(put.succeeded);

    // SQL goes away: the pass keeps the batch and the run.
    store.close().await;
    leader.pass().await.unwrap();
    assert!(
        coord.get(&result_key).await.unwrap().is_some(),
        "the batch must wait for SQL"
    );
    assert_eq!(leader.live_runs().count(), 1);

    // SQL is back (a new connection, as after a database restart).
    let store = Store::connect(&db.url).await.unwrap();
    let mut leader = Leader::recover(
        coord.clone(),
        store.clone(),
        Arc::new(SystemClock),
        config,
        &leadership,
    )
    .await
    .unwrap();
    for _ in 0..3 {
        leader.pass().await.unwrap();
    }
    assert!(
        coord.get(&result_key).await.unwrap().is_none(),
        "the batch is consumed"
    );
    assert_eq!(leader.live_runs().count(), 0, "the finished run left etcd");
    for gone in [
        keyspace::run_prefix(PREFIX, &run),
        keyspace::run_results_prefix(PREFIX, &run),
        keyspace::owners_prefix(PREFIX),
    ] {
        let (left, _) = coord.get_prefix(&gone).await.unwrap();
        assert!(left.is_empty(), "{gone}: {left:?}");
    }
    assert_eq!(
        store.get_run(&run).await.unwrap().unwrap().state,
        RunState::Succeeded
    );
    let attempts = store.attempts(&run, &job, None).await.unwrap();
    assert_eq!(attempts.len(), 4);
    assert!(attempts
        .iter()
        .all(|a| a.outcome == Some(AttemptOutcome::Succeeded)
            && a.fencing_token.0 == assign.mod_revision
            && a.executor == exec));
}

/// A SQL outage seen by one leader is finished by the next: the health key
/// carries it over, the new leader records it as one alert dated from its
/// start, resolves it, and deletes the key.
#[tokio::test]
async fn a_new_leader_records_the_outage_its_predecessor_saw() {
    let coord: Arc<dyn Coordinator> = Arc::new(MemoryCoordinator::new());
    let db = nightshift_testkit::db::fresh_sqlite();
    let store = Store::connect(&db.url).await.unwrap();
    // Something to write: the report of an unreadable key.
    coord
        .put(
            &keyspace::dag_key(PREFIX, &DagName::new("broken")),
            b"{oops".to_vec(),
            None,
        )
        .await
        .unwrap();
    let election = Election::new(coord.clone(), keyspace::leader_prefix(PREFIX));
    let lease = coord.grant_lease(Duration::from_secs(60)).await.unwrap();
    let leadership = election.campaign(b"s".to_vec(), lease).await.unwrap();
    let mut config = SchedulerConfig::new("s", PREFIX);
    config.store_alert_linger = Duration::ZERO;

    let mut first = Leader::recover(
        coord.clone(),
        store.clone(),
        Arc::new(SystemClock),
        config.clone(),
        &leadership,
    )
    .await
    .unwrap();
    store.close().await;
    first.pass().await.unwrap();
    let key = keyspace::store_health_key(PREFIX);
    let health: keyspace::StoreHealth =
        keyspace::decode(&coord.get(&key).await.unwrap().expect("health key").value).unwrap();
    assert_eq!(
        (health.attempts, health.recovered_at_ms),
        (1, None),
        "{health:?}"
    );
    drop(first);

    let store = Store::connect(&db.url).await.unwrap();
    let mut next = Leader::recover(
        coord.clone(),
        store.clone(),
        Arc::new(SystemClock),
        config,
        &leadership,
    )
    .await
    .unwrap();
    next.pass().await.unwrap(); // the alert is written: recovered
    let marked: keyspace::StoreHealth =
        keyspace::decode(&coord.get(&key).await.unwrap().expect("health key").value).unwrap();
    assert!(marked.recovered_at_ms.is_some(), "{marked:?}");
    next.pass().await.unwrap(); // lingered (zero): resolved, key deleted
    assert!(coord.get(&key).await.unwrap().is_none());
    let alerts = store
        .list_alerts(&nightshift_store::AlertFilter::default())
        .await
        .unwrap();
    let outage: Vec<_> = alerts
        .iter()
        .filter(|a| a.rule == nightshift_core::state::AlertRule::StoreUnavailable)
        .collect();
    assert_eq!(outage.len(), 1, "{alerts:?}");
    assert_eq!(outage[0].opened_at_ms, health.down_since_ms);
    assert_eq!(outage[0].resolved_at_ms, marked.recovered_at_ms);
    let reported = store
        .events(&nightshift_store::EventFilter {
            kind: Some("bad_key".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        reported.len(),
        1,
        "the new leader reports the bad key again: {reported:?}"
    );
}
