//! The test bed every scenario shares: an etcd (our own, or `--etcd`), a
//! temp dir with a SQLite store, a fresh key prefix, a client, and the
//! moves a scenario makes — apply DAG text, start the scheduler as a child
//! process, trigger a run, wait for it to end, measure the raw put rate.

use super::etcd::BenchEtcd;
use super::process::NightshiftChild;
use anyhow::{bail, Context as _};
use nightshift_client::issue;
use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_coord::Coordinator;
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::keyspace::commands::trigger_run_id;
use nightshift_core::keyspace::Command;
use nightshift_core::state::TriggerSource;
use nightshift_store::{Run, RunFilter, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A running bench environment; dropping it stops everything it started.
pub struct Rig {
    /// etcd client URLs.
    pub etcd: Vec<String>,
    /// Key prefix of this benchmark run (fresh, so runs never mix).
    pub prefix: String,
    /// A client of the bench itself.
    pub coord: Arc<dyn Coordinator>,
    /// Temp dir for the DAG files, the SQLite file and child logs.
    pub dir: TempDir,
    // Last, so it stops after the children that use it.
    _etcd: Option<BenchEtcd>,
}

impl Rig {
    /// Uses `etcd` when given, else starts one.
    pub async fn start(etcd: &[String]) -> anyhow::Result<Rig> {
        let (own, etcd) = if etcd.is_empty() {
            let server = BenchEtcd::start().await?;
            let url = server.endpoint().to_owned();
            (Some(server), vec![url])
        } else {
            (None, etcd.to_vec())
        };
        let coord = connect(&etcd).await?;
        let dir = tempfile::Builder::new()
            .prefix("nightshift-bench-")
            .tempdir()
            .context("creating a temp dir")?;
        let prefix = format!(
            "/nightshift-bench-{}-{}/",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        );
        Ok(Rig {
            etcd,
            prefix,
            coord,
            dir,
            _etcd: own,
        })
    }

    /// `sqlite:///abs/path` of the bench's store.
    pub fn database(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("bench.db").display())
    }

    /// `--etcd URLS --prefix P`, the flags every child needs.
    pub fn etcd_args(&self) -> Vec<String> {
        vec![
            "--etcd".into(),
            self.etcd.join(","),
            "--prefix".into(),
            self.prefix.clone(),
        ]
    }

    /// Writes `toml` as `{name}.toml` and runs `nightshift apply` on it.
    pub fn apply(&self, name: &str, toml: &str) -> anyhow::Result<()> {
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, toml).with_context(|| format!("writing {}", path.display()))?;
        let exe = std::env::current_exe().context("finding the nightshift binary")?;
        let out = std::process::Command::new(exe)
            .arg("apply")
            .arg(&path)
            .args(self.etcd_args())
            .args(["--database", &self.database()])
            .env("RUST_LOG", "warn")
            .output()
            .context("running nightshift apply")?;
        if !out.status.success() {
            bail!(
                "nightshift apply failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Starts `nightshift scheduler` and waits until it leads.
    pub async fn scheduler(&self) -> anyhow::Result<NightshiftChild> {
        self.scheduler_with(&[]).await
    }

    /// [`Rig::scheduler`] with `extra` flags (e.g. `--metrics-listen`).
    pub async fn scheduler_with(&self, extra: &[String]) -> anyhow::Result<NightshiftChild> {
        let mut args = vec!["scheduler".to_owned()];
        args.extend(self.etcd_args());
        args.extend(extra.iter().cloned());
        args.extend([
            "--database".into(),
            self.database(),
            "--id".into(),
            "bench".into(),
        ]);
        let mut child =
            NightshiftChild::spawn("scheduler", &args, &self.dir.path().join("scheduler.log"))?;
        let leader = nightshift_core::keyspace::leader_prefix(&self.prefix);
        let deadline = Deadline::new("the scheduler to lead", Duration::from_secs(30));
        loop {
            child.ensure_running()?;
            if !self.coord.get_prefix(&leader).await?.0.is_empty() {
                break;
            }
            deadline.tick().await?;
        }
        Ok(child)
    }

    /// Opens the bench's store (after the scheduler or `apply` created it).
    pub async fn store(&self) -> anyhow::Result<Store> {
        Ok(Store::connect(&self.database()).await?)
    }

    /// Asks the leader to run `dag` now (a fresh run each time); returns
    /// the id the run will have.
    pub async fn trigger(&self, dag: &str) -> anyhow::Result<RunId> {
        let command = Command::Trigger {
            dag: DagName::new(dag),
            business_date: None,
            params: None,
            rerun: true,
            source: TriggerSource::Manual,
        };
        let id = issue(self.coord.as_ref(), &self.prefix, "bench", command).await?;
        Ok(trigger_run_id(&DagName::new(dag), &id))
    }

    /// Sequential single puts of 64-byte values for `window`: puts/s.
    pub async fn raw_put_rate(&self, window: Duration) -> anyhow::Result<f64> {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < window {
            self.coord
                .put(&format!("{}raw/{n}", self.prefix), vec![b'x'; 64], None)
                .await?;
            n += 1;
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        self.coord
            .delete_prefix(&format!("{}raw/", self.prefix))
            .await?;
        Ok(rate)
    }

    /// Removes every key of this benchmark (useful with a shared `--etcd`).
    pub async fn clean(&self) -> anyhow::Result<()> {
        self.coord.delete_prefix(&self.prefix).await?;
        Ok(())
    }
}

/// A client of `etcd`.
pub async fn connect(etcd: &[String]) -> anyhow::Result<Arc<dyn Coordinator>> {
    let c = EtcdCoordinator::connect(EtcdConfig::new(etcd.to_vec()))
        .await
        .context("connecting to etcd")?;
    Ok(Arc::new(c))
}

/// A loopback address with a port free right now, for a child to listen
/// on (the child's own choice of port 0 would be unknown to the bench). A
/// race with another process taking the port makes the child fail to
/// start, which the bench reports.
pub fn free_local_addr() -> anyhow::Result<std::net::SocketAddr> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("finding a free local port")?;
    Ok(listener.local_addr()?)
}

/// The runs of `dag` that have ended, newest first.
pub async fn ended_runs(store: &Store, dag: &str) -> anyhow::Result<Vec<Run>> {
    let filter = RunFilter {
        dag: Some(DagName::new(dag)),
        limit: Some(10_000),
        ..Default::default()
    };
    Ok(store
        .list_runs(&filter)
        .await?
        .into_iter()
        .filter(|r| r.state.is_terminal())
        .collect())
}

/// A polling deadline: [`tick`](Self::tick) waits 5 ms, or fails once the
/// limit has passed, naming what was awaited.
pub struct Deadline {
    what: &'static str,
    limit: Duration,
    at: Instant,
}

impl Deadline {
    /// Starts now.
    pub fn new(what: &'static str, limit: Duration) -> Deadline {
        Deadline {
            what,
            limit,
            at: Instant::now() + limit,
        }
    }

    /// Waits a little before the next check, or fails when time is up.
    pub async fn tick(&self) -> anyhow::Result<()> {
        if Instant::now() >= self.at {
            bail!("timed out after {:?} waiting for {}", self.limit, self.what);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(())
    }
}
