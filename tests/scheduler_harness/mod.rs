//! Shared harness of the scheduler integration tests: a real etcd, a fresh
//! SQLite file or PostgreSQL database, and real `nightshift scheduler` /
//! `nightshift executor` processes (killed on drop), plus the CLI commands
//! `apply` and `trigger` run as processes.
#![allow(dead_code)]

use anyhow::{Context as _, Result};
use nightshift_core::ids::{DagName, ExecutorId, JobName, RunId};
use nightshift_core::state::RunState;
use nightshift_store::{Attempt, Run, RunFilter, Store};
use nightshift_testkit::db::{fresh_postgres, fresh_sqlite, PgDatabase, SqliteFile};
use nightshift_testkit::etcd::{EtcdCluster, EtcdServer};
use nightshift_testkit::wait::wait_for_value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const PREFIX: &str = "/sched-test/";

/// Which SQL backend a test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

enum DbHandle {
    Sqlite(SqliteFile),
    Postgres(PgDatabase),
}

/// The etcd a [`Cluster`] runs on: one test server, or a cluster of
/// members with etcd's default timing.
pub enum Etcd {
    Single(Box<EtcdServer>),
    Members(EtcdCluster),
}

impl Etcd {
    /// The `--etcd` flag value: every member's URL, comma-separated.
    pub fn endpoint(&self) -> String {
        self.endpoints().join(",")
    }

    pub fn endpoints(&self) -> Vec<String> {
        match self {
            Etcd::Single(server) => server.endpoints(),
            Etcd::Members(cluster) => cluster.endpoints(),
        }
    }

    /// The members, when this is a multi-member cluster.
    pub fn members(&self) -> Option<&EtcdCluster> {
        match self {
            Etcd::Single(_) => None,
            Etcd::Members(cluster) => Some(cluster),
        }
    }
}

/// etcd + database + a work dir for DAG files and process logs.
pub struct Cluster {
    pub etcd: Etcd,
    /// A client of the etcd, for reading and writing keys as the CLI would.
    pub coord: nightshift_coord::etcd::EtcdCoordinator,
    _db: DbHandle,
    pub db_url: String,
    pub store: Store,
    pub dir: tempfile::TempDir,
    /// `--lease-ttl` of the schedulers and executors it spawns (default 2s).
    pub lease_ttl: String,
}

