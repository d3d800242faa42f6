//! `nightshift apply` as a real process against a real etcd and a fresh
//! SQLite file or PostgreSQL database: versions and history, re-applying an
//! unchanged file, a bad file publishing nothing, `--prune`, and the paused
//! flag surviving a re-apply; plus exit code 2 when etcd is unreachable.

mod cli_env;

use cli_env::{path_str, Db, Env, PREFIX};
use nightshift_coord::Coordinator;
use nightshift_core::ids::DagName;
use nightshift_core::keyspace::{self, encode};

const DAILY: &str = "schedule = \"0 2 * * 1-5\"\ntimezone = \"Europe/Paris\"\n[jobs.load]\nshards = 4\n[jobs.report]\ndepends_on = [\"load\"]\n";

async fn versions_and_history(db: Db) {
    let env = Env::start(db).await;
    let file = env.write_dag("daily", DAILY);
    let dags = env.dags_dir();

    let out = env.run(&["apply", path_str(&dags)]).ok();
    assert_eq!(out.trim(), "daily: created v1");
    let v1 = env.applied("daily").await.expect("published");
    assert_eq!(
        (v1.version, v1.paused, v1.applied_by.as_str()),
        (1, false, "tester")
    );
    assert_eq!(v1.source_toml, DAILY);
    assert_eq!(v1.spec.jobs.len(), 2);

    let out = env.run(&["apply", path_str(&file)]).ok();
    assert_eq!(out.trim(), "daily: unchanged (v1)");

    let edited = DAILY.replace("shards = 4", "shards = 8");
    std::fs::write(&file, &edited).unwrap();
    let dry = env.run(&["apply", "--dry-run", path_str(&dags)]).ok();
    assert!(dry.contains("daily: would be updated to v2"), "{dry}");
    assert_eq!(
        env.applied("daily").await.unwrap().version,
        1,
        "dry run wrote to etcd"
    );

    let out = env.run(&["apply", path_str(&dags)]).ok();
    assert_eq!(out.trim(), "daily: updated to v2");
    let v2 = env.applied("daily").await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.spec.jobs[0].shards, 8);
    assert_ne!(v2.checksum, v1.checksum);

    let store = env.store().await;
    let history = store.dag_versions(&DagName::new("daily")).await.unwrap();
    let versions: Vec<(u32, &str)> = history
        .iter()
        .map(|v| (v.version, v.source_toml.as_str()))
        .collect();
    assert_eq!(versions, vec![(1, DAILY), (2, edited.as_str())]);
    assert_eq!(history[1].checksum, v2.checksum);
}

#[tokio::test]
async fn etcd_apply_versions_and_history_sqlite() {
    versions_and_history(Db::Sqlite).await;
}

#[tokio::test]
async fn etcd_apply_versions_and_history_postgres() {
    versions_and_history(Db::Postgres).await;
}

