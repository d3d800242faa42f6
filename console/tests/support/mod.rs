//! Shared fixture of the console tests: a console over a coordinator and a
//! fresh store, seeded through the store API and the keyspace records, and
//! a small request helper over `tower::ServiceExt::oneshot`.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use nightshift_console::{router, AppState, AuthConfig, Role};
use nightshift_coord::memory::MemoryCoordinator;
use nightshift_coord::{Coordinator, LeaseId};
use nightshift_core::dag::{parse_dag, CalendarSet};
use nightshift_core::ids::{
    DagName, ExecutorId, FencingToken, HandlerName, ItemIndex, JobName, RunId,
};
use nightshift_core::keyspace::{
    assign_key, dag_checksum, dag_key, encode, executor_key, progress_key, AppliedDag,
    AssignmentRecord, ExecutorInfo, ItemProgress, ProgressRecord,
};
use nightshift_core::state::{
    AlertRule, AlertSeverity, AttemptOutcome, JobState, RunState, TriggerSource,
};
use nightshift_store::{JobRun, NewAlert, NewAttempt, NewDagVersion, NewEvent, NewRun, Store};
use std::any::Any;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// The operator token of [`operators`].
pub const TOKEN: &str = "alice-token-0123456789abcdefghijkl";
/// The key prefix tests use.
pub const PREFIX: &str = "/ns-test/";

/// The seeded DAG: a description with markup, to check escaping.
pub const DAG_TOML: &str = r#"
name = "settlement"
description = "<script>alert('dag')</script> nightly settlement"
schedule = "0 2 * * *"
timezone = "Europe/Paris"

[jobs.extract]
handler = "noop"
shards = 4

[jobs.settle]
handler = "noop"
shards = 8
depends_on = ["extract"]

[jobs.report]
handler = "noop"
depends_on = ["settle"]
"#;

/// The viewer token of [`operators`].
pub const VIEWER_TOKEN: &str = "victor-viewer-token-0123456789abcdef";

/// Operator `alice` with [`TOKEN`] and viewer `victor` with
/// [`VIEWER_TOKEN`].
pub fn operators() -> AuthConfig {
    let mut auth = AuthConfig::new();
    auth.add(1, "alice", Role::Operator, TOKEN).unwrap();
    auth.add(2, "victor", Role::Viewer, VIEWER_TOKEN).unwrap();
    auth
}

/// [`operators`] on a read-only console.
pub fn read_only() -> AuthConfig {
    let mut auth = operators();
    auth.set_read_only(true);
    auth
}

/// A console under test and what it runs on.
pub struct Fixture {
    pub state: AppState,
    pub coord: Arc<dyn Coordinator>,
    pub store: Store,
    _guards: Vec<Box<dyn Any + Send + Sync>>,
}

impl Fixture {
    /// A console over `coord` and the store at `url`; `guards` live as long.
    pub async fn new(
        coord: Arc<dyn Coordinator>,
        url: &str,
        auth: AuthConfig,
        guards: Vec<Box<dyn Any + Send + Sync>>,
    ) -> Fixture {
        let store = Store::connect(url).await.unwrap();
        let mut state = AppState::new(store.clone(), coord.clone(), PREFIX, auth);
        state.poll_interval = Duration::from_millis(50);
        Fixture {
            state,
            coord,
            store,
            _guards: guards,
        }
    }

    /// In-process coordinator and a fresh SQLite file.
    pub async fn memory(auth: AuthConfig) -> Fixture {
        let db = nightshift_testkit::db::fresh_sqlite();
        let url = db.url.clone();
        Fixture::new(
            Arc::new(MemoryCoordinator::new()),
            &url,
            auth,
            vec![Box::new(db)],
        )
        .await
    }

    /// A real etcd process and a fresh SQLite file.
    pub async fn etcd(auth: AuthConfig) -> Fixture {
        let etcd = nightshift_testkit::etcd::EtcdServer::start().await.unwrap();
        let coord = nightshift_coord::etcd::EtcdCoordinator::connect(
            nightshift_coord::etcd::EtcdConfig::new(etcd.endpoints()),
        )
        .await
        .unwrap();
        let db = nightshift_testkit::db::fresh_sqlite();
        let url = db.url.clone();
        Fixture::new(
            Arc::new(coord),
            &url,
            auth,
            vec![Box::new(etcd), Box::new(db)],
        )
        .await
    }

