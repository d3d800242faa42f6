//! A throw-away single-node etcd for `nightshift bench`: `etcd` from `PATH`
//! on free loopback ports with a temporary data dir, killed (and its dir
//! removed) when the handle drops — on success, error, panic or Ctrl-C,
//! since every exit path unwinds through the handle.
//!
//! This is deliberately separate from the test harness (`testkit`, a
//! dev-dependency the binary cannot use); it does only what a benchmark
//! needs: start, report the endpoint, stop.

use anyhow::{bail, Context as _};
use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_coord::Coordinator;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// etcd's automatic compaction as every etcd the project starts runs it:
/// keep 5 minutes of history (what a disconnected watcher can resume from)
/// and compact the rest every 5 minutes.
pub const AUTO_COMPACTION: [&str; 4] = [
    "--auto-compaction-mode",
    "periodic",
    "--auto-compaction-retention",
    "5m",
];

/// How long etcd may take to answer after spawning.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running etcd owned by the benchmark.
pub struct BenchEtcd {
    child: Option<Child>,
    endpoint: String,
    peer_url: String,
    // Dropped after `child` is killed (see `Drop`), so etcd never writes
    // into a directory being removed.
    dir: TempDir,
}

impl BenchEtcd {
    /// Spawns etcd and waits until it answers a read.
    pub async fn start() -> anyhow::Result<BenchEtcd> {
        let dir = tempfile::Builder::new()
            .prefix("nightshift-bench-etcd-")
            .tempdir()
            .context("creating etcd data dir")?;
        let [client, peer] = free_ports()?;
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut etcd = BenchEtcd {
            child: None,
            endpoint,
            peer_url,
            dir,
        };
        etcd.spawn()?;
        etcd.wait_ready().await?;
        Ok(etcd)
    }

    /// Starts etcd on the same ports and data dir (its log is appended to).
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .context("opening the etcd log file")?;
        let child = Command::new("etcd")
            .arg("--name")
            .arg("bench")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &self.endpoint,
                "--advertise-client-urls",
                &self.endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &self.peer_url,
                "--initial-advertise-peer-urls",
                &self.peer_url,
            ])
            .arg("--initial-cluster")
            .arg(format!("bench={}", self.peer_url))
            // etcd's default request size (1.5 MiB) and quota (2 GiB): the
            // figures hold for an etcd as users run it. History is compacted
            // as production's must be (ARCHITECTURE.md, "etcd limits").
            .args(AUTO_COMPACTION)
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .context("spawning `etcd` (is it on PATH? or pass --etcd URLS)")?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILLs etcd (a crash, as far as its clients can tell); the data
    /// dir stays for [`BenchEtcd::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors mean it is already gone, which is the goal.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again after [`BenchEtcd::kill`], on the same ports and
    /// data, and waits until it answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()?;
        self.wait_ready().await
    }

    /// Client URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().context("checking etcd")? {
                    bail!(
                        "etcd exited during startup ({status}); see {}",
                        self.dir.path().join("etcd.log").display()
                    );
                }
            }
            let config = EtcdConfig::new(vec![self.endpoint.clone()]);
            if let Ok(c) = EtcdCoordinator::connect(config).await {
                if c.current_revision().await.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "etcd at {} not ready after {READY_TIMEOUT:?}",
                    self.endpoint
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for BenchEtcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Two distinct free loopback ports (bound, read, released).
fn free_ports() -> anyhow::Result<[u16; 2]> {
    let a = TcpListener::bind("127.0.0.1:0").context("probing a free port")?;
    let b = TcpListener::bind("127.0.0.1:0").context("probing a free port")?;
    Ok([a.local_addr()?.port(), b.local_addr()?.port()])
}
