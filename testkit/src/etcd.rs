//! A real, single-node `etcd` process per test.
//!
//! [`EtcdServer::start`] picks free loopback ports, creates a temporary data
//! directory, spawns `etcd` with its log written to a file in that directory
//! (never to the test's output) and waits until `/health` answers. The handle
//! can kill, restart (same data dir, same ports), pause (SIGSTOP) and resume
//! (SIGCONT) the process, which is how tests exercise crash and partition
//! behaviour. Dropping the handle kills the process, even when the test
//! panics, and removes the directory.
//!
//! The binary is `$NIGHTSHIFT_TEST_ETCD_BIN`, else `etcd` on `PATH`, else
//! `/usr/bin/etcd`. [`EtcdServer::start_with`] serves the client port over TLS
//! with client-certificate authentication; readiness is always probed on a
//! separate plain-HTTP metrics port, so the probe does not need TLS.
//!
//! Timing flags are tuned for tests (20 ms heartbeat, 200 ms election
//! timeout): a single node is ready in ~150 ms and etcd's minimum lease TTL
//! drops to 1 s, so lease-expiry tests stay short.

use anyhow::{bail, Context};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod cluster;
pub use cluster::EtcdCluster;

/// Environment variable overriding the etcd binary used by tests.
pub const ETCD_BIN_ENV: &str = "NIGHTSHIFT_TEST_ETCD_BIN";

/// How long a start or restart may take before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How many times a start is retried with fresh ports when another process
/// grabbed one of them between probing and etcd binding it.
const START_ATTEMPTS: usize = 3;
/// How long a restart keeps retrying while the old ports are still busy.
const RESTART_RETRY_FOR: Duration = Duration::from_secs(5);

/// How to start an [`EtcdServer`].
///
/// Every test etcd runs with etcd's default request size (1.5 MiB) and
/// quota (2 GiB) and with the automatic compaction every etcd the project
/// starts runs (periodic, 5 minutes of history): nothing passes only because
/// a limit was raised.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    /// Serve clients over TLS, requiring client certificates signed by `ca`.
    pub tls: Option<EtcdTls>,
    /// A backend quota below the default, for tests of a full etcd (the
    /// NOSPACE alarm). `None`: etcd's default.
    pub quota_backend_bytes: Option<u64>,
}

/// PEM files for an etcd serving TLS.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// Server certificate (must be valid for IP 127.0.0.1).
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
    /// CA that signs the client certificates etcd accepts.
    pub ca: PathBuf,
}

/// A running (or deliberately stopped) etcd process owned by a test.
pub struct EtcdServer {
    bin: PathBuf,
    dir: TempDir,
    options: EtcdOptions,
    client_port: u16,
    peer_port: u16,
    metrics_port: u16,
    /// Membership: this member's name and the whole initial cluster.
    membership: Membership,
    // A mutex so that kill/restart work through `&self` (a test shares the
    // server with spawned tasks); never held across an await.
    child: Mutex<Option<Child>>,
}

impl EtcdServer {
    /// Starts a fresh etcd on free loopback ports with an empty data dir and
    /// waits until it is healthy.
    pub async fn start() -> anyhow::Result<EtcdServer> {
        Self::start_with(EtcdOptions::default()).await
    }

