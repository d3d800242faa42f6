//! Read-only views of records the scheduler leader keeps in etcd, for
//! `plan` and `status`: the last assignment of each job
//! (`{p}assignments/{dag}/{job}`) and the live state of a run
//! (`{p}runs/{run}/state`).
//!
//! These mirror only the fields the CLI shows of the scheduler's own wire
//! records (`nightshift_scheduler::record::{LastAssignment, RunRecord}`);
//! serde ignores the rest, so the leader may add fields freely. They are
//! read here rather than imported so that the CLI never depends on the
//! leader's internals beyond the documented keys.

use anyhow::Context as _;
use nightshift_coord::Coordinator;
use nightshift_core::ids::{DagName, ExecutorId, JobName, RunId};
use nightshift_core::keyspace::{decode, ItemSet, Record};
use nightshift_core::state::{JobState, RunState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `{p}assignments/{dag}/{job}`
pub fn last_assignment_key(prefix: &str, dag: &DagName, job: &JobName) -> String {
    format!("{prefix}assignments/{dag}/{job}")
}

/// `{p}runs/{run}/state`
pub fn run_state_key(prefix: &str, run: &RunId) -> String {
    format!("{prefix}runs/{run}/state")
}

/// The assignment a job got when it last started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastAssignment {
    /// Item count it covered.
    pub shards: u32,
    /// Items per executor.
    pub executors: BTreeMap<ExecutorId, ItemSet>,
    /// The run that made it.
    #[serde(default)]
    pub run: Option<RunId>,
}

impl Record for LastAssignment {
    const KIND: &'static str = "last assignment";
}

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
