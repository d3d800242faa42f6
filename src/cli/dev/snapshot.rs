//! Crash-resume for `nightshift dev` on the in-process coordination backend.
//!
//! The in-process backend forgets everything when the process dies, so dev
//! wraps it in [`Persisted`], which writes a snapshot to
//! `<state-dir>/coordination.json` after **every** write, before the write
//! returns to its caller: every key under the prefix that is *not* attached
//! to a lease (applied DAGs, run state, result batches, commands, cron
//! progress), through a temporary file and an atomic rename. So nothing a
//! caller has seen committed is missing from the file after a process crash
//! (SIGKILL, panic); only an OS crash can lose the last writes, which are
//! not fsynced. A periodic snapshot was tried first and lost the race: a
//! crash a few hundred milliseconds after a trigger restored the command
//! but not the run it had created in SQL, and the run stayed stuck.
//!
//! Lease-attached keys (executor registrations, assignments, the leader
//! key) are deliberately left out: their owners are gone after a crash. On
//! the next start the leader finds running jobs whose assignments vanished
//! and re-dispatches their unfinished items, exactly as when an executor
//! dies. Items that were running at the crash run again, which the demo's
//! idempotency keys make harmless.
//!
//! This lives in the CLI rather than in `coord/src/memory` because it only
//! needs the `Coordinator` trait: the backend stays a pure in-memory store.
//! The cost — one JSON encode and file write per coordination write — is
//! fine for development, not for production (which uses etcd).

use anyhow::Context as _;
use async_trait::async_trait;
use nightshift_coord::memory::MemoryCoordinator;
use nightshift_coord::{
    CoordError, Coordinator, Decorated, Intercept, LeaseId, Revision, Txn, TxnResponse,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    revision: i64,
    keys: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    value: String,
}

/// How far past the snapshot's revision a restored store starts. A watcher
/// (an executor) sees a write before the snapshot of it is on disk, so a
/// crash in between can leave tokens in use above the snapshot's revision;
/// far fewer writes than this are ever in flight at once.
const RESTART_REVISION_GAP: i64 = 10_000;

/// Puts the keys of the snapshot at `path` (if any) into `coord`, which
/// should be empty, after advancing it to the snapshot's revision (so
/// revisions, hence fencing tokens, keep increasing across the crash);
/// returns how many were restored.
pub async fn restore(coord: &MemoryCoordinator, path: &Path) -> anyhow::Result<usize> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let file: SnapshotFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a coordination snapshot (delete it to start afresh)",
            path.display()
        )
    })?;
    coord.advance_to(file.revision.saturating_add(RESTART_REVISION_GAP));
    for entry in &file.keys {
        coord
            .put(&entry.key, entry.value.clone().into_bytes(), None)
            .await
            .context("restoring the coordination snapshot")?;
    }
    Ok(file.keys.len())
}

/// Writes snapshots of `prefix` to `path`.
pub struct Snapshotter {
    path: PathBuf,
    prefix: String,
    last_revision: i64,
}

impl Snapshotter {
    /// A snapshotter that has written nothing yet.
    pub fn new(path: PathBuf, prefix: String) -> Self {
        Snapshotter {
            path,
            prefix,
            last_revision: -1,
        }
    }

    /// Writes a snapshot if the store changed since the last one.
    pub async fn write_if_changed(&mut self, coord: &dyn Coordinator) -> anyhow::Result<()> {
        let (kvs, revision) = coord
            .get_prefix(&self.prefix)
            .await
            .context("reading the coordination store")?;
        if revision == self.last_revision {
            return Ok(());
        }
        let keys = kvs
            .into_iter()
            .filter(|kv| kv.lease.is_none())
            .filter_map(|kv| {
                String::from_utf8(kv.value)
                    .ok()
                    .map(|value| Entry { key: kv.key, value })
            })
            .collect();
        let text = serde_json::to_string(&SnapshotFile { revision, keys })
            .context("encoding the snapshot")?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("renaming {} into place", tmp.display()))?;
        self.last_revision = revision;
        Ok(())
    }
}

/// A coordinator that snapshots its inner store after every write.
pub struct Persisted {
    inner: Arc<dyn Coordinator>,
    snapshotter: tokio::sync::Mutex<Snapshotter>,
}

