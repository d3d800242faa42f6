//! Issue 12, item 1: an executor watches only its own work. Executor A
//! (in-process SDK, its etcd client wrapped to record every key it is sent)
//! and executor B (a real `nightshift executor` process) share a two-job
//! DAG run by a real scheduler process on a real etcd. While both work —
//! result batches written, assignments rewritten, the run's state record
//! rewritten on every pass — A's watch delivers only keys under
//! `{p}owners/A/`: none of B's assignments, no result batch, no run state.
//! A's listings are of that prefix only, and its single reads are its own
//! job specs, assignments and registration.

mod scheduler_harness;

use anyhow::Result;
use futures::StreamExt as _;
use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_coord::{
    CoordError, Coordinator, Decorated, Intercept, KeyValue, PrefixPage, Revision, WatchEvent,
    WatchStream,
};
use nightshift_core::ids::ExecutorId;
use nightshift_core::keyspace::{self, JobKey};
use nightshift_core::state::RunState;
use nightshift_executor::builtin::Noop;
use nightshift_executor::Executor;
use scheduler_harness::{check_exactly_once, Cluster, Db, PREFIX};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DAG: &str = r#"
description = "two chained jobs of no-op items shared by two executors"

[jobs.a]
handler = "noop"
shards = 400

[jobs.b]
handler = "noop"
shards = 400
depends_on = ["a"]
"#;

/// What one client asked etcd for and what etcd's watches sent it.
#[derive(Default)]
struct Seen {
    watched: Vec<String>,
    listed: Vec<String>,
    read: Vec<String>,
    /// Every key a watch delivered (puts, deletes, re-listings).
    delivered: Vec<String>,
}

/// A coordinator that records the reads and watch deliveries of its user.
struct Observed {
    inner: EtcdCoordinator,
    seen: Arc<Mutex<Seen>>,
}

impl Observed {
    fn note(&self, f: impl FnOnce(&mut Seen)) {
        if let Ok(mut seen) = self.seen.lock() {
            f(&mut seen);
        }
    }
}

#[async_trait::async_trait]
impl Intercept for Observed {
    fn inner(&self) -> &dyn Coordinator {
        &self.inner
    }
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, CoordError> {
        self.note(|s| s.read.push(key.to_owned()));
        self.inner.get(key).await
    }
    async fn get_prefix(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), CoordError> {
        self.note(|s| s.listed.push(prefix.to_owned()));
        self.inner.get_prefix(prefix).await
    }
    async fn get_prefix_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<PrefixPage, CoordError> {
        self.note(|s| s.listed.push(prefix.to_owned()));
        self.inner
            .get_prefix_page(prefix, after, limit, revision)
            .await
    }
    async fn watch_prefix(
        &self,
        prefix: &str,
        start: Option<Revision>,
    ) -> Result<WatchStream, CoordError> {
        self.note(|s| s.watched.push(prefix.to_owned()));
        let stream = self.inner.watch_prefix(prefix, start).await?;
        let seen = self.seen.clone();
        Ok(stream
            .inspect(move |event| {
                let keys: Vec<String> = match event {
                    Ok(WatchEvent::Put(kv)) => vec![kv.key.clone()],
                    Ok(WatchEvent::Delete { key, .. }) => vec![key.clone()],
                    Ok(WatchEvent::Resync { kvs, .. }) => {
                        kvs.iter().map(|kv| kv.key.clone()).collect()
                    }
                    Err(_) => vec![],
                };
                if let Ok(mut seen) = seen.lock() {
                    seen.delivered.extend(keys);
                }
            })
            .boxed())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executors_watch_sees_only_its_own_assignments() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _scheduler = cluster.scheduler("s1")?;
    let _b = cluster.executor("b", 4)?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let coord = Decorated::new(Observed {
        inner: EtcdCoordinator::connect(EtcdConfig::new(cluster.etcd.endpoints())).await?,
        seen: seen.clone(),
    });
    let a = Executor::builder()
        .coordinator(Arc::new(coord))
        .prefix(PREFIX)
        .id("a")
        .handler("noop", Noop)
        .capacity(4)
        .lease_ttl(Duration::from_secs(2))
        .build()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let a_task = tokio::spawn(a.run_until(async move {
        let _ = stop_rx.await;
    }));
    // Both registered before the trigger, so both get items of both jobs.
    nightshift_testkit::wait::wait_for(Duration::from_secs(15), "a and b registered", || async {
        let mut ids = cluster.executor_ids().await;
        ids.sort();
        ids == ["a", "b"]
    })
    .await?;

    cluster.apply("shared", DAG)?;
    cluster.trigger("shared")?;
    let run = cluster
        .nth_run("shared", 0, Duration::from_secs(15))
        .await?;
    let end = cluster.wait_run_end(&run, Duration::from_secs(60)).await?;
    assert_eq!(end.state, RunState::Succeeded, "{end:?}");
    for job in ["a", "b"] {
        let attempts = cluster.attempts(&run, job).await?;
        check_exactly_once(job, 400, &attempts)?;
        for executor in ["a", "b"] {
            assert!(
                attempts.iter().any(|x| x.executor.as_str() == executor),
                "executor {executor} ran no item of job {job}: the run did not exercise both"
            );
        }
    }
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(15), a_task).await???;

    let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let me = ExecutorId::new("a");
    let mine = keyspace::owner_prefix(PREFIX, &me);
    assert!(!seen.watched.is_empty(), "a never watched");
    assert!(
        seen.watched.iter().all(|p| *p == mine),
        "a watched {:?}, not only {mine}",
        seen.watched
    );
    assert!(
        seen.listed.iter().all(|p| *p == mine),
        "a listed {:?}, not only {mine}",
        seen.listed
    );
    // Non-vacuous: a's watch did carry its own assignments of both jobs.
    let jobs: std::collections::BTreeSet<String> = seen
        .delivered
        .iter()
        .filter_map(|key| keyspace::parse_assign_key(PREFIX, key))
        .map(|(_, job, _)| job.to_string())
        .collect();
    assert_eq!(
        jobs.into_iter().collect::<Vec<_>>(),
        ["a", "b"],
        "a's watch delivered {:?}",
        seen.delivered
    );
    for key in &seen.delivered {
        assert!(
            matches!(
                keyspace::parse_job_key(PREFIX, key),
                Some(JobKey::Assign { ref executor, .. }) if *executor == me
            ) && key.starts_with(&mine),
            "a's watch delivered {key}, which is not one of a's assignments"
        );
    }
    for key in &seen.read {
        let own = match keyspace::parse_job_key(PREFIX, key) {
            Some(JobKey::Spec { .. }) => true,
            Some(JobKey::Assign { executor, .. }) => executor == me,
            // The keyspace format, checked before each registration.
            _ if *key == keyspace::format::format_key(PREFIX) => true,
            _ => keyspace::parse_executor_key(PREFIX, key).as_ref() == Some(&me),
        };
        assert!(own, "a read {key}");
    }
    Ok(())
}
