//! Test support: the in-process coordination backend plays etcd, and
//! [`Leader`] plays the scheduler leader's side of the keyspace protocol
//! (write specs, write assignments bound to an executor's lease, read result
//! batches), so that the executor is tested through the protocol alone.
#![allow(dead_code)] // each test binary uses a different subset

use anyhow::Result;
use nightshift_coord::memory::MemoryCoordinator;
use nightshift_coord::{CoordError, Coordinator, Decorated, Intercept, LeaseId};
use nightshift_executor::{Executor, ExecutorBuilder, RunError, StatsHandle};
use nightshift_protocol::ids::{ExecutorId, JobName, RunId};
use nightshift_protocol::keyspace::{
    self, AssignmentRecord, ExecutorInfo, ItemResult, ItemSet, JobRunSpec, ResultBatch,
};
use nightshift_testkit::wait::{wait_for, wait_for_value};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const PREFIX: &str = "/t/";
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Leader {
    pub coord: Arc<dyn Coordinator>,
}

impl Leader {
    pub fn new() -> Leader {
        Leader {
            coord: Arc::new(MemoryCoordinator::new()),
        }
    }

    pub fn with(coord: Arc<dyn Coordinator>) -> Leader {
        Leader { coord }
    }

    pub fn builder(&self, id: &str) -> ExecutorBuilder {
        Executor::builder()
            .coordinator(self.coord.clone())
            .prefix(PREFIX)
            .id(id)
            .lease_ttl(Duration::from_secs(2))
    }

    /// The registration of `id`, once it is there (and, if given, not `old_lease`).
    pub async fn executor(&self, id: &str, not_lease: Option<i64>) -> Result<ExecutorInfo> {
        let key = keyspace::executor_key(PREFIX, &ExecutorId::new(id));
        wait_for_value(WAIT, &format!("executor {id} registered"), || async {
            let kv = self.coord.get(&key).await.ok()??;
            let info: ExecutorInfo = keyspace::decode(&kv.value).ok()?;
            (Some(info.lease) != not_lease).then_some(info)
        })
        .await
    }

    pub async fn spec(
        &self,
        run: &str,
        job: &str,
        handler: &str,
        total_items: u32,
        params: serde_json::Value,
    ) -> Result<()> {
        let spec = JobRunSpec {
            run: RunId::new(run),
            dag: "dag".into(),
            job: JobName::new(job),
            handler: handler.into(),
            business_date: chrono::NaiveDate::from_ymd_opt(2024, 3, 31).unwrap(),
            total_items,
            params,
            shard_params: None,
            item_timeout_ms: None,
            generation: None,
            redo: 0,
        };
        self.put_spec(spec).await
    }

    pub async fn put_spec(&self, spec: JobRunSpec) -> Result<()> {
        let key = keyspace::spec_key(PREFIX, &spec.run, &spec.job);
        self.coord.put(&key, keyspace::encode(&spec)?, None).await?;
        Ok(())
    }

    /// Writes an assignment bound to the executor's lease; returns its token.
    pub async fn assign(
        &self,
        run: &str,
        job: &str,
        to: &ExecutorInfo,
        record: &AssignmentRecord,
    ) -> Result<i64> {
        let key = keyspace::assign_key(PREFIX, &RunId::new(run), &JobName::new(job), &to.id);
        Ok(self
            .coord
            .put(&key, keyspace::encode(record)?, Some(LeaseId(to.lease)))
            .await?)
    }

    pub async fn assign_items(
        &self,
        run: &str,
        job: &str,
        to: &ExecutorInfo,
        items: ItemSet,
    ) -> Result<i64> {
        self.assign(
            run,
            job,
            to,
            &AssignmentRecord {
                items,
                ..Default::default()
            },
        )
        .await
    }

    pub async fn assignment_exists(&self, run: &str, job: &str, to: &str) -> bool {
        let key = keyspace::assign_key(
            PREFIX,
            &RunId::new(run),
            &JobName::new(job),
            &ExecutorId::new(to),
        );
        matches!(self.coord.get(&key).await, Ok(Some(_)))
    }

    /// Every result batch of the job, with its key.
    pub async fn batches(&self, run: &str, job: &str) -> Result<Vec<(String, ResultBatch)>> {
        let prefix = keyspace::results_prefix(PREFIX, &RunId::new(run), &JobName::new(job));
        let (kvs, _) = self.coord.get_prefix(&prefix).await?;
        kvs.into_iter()
            .map(|kv| Ok((kv.key, keyspace::decode(&kv.value)?)))
            .collect()
    }

    /// Every recorded result of the job, by item.
    pub async fn results(&self, run: &str, job: &str) -> Result<BTreeMap<u32, Vec<ItemResult>>> {
        let mut by_item: BTreeMap<u32, Vec<ItemResult>> = BTreeMap::new();
        for (_, batch) in self.batches(run, job).await? {
            for r in batch.results {
                by_item.entry(r.item.0).or_default().push(r);
            }
        }
        Ok(by_item)
    }

    /// Waits until `n` distinct items of the job have a result.
    pub async fn wait_results(
        &self,
        run: &str,
        job: &str,
        n: usize,
    ) -> Result<BTreeMap<u32, Vec<ItemResult>>> {
        wait_for_value(
            WAIT,
            &format!("{n} items of {run}/{job} recorded"),
            || async { self.results(run, job).await.ok().filter(|r| r.len() >= n) },
        )
        .await
    }
}

/// A running executor and the means to stop it.
pub struct Running {
    pub stats: StatsHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), RunError>>,
}

pub fn start(executor: Executor) -> Running {
    let stats = executor.stats();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(executor.run_until(async move {
        let _ = rx.await;
    }));
    Running {
        stats,
        shutdown: Some(tx),
        task,
    }
}

impl Running {
    /// Requests a drain and waits for `run_until` to return.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(WAIT, self.task).await???;
        Ok(())
    }
}

/// Polls `condition` until it holds.
pub async fn until<F, Fut>(what: &str, condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(WAIT, what, condition).await
}

/// Checks that `condition` keeps holding for `window`: how a test shows
/// that something does *not* happen (an outcome that must never appear).
pub async fn stays<F, Fut>(window: Duration, what: &str, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < end {
        anyhow::ensure!(condition().await, "no longer true: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("nightshift_executor=debug")
        .with_test_writer()
        .try_init();
}

/// The in-process backend with a switch that makes lease renewals fail, as
/// if this executor alone were cut off from etcd while the leader is not.
pub struct Partitionable {
    inner: MemoryCoordinator,
    pub cut: std::sync::atomic::AtomicBool,
}

impl Partitionable {
    pub fn new() -> Arc<Decorated<Partitionable>> {
        Arc::new(Decorated::new(Partitionable {
            inner: MemoryCoordinator::new(),
            cut: Default::default(),
        }))
    }
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Intercept for Partitionable {
    fn inner(&self) -> &dyn Coordinator {
        &self.inner
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, CoordError> {
        if self.cut.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(CoordError::Unavailable("partitioned by the test".into()));
        }
        self.inner.keep_alive(lease).await
    }
}