impl Persisted {
    /// Wraps `inner` into a coordinator that snapshots keys under
    /// `prefix` to `path`.
    pub fn new(inner: Arc<dyn Coordinator>, path: PathBuf, prefix: String) -> Decorated<Self> {
        Decorated::new(Persisted {
            inner,
            snapshotter: tokio::sync::Mutex::new(Snapshotter::new(path, prefix)),
        })
    }

    /// Writes the snapshot if the store changed. The lock makes the last
    /// writer read (and write) the newest state.
    pub async fn persist(&self) {
        let mut snapshotter = self.snapshotter.lock().await;
        if let Err(e) = snapshotter.write_if_changed(self.inner.as_ref()).await {
            tracing::warn!(error = %format!("{e:#}"), "coordination snapshot failed");
        }
    }

    async fn after<T>(&self, result: Result<T, CoordError>) -> Result<T, CoordError> {
        if result.is_ok() {
            self.persist().await;
        }
        result
    }
}

#[async_trait]
impl Intercept for Persisted {
    fn inner(&self) -> &dyn Coordinator {
        self.inner.as_ref()
    }
    // `revoke_lease` passes through: only leased keys go away, and those
    // are not in the snapshot.
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, CoordError> {
        let result = self.inner.put(key, value, lease).await;
        if lease.is_some() {
            return result;
        }
        self.after(result).await
    }
    async fn delete(&self, key: &str) -> Result<i64, CoordError> {
        let result = self.inner.delete(key).await;
        self.after(result).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<i64, CoordError> {
        let result = self.inner.delete_prefix(prefix).await;
        self.after(result).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, CoordError> {
        let result = self.inner.txn(txn).await;
        match &result {
            Ok(response) if response.succeeded => self.after(result).await,
            _ => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift_core::ids::{ExecutorId, RunId};
    use nightshift_core::keyspace::{self, CommandId};
    use std::time::Duration;

    /// The key of the `i`-th command under `/p/`.
    fn command(i: usize) -> String {
        keyspace::command_key("/p/", &CommandId::new(i as i64, 0))
    }

    #[tokio::test]
    async fn restores_plain_keys_and_drops_leased_ones() {
        let run_state = keyspace::run_state_key("/p/", &RunId::new("r1"));
        let executor = keyspace::executor_key("/p/", &ExecutorId::new("e1"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coordination.json");
        let before = MemoryCoordinator::new();
        before
            .put(&run_state, b"{\"a\":1}".to_vec(), None)
            .await
            .unwrap();
        let lease = before.grant_lease(Duration::from_secs(30)).await.unwrap();
        before
            .put(&executor, b"{}".to_vec(), Some(lease))
            .await
            .unwrap();
        before.put("/other/x", b"1".to_vec(), None).await.unwrap();
        let mut snap = Snapshotter::new(path.clone(), "/p/".into());
        snap.write_if_changed(&before).await.unwrap();

        let after = MemoryCoordinator::new();
        assert_eq!(restore(&after, &path).await.unwrap(), 1);
        let state = after.get(&run_state).await.unwrap().unwrap();
        assert_eq!(state.value, b"{\"a\":1}");
        // Revisions (fencing tokens) keep increasing across the restart.
        let last = before.current_revision().await.unwrap();
        assert!(
            state.mod_revision > last,
            "{} <= {last}",
            state.mod_revision
        );
        assert!(
            after.get(&executor).await.unwrap().is_none(),
            "leased keys are not restored"
        );
        assert!(
            after.get("/other/x").await.unwrap().is_none(),
            "only the prefix is kept"
        );
        assert_eq!(
            restore(&after, &dir.path().join("missing.json"))
                .await
                .unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn every_write_is_on_disk_before_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coordination.json");
        let coord = Persisted::new(
            Arc::new(MemoryCoordinator::new()),
            path.clone(),
            "/p/".into(),
        );
        for i in 0..5 {
            coord.put(&command(i), b"{}".to_vec(), None).await.unwrap();
            let copy = MemoryCoordinator::new();
            assert_eq!(
                restore(&copy, &path).await.unwrap(),
                i + 1,
                "write {i} is in the snapshot"
            );
        }
        coord.delete(&command(0)).await.unwrap();
        assert_eq!(restore(&MemoryCoordinator::new(), &path).await.unwrap(), 4);
    }
}
