//! A throw-away etcd for `nightshift bench` and `nightshift chaos`: `etcd`
//! from `PATH` on free loopback ports with a temporary data dir, killed (and
//! its dir removed) when the handle drops — on success, error, panic or
//! Ctrl-C, since every exit path unwinds through the handle. One member
//! ([`BenchEtcd::start`]) or a cluster of several ([`BenchEtcd::cluster`],
//! default raft timing and limits), each member killable and restartable on
//! its data, and able to say whether it is the raft leader.
//!
//! This is deliberately separate from the test harness (`testkit`, a
//! dev-dependency the binary cannot use); it does only what a benchmark
//! or the chaos run needs: start, report the endpoint, kill, restart.

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
    /// Member name, and `--initial-cluster` (read only on an empty data dir).
    name: String,
    initial_cluster: String,
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
            name: "bench".to_owned(),
            initial_cluster: format!("bench={peer_url}"),
            endpoint,
            peer_url,
            dir,
        };
        etcd.spawn()?;
        etcd.wait_ready().await?;
        Ok(etcd)
    }

    /// Spawns a cluster of `members` etcd servers (`m0`, `m1`, ...) and
    /// waits until each answers a read (the cluster has a leader).
    pub async fn cluster(members: usize) -> anyhow::Result<Vec<BenchEtcd>> {
        let mut ports = Vec::new();
        // Hold every probe socket until all are chosen, so no two members
        // are handed the same port.
        let mut probes = Vec::new();
        for _ in 0..members {
            let client = TcpListener::bind("127.0.0.1:0").context("probing a free port")?;
            let peer = TcpListener::bind("127.0.0.1:0").context("probing a free port")?;
            ports.push((client.local_addr()?.port(), peer.local_addr()?.port()));
            probes.push((client, peer));
        }
        drop(probes);
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Vec::new();
        for (i, (client, peer)) in ports.into_iter().enumerate() {
            let dir = tempfile::Builder::new()
                .prefix(&format!("nightshift-etcd-m{i}-"))
                .tempdir()
                .context("creating etcd data dir")?;
            let mut member = BenchEtcd {
                child: None,
                name: format!("m{i}"),
                initial_cluster: initial_cluster.clone(),
                endpoint: format!("http://127.0.0.1:{client}"),
                peer_url: format!("http://127.0.0.1:{peer}"),
                dir,
            };
            member.spawn()?;
            cluster.push(member);
        }
        // A member answers only once a quorum has elected a leader: all
        // are spawned before any is waited for.
        for member in &mut cluster {
            member.wait_ready().await?;
        }
        Ok(cluster)
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
            .arg(&self.name)
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
            .arg(&self.initial_cluster)
            .args(["--initial-cluster-token", "nightshift-lab"])
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

    /// Member name (`bench`, or `m0`, `m1`, ... in a cluster).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the process runs (it was not killed).
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// Whether this member runs and is its cluster's raft leader: its
    /// `/metrics` (served on the client URL) say `etcd_server_is_leader 1`.
    pub async fn is_leader(&self) -> bool {
        if !self.is_up() {
            return false;
        }
        let Some(addr) = self.endpoint.strip_prefix("http://") else {
            return false;
        };
        http_get(addr, "/metrics")
            .await
            .is_some_and(|body| body.lines().any(|l| l.trim() == "etcd_server_is_leader 1"))
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

/// The body of a plain HTTP GET, `None` when the server does not answer
/// within a second.
async fn http_get(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let (_, body) = text.split_once("\r\n\r\n")?;
        Some(body.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(1), fetch)
        .await
        .ok()
        .flatten()
}

/// Two distinct free loopback ports (bound, read, released).
fn free_ports() -> anyhow::Result<[u16; 2]> {
    let a = TcpListener::bind("127.0.0.1:0").context("probing a free port")?;
    let b = TcpListener::bind("127.0.0.1:0").context("probing a free port")?;
    Ok([a.local_addr()?.port(), b.local_addr()?.port()])
}
