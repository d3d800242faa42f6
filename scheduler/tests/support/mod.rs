//! A test bed for driving one in-process `Leader` pass by pass against any
//! `Coordinator` (the in-process backend or a real etcd): a SQLite store, a
//! DAG applied from TOML, executors registered by hand under their own
//! leases, commands written as the CLI would.

#![allow(dead_code)] // each test file uses part of it

use nightshift_coord::election::{Election, Leadership};
use nightshift_coord::{Coordinator, LeaseId};
use nightshift_core::dag::{parse_dag, CalendarSet};
use nightshift_core::ids::{DagName, ExecutorId, HandlerName, JobName, RunId};
use nightshift_core::keyspace::{
    self, AppliedDag, AssignmentRecord, Command, CommandId, CommandRecord, ExecutorInfo,
};
use nightshift_scheduler::leader::Leader;
use nightshift_scheduler::{SchedulerConfig, SystemClock};
use nightshift_store::{NewDagVersion, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub const PREFIX: &str = "/bed/";

pub struct Bed {
    pub coord: Arc<dyn Coordinator>,
    pub store: Store,
    pub dag: DagName,
    _db: nightshift_testkit::db::SqliteFile,
    _leadership: Leadership,
    pub leader: Leader,
}

impl Bed {
    /// Applies `source` as DAG `d` and makes a leader of it.
    pub async fn new(coord: Arc<dyn Coordinator>, source: &str) -> Bed {
        Bed::with_config(coord, source, SchedulerConfig::new("s", PREFIX)).await
    }

    /// [`Bed::new`] with a leader configured by `config` (its prefix must
    /// be [`PREFIX`]).
    pub async fn with_config(
        coord: Arc<dyn Coordinator>,
        source: &str,
        config: SchedulerConfig,
    ) -> Bed {
        let db = nightshift_testkit::db::fresh_sqlite();
        let store = Store::connect(&db.url).await.unwrap();
        let spec = parse_dag(Path::new("d.toml"), source, &CalendarSet::new()).unwrap();
        let checksum = keyspace::dag_checksum(source, &spec);
        let dag = DagName::new("d");
        let v = store
            .record_dag_version(&NewDagVersion {
                dag: &dag,
                spec_json: &serde_json::to_string(&spec).unwrap(),
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
        let election = Election::new(coord.clone(), keyspace::leader_prefix(PREFIX));
        let lease = coord.grant_lease(Duration::from_secs(60)).await.unwrap();
        let leadership = election.campaign(b"s".to_vec(), lease).await.unwrap();
        let leader = Leader::recover(
            coord.clone(),
            store.clone(),
            Arc::new(SystemClock),
            config,
            &leadership,
        )
        .await
        .unwrap();
        Bed {
            coord,
            store,
            dag,
            _db: db,
            _leadership: leadership,
            leader,
        }
    }

    /// Replaces the leader by a new one of the same leadership, which
    /// rebuilds its state from etcd (what a failover's new leader does).
    pub async fn recover(&mut self, config: SchedulerConfig) {
        self.leader = Leader::recover(
            self.coord.clone(),
            self.store.clone(),
            Arc::new(SystemClock),
            config,
            &self._leadership,
        )
        .await
        .unwrap();
    }

    /// Registers executor `id` serving `noop` under a new lease.
    pub async fn register(&self, id: &ExecutorId) -> LeaseId {
        let lease = self
            .coord
            .grant_lease(Duration::from_secs(60))
            .await
            .unwrap();
        let info = ExecutorInfo {
            id: id.clone(),
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
        self.coord
            .put(
                &keyspace::executor_key(PREFIX, id),
                keyspace::encode(&info).unwrap(),
                Some(lease),
            )
            .await
            .unwrap();
        lease
    }

    /// Writes `command` as the CLI would; returns its id.
    pub async fn command(&self, seq: u64, command: Command) -> CommandId {
        let id = CommandId::new(1_700_000_000_000 + i64::try_from(seq).unwrap(), seq);
        let cmd = CommandRecord {
            id: id.clone(),
            issued_at_ms: 1,
            issued_by: "ops".into(),
            command,
        };
        self.coord
            .put(
                &keyspace::command_key(PREFIX, &id),
                keyspace::encode(&cmd).unwrap(),
                None,
            )
            .await
            .unwrap();
        id
    }

    /// The id the run of trigger command `id` gets.
    pub fn run_of(&self, id: &CommandId) -> RunId {
        RunId::new(format!("{}-{id}", self.dag))
    }

    /// `exec`'s assignment of `job` in `run`, with its mod revision.
    pub async fn assignment(
        &self,
        run: &RunId,
        job: &JobName,
        exec: &ExecutorId,
    ) -> Option<(AssignmentRecord, i64, Option<LeaseId>)> {
        let kv = self
            .coord
            .get(&keyspace::assign_key(PREFIX, run, job, exec))
            .await
            .unwrap()?;
        Some((
            keyspace::decode(&kv.value).unwrap(),
            kv.mod_revision,
            kv.lease,
        ))
    }
}

/// A real etcd's client, with the server kept alive as long as the client.
pub async fn etcd() -> (nightshift_testkit::etcd::EtcdServer, Arc<dyn Coordinator>) {
    let etcd = nightshift_testkit::etcd::EtcdServer::start().await.unwrap();
    let coord = nightshift_coord::etcd::EtcdCoordinator::connect(
        nightshift_coord::etcd::EtcdConfig::new(vec![etcd.endpoint()]),
    )
    .await
    .unwrap();
    (etcd, Arc::new(coord))
}
