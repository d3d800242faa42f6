//! Invariant 6 in-process (memory coordination backend, SQLite store): only
//! the leader writes run state; once deposed, a leader's pass fails with
//! `Deposed` and writes nothing, while the new leader carries the work out.

use nightshift_coord::election::Election;
use nightshift_coord::memory::MemoryCoordinator;
use nightshift_coord::Coordinator;
use nightshift_core::dag::{parse_dag, CalendarSet};
use nightshift_core::ids::DagName;
use nightshift_core::keyspace::{self, AppliedDag, Command, CommandId, CommandRecord};
use nightshift_core::state::TriggerSource;
use nightshift_scheduler::leader::{Leader, LeaderError};
use nightshift_scheduler::{SchedulerConfig, SystemClock};
use nightshift_store::{NewDagVersion, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const PREFIX: &str = "/fence/";

async fn setup(coord: &Arc<dyn Coordinator>, store: &Store) {
    let source = "[jobs.a]\nhandler = \"noop\"\nshards = 4\n";
    let spec = parse_dag(Path::new("d.toml"), source, &CalendarSet::new()).unwrap();
    let checksum = keyspace::dag_checksum(source, &spec);
    let spec_json = serde_json::to_string(&spec).unwrap();
    let recorded = store
        .record_dag_version(&NewDagVersion {
            dag: &DagName::new("d"),
            spec_json: &spec_json,
            source_toml: source,
            checksum: &checksum,
            applied_by: "test",
            at_ms: 1,
        })
        .await
        .unwrap();
    let applied = AppliedDag {
        spec,
        source_toml: source.into(),
        checksum,
        version: recorded.version,
        applied_at_ms: 1,
        applied_by: "test".into(),
        paused: false,
    };
    coord
        .put(
            &keyspace::dag_key(PREFIX, &DagName::new("d")),
            keyspace::encode(&applied).unwrap(),
            None,
        )
        .await
        .unwrap();
    let id = CommandId::new(1_700_000_000_000, 7);
    let cmd = CommandRecord {
        id: id.clone(),
        issued_at_ms: 1,
        issued_by: "ops".into(),
        command: Command::Trigger {
            dag: DagName::new("d"),
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
}

#[tokio::test]
async fn a_deposed_leader_writes_nothing_and_its_successor_carries_on() {
    let coord: Arc<dyn Coordinator> = Arc::new(MemoryCoordinator::new());
    let db = nightshift_testkit::db::fresh_sqlite();
    let store = Store::connect(&db.url).await.unwrap();
    setup(&coord, &store).await;
    let election = Election::new(coord.clone(), keyspace::leader_prefix(PREFIX));
    let config = SchedulerConfig::new("old", PREFIX);

    let lease1 = coord.grant_lease(Duration::from_secs(30)).await.unwrap();
    let first = election.campaign(b"old".to_vec(), lease1).await.unwrap();
    let mut old = Leader::recover(
        coord.clone(),
        store.clone(),
        Arc::new(SystemClock),
        config.clone(),
        &first,
    )
    .await
    .unwrap();
    // The old leader's lease ends before it acts (e.g. a long GC pause).
    coord.revoke_lease(lease1).await.unwrap();
    let lease2 = coord.grant_lease(Duration::from_secs(30)).await.unwrap();
    let second = election.campaign(b"new".to_vec(), lease2).await.unwrap();

    let before = coord.current_revision().await.unwrap();
    let err = old.pass().await.unwrap_err();
    assert!(matches!(err, LeaderError::Deposed), "{err:?}");
    let (runs, _) = coord
        .get_prefix(&keyspace::runs_prefix(PREFIX))
        .await
        .unwrap();
    assert!(runs.is_empty(), "the deposed leader wrote run state");
    assert_eq!(
        coord.current_revision().await.unwrap(),
        before,
        "the deposed leader changed etcd"
    );
    let (commands, _) = coord
        .get_prefix(&keyspace::commands_prefix(PREFIX))
        .await
        .unwrap();
    assert_eq!(commands.len(), 1, "the command must wait for a real leader");
    let rows = store.list_runs(&Default::default()).await.unwrap();
    assert!(
        rows.is_empty(),
        "the deposed leader created a run in SQL: {rows:?}"
    );

    let mut new = Leader::recover(
        coord.clone(),
        store.clone(),
        Arc::new(SystemClock),
        SchedulerConfig::new("new", PREFIX),
        &second,
    )
    .await
    .unwrap();
    new.pass().await.unwrap();
    let (commands, _) = coord
        .get_prefix(&keyspace::commands_prefix(PREFIX))
        .await
        .unwrap();
    assert!(commands.is_empty());
    assert_eq!(new.live_runs().count(), 1);
    let run = new.live_runs().next().unwrap().run.clone();
    assert!(coord
        .get(&nightshift_scheduler::record::run_state_key(PREFIX, &run))
        .await
        .unwrap()
        .is_some());
}
