//! `nightshift plan` and `nightshift status` as real processes: plan shows
//! the assignment among live executors (registered by the test with a
//! lease) and the moves against the leader's last assignment; status lists
//! runs and one run's per-job progress from SQL, in text and JSON, on an
//! empty and on a seeded database (SQLite and PostgreSQL).

mod cli_env;

use chrono::NaiveDate;
use cli_env::{path_str, Db, Env, PREFIX};
use nightshift_coord::Coordinator;
use nightshift_core::ids::{DagName, ExecutorId, HandlerName, JobName, RunId};
use nightshift_core::keyspace::{self, encode, ExecutorInfo, ItemSet};
use nightshift_core::state::{JobState, RunState};
use nightshift_scheduler::record::{JobRecord, Owner, RunRecord};
use nightshift_store::JobRun;
use std::collections::BTreeMap;
use std::time::Duration;

const DAG: &str = "[jobs.load]\nshards = 8\nhandler = \"sleep\"\n[jobs.rare]\nhandler = \"nobody-has-it\"\ndepends_on = [\"load\"]\n";

async fn register(coord: &impl Coordinator, id: &str, capacity: u32) {
    let lease = coord.grant_lease(Duration::from_secs(30)).await.unwrap();
    let info = ExecutorInfo {
        id: ExecutorId::new(id),
        lease: lease.0,
        handlers: vec![HandlerName::new("sleep"), HandlerName::new("noop")],
        capacity,
        labels: BTreeMap::new(),
        host: "test".into(),
        pid: 1,
        version: "0".into(),
        started_at_ms: 0,
        handler_capacity: Default::default(),
        params_schemas: Default::default(),
    };
    coord
        .put(
            &keyspace::executor_key(PREFIX, &info.id),
            encode(&info).unwrap(),
            Some(lease),
        )
        .await
        .unwrap();
}

fn job<'a>(plan: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    plan["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == name)
        .unwrap()
}

fn executor<'a>(job: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    job["executors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["executor"] == id)
        .unwrap_or_else(|| panic!("{id} in {job}"))
}

#[tokio::test]
async fn etcd_plan_shows_assignment_and_moves() {
    let env = Env::start(Db::Sqlite).await;
    let file = env.write_dag("nightly", DAG);
    env.run(&["apply", path_str(&file)]).ok();
    let coord = env.coord().await;
    register(&coord, "e1", 4).await;
    register(&coord, "e2", 4).await;

    let text = env.run(&["plan", "nightly"]).ok();
    assert!(
        text.contains("plan for nightly (v1), 2 live executor(s)"),
        "{text}"
    );
    assert!(text.contains("no previous assignment"), "{text}");
    assert!(
        text.contains("no live executor offers handler `nobody-has-it`"),
        "{text}"
    );

    let plan: serde_json::Value =
        serde_json::from_str(&env.run(&["plan", "nightly", "--format", "json"]).ok()).unwrap();
    let load = job(&plan, "load");
    let total: u64 = load["executors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["items"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 8);
    assert_eq!(
        executor(load, "e1")["items"],
        4,
        "equal capacity, equal share: {load}"
    );
    assert_eq!(load["has_previous"], false);

    // The leader's last assignment: e1 had 0-3, e3 (now gone) had 4-7.
    let last = serde_json::json!({
        "v": 1, "shards": 8, "run": "r-prev",
        "executors": { "e1": ItemSet::range(0, 4), "e3": ItemSet::range(4, 8) }
    });
    let key =
        keyspace::last_assignment_key(PREFIX, &DagName::new("nightly"), &JobName::new("load"));
    coord
        .put(&key, serde_json::to_vec(&last).unwrap(), None)
        .await
        .unwrap();
    let plan: serde_json::Value =
        serde_json::from_str(&env.run(&["plan", "nightly", "--format", "json"]).ok()).unwrap();
    let load = job(&plan, "load");
    assert_eq!(load["previous_run"], "r-prev");
    assert_eq!(
        load["moved"], 4,
        "only the departed executor's items move: {load}"
    );
    assert_eq!(executor(load, "e1")["kept"], 4);
    assert_eq!(executor(load, "e1")["ranges"], serde_json::json!([[0, 3]]));
    assert_eq!(executor(load, "e2")["moved_in"], 4);
    assert_eq!(executor(load, "e3")["moved_out"], 4);
    let text = env.run(&["plan", "nightly"]).ok();
    assert!(
        text.contains("4 item(s) move compared with run r-prev"),
        "{text}"
    );

    let out = env.run(&["plan", "missing"]);
    assert_eq!(out.code(), Some(1), "{}", out.all());
}

async fn status_lists_runs_and_progress(db: Db) {
    let env = Env::start(db).await;
    let out = env.run(&["status"]).ok();
    assert_eq!(out.trim(), "no runs yet");
    let json: serde_json::Value =
        serde_json::from_str(&env.run(&["status", "--format", "json"]).ok()).unwrap();
    assert_eq!(json, serde_json::json!({ "runs": [] }));

    let file = env.write_dag("nightly", DAG);
    env.run(&["apply", path_str(&file)]).ok();
    let store = env.store().await;
    let date = NaiveDate::from_ymd_opt(2024, 3, 29).unwrap();
    env.seed_run(&store, "r-old", "nightly", date, RunState::Succeeded)
        .await;
    env.seed_run(&store, "r-now", "nightly", date, RunState::Running)
        .await;
    store
        .upsert_job_run(&JobRun {
            run_id: RunId::new("r-now"),
            job: JobName::new("load"),
            state: JobState::Running,
            shards: 8,
            succeeded: 5,
            failed: 1,
            skipped: 0,
            cancelled: 0,
            started_at_ms: Some(1_700_000_001_000),
            ended_at_ms: None,
            error: None,
        })
        .await
        .unwrap();

    let text = env.run(&["status"]).ok();
    assert!(text.contains("r-now") && text.contains("r-old"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("r-old") && l.contains("succeeded") && l.contains("1m00s")),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &env.run(&[
            "status", "--format", "json", "--dag", "nightly", "--limit", "1",
        ])
        .ok(),
    )
    .unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), 1);

    // The etcd flags are optional for status; give them so the live path is tried (no record: SQL).
    let json: serde_json::Value =
        serde_json::from_str(&env.run(&["status", "r-now", "--format", "json"]).ok()).unwrap();
    assert_eq!(json["run"]["state"], "running");
    assert_eq!(json["live"], false);
    let jobs = json["jobs"].as_array().unwrap();
    assert_eq!(
        jobs.len(),
        2,
        "every job of the DAG, started or not: {json}"
    );
    assert_eq!(
        jobs[0],
        serde_json::json!({"job": "load", "state": "running", "total": 8, "done": 5, "running": 0, "failed": 1, "pending": 2})
    );
    assert_eq!(jobs[1]["state"], "pending");
    assert_eq!(jobs[1]["pending"], 1);
    let text = env.run(&["status", "r-now"]).ok();
    assert!(
        text.contains("run r-now of nightly v1 (business date 2024-03-29)"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["load", "running", "5", "0", "1", "2", "8"]),
        "{text}"
    );

    let out = env.run(&["status", "r-unknown"]);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(
        out.stderr().contains("unknown run `r-unknown`"),
        "{}",
        out.all()
    );
}

