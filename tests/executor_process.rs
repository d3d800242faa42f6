//! Real `nightshift executor` processes against a real etcd: what happens to
//! an executor's assignments when it is killed (SIGKILL), frozen past its
//! lease (SIGSTOP / SIGCONT) or drained (SIGTERM). The test plays the
//! scheduler leader through the keyspace protocol.

use anyhow::{Context as _, Result};
use futures::StreamExt;
use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_coord::{Coordinator, LeaseId, WatchEvent};
use nightshift_core::ids::{ExecutorId, JobName, RunId};
use nightshift_core::keyspace::{
    self, AssignmentRecord, ExecutorInfo, ItemSet, JobRunSpec, ResultBatch, ResultOutcome,
};
use nightshift_testkit::etcd::EtcdServer;
use nightshift_testkit::wait::{wait_for, wait_for_value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PREFIX: &str = "/proc-test/";
const TTL: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(15);

/// A `nightshift executor` child process, killed on drop.
struct ExecutorProcess {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ExecutorProcess {
    fn start(etcd: &EtcdServer, id: &str, capacity: u32) -> Result<ExecutorProcess> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("executor.log");
        let child = Command::new(env!("CARGO_BIN_EXE_nightshift"))
            .args([
                "executor",
                "--etcd",
                &etcd.endpoint(),
                "--id",
                id,
                "--lease-ttl",
                "2s",
            ])
            .args([
                "--prefix",
                PREFIX,
                "--handlers",
                "sleep,noop",
                "--capacity",
                &capacity.to_string(),
            ])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("spawning nightshift executor")?;
        Ok(ExecutorProcess {
            child,
            log,
            _dir: dir,
        })
    }

    fn signal(&self, signal: libc::c_int) -> Result<()> {
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

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ExecutorProcess {
    fn drop(&mut self) {
        // Only a child not yet reaped: a reaped pid may name another process.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.signal(libc::SIGCONT);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The test's side of the protocol: the leader.
struct Leader {
    coord: Arc<dyn Coordinator>,
}

impl Leader {
    async fn connect(etcd: &EtcdServer) -> Result<Leader> {
        let coord = EtcdCoordinator::connect(EtcdConfig {
            endpoints: etcd.endpoints(),
            ..Default::default()
        })
        .await?;
        Ok(Leader {
            coord: Arc::new(coord),
        })
    }

    async fn executor(&self, id: &str, not_lease: Option<i64>) -> Result<ExecutorInfo> {
        let key = keyspace::executor_key(PREFIX, &ExecutorId::new(id));
        wait_for_value(WAIT, &format!("executor {id} registered"), || async {
            let kv = self.coord.get(&key).await.ok()??;
            let info: ExecutorInfo = keyspace::decode(&kv.value).ok()?;
            (Some(info.lease) != not_lease).then_some(info)
        })
        .await
    }

    /// Writes a `sleep` job spec and assigns `items` to `to`; returns the
    /// assignment key and its token.
    async fn dispatch(
        &self,
        run: &str,
        to: &ExecutorInfo,
        millis: u64,
        items: u32,
    ) -> Result<(String, i64)> {
        let (run, job) = (RunId::new(run), JobName::new("sleepy"));
        let spec = JobRunSpec {
            run: run.clone(),
            dag: "proc".into(),
            job: job.clone(),
            handler: "sleep".into(),
            business_date: chrono::NaiveDate::from_ymd_opt(2024, 3, 31).context("date")?,
            total_items: items,
            params: serde_json::json!({ "millis": millis }),
            shard_params: None,
            item_timeout_ms: None,
            generation: None,
            redo: 0,
        };
        self.coord
            .put(
                &keyspace::spec_key(PREFIX, &run, &job),
                keyspace::encode(&spec)?,
                None,
            )
            .await?;
        let key = keyspace::assign_key(PREFIX, &run, &job, &to.id);
        let record = AssignmentRecord {
            items: ItemSet::range(0, items),
            ..Default::default()
        };
        let token = self
            .coord
            .put(&key, keyspace::encode(&record)?, Some(LeaseId(to.lease)))
            .await?;
        Ok((key, token))
    }

    /// Waits until the executor's items report progress: they are running.
    async fn wait_running(&self, run: &str, executor: &str) -> Result<()> {
        let key = keyspace::progress_key(
            PREFIX,
            &RunId::new(run),
            &JobName::new("sleepy"),
            &ExecutorId::new(executor),
        );
        wait_for(WAIT, "items running (progress published)", || async {
            matches!(self.coord.get(&key).await, Ok(Some(_)))
        })
        .await
    }

    async fn batches(&self, run: &str) -> Result<Vec<ResultBatch>> {
        let prefix = keyspace::results_prefix(PREFIX, &RunId::new(run), &JobName::new("sleepy"));
        let (kvs, _) = self.coord.get_prefix(&prefix).await?;
        kvs.iter()
            .map(|kv| Ok(keyspace::decode(&kv.value)?))
            .collect()
    }

    /// Resolves with the time of the key's deletion, watched from `after`.
    async fn deletion_of(
        &self,
        key: &str,
    ) -> Result<impl std::future::Future<Output = Result<Instant>>> {
        let revision = self.coord.current_revision().await?;
        let mut stream = self.coord.watch_prefix(key, Some(revision + 1)).await?;
        let key = key.to_owned();
        Ok(async move {
            while let Some(event) = stream.next().await {
                if let WatchEvent::Delete { key: deleted, .. } = event? {
                    if deleted == key {
                        return Ok(Instant::now());
                    }
                }
            }
            anyhow::bail!("watch ended before {key} was deleted")
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_executor_loses_its_assignments_when_its_lease_expires() -> Result<()> {
    let etcd = EtcdServer::start().await?;
    let leader = Leader::connect(&etcd).await?;
    let process = ExecutorProcess::start(&etcd, "killed", 2)?;
    let info = leader.executor("killed", None).await?;
    let (key, _) = leader.dispatch("r-kill", &info, 60_000, 2).await?;
    leader.wait_running("r-kill", "killed").await?;

    let deleted = leader.deletion_of(&key).await?;
    process.signal(libc::SIGKILL)?;
    let killed_at = Instant::now();
    let at = tokio::time::timeout(TTL + Duration::from_secs(1), deleted)
        .await
        .with_context(|| {
            format!(
                "assignment still there {:?} after SIGKILL",
                TTL + Duration::from_secs(1)
            )
        })??;
    eprintln!("assignment deleted {:?} after SIGKILL", at - killed_at);
    assert!(leader.batches("r-kill").await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_frozen_past_its_lease_records_nothing_for_the_items_it_held() -> Result<()> {
    let etcd = EtcdServer::start().await?;
    let leader = Leader::connect(&etcd).await?;
    let process = ExecutorProcess::start(&etcd, "frozen", 2)?;
    let info = leader.executor("frozen", None).await?;
    // 3 s items: they are still running when the 2 s lease ends.
    let (key, token) = leader.dispatch("r-stop", &info, 3_000, 2).await?;
    leader.wait_running("r-stop", "frozen").await?;
    let started = Instant::now();

    let deleted = leader.deletion_of(&key).await?;
    process.signal(libc::SIGSTOP)?;
    tokio::time::timeout(WAIT, deleted)
        .await
        .context("lease of the frozen executor never expired")??;
    process.signal(libc::SIGCONT)?;

    // Woken up, its sleeps are over at once; it must notice its lease is
    // gone, void those outcomes and register again with a new lease.
    let again = leader.executor("frozen", Some(info.lease)).await?;
    assert_ne!(again.lease, info.lease);
    wait_for(WAIT, "the executor logs that it self-fenced", || async {
        process.logs().contains("self-fenced")
    })
    .await?;
    // Well after the items would have finished, nothing was recorded for them.
    let quiet_until = started + Duration::from_secs(5);
    while Instant::now() < quiet_until {
        let batches = leader.batches("r-stop").await?;
        assert!(
            batches.iter().all(|b| b.token.0 != token),
            "a stale owner recorded: {batches:?}"
        );
        assert!(
            batches.is_empty(),
            "outcomes recorded for items the executor no longer owned: {batches:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_executor_releases_its_assignments_within_a_second() -> Result<()> {
    let etcd = EtcdServer::start().await?;
    let leader = Leader::connect(&etcd).await?;
    let mut process = ExecutorProcess::start(&etcd, "drained", 2)?;
    let info = leader.executor("drained", None).await?;
    // 20 items of 300 ms at capacity 2: a 3 s backlog. Once the first
    // outcomes are in, two items are mid-flight and the rest wait.
    let (key, token) = leader.dispatch("r-term", &info, 300, 20).await?;
    wait_for(WAIT, "first outcomes recorded", || async {
        leader.batches("r-term").await.is_ok_and(|b| !b.is_empty())
    })
    .await?;

    let deleted = leader.deletion_of(&key).await?;
    process.signal(libc::SIGTERM)?;
    let signalled = Instant::now();
    let at = tokio::time::timeout(WAIT, deleted)
        .await
        .context("assignment never released")??;
    let took = at - signalled;
    eprintln!("assignment released {took:?} after SIGTERM");
    // The protocol property: a drain releases at once instead of waiting out the TTL.
    assert!(
        took < Duration::from_secs(1),
        "released {took:?} after SIGTERM"
    );

    let status = tokio::task::spawn_blocking(move || process.child.wait()).await??;
    assert!(status.success(), "executor exited with {status}");
    let batches = leader.batches("r-term").await?;
    let mut items: Vec<u32> = batches
        .iter()
        .flat_map(|b| b.results.iter().map(|r| r.item.0))
        .collect();
    items.sort_unstable();
    let recorded = items.len();
    items.dedup();
    assert_eq!(items.len(), recorded, "an item was recorded twice");
    // Items start in index order: what was recorded is a prefix, which
    // includes the two that were running when SIGTERM came (they finished
    // during the drain), and the unstarted rest was released unrecorded.
    assert_eq!(items, (0..recorded as u32).collect::<Vec<_>>());
    assert!((3..20).contains(&recorded), "{recorded} items recorded");
    assert!(batches.iter().all(|b| b.token.0 == token
        && b.results
            .iter()
            .all(|r| r.outcome == ResultOutcome::Succeeded)));
    Ok(())
}