/// A child process, SIGKILLed on drop; its log is printed when a test fails.
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn signal(&self, signal: libc::c_int) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
        // own child, not yet reaped, so it cannot name another process.
        let rc = unsafe { libc::kill(pid, signal) };
        anyhow::ensure!(
            rc == 0,
            "kill({pid}, {signal}) failed: {}",
            std::io::Error::last_os_error()
        );
        Ok(())
    }

    pub fn kill(&mut self) {
        let _ = self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit (bounded).
    pub async fn terminate(&mut self) -> Result<()> {
        self.signal(libc::SIGTERM)?;
        for _ in 0..300 {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
        anyhow::bail!("{} did not exit within 6 s of SIGTERM", self.name)
    }

    /// The exit code, once the process has exited by itself.
    pub fn exit_code(&mut self) -> Option<i32> {
        self.child.try_wait().ok().flatten().and_then(|s| s.code())
    }

    /// Waits up to `timeout` for the process to exit by itself (a test
    /// hook's `exit(code)`, say) and checks it exited with `code`.
    pub async fn expect_exit(&mut self, code: i32, timeout: Duration) -> Result<()> {
        let name = self.name.clone();
        let exited = wait_for_value(timeout, &format!("{name} to exit"), || {
            let code = self.exit_code();
            async move { code }
        })
        .await?;
        anyhow::ensure!(
            exited == code,
            "{name} exited with {exited}, not {code}:\n{}",
            self.logs()
        );
        Ok(())
    }

    /// The exit status, once the process has exited on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() || std::env::var_os("NIGHTSHIFT_TEST_LOGS").is_some() {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(60).collect();
            eprintln!("----- {} (last lines) -----", self.name);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

impl Cluster {
    pub async fn start(db: Db) -> Result<Cluster> {
        Self::start_on(db, Etcd::Single(Box::new(EtcdServer::start().await?))).await
    }

    /// A cluster on an etcd of `members` members (etcd's default timing).
    pub async fn start_members(db: Db, members: usize) -> Result<Cluster> {
        Self::start_on(db, Etcd::Members(EtcdCluster::start(members).await?)).await
    }

    async fn start_on(db: Db, etcd: Etcd) -> Result<Cluster> {
        let (handle, url) = match db {
            Db::Sqlite => {
                let f = fresh_sqlite();
                let url = f.url.clone();
                (DbHandle::Sqlite(f), url)
            }
            Db::Postgres => {
                let p = fresh_postgres().await?;
                let url = p.url.clone();
                (DbHandle::Postgres(p), url)
            }
        };
        let store = Store::connect(&url).await?;
        let coord = nightshift_coord::etcd::EtcdCoordinator::connect(
            nightshift_coord::etcd::EtcdConfig::new(etcd.endpoints()),
        )
        .await?;
        Ok(Cluster {
            etcd,
            coord,
            _db: handle,
            db_url: url,
            store,
            dir: tempfile::tempdir()?,
            lease_ttl: "2s".to_owned(),
        })
    }

    pub fn spawn(&self, name: &str, args: &[String]) -> Result<Proc> {
        self.spawn_env(name, args, &[])
    }

    /// [`Cluster::spawn`] with extra environment variables.
    pub fn spawn_env(&self, name: &str, args: &[String], env: &[(&str, &str)]) -> Result<Proc> {
        let log = self.dir.path().join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_nightshift"))
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info,nightshift_scheduler=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("spawning {name}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            log,
        })
    }

    pub fn scheduler(&self, id: &str) -> Result<Proc> {
        self.scheduler_full(id, &self.etcd.endpoint(), &[], &[])
    }

    /// [`Cluster::scheduler`] with extra environment variables (test settings).
    pub fn scheduler_env(&self, id: &str, env: &[(&str, &str)]) -> Result<Proc> {
        self.scheduler_full(id, &self.etcd.endpoint(), env, &[])
    }

    /// A scheduler reaching etcd at `etcd` (e.g. through a proxy).
    pub fn scheduler_at(&self, id: &str, etcd: &str, env: &[(&str, &str)]) -> Result<Proc> {
        self.scheduler_full(id, etcd, env, &[])
    }

    /// A scheduler process with `extra` flags.
    pub fn scheduler_with(&self, id: &str, extra: &[&str]) -> Result<Proc> {
        self.scheduler_full(id, &self.etcd.endpoint(), &[], extra)
    }

    /// A scheduler reaching etcd at `etcd`, with `env` and `extra` flags.
    pub fn scheduler_full(
        &self,
        id: &str,
        etcd: &str,
        env: &[(&str, &str)],
        extra: &[&str],
    ) -> Result<Proc> {
        let mut args: Vec<String> = [
            "scheduler",
            "--etcd",
            etcd,
            "--database",
            &self.db_url,
            "--prefix",
            PREFIX,
            "--id",
            id,
            "--lease-ttl",
            &self.lease_ttl,
            "--tick",
            "200ms",
            "--misfire-grace",
            "1500ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        self.spawn_env(&format!("scheduler-{id}"), &args, env)
    }

    pub fn executor(&self, id: &str, capacity: u32) -> Result<Proc> {
        self.executor_with(id, capacity, &["--handlers", "sleep,noop"])
    }

    /// An executor process with `extra` flags (handlers, programs, labels).
    /// `nightshift executor` of capacity 4 serving `sleep`, whose items may
    /// journal every step into a file under `dir`
    /// (`nightshift_executor::builtin::journal`).
    pub fn journal_executor(&self, id: &str, dir: &std::path::Path) -> Result<Proc> {
        let dir = dir.to_str().context("utf-8 path")?;
        self.executor_with(id, 4, &["--handlers", "sleep", "--sleep-journal-dir", dir])
    }

    /// [`Cluster::journal_executor`]s `ids`, journaling under `dir` (made
    /// here), returned once every one of them has registered.
    pub async fn journal_executors(
        &self,
        ids: &[&str],
        dir: &std::path::Path,
    ) -> Result<Vec<Proc>> {
        std::fs::create_dir_all(dir)?;
        let procs = ids
            .iter()
            .map(|id| self.journal_executor(id, dir))
            .collect::<Result<Vec<_>>>()?;
        nightshift_testkit::wait::wait_for(
            Duration::from_secs(20),
            "the executors to register",
            || async {
                let live = self.executor_ids().await;
                ids.iter().all(|id| live.iter().any(|l| l == id))
            },
        )
        .await?;
        Ok(procs)
    }

    pub fn executor_with(&self, id: &str, capacity: u32, extra: &[&str]) -> Result<Proc> {
        let mut args: Vec<String> = [
            "executor",
            "--etcd",
            &self.etcd.endpoint(),
            "--id",
            id,
            "--lease-ttl",
            &self.lease_ttl,
            "--prefix",
            PREFIX,
            "--capacity",
            &capacity.to_string(),
            "--drain-grace",
            "1s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        self.spawn(&format!("executor-{id}"), &args)
    }

    /// `nightshift <args> --etcd .. --database .. --prefix ..`, must succeed; returns stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        self.cli_with(args, true)
    }

    /// Like [`Cluster::cli`]; `database` says whether the command takes `--database`.
    pub fn cli_with(&self, args: &[&str], database: bool) -> Result<String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nightshift"));
        cmd.args(args)
            .args(["--etcd", &self.etcd.endpoint(), "--prefix", PREFIX]);
        if database {
            cmd.args(["--database", &self.db_url]);
        }
        let out = cmd.env("NO_COLOR", "1").output()?;
        anyhow::ensure!(
            out.status.success(),
            "nightshift {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Writes `dags/{name}.toml` and applies it.
    pub fn apply(&self, name: &str, toml: &str) -> Result<()> {
        let dags = self.dir.path().join("dags");
        std::fs::create_dir_all(&dags)?;
        let path = dags.join(format!("{name}.toml"));
        std::fs::write(&path, toml)?;
        self.cli(&["apply", path.to_str().context("utf-8 path")?])?;
        Ok(())
    }

    pub fn trigger(&self, dag: &str) -> Result<()> {
        self.cli_with(&["trigger", dag], false)?;
        Ok(())
    }

    pub async fn runs(&self, dag: &str) -> Vec<Run> {
        let filter = RunFilter {
            dag: Some(DagName::new(dag)),
            ..Default::default()
        };
        self.store.list_runs(&filter).await.unwrap_or_default()
    }

    /// Waits for the `n`-th run (oldest first) of `dag` to exist.
    pub async fn nth_run(&self, dag: &str, n: usize, timeout: Duration) -> Result<RunId> {
        wait_for_value(timeout, &format!("run #{n} of {dag}"), || async {
            let mut runs = self.runs(dag).await;
            runs.sort_by_key(|r| r.created_at_ms);
            runs.get(n).map(|r| r.run_id.clone())
        })
        .await
    }

    /// Waits for a run to end; returns its final row.
    pub async fn wait_run_end(&self, run: &RunId, timeout: Duration) -> Result<Run> {
        wait_for_value(timeout, &format!("run {run} to end"), || async {
            self.store
                .get_run(run)
                .await
                .ok()
                .flatten()
                .filter(|r| r.state.is_terminal())
        })
        .await
    }

    pub async fn attempts(&self, run: &RunId, job: &str) -> Result<Vec<Attempt>> {
        Ok(self.store.attempts(run, &JobName::new(job), None).await?)
    }

    /// Whether `executor` currently holds an assignment of `job` in `run`.
    pub async fn holds(&self, run: &RunId, job: &str, executor: &str) -> bool {
        let key = nightshift_core::keyspace::assign_key(
            PREFIX,
            run,
            &JobName::new(job),
            &ExecutorId::new(executor),
        );
        use nightshift_coord::Coordinator;
        matches!(self.coord.get(&key).await, Ok(Some(_)))
    }

    /// The state of the alert with this dedupe key (the latest one, if
    /// it was opened more than once), if any.
    pub async fn alert_state(&self, key: &str) -> Option<nightshift_core::state::AlertState> {
        self.store
            .list_alerts(&nightshift_store::AlertFilter::default())
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.dedupe_key == key)
            .map(|a| a.state)
    }

    /// Ids of the registered executors.
    pub async fn executor_ids(&self) -> Vec<String> {
        use nightshift_coord::Coordinator;
        let Ok((kvs, _)) = self
            .coord
            .get_prefix(&nightshift_core::keyspace::executors_prefix(PREFIX))
            .await
        else {
            return Vec::new();
        };
        kvs.iter()
            .filter_map(|kv| kv.key.rsplit('/').next().map(str::to_owned))
            .collect()
    }
}

/// Checks an item journal (`nightshift_executor::builtin::journal`)
/// against the attempt history: every step was taken under an attempt
/// the history records (item, attempt, executor), and every item of
/// `0..shards` took at least `steps` steps.
pub fn check_journal(
    journal: &[nightshift_executor::builtin::journal::JournalStep],
    attempts: &[Attempt],
    shards: u32,
    steps: usize,
) -> Result<()> {
    let recorded: std::collections::BTreeSet<(u32, u32, String)> = attempts
        .iter()
        .map(|a| (a.item.0, a.attempt, a.executor.to_string()))
        .collect();
    let mut stepped: std::collections::BTreeMap<u32, usize> = Default::default();
    for step in journal {
        let (item, attempt, exec) = (step.item, step.attempt, &step.executor);
        anyhow::ensure!(
            recorded.contains(&(item, attempt, exec.clone())),
            "item {item} attempt {attempt} ran on {exec}, which the run does not show: {recorded:?}"
        );
        *stepped.entry(item).or_default() += 1;
    }
    for item in 0..shards {
        anyhow::ensure!(
            stepped.get(&item).is_some_and(|n| *n >= steps),
            "item {item} did not run to the end: {stepped:?}"
        );
    }
    Ok(())
}

/// Checks the attempt history of one job: every item succeeded exactly once,
/// and an item's attempts never overlap in time (one live owner at a time).
pub fn check_exactly_once(job: &str, shards: u32, attempts: &[Attempt]) -> Result<()> {
    use nightshift_core::state::AttemptOutcome;
    for item in 0..shards {
        let mut mine: Vec<&Attempt> = attempts.iter().filter(|a| a.item.0 == item).collect();
        mine.sort_by_key(|a| a.attempt);
        let wins = mine
            .iter()
            .filter(|a| a.outcome == Some(AttemptOutcome::Succeeded))
            .count();
        anyhow::ensure!(
            wins == 1,
            "{job} item {item}: {wins} successful attempts: {mine:?}"
        );
        for a in &mine {
            anyhow::ensure!(
                a.fencing_token.0 > 0,
                "{job} item {item}: attempt without a fencing token: {a:?}"
            );
            anyhow::ensure!(
                a.ended_at_ms.is_some(),
                "{job} item {item}: attempt never ended: {a:?}"
            );
        }
        for pair in mine.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let a_end = a.ended_at_ms.unwrap_or(i64::MAX);
            anyhow::ensure!(
                a_end <= b.started_at_ms,
                "{job} item {item}: attempt {} ({}) overlaps attempt {} ({}): {a:?} {b:?}",
                a.attempt,
                a.executor,
                b.attempt,
                b.executor
            );
            anyhow::ensure!(
                a.fencing_token != b.fencing_token || a.executor == b.executor,
                "{job} item {item}: two owners share a token"
            );
        }
    }
    Ok(())
}

pub fn is_succeeded(run: &Run) -> bool {
    run.state == RunState::Succeeded
}
