//! Read-only view of the live state of a run (`{p}runs/{run}/state`) that
//! the scheduler leader keeps in etcd, for `status`.
//!
//! `LiveRun` mirrors only the fields `status` shows of the scheduler's
//! `RunRecord` (a tolerant reader: serde ignores the rest, so the leader may
//! add fields freely); the keys themselves come from
//! `nightshift_scheduler::record`, the one definition.

use anyhow::Context as _;
use nightshift_coord::Coordinator;
use nightshift_core::ids::{ExecutorId, JobName};
use nightshift_core::keyspace::{decode, ItemSet, Record};
use nightshift_core::state::{JobState, RunState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use nightshift_scheduler::record::run_state_key;

/// A live run as the leader tracks it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveRun {
    /// Run state.
    pub state: RunState,
    /// Jobs by name.
    pub jobs: BTreeMap<JobName, LiveJob>,
}

impl Record for LiveRun {
    const KIND: &'static str = "run state";
}

/// One job of a live run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveJob {
    /// Job state.
    pub state: JobState,
    /// Number of items.
    pub shards: u32,
    /// Items that succeeded.
    #[serde(default)]
    pub succeeded: ItemSet,
    /// Items that failed for good.
    #[serde(default)]
    pub failed: ItemSet,
    /// Items skipped.
    #[serde(default)]
    pub skipped: ItemSet,
    /// Items cancelled.
    #[serde(default)]
    pub cancelled: ItemSet,
    /// Who owns what.
    #[serde(default)]
    pub owners: BTreeMap<ExecutorId, LiveOwner>,
}

/// One executor's share of a running job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveOwner {
    /// Items it owns (finished ones may still be listed).
    #[serde(default)]
    pub items: ItemSet,
}

/// Reads and decodes one key; `None` when absent.
pub async fn read<T: Record>(coord: &dyn Coordinator, key: &str) -> anyhow::Result<Option<T>> {
    let Some(kv) = coord
        .get(key)
        .await
        .with_context(|| format!("reading {key} from etcd"))?
    else {
        return Ok(None);
    };
    decode::<T>(&kv.value)
        .map(Some)
        .with_context(|| format!("reading {key}"))
}
