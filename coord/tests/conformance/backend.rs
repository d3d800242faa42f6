//! The two backends under test, behind one small control trait for the
//! cases that need more than the `Coordinator` itself (restart, compact).

use async_trait::async_trait;
use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_coord::memory::MemoryCoordinator;
use nightshift_coord::{Coordinator, Revision};
use nightshift_testkit::etcd::EtcdServer;
use std::sync::Arc;
use std::time::Duration;

/// A coordination backend plus the controls a test needs.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The coordinator under test.
    fn coord(&self) -> Arc<dyn Coordinator>;
    /// Kills the service and starts it again on the same data. The
    /// in-process backend has no process to kill: a no-op.
    async fn restart(&self) -> anyhow::Result<()>;
    /// Compacts history below `revision`.
    async fn compact(&self, revision: Revision) -> anyhow::Result<()>;
}

pub struct Memory(MemoryCoordinator);

impl Memory {
    pub async fn start() -> Self {
        Memory(MemoryCoordinator::new())
    }
}

#[async_trait]
impl Backend for Memory {
    fn coord(&self) -> Arc<dyn Coordinator> {
        Arc::new(self.0.clone())
    }
    async fn restart(&self) -> anyhow::Result<()> {
        Ok(())
    }
    async fn compact(&self, revision: Revision) -> anyhow::Result<()> {
        Ok(self.0.compact(revision)?)
    }
}

pub struct Etcd {
    server: EtcdServer,
    coord: EtcdCoordinator,
}

impl Etcd {
    pub async fn start() -> Self {
        let server = EtcdServer::start().await.unwrap();
        let mut config = EtcdConfig::new(server.endpoints());
        config.request_timeout = Duration::from_secs(2);
        let coord = EtcdCoordinator::connect(config).await.unwrap();
        Etcd { server, coord }
    }
}

#[async_trait]
impl Backend for Etcd {
    fn coord(&self) -> Arc<dyn Coordinator> {
        Arc::new(self.coord.clone())
    }
    async fn restart(&self) -> anyhow::Result<()> {
        self.server.kill();
        self.server.restart().await
    }
    async fn compact(&self, revision: Revision) -> anyhow::Result<()> {
        self.server.compact(revision).await
    }
}