    /// Like [`start`](Self::start), with options (e.g. TLS).
    pub async fn start_with(options: EtcdOptions) -> anyhow::Result<EtcdServer> {
        let bin = etcd_binary()?;
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("nightshift-etcd-")
                .tempdir()?;
            let [client_port, peer_port, metrics_port] = free_ports()?;
            let server = EtcdServer {
                bin: bin.clone(),
                dir,
                options: options.clone(),
                client_port,
                peer_port,
                metrics_port,
                membership: Membership::single(peer_port),
                child: Mutex::new(None),
            };
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    /// Client URL, e.g. `http://127.0.0.1:41234` (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// Client URLs, for APIs taking a list.
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint()]
    }

    /// Peer URL (raft traffic between members).
    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// Whether this etcd is running and is its cluster's raft leader (its
    /// `/metrics` report `etcd_server_is_leader 1`). A single server always
    /// leads itself once started.
    pub async fn is_leader(&self) -> bool {
        if self.pid().is_none() {
            return false;
        }
        http_get(self.metrics_port, "/metrics")
            .await
            .is_some_and(|body| body.lines().any(|l| l.trim() == "etcd_server_is_leader 1"))
    }

    /// Process id of the running etcd, `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.child_slot().as_ref().map(Child::id)
    }

    /// Path of etcd's log file (all starts append to it).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// The last `lines` lines of etcd's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path(), lines)
    }

    /// Kills etcd with SIGKILL and reaps it. The data dir is kept, so
    /// [`restart`](Self::restart) brings the same cluster back. No-op when
    /// it is not running.
    pub fn kill(&self) {
        if let Some(mut child) = self.child_slot().take() {
            // Errors mean the process is already gone, which is the goal.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills etcd if it runs, then starts it again on the same data dir and
    /// ports, retrying for a few seconds while a port is still busy.
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.kill();
        let deadline = tokio::time::Instant::now() + RESTART_RETRY_FOR;
        loop {
            match self.spawn_and_wait().await {
                Ok(()) => return Ok(()),
                Err(_) if tokio::time::Instant::now() < deadline && self.port_was_busy() => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Freezes etcd with SIGSTOP: connections stay open but nothing answers,
    /// like a network partition. Returns once every thread of the process is
    /// stopped: kill(2) only queues the signal, and a thread busy on another
    /// core could otherwise still answer a request sent right after.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal(libc::SIGSTOP)?;
        let pid = self.pid().context("etcd is not running")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !all_threads_stopped(pid) {
            if std::time::Instant::now() >= deadline {
                bail!("etcd (pid {pid}) did not stop within 5 s of SIGSTOP");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Resumes a paused etcd with SIGCONT.
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal(libc::SIGCONT)
    }

    /// Compacts etcd's history up to `revision` (physically, so the effect is
    /// visible when this returns): watches from an older revision then fail
    /// with "compacted".
    pub async fn compact(&self, revision: i64) -> anyhow::Result<()> {
        if self.options.tls.is_some() {
            bail!("EtcdServer::compact supports plain-text servers only");
        }
        let mut client = etcd_client::Client::connect(self.endpoints(), None)
            .await
            .context("connecting to etcd to compact")?;
        client
            .compact(
                revision,
                Some(etcd_client::CompactionOptions::new().with_physical()),
            )
            .await
            .with_context(|| format!("compacting etcd at revision {revision}"))?;
        Ok(())
    }

    /// What an operator does about etcd's NOSPACE alarm ("database space
    /// exceeded"), after deleting what filled it: compacts the history up
    /// to the current revision, defragments the member (shrinking its
    /// file) and disarms every alarm.
    pub async fn free_space(&self) -> anyhow::Result<()> {
        if self.options.tls.is_some() {
            bail!("EtcdServer::free_space supports plain-text servers only");
        }
        let mut client = etcd_client::Client::connect(self.endpoints(), None)
            .await
            .context("connecting to etcd to free space")?;
        let status = client.status().await.context("reading etcd's status")?;
        let revision = status
            .header()
            .map(|h| h.revision())
            .context("etcd status without a header")?;
        client
            .compact(
                revision,
                Some(etcd_client::CompactionOptions::new().with_physical()),
            )
            .await
            .with_context(|| format!("compacting etcd at revision {revision}"))?;
        client.defragment().await.context("defragmenting etcd")?;
        let alarms = client
            .alarm(
                etcd_client::AlarmAction::Get,
                etcd_client::AlarmType::None,
                None,
            )
            .await
            .context("listing etcd's alarms")?;
        for alarm in alarms.alarms() {
            let mut options = etcd_client::AlarmOptions::new();
            options.with_member(alarm.member_id());
            client
                .alarm(
                    etcd_client::AlarmAction::Deactivate,
                    alarm.alarm(),
                    Some(options),
                )
                .await
                .context("disarming an etcd alarm")?;
        }
        Ok(())
    }

    fn child_slot(&self) -> MutexGuard<'_, Option<Child>> {
        // A panic while holding this lock cannot leave the Option invalid.
        self.child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn signal(&self, sig: libc::c_int) -> anyhow::Result<()> {
        let pid = self.pid().context("etcd is not running")?;
        let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
        // own child, which we have not reaped yet (still in `self.child`).
        let rc = unsafe { libc::kill(pid, sig) };
        if rc != 0 {
            bail!(
                "kill({pid}, {sig}) failed: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    fn port_was_busy(&self) -> bool {
        self.log_tail(20).contains("address already in use")
    }

    /// Spawns etcd on this server's ports and dir, then waits for health.
    async fn spawn_and_wait(&self) -> anyhow::Result<()> {
        self.spawn()?;
        self.wait_healthy().await
    }

    /// Spawns the etcd process (not waiting for anything).
    fn spawn(&self) -> anyhow::Result<()> {
        let client_url = self.endpoint();
        let peer_url = self.peer_url();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening etcd log file")?;
        let log_err = log.try_clone()?;
        let mut command = Command::new(&self.bin);
        if let Some(tls) = &self.options.tls {
            command
                .arg("--cert-file")
                .arg(&tls.cert)
                .arg("--key-file")
                .arg(&tls.key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        if let Some(quota) = self.options.quota_backend_bytes {
            command.arg("--quota-backend-bytes").arg(quota.to_string());
        }
        let child = command
            .args([
                "--auto-compaction-mode",
                "periodic",
                "--auto-compaction-retention",
                "5m",
            ])
            .arg("--name")
            .arg(&self.membership.name)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .arg("--initial-cluster")
            .arg(&self.membership.initial_cluster)
            .args(["--initial-cluster-token", "nightshift-test"])
            .arg("--listen-metrics-urls")
            .arg(format!("http://127.0.0.1:{}", self.metrics_port))
            .arg("--heartbeat-interval")
            .arg(self.membership.heartbeat_ms.to_string())
            .arg("--election-timeout")
            .arg(self.membership.election_ms.to_string())
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        *self.child_slot() = Some(child);
        Ok(())
    }

    /// Waits until the spawned etcd answers healthy (a member of a cluster
    /// is healthy once the cluster has a leader).
    async fn wait_healthy(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child_slot()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child_slot().take();
                bail!(
                    "etcd exited during startup ({status}); log tail:\n{}",
                    self.log_tail(30)
                );
            }
            if healthy(self.metrics_port).await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                self.kill();
                bail!(
                    "etcd not healthy after {READY_TIMEOUT:?}; log tail:\n{}",
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // Kill before the TempDir field is dropped, so etcd never writes into
        // a directory being removed. A paused process dies on SIGKILL too.
        self.kill();
    }
}

impl std::fmt::Debug for EtcdServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdServer")
            .field("endpoint", &self.endpoint())
            .field("dir", &self.dir.path())
            .field("pid", &self.pid())
            .finish()
    }
}

/// Who a member is within its cluster, and the cluster's raft timing.
#[derive(Debug, Clone)]
struct Membership {
    /// `--name`.
    name: String,
    /// `--initial-cluster` (read by etcd only on an empty data dir).
    initial_cluster: String,
    /// `--heartbeat-interval`, ms.
    heartbeat_ms: u32,
    /// `--election-timeout`, ms.
    election_ms: u32,
}

impl Membership {
    /// A one-member cluster, with timings tuned for tests (20 ms heartbeat,
    /// 200 ms election timeout): nobody else can disturb its leadership.
    fn single(peer_port: u16) -> Self {
        Membership {
            name: "n".to_owned(),
            initial_cluster: format!("n=http://127.0.0.1:{peer_port}"),
            heartbeat_ms: 20,
            election_ms: 200,
        }
    }
}

/// Finds the etcd binary, or explains how to get one.
fn etcd_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os(ETCD_BIN_ENV) {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("{ETCD_BIN_ENV}={} does not exist", bin.display());
        }
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("etcd"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(std::iter::once(PathBuf::from("/usr/bin/etcd")))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "etcd binary not found on PATH: run scripts/test (it installs etcd, Debian package \
                 etcd-server) or set {ETCD_BIN_ENV} to an etcd 3.4+ binary"
            )
        })
}

/// Distinct free loopback ports. All listeners are held until all are
/// chosen so the kernel cannot hand out the same port twice.
fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// Whether etcd's `/health` endpoint (on the plain-HTTP metrics port)
/// answers healthy.
async fn healthy(port: u16) -> bool {
    http_get(port, "/health")
        .await
        .is_some_and(|body| body.contains("\"health\":\"true\""))
}

/// The response (status line, headers and body) to `GET path` on the
/// plain-HTTP metrics port; `None` when it does not answer within 500 ms.
async fn http_get(port: u16, path: &str) -> Option<String> {
    let probe = async {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut body = Vec::new();
        conn.read_to_end(&mut body).await.ok()?;
        Some(String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(Duration::from_millis(500), probe)
        .await
        .ok()
        .flatten()
}

/// The last `lines` lines of a log file (at most its last 64 KiB).
fn log_tail(path: &Path, lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(no etcd log: {e})"),
    }
}

/// Whether every thread of `pid` is in the stopped state (`T` in
/// `/proc/PID/task/TID/stat`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            .ok()
            // The state follows the parenthesised command name, which may hold spaces.
            .and_then(|stat| {
                stat.rsplit_once(')').and_then(|(_, rest)| {
                    rest.split_whitespace()
                        .next()
                        .map(|st| st == "T" || st == "t")
                })
            })
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn start_kill_restart_keeps_data_and_ports() {
        let server = EtcdServer::start().await.unwrap();
        let endpoint = server.endpoint();
        let mut client = etcd_client::Client::connect(server.endpoints(), None)
            .await
            .unwrap();
        client.put("k", "v", None).await.unwrap();

        server.kill();
        assert_eq!(server.pid(), None);
        assert!(
            !healthy(server.metrics_port).await,
            "killed etcd still answers"
        );

        server.restart().await.unwrap();
        assert_eq!(server.endpoint(), endpoint);
        let mut client = etcd_client::Client::connect(server.endpoints(), None)
            .await
            .unwrap();
        let got = client.get("k", None).await.unwrap();
        assert_eq!(got.kvs()[0].value(), b"v");
    }

    #[tokio::test]
    async fn pause_stops_answers_until_resume() {
        let server = EtcdServer::start().await.unwrap();
        server.pause().unwrap();
        assert!(!healthy(server.metrics_port).await, "paused etcd answered");
        server.resume().unwrap();
        crate::wait::wait_for(Duration::from_secs(5), "etcd healthy after resume", || {
            healthy(server.metrics_port)
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn drop_kills_the_process_and_removes_the_dir() {
        let server = EtcdServer::start().await.unwrap();
        let pid = server.pid().unwrap() as libc::pid_t;
        let dir = server.dir.path().to_path_buf();
        drop(server);
        // SAFETY: signal 0 only checks existence; the pid was reaped by Drop.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "etcd {pid} survived drop");
        assert!(!dir.exists(), "data dir {dir:?} survived drop");
    }

    #[tokio::test]
    async fn compact_makes_old_revisions_unreadable() {
        let server = EtcdServer::start().await.unwrap();
        let mut client = etcd_client::Client::connect(server.endpoints(), None)
            .await
            .unwrap();
        let first = client
            .put("k", "1", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        let second = client
            .put("k", "2", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        server.compact(second).await.unwrap();
        let err = client
            .get(
                "k",
                Some(etcd_client::GetOptions::new().with_revision(first)),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("compacted"), "{err}");
    }
}
