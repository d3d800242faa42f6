//! In-process executors for a benchmark: real SDK executors, each with its
//! own etcd client and lease, serving the built-in handlers. They stop when
//! the fleet is dropped.

use super::rig::{Deadline, Rig};
use anyhow::Context as _;
use nightshift_core::keyspace;
use nightshift_executor::builtin::{Noop, Sleep};
use nightshift_executor::{Executor, StatsHandle};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Running in-process executors.
pub struct Fleet {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<(), nightshift_executor::RunError>>>,
    /// Counters of each executor.
    pub stats: Vec<StatsHandle>,
}

impl Fleet {
    /// Starts `count` executors named `{name}-{n}` with `capacity` each
    /// (default: the SDK's), and waits until all are registered.
    pub async fn start(
        rig: &Rig,
        name: &str,
        count: u32,
        capacity: Option<u32>,
    ) -> anyhow::Result<Fleet> {
        let (stop, _) = watch::channel(false);
        let mut fleet = Fleet {
            stop,
            tasks: Vec::new(),
            stats: Vec::new(),
        };
        for n in 0..count {
            let mut builder = Executor::builder()
                .etcd(rig.etcd.clone())
                .prefix(rig.prefix.clone())
                .id(format!("{name}-{n}"))
                .handler("noop", Noop)
                .handler("sleep", Sleep)
                .drain_grace(Duration::ZERO);
            if let Some(c) = capacity {
                builder = builder.capacity(c);
            }
            let executor = builder.build().context("building an in-process executor")?;
            fleet.stats.push(executor.stats());
            let mut rx = fleet.stop.subscribe();
            fleet
                .tasks
                .push(tokio::spawn(executor.run_until(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })));
        }
        let ours = format!("{name}-");
        let deadline = Deadline::new("the executors to register", Duration::from_secs(60));
        loop {
            let (kvs, _) = rig
                .coord
                .get_prefix(&keyspace::executors_prefix(&rig.prefix))
                .await?;
            let registered = kvs
                .iter()
                .filter_map(|kv| keyspace::parse_executor_key(&rig.prefix, &kv.key))
                .filter(|id| id.as_str().starts_with(&ours))
                .count();
            if registered >= count as usize {
                break;
            }
            deadline.tick().await?;
        }
        Ok(fleet)
    }

    /// Items started so far, all executors together.
    pub fn items_started(&self) -> u64 {
        self.stats.iter().map(|s| s.snapshot().items_started).sum()
    }

    /// Stops every executor (draining with no grace) and waits for them.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for t in std::mem::take(&mut self.tasks) {
            t.await.context("an executor task panicked")??;
        }
        Ok(())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