#[tokio::test]
async fn etcd_apply_bad_file_publishes_nothing() {
    let env = Env::start(Db::Sqlite).await;
    env.write_dag("good", DAILY);
    let bad = env.write_dag("bad", "[jobs.a]\nshard = 4\n");
    let out = env.run(&["apply", path_str(&env.dags_dir())]);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    let stderr = out.stderr();
    assert!(
        stderr.contains(&format!("{}:2:1", bad.display())),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was applied"), "{stderr}");
    let (kvs, _) = env
        .coord()
        .await
        .get_prefix(&keyspace::dags_prefix(PREFIX))
        .await
        .unwrap();
    assert!(kvs.is_empty(), "published despite errors: {kvs:?}");
    assert!(env.store().await.list_dags().await.unwrap().is_empty());
}

#[tokio::test]
async fn etcd_apply_prune_removes_dags_whose_files_are_gone() {
    let env = Env::start(Db::Sqlite).await;
    let keep = env.write_dag("keep", DAILY);
    let gone = env.write_dag("gone", DAILY);
    let out = env.run(&["apply", path_str(&env.dags_dir())]).ok();
    assert!(
        out.contains("gone: created v1") && out.contains("keep: created v1"),
        "{out}"
    );
    std::fs::remove_file(&gone).unwrap();

    // Without --prune nothing is removed.
    env.run(&["apply", path_str(&keep)]).ok();
    assert!(env.applied("gone").await.is_some());

    let out = env
        .run(&["apply", "--prune", path_str(&env.dags_dir())])
        .ok();
    assert!(out.contains("keep: unchanged (v1)"), "{out}");
    assert!(out.contains("gone: pruned"), "{out}");
    assert!(env.applied("gone").await.is_none());
    assert!(env.applied("keep").await.is_some());
    let store = env.store().await;
    let gone_row = store.get_dag(&DagName::new("gone")).await.unwrap().unwrap();
    assert!(gone_row.removed);
    assert!(
        !store
            .get_dag(&DagName::new("keep"))
            .await
            .unwrap()
            .unwrap()
            .removed
    );
    assert_eq!(
        store
            .dag_versions(&DagName::new("gone"))
            .await
            .unwrap()
            .len(),
        1,
        "history kept"
    );
    // Who published and who pruned: audit events naming the user.
    let events = store
        .events(&nightshift_store::EventFilter::default())
        .await
        .unwrap();
    let audit: Vec<(String, String, Option<String>)> = events
        .iter()
        .filter(|e| e.event.kind.starts_with("dag_"))
        .map(|e| {
            (
                e.event.kind.clone(),
                e.event.actor.clone(),
                e.event.dag.as_ref().map(|d| d.to_string()),
            )
        })
        .collect();
    for expected in [
        ("dag_applied", "gone"),
        ("dag_applied", "keep"),
        ("dag_pruned", "gone"),
    ] {
        assert!(
            audit.contains(&(
                expected.0.to_owned(),
                "tester".to_owned(),
                Some(expected.1.to_owned())
            )),
            "{expected:?} missing from {audit:?}"
        );
    }
    assert_eq!(
        audit.iter().filter(|a| a.0 == "dag_applied").count(),
        2,
        "an unchanged apply is not an event: {audit:?}"
    );
}

#[tokio::test]
async fn etcd_apply_keeps_the_paused_flag_the_leader_set() {
    let env = Env::start(Db::Sqlite).await;
    let file = env.write_dag("daily", DAILY);
    env.run(&["apply", path_str(&file)]).ok();
    // Play the leader carrying out a pause command.
    let mut record = env.applied("daily").await.unwrap();
    record.paused = true;
    let key = keyspace::dag_key(PREFIX, &DagName::new("daily"));
    env.coord()
        .await
        .put(&key, encode(&record).unwrap(), None)
        .await
        .unwrap();

    std::fs::write(&file, DAILY.replace("0 2", "0 3")).unwrap();
    assert_eq!(
        env.run(&["apply", path_str(&file)]).ok().trim(),
        "daily: updated to v2"
    );
    let after = env.applied("daily").await.unwrap();
    assert_eq!((after.version, after.paused), (2, true));
    assert_eq!(after.spec.schedule.as_deref(), Some("0 3 * * 1-5"));
}

#[test]
fn apply_with_unreachable_etcd_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("daily.toml");
    std::fs::write(&file, DAILY).unwrap();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let db = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .args([
            "apply",
            "--etcd",
            &endpoint,
            "--database",
            &db,
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("etcd at {endpoint} is unreachable")),
        "{stderr}"
    );
}

#[test]
fn without_etcd_endpoints_commands_exit_1_and_status_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nightshift"))
            .args(args)
            .env_remove("NIGHTSHIFT_ETCD")
            .env("NIGHTSHIFT_DATABASE_URL", &db)
            .output()
            .unwrap()
    };
    let out = run(&["trigger", "daily"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no etcd endpoints: pass --etcd URLS or set NIGHTSHIFT_ETCD"),
        "{stderr}"
    );
    // status reads SQL only; etcd is optional for it.
    let out = run(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no runs yet");
}

#[tokio::test]
async fn etcd_apply_replaces_an_unreadable_record_and_prune_removes_one() {
    let env = Env::start(Db::Sqlite).await;
    let keep = env.write_dag("keep", DAILY);
    env.run(&["apply", path_str(&keep)]).ok();
    let coord = env.coord().await;
    // Garbage where `keep`'s record was, and under a DAG nobody applied.
    for dag in ["keep", "junk"] {
        coord
            .put(
                &keyspace::dag_key(PREFIX, &DagName::new(dag)),
                b"\x00not json".to_vec(),
                None,
            )
            .await
            .unwrap();
    }

    let trigger = env.run(&["trigger", "keep"]);
    assert_eq!(trigger.code(), Some(2), "{}", trigger.all());
    assert!(
        trigger.stderr().contains("unreadable")
            && trigger.stderr().contains("apply the DAG file again"),
        "{}",
        trigger.all()
    );

    // Applying the file again replaces the unreadable record (same version:
    // the history already has this checksum).
    let out = env.run(&["apply", path_str(&keep)]).ok();
    assert!(out.contains("keep: republished v1"), "{out}");
    assert_eq!(env.applied("keep").await.map(|d| d.version), Some(1));

    // The junk key blocks nothing and goes with --prune.
    let out = env
        .run(&["apply", "--prune", path_str(&env.dags_dir())])
        .ok();
    assert!(
        out.contains("keep: unchanged (v1)") && out.contains("junk: pruned"),
        "{out}"
    );
    assert!(coord
        .get(&keyspace::dag_key(PREFIX, &DagName::new("junk")))
        .await
        .unwrap()
        .is_none());
    env.run(&["trigger", "keep"]).ok();
}
