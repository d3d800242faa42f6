//! A real multi-member etcd cluster per test: each member an [`EtcdServer`]
//! with its own free loopback ports and temporary data directory.
//!
//! Unlike the single test server, members run with etcd's **default** raft
//! timing (100 ms heartbeat, 1 s election timeout) and default limits, so
//! a member's death costs what it costs in production: the followers of a
//! killed leader wait out the election timeout before electing a new one.
//! [`kill`](EtcdCluster::kill) SIGKILLs one member (its data dir is kept),
//! [`restart`](EtcdCluster::restart) brings it back on the same dir and
//! ports, [`leader`](EtcdCluster::leader) says which member leads (from
//! each member's `/metrics`: `etcd_server_is_leader`). Dropping the cluster
//! kills every member, even when the test panics, and removes the dirs.

use super::{
    etcd_binary, free_ports, EtcdOptions, EtcdServer, Membership, READY_TIMEOUT, START_ATTEMPTS,
};
use anyhow::Context as _;
use std::sync::Mutex;
use std::time::Duration;

/// etcd's default `--heartbeat-interval`, ms.
const DEFAULT_HEARTBEAT_MS: u32 = 100;
/// etcd's default `--election-timeout`, ms.
const DEFAULT_ELECTION_MS: u32 = 1000;

/// A running etcd cluster owned by a test. Members are numbered from 0.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<EtcdServer>,
}

impl EtcdCluster {
    /// Starts `size` members (at least 1) on free loopback ports with empty
    /// data dirs and waits until every member is healthy (which needs a
    /// leader).
    pub async fn start(size: usize) -> anyhow::Result<EtcdCluster> {
        anyhow::ensure!(size > 0, "an etcd cluster needs at least one member");
        let bin = etcd_binary()?;
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            let mut ports = Vec::with_capacity(size);
            for _ in 0..size {
                ports.push(free_ports::<3>()?);
            }
            let initial_cluster = ports
                .iter()
                .enumerate()
                .map(|(i, [_, peer, _])| format!("m{i}=http://127.0.0.1:{peer}"))
                .collect::<Vec<_>>()
                .join(",");
            let mut members = Vec::with_capacity(size);
            for (i, [client_port, peer_port, metrics_port]) in ports.into_iter().enumerate() {
                members.push(EtcdServer {
                    bin: bin.clone(),
                    dir: tempfile::Builder::new()
                        .prefix(&format!("nightshift-etcd-m{i}-"))
                        .tempdir()?,
                    options: EtcdOptions::default(),
                    client_port,
                    peer_port,
                    metrics_port,
                    membership: Membership {
                        name: format!("m{i}"),
                        initial_cluster: initial_cluster.clone(),
                        heartbeat_ms: DEFAULT_HEARTBEAT_MS,
                        election_ms: DEFAULT_ELECTION_MS,
                    },
                    child: Mutex::new(None),
                });
            }
            let cluster = EtcdCluster { members };
            match cluster.spawn_all().await {
                Ok(()) => return Ok(cluster),
                // Dropping the cluster kills what did start; retry on new ports.
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("etcd cluster did not start")))
    }

    /// Spawns every member, then waits for each to be healthy: a lone
    /// member cannot become healthy before a quorum runs.
    async fn spawn_all(&self) -> anyhow::Result<()> {
        for member in &self.members {
            member.spawn()?;
        }
        for (i, member) in self.members.iter().enumerate() {
            member
                .wait_healthy()
                .await
                .with_context(|| format!("etcd member m{i}"))?;
        }
        Ok(())
    }

    /// Number of members.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Client URLs of every member (dead or alive), in member order: what a
    /// client is configured with.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdServer::endpoint).collect()
    }

    /// One member, e.g. for its endpoint, pid or log.
    ///
    /// # Panics
    /// When `member` is not below [`size`](Self::size).
    pub fn member(&self, member: usize) -> &EtcdServer {
        &self.members[member]
    }

    /// SIGKILLs one member and reaps it; its data dir is kept.
    pub fn kill(&self, member: usize) {
        self.member(member).kill();
    }

    /// Starts a killed member again on its data dir and ports (it rejoins
    /// the cluster) and waits until it is healthy.
    pub async fn restart(&self, member: usize) -> anyhow::Result<()> {
        self.member(member).restart().await
    }

    /// The member that is raft leader right now, if any running member says
    /// it is.
    pub async fn leader(&self) -> Option<usize> {
        for (i, member) in self.members.iter().enumerate() {
            if member.is_leader().await {
                return Some(i);
            }
        }
        None
    }

    /// Waits until some running member leads; returns it.
    pub async fn wait_leader(&self, timeout: Duration) -> anyhow::Result<usize> {
        crate::wait::wait_for_value(timeout, "an etcd cluster leader", || self.leader()).await
    }

    /// The members that run and do not lead.
    pub async fn followers(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, member) in self.members.iter().enumerate() {
            if member.pid().is_some() && !member.is_leader().await {
                out.push(i);
            }
        }
        out
    }

    /// How long a restart may take at most (for callers' deadlines).
    pub fn ready_timeout() -> Duration {
        READY_TIMEOUT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_killed_leader_is_replaced_and_the_data_survives_its_restart() {
        let cluster = EtcdCluster::start(3).await.unwrap();
        assert_eq!(cluster.endpoints().len(), 3);
        let mut client = etcd_client::Client::connect(cluster.endpoints(), None)
            .await
            .unwrap();
        client.put("k", "v", None).await.unwrap();

        let old = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
        cluster.kill(old);
        assert_eq!(cluster.member(old).pid(), None);
        let new = cluster.wait_leader(Duration::from_secs(15)).await.unwrap();
        assert_ne!(new, old, "a killed member cannot lead");
        assert_eq!(cluster.followers().await.len(), 1);

        // The survivors still have a quorum: reads and writes work.
        let mut survivor = etcd_client::Client::connect([cluster.member(new).endpoint()], None)
            .await
            .unwrap();
        survivor.put("k2", "v2", None).await.unwrap();

        cluster.restart(old).await.unwrap();
        let mut back = etcd_client::Client::connect([cluster.member(old).endpoint()], None)
            .await
            .unwrap();
        let got = back.get("k2", None).await.unwrap();
        assert_eq!(
            got.kvs()[0].value(),
            b"v2",
            "the restarted member caught up"
        );
        let got = back.get("k", None).await.unwrap();
        assert_eq!(got.kvs()[0].value(), b"v");
    }

    #[tokio::test]
    async fn drop_kills_every_member() {
        let cluster = EtcdCluster::start(3).await.unwrap();
        let pids: Vec<libc::pid_t> = (0..3)
            .map(|i| cluster.member(i).pid().unwrap() as libc::pid_t)
            .collect();
        drop(cluster);
        for pid in pids {
            // SAFETY: signal 0 only checks existence; Drop reaped the pid.
            let alive = unsafe { libc::kill(pid, 0) } == 0;
            assert!(!alive, "etcd member {pid} survived drop");
        }
    }
}
