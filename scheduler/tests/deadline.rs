//! In-process, with an injected clock: a run still going past its DAG's
//! deadline raises a `run_deadline_missed` alert, which resolves itself when
//! the run ends (here: cancelled by an operator command), as does the
//! alert of its job waiting for an executor.

use nightshift_coord::election::Election;
use nightshift_coord::memory::MemoryCoordinator;
use nightshift_coord::Coordinator;
use nightshift_core::dag::{parse_dag, CalendarSet};
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::keyspace::{self, AppliedDag, Command, CommandId, CommandRecord};
use nightshift_core::state::{AlertRule, AlertState, RunState, TriggerSource};
use nightshift_scheduler::leader::Leader;
use nightshift_scheduler::{Clock, SchedulerConfig};
use nightshift_store::{AlertFilter, NewDagVersion, Store};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PREFIX: &str = "/deadline/";

/// A clock the test moves by hand.
struct FakeClock(AtomicI64);

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

async fn command(coord: &Arc<dyn Coordinator>, nonce: u64, command: Command) {
    let id = CommandId::new(1_700_000_000_000, nonce);
    let rec = CommandRecord {
        id: id.clone(),
        issued_at_ms: 1,
        issued_by: "ops".into(),
        command,
    };
    coord
        .put(
            &keyspace::command_key(PREFIX, &id),
            keyspace::encode(&rec).unwrap(),
            None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_run_past_its_deadline_raises_an_alert_that_resolves_when_it_ends() {
    let coord: Arc<dyn Coordinator> = Arc::new(MemoryCoordinator::new());
    let db = nightshift_testkit::db::fresh_sqlite();
    let store = Store::connect(&db.url).await.unwrap();
    // Nobody serves `slow`: the run cannot finish on its own.
    let source = "deadline = \"06:00\"\ntimezone = \"UTC\"\n[jobs.a]\nhandler = \"slow\"\n";
    let spec = parse_dag(Path::new("late.toml"), source, &CalendarSet::new()).unwrap();
    let checksum = keyspace::dag_checksum(source, &spec);
    let spec_json = serde_json::to_string(&spec).unwrap();
    let dag = DagName::new("late");
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
    command(
        &coord,
        1,
        Command::Trigger {
            dag: dag.clone(),
            business_date: None,
            params: None,
            rerun: false,
            source: TriggerSource::Manual,
        },
    )
    .await;

    // 2024-03-01 05:59 UTC: a minute before the deadline.
    let t0 = 1_709_272_740_000;
    let clock = Arc::new(FakeClock(AtomicI64::new(t0)));
    let lease = coord.grant_lease(Duration::from_secs(60)).await.unwrap();
    let leadership = Election::new(coord.clone(), keyspace::leader_prefix(PREFIX))
        .campaign(b"s".to_vec(), lease)
        .await
        .unwrap();
    let mut leader = Leader::recover(
        coord.clone(),
        store.clone(),
        clock.clone(),
        SchedulerConfig::new("s", PREFIX),
        &leadership,
    )
    .await
    .unwrap();
    leader.pass().await.unwrap();
    let run = leader.live_runs().next().expect("the run").clone();
    assert_eq!(run.deadline_ms, Some(t0 + 60_000));
    let alerts = || async {
        store
            .list_alerts(&AlertFilter {
                dag: Some(dag.clone()),
                ..Default::default()
            })
            .await
            .unwrap()
    };
    assert!(
        alerts()
            .await
            .iter()
            .all(|a| a.rule != AlertRule::RunDeadlineMissed),
        "no alert before the deadline"
    );

    clock.0.store(t0 + 61_000, Ordering::SeqCst);
    leader.pass().await.unwrap();
    let missed: Vec<_> = alerts()
        .await
        .into_iter()
        .filter(|a| a.rule == AlertRule::RunDeadlineMissed)
        .collect();
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert_eq!(missed[0].state, AlertState::Open);
    assert_eq!(missed[0].run_id.as_ref(), Some(&run.run));
    // It also waits for an executor: that alert is open too.
    assert!(alerts()
        .await
        .iter()
        .any(|a| a.rule == AlertRule::NoExecutor && a.state == AlertState::Open));

    command(
        &coord,
        2,
        Command::CancelRun {
            run: RunId::new(run.run.as_str()),
        },
    )
    .await;
    leader.pass().await.unwrap();
    leader.pass().await.unwrap();
    assert_eq!(
        store.get_run(&run.run).await.unwrap().unwrap().state,
        RunState::Cancelled
    );
    let missed: Vec<_> = alerts()
        .await
        .into_iter()
        .filter(|a| a.rule == AlertRule::RunDeadlineMissed)
        .collect();
    assert_eq!(missed[0].state, AlertState::Resolved, "{missed:?}");
    let waiting: Vec<_> = alerts()
        .await
        .into_iter()
        .filter(|a| a.rule == AlertRule::NoExecutor)
        .collect();
    assert!(
        waiting.iter().all(|a| a.state == AlertState::Resolved),
        "{waiting:?}"
    );
}
