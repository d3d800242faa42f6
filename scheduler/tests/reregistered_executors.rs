//! Every executor's lease ends at once (as after an etcd restart longer than
//! the TTL) and each re-registers under its old id with a new lease before
//! the leader's next pass. Each item must get exactly one `lost` attempt, by
//! the executor that really held it, and then move to a live lease — found
//! by the chaos suite, where items moved to an id whose stale entry was then
//! "lost" again under an attempt that never ran.
//!
//! Run against the in-process backend and a real etcd.

use nightshift_coord::election::Election;
use nightshift_coord::memory::MemoryCoordinator;
use nightshift_coord::{Coordinator, LeaseId};
use nightshift_core::dag::{parse_dag, CalendarSet};
use nightshift_core::ids::{DagName, ExecutorId, HandlerName, JobName, RunId};
use nightshift_core::keyspace::{self, AppliedDag, AssignmentRecord, Command, CommandId, CommandRecord, ExecutorInfo};
use nightshift_core::state::{AttemptOutcome, TriggerSource};
use nightshift_scheduler::leader::Leader;
use nightshift_scheduler::{SchedulerConfig, SystemClock};
use nightshift_store::{NewDagVersion, Store};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const PREFIX: &str = "/rereg/";

async fn register(coord: &Arc<dyn Coordinator>, id: &ExecutorId) -> LeaseId {
    let lease = coord.grant_lease(Duration::from_secs(60)).await.unwrap();
    let info = ExecutorInfo { id: id.clone(), lease: lease.0, handlers: vec![HandlerName::new("noop")], capacity: 4, labels: Default::default(), host: "h".into(), pid: 1, version: "t".into(), started_at_ms: 1 };
    coord.put(&keyspace::executor_key(PREFIX, id), keyspace::encode(&info).unwrap(), Some(lease)).await.unwrap();
    lease
}

async fn every_lease_ends_at_once_and_each_item_is_lost_once_by_its_real_owner(coord: Arc<dyn Coordinator>) {
    let db = nightshift_testkit::db::fresh_sqlite();
    let store = Store::connect(&db.url).await.unwrap();
    let source = "[jobs.a]\nhandler = \"noop\"\nshards = 8\nstrategy = \"round_robin\"\n";
    let spec = parse_dag(Path::new("d.toml"), source, &CalendarSet::new()).unwrap();
    let checksum = keyspace::dag_checksum(source, &spec);
    let dag = DagName::new("d");
    let v = store
        .record_dag_version(&NewDagVersion { dag: &dag, spec_json: &serde_json::to_string(&spec).unwrap(), source_toml: source, checksum: &checksum, applied_by: "t", at_ms: 1 })
        .await
        .unwrap();
    let applied = AppliedDag { spec, source_toml: source.into(), checksum, version: v.version, applied_at_ms: 1, applied_by: "t".into(), paused: false };
    coord.put(&keyspace::dag_key(PREFIX, &dag), keyspace::encode(&applied).unwrap(), None).await.unwrap();
    let execs: Vec<ExecutorId> = (1..=3).map(|i| ExecutorId::new(format!("e{i}"))).collect();
    let mut leases = Vec::new();
    for e in &execs {
        leases.push(register(&coord, e).await);
    }
    let id = CommandId::new(1_700_000_000_000, 7);
    let cmd = CommandRecord { id: id.clone(), issued_at_ms: 1, issued_by: "ops".into(), command: Command::Trigger { dag: dag.clone(), business_date: None, params: None, rerun: false, source: TriggerSource::Manual } };
    coord.put(&keyspace::command_key(PREFIX, &id), keyspace::encode(&cmd).unwrap(), None).await.unwrap();

    let election = Election::new(coord.clone(), format!("{PREFIX}leader/"));
    let leader_lease = coord.grant_lease(Duration::from_secs(60)).await.unwrap();
    let leadership = election.campaign(b"s".to_vec(), leader_lease).await.unwrap();
    let config = SchedulerConfig::new("s", PREFIX);
    let mut leader = Leader::recover(coord.clone(), store.clone(), Arc::new(SystemClock), config, &leadership).await.unwrap();
    leader.pass().await.unwrap();
    let run = RunId::new(format!("d-{id}"));
    let job = JobName::new("a");
    // Who holds what, under which token, before the leases end.
    let mut held: BTreeMap<u32, (ExecutorId, i64)> = BTreeMap::new();
    for e in &execs {
        let kv = coord.get(&keyspace::assign_key(PREFIX, &run, &job, e)).await.unwrap().unwrap_or_else(|| panic!("no assignment for {e}"));
        let record: AssignmentRecord = keyspace::decode(&kv.value).unwrap();
        for item in record.items.iter() {
            held.insert(item, (e.clone(), kv.mod_revision));
        }
    }
    assert_eq!(held.len(), 8, "every item assigned: {held:?}");

    // All leases end; every executor comes back under its id, new lease.
    for lease in leases {
        coord.revoke_lease(lease).await.unwrap();
    }
    let mut new_leases = BTreeMap::new();
    for e in &execs {
        new_leases.insert(e.clone(), register(&coord, e).await.0);
    }
    leader.pass().await.unwrap();

    let attempts = store.attempts(&run, &job, None).await.unwrap();
    let lost: Vec<_> = attempts.iter().filter(|a| a.outcome == Some(AttemptOutcome::Lost)).collect();
    assert_eq!(lost.len(), 8, "one lost attempt per item: {attempts:#?}");
    for a in lost {
        let (owner, token) = &held[&a.item.0];
        assert_eq!((&a.executor, a.fencing_token.0), (owner, *token), "item {} was lost by {} (token {}), not by its holder", a.item, a.executor, a.fencing_token.0);
    }
    // Every item is assigned again, under the new leases.
    let mut reassigned = 0;
    for e in &execs {
        if let Some(kv) = coord.get(&keyspace::assign_key(PREFIX, &run, &job, e)).await.unwrap() {
            assert_eq!(kv.lease, Some(LeaseId(new_leases[e])), "{e}'s assignment must use its new lease");
            reassigned += keyspace::decode::<AssignmentRecord>(&kv.value).unwrap().items.len();
        }
    }
    assert_eq!(reassigned, 8);
}

#[tokio::test]
async fn memory_every_lease_ends_at_once_and_each_item_is_lost_once_by_its_real_owner() {
    every_lease_ends_at_once_and_each_item_is_lost_once_by_its_real_owner(Arc::new(MemoryCoordinator::new())).await;
}

#[tokio::test]
async fn etcd_every_lease_ends_at_once_and_each_item_is_lost_once_by_its_real_owner() {
    let etcd = nightshift_testkit::etcd::EtcdServer::start().await.unwrap();
    let coord = nightshift_coord::etcd::EtcdCoordinator::connect(nightshift_coord::etcd::EtcdConfig::new(vec![etcd.endpoint()])).await.unwrap();
    every_lease_ends_at_once_and_each_item_is_lost_once_by_its_real_owner(Arc::new(coord)).await;
}