    /// Sends a request to the router; returns status, headers and body text.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_owned())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// GET returning status and JSON.
    pub async fn get_json(&self, path: &str) -> (StatusCode, serde_json::Value) {
        let (status, _, body) = self.call(Method::GET, path, Some(TOKEN), None).await;
        (
            status,
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
        )
    }

    /// POST with the operator token; status and JSON.
    pub async fn post_json(
        &self,
        path: &str,
        body: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let (status, _, text) = self.call(Method::POST, path, Some(TOKEN), body).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}")),
        )
    }

    /// Every key under the prefix with its mod revision.
    pub async fn keys(&self) -> BTreeMap<String, i64> {
        let (kvs, _) = self.coord.get_prefix(PREFIX).await.unwrap();
        kvs.into_iter()
            .map(|kv| (kv.key, kv.mod_revision))
            .collect()
    }
}

/// Base time of the seeded history: a minute ago.
pub fn t0() -> i64 {
    chrono::Utc::now().timestamp_millis() - 60_000
}

/// Seeds the DAG `settlement` (applied in etcd, version in SQL), an older
/// succeeded run `r0`, a running run `r1` (extract succeeded; settle
/// running with items in every state), a live executor `e1` owning items 3
/// and 4 of settle (its assignment key) with progress,
/// an event and an open alert. Returns the alert id.
pub async fn seed(f: &Fixture) -> i64 {
    let t0 = t0();
    let spec = parse_dag(
        Path::new("dags/settlement.toml"),
        DAG_TOML,
        &CalendarSet::new(),
    )
    .unwrap();
    let dag = DagName::new("settlement");
    let checksum = dag_checksum(DAG_TOML, &spec);
    let spec_json = serde_json::to_string(&spec).unwrap();
    f.store
        .record_dag_version(&NewDagVersion {
            dag: &dag,
            spec_json: &spec_json,
            source_toml: DAG_TOML,
            checksum: &checksum,
            applied_by: "ops",
            at_ms: t0 - 10_000,
        })
        .await
        .unwrap();
    let applied = AppliedDag {
        spec,
        source_toml: DAG_TOML.to_owned(),
        checksum,
        version: 1,
        applied_at_ms: t0 - 10_000,
        applied_by: "ops".into(),
        paused: false,
    };
    f.coord
        .put(&dag_key(PREFIX, &dag), encode(&applied).unwrap(), None)
        .await
        .unwrap();

    for (id, created) in [("r0", t0 - 5_000), ("r1", t0)] {
        f.store
            .insert_run(&NewRun {
                run_id: RunId::new(id),
                dag: dag.clone(),
                dag_version: 1,
                business_date: chrono::NaiveDate::from_ymd_opt(2024, 3, 29).unwrap(),
                trigger_source: TriggerSource::Schedule,
                params: serde_json::json!({"region": "eu"}),
                scheduled_for_ms: None,
                created_at_ms: created,
            })
            .await
            .unwrap();
        f.store
            .update_run_state(&RunId::new(id), RunState::Running, created + 100, None)
            .await
            .unwrap();
    }
    f.store
        .update_run_state(&RunId::new("r0"), RunState::Succeeded, t0 - 1_000, None)
        .await
        .unwrap();

    let r1 = RunId::new("r1");
    let job = |name: &str, state, shards, succeeded, failed, started, ended| JobRun {
        run_id: r1.clone(),
        job: JobName::new(name),
        state,
        shards,
        succeeded,
        failed,
        skipped: 0,
        cancelled: 0,
        started_at_ms: started,
        ended_at_ms: ended,
        error: None,
    };
    f.store
        .upsert_job_run(&job(
            "extract",
            JobState::Running,
            4,
            0,
            0,
            Some(t0 + 1_000),
            None,
        ))
        .await
        .unwrap();
    f.store
        .upsert_job_run(&job(
            "extract",
            JobState::Succeeded,
            4,
            4,
            0,
            Some(t0 + 1_000),
            Some(t0 + 5_000),
        ))
        .await
        .unwrap();
    f.store
        .upsert_job_run(&job(
            "settle",
            JobState::Running,
            8,
            2,
            1,
            Some(t0 + 5_000),
            None,
        ))
        .await
        .unwrap();

    let settle = JobName::new("settle");
    let attempt = |item: u32, n: u32, exec: &str, moved: Option<&str>| NewAttempt {
        run_id: r1.clone(),
        job: settle.clone(),
        item: ItemIndex(item),
        attempt: n,
        executor: ExecutorId::new(exec),
        fencing_token: FencingToken(7),
        started_at_ms: t0 + 5_000,
        moved_from: moved.map(ExecutorId::new),
    };
    for (item, outcome, error) in [
        (0, AttemptOutcome::Succeeded, None),
        (1, AttemptOutcome::Succeeded, None),
        (
            2,
            AttemptOutcome::Failed,
            Some("<script>boom</script> ledger refused"),
        ),
    ] {
        let id = f
            .store
            .start_attempt(&attempt(item, 1, "e1", None))
            .await
            .unwrap();
        f.store
            .finish_attempt(id, outcome, t0 + 6_000, error)
            .await
            .unwrap();
    }
    f.store
        .start_attempt(&attempt(3, 1, "e1", None))
        .await
        .unwrap();
    let lost = f
        .store
        .start_attempt(&attempt(4, 1, "e2", None))
        .await
        .unwrap();
    f.store
        .finish_attempt(
            lost,
            AttemptOutcome::Lost,
            t0 + 7_000,
            Some("lease expired"),
        )
        .await
        .unwrap();
    f.store
        .start_attempt(&attempt(4, 2, "e1", Some("e2")))
        .await
        .unwrap();

    let lease = f.coord.grant_lease(Duration::from_secs(60)).await.unwrap();
    let info = ExecutorInfo {
        id: ExecutorId::new("e1"),
        lease: lease.0,
        handlers: vec![HandlerName::new("noop")],
        capacity: 4,
        labels: BTreeMap::from([("zone".to_owned(), "eu-1".to_owned())]),
        host: "host-a".into(),
        pid: 4242,
        version: "0.1.0".into(),
        started_at_ms: t0,
        handler_capacity: Default::default(),
        params_schemas: Default::default(),
    };
    f.coord
        .put(
            &executor_key(PREFIX, &info.id),
            encode(&info).unwrap(),
            Some(LeaseId(lease.0)),
        )
        .await
        .unwrap();
    let progress = ProgressRecord {
        items: BTreeMap::from([(
            3,
            ItemProgress {
                done: 5,
                total: 10,
                message: Some("<b>halfway</b>".into()),
                at_ms: t0 + 8_000,
            },
        )]),
    };
    f.coord
        .put(
            &progress_key(PREFIX, &r1, &settle, &info.id),
            encode(&progress).unwrap(),
            Some(lease),
        )
        .await
        .unwrap();
    // What e1 owns now (as the leader writes it, on e1's lease): items 3
    // and 4, the latter at its second attempt after failing over from e2.
    let owned = AssignmentRecord {
        items: [3, 4].into_iter().collect(),
        attempts: BTreeMap::from([(4, 2)]),
        cancel: Default::default(),
        generation: None,
    };
    f.coord
        .put(
            &assign_key(PREFIX, &r1, &settle, &info.id),
            encode(&owned).unwrap(),
            Some(lease),
        )
        .await
        .unwrap();
    let checkpoint = nightshift_core::keyspace::CheckpointRecord {
        value: serde_json::json!({"page": 4}),
        run: r1.clone(),
        attempt: 1,
        executor: info.id.clone(),
        token: FencingToken(9),
        saved_at_ms: t0 + 7_000,
    };
    f.coord
        .put(
            &nightshift_core::keyspace::checkpoint_key(PREFIX, &r1, &settle, ItemIndex(3)),
            encode(&checkpoint).unwrap(),
            None,
        )
        .await
        .unwrap();

    f.store
        .append_event(&NewEvent {
            at_ms: t0,
            kind: "run_started".into(),
            actor: "scheduler:s1".into(),
            dag: Some(dag.clone()),
            run_id: Some(r1.clone()),
            job: None,
            item: None,
            executor: None,
            detail: serde_json::json!({"note": "<i>x</i>"}),
        })
        .await
        .unwrap();
    let opened = f
        .store
        .open_alert(&NewAlert {
            rule: AlertRule::ItemFailed,
            dedupe_key: "item_failed:r1:settle:2".into(),
            severity: AlertSeverity::Critical,
            dag: Some(dag),
            run_id: Some(r1),
            job: Some(settle),
            item: Some(ItemIndex(2)),
            executor: Some(ExecutorId::new("e1")),
            message: "<script>x</script> item failed".into(),
            at_ms: t0 + 6_000,
        })
        .await
        .unwrap();
    opened.alert.id.0
}

pub mod suite;
pub mod webdriver;