#[tokio::test]
async fn etcd_status_lists_runs_and_progress_sqlite() {
    status_lists_runs_and_progress(Db::Sqlite).await;
}

#[tokio::test]
async fn etcd_status_lists_runs_and_progress_postgres() {
    status_lists_runs_and_progress(Db::Postgres).await;
}

#[tokio::test]
async fn etcd_status_prefers_the_leaders_live_record() {
    let env = Env::start(Db::Sqlite).await;
    let file = env.write_dag("nightly", DAG);
    env.run(&["apply", path_str(&file)]).ok();
    let store = env.store().await;
    env.seed_run(
        &store,
        "r-live",
        "nightly",
        NaiveDate::from_ymd_opt(2024, 3, 29).unwrap(),
        RunState::Running,
    )
    .await;
    // The leader's record as it stores it: a head, the job's state, its
    // item sets and an owner, each its own value (the scheduler's encoder).
    let run = RunId::new("r-live");
    let job = JobName::new("load");
    let mut rec_job = JobRecord::pending(8);
    rec_job.state = JobState::Running;
    rec_job.generation = Some(3);
    rec_job.succeeded = ItemSet::range(0, 3);
    rec_job.failed = ItemSet::range(3, 4);
    rec_job.owners.insert(
        ExecutorId::new("e1"),
        Owner {
            lease: 1,
            items: ItemSet::range(0, 6),
            cancel: ItemSet::new(),
            token: 1,
            assigned_at_ms: 0,
        },
    );
    let head: serde_json::Value = serde_json::json!({
        "run": "r-live", "dag": "nightly", "dag_version": 1, "business_date": "2024-03-29",
        "source": "manual", "created_at_ms": 0, "state": "running", "jobs": {}
    });
    let mut rec: RunRecord = serde_json::from_value(head).unwrap();
    rec.jobs.insert(job, rec_job);
    let coord = env.coord().await;
    for (key, value) in nightshift_scheduler::record_values::encode_run(PREFIX, &rec).unwrap() {
        coord.put(&key, value, None).await.unwrap();
    }
    // A staged owner of a start that was never activated does not count.
    let stale = nightshift_scheduler::record_values::OwnerValue {
        generation: Some(9),
        owner: Owner {
            items: ItemSet::range(6, 8),
            ..Owner::default()
        },
    };
    coord
        .put(
            &keyspace::job_owner_key(PREFIX, &run, &JobName::new("load"), &ExecutorId::new("e2")),
            encode(&stale).unwrap(),
            None,
        )
        .await
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&env.run(&["status", "r-live", "--format", "json"]).ok()).unwrap();
    assert_eq!(json["live"], true);
    assert_eq!(
        json["jobs"][0],
        serde_json::json!({"job": "load", "state": "running", "total": 8, "done": 3, "running": 2, "failed": 1, "pending": 2})
    );
}
