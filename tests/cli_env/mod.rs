//! Shared harness of the CLI integration tests: a real etcd, a fresh SQLite
//! file or PostgreSQL database, and the real `nightshift` binary run with
//! them in its environment.

#![allow(dead_code)]

use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_coord::Coordinator;
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::keyspace::{self, decode, AppliedDag, CommandRecord};
use nightshift_core::state::{RunState, TriggerSource};
use nightshift_store::{NewRun, Store};
use nightshift_testkit::db::{fresh_postgres, fresh_sqlite, PgDatabase, SqliteFile};
use nightshift_testkit::etcd::EtcdServer;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const PREFIX: &str = "/cli-test/";

/// Which SQL backend a test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct Env {
    pub etcd: EtcdServer,
    pub db_url: String,
    pub dir: tempfile::TempDir,
    _sqlite: Option<SqliteFile>,
    _pg: Option<PgDatabase>,
}

impl Env {
    pub async fn start(db: Db) -> Env {
        let etcd = EtcdServer::start().await.unwrap();
        let (db_url, sqlite, pg) = match db {
            Db::Sqlite => {
                let f = fresh_sqlite();
                (f.url.clone(), Some(f), None)
            }
            Db::Postgres => {
                let p = fresh_postgres().await.unwrap();
                (p.url.clone(), None, Some(p))
            }
        };
        Env {
            etcd,
            db_url,
            dir: tempfile::tempdir().unwrap(),
            _sqlite: sqlite,
            _pg: pg,
        }
    }

    /// A `nightshift` command with etcd, database and prefix in its environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nightshift"));
        cmd.args(args)
            .env("NIGHTSHIFT_ETCD", self.etcd.endpoint())
            .env("NIGHTSHIFT_DATABASE_URL", &self.db_url)
            .env("NIGHTSHIFT_PREFIX", PREFIX)
            .env("USER", "tester")
            .env_remove("NIGHTSHIFT_ETCD_USER")
            .env_remove("NIGHTSHIFT_ETCD_PASSWORD")
            .env_remove("NIGHTSHIFT_ETCD_PASSWORD_FILE")
            .env("NO_COLOR", "1");
        cmd
    }

    /// Runs `nightshift ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().unwrap())
    }

    /// Writes a DAG file into the test's `dags/` folder.
    pub fn write_dag(&self, name: &str, text: &str) -> PathBuf {
        let dir = self.dags_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn dags_dir(&self) -> PathBuf {
        self.dir.path().join("dags")
    }

    pub async fn coord(&self) -> EtcdCoordinator {
        EtcdCoordinator::connect(EtcdConfig::new(self.etcd.endpoints()))
            .await
            .unwrap()
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.db_url).await.unwrap()
    }

    pub async fn applied(&self, dag: &str) -> Option<AppliedDag> {
        let kv = self
            .coord()
            .await
            .get(&keyspace::dag_key(PREFIX, &DagName::new(dag)))
            .await
            .unwrap()?;
        Some(decode(&kv.value).unwrap())
    }

    /// Every command record under `commands/`, in key (= issue) order.
    pub async fn commands(&self) -> Vec<CommandRecord> {
        let (kvs, _) = self
            .coord()
            .await
            .get_prefix(&keyspace::commands_prefix(PREFIX))
            .await
            .unwrap();
        kvs.iter().map(|kv| decode(&kv.value).unwrap()).collect()
    }

    /// Inserts a run in SQL and moves it to `state` (through running).
    pub async fn seed_run(
        &self,
        store: &Store,
        run: &str,
        dag: &str,
        date: chrono::NaiveDate,
        state: RunState,
    ) {
        let dag = DagName::new(dag);
        let version = store
            .latest_dag_version(&dag)
            .await
            .unwrap()
            .expect("dag applied")
            .version;
        store
            .insert_run(&NewRun {
                run_id: RunId::new(run),
                dag,
                dag_version: version,
                business_date: date,
                trigger_source: TriggerSource::Schedule,
                params: serde_json::json!({}),
                scheduled_for_ms: None,
                created_at_ms: 1_700_000_000_000,
            })
            .await
            .unwrap();
        if state != RunState::Pending {
            store
                .update_run_state(&RunId::new(run), RunState::Running, 1_700_000_001_000, None)
                .await
                .unwrap();
        }
        if state.is_terminal() {
            store
                .update_run_state(&RunId::new(run), state, 1_700_000_061_000, None)
                .await
                .unwrap();
        }
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A finished process, with helpers for assertions.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.0.status.code()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }
    /// Asserts exit code 0 and returns stdout.
    pub fn ok(&self) -> String {
        assert_eq!(self.code(), Some(0), "{}", self.all());
        self.stdout()
    }
}
