//! The leader's live state of a run, as stored in etcd under
//! `{p}runs/{run}/state`, and the last assignment of each job under
//! `{p}assignments/{dag}/{job}` (the input of the next run's reshard).
//!
//! These are wire records (schema-versioned through
//! [`nightshift_core::keyspace::encode`]): a new leader rebuilds everything it
//! needs from them, so they hold every decision that must survive a leader
//! change — job states, per-item outcomes as compact [`ItemSet`]s, attempt
//! and failure counts (sparse maps), pending retries and who owns what under
//! which fencing token. They never hold anything the executors write.

use crate::item_map::ItemMap;
use chrono::NaiveDate;
use nightshift_core::dag::{DagSpec, JobSpec};
use nightshift_core::ids::{DagName, ExecutorId, JobName, RunId};
use nightshift_core::keyspace::{ItemSet, Record};
use nightshift_core::state::{JobState, RunState, TriggerSource};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

// The keys are defined with the rest of the keyspace; re-exported here
// next to the records stored under them.
pub use nightshift_core::keyspace::{
    cron_key, last_assignment_key, parse_run_state_key, run_state_key,
};

/// `{p}runs/{run}/state`: one live run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run.
    pub run: RunId,
    /// The DAG it runs.
    pub dag: DagName,
    /// The DAG version it runs, frozen at trigger time so that an `apply`
    /// during the run does not change it. Not stored in the record (it
    /// would be copied into every rewrite): the record names
    /// [`dag_version`](Self::dag_version), whose spec lives once under
    /// `{p}dag_versions/{dag}/{version}`; the leader puts it back here
    /// after decoding ([`RunRecord::with_spec`]).
    #[serde(skip, default = "unresolved_spec")]
    pub spec: DagSpec,
    /// Version of the DAG in the SQL history.
    pub dag_version: u32,
    /// Business date handed to every item.
    pub business_date: NaiveDate,
    /// Run parameters merged over each job's params.
    #[serde(default)]
    pub params: serde_json::Value,
    /// What created the run.
    pub source: TriggerSource,
    /// Schedule instant, for scheduled runs.
    #[serde(default)]
    pub scheduled_for_ms: Option<i64>,
    /// Creation time.
    pub created_at_ms: i64,
    /// Run state.
    pub state: RunState,
    /// When the run must be done by (deadline), if the DAG has one.
    #[serde(default)]
    pub deadline_ms: Option<i64>,
    /// Jobs by name.
    pub jobs: BTreeMap<JobName, JobRecord>,
    /// Executors lost while holding items of this run (alerts to resolve
    /// when it ends).
    #[serde(default)]
    pub lost_executors: std::collections::BTreeSet<ExecutorId>,
    /// Alerts this run opened that resolve by themselves (stalled items, a
    /// slow run), resolved when their item ends or the run does. Stored as
    /// their dedupe keys' text.
    #[serde(default)]
    pub open_alerts: std::collections::BTreeSet<crate::alert_key::AlertKey>,
    /// Redo generation (0 unless `trigger --redo`): part of every item's
    /// work key, handed to executors in each job's spec.
    #[serde(default)]
    pub redo: u32,
    /// The run this one retries (trigger source `retry`): its failure
    /// alerts resolve when this run redoes the work.
    #[serde(default)]
    pub retry_of: Option<RunId>,
    /// Run time (ms since creation) past which the run is slower than
    /// usual: 1.5 × the median of its DAG's last 10 succeeded runs, fixed
    /// when the run is created; `None` without enough history.
    #[serde(default)]
    pub slow_after_ms: Option<i64>,
}

impl Record for RunRecord {
    const KIND: &'static str = "run state";
}

impl RunRecord {
    /// The decoded record with its DAG version's spec put back; `None`
    /// when `spec` is not the version the record names.
    pub fn with_spec(mut self, spec: DagSpec) -> Option<Self> {
        (spec.name == self.dag).then(|| {
            self.spec = spec;
            self
        })
    }

    /// The spec of a job of this run.
    pub fn job_spec(&self, job: &JobName) -> Option<&JobSpec> {
        self.spec.jobs.iter().find(|j| &j.name == job)
    }
}

/// The placeholder a decoded [`RunRecord`] holds until the leader puts
/// the spec of its DAG version back: no jobs, so nothing can be started
/// from it by mistake.
pub(crate) fn unresolved_spec() -> DagSpec {
    DagSpec {
        name: DagName::new("unresolved"),
        description: None,
        schedule: None,
        timezone: chrono_tz::UTC,
        calendar: None,
        concurrency: Default::default(),
        misfire: Default::default(),
        deadline: None,
        business_date: Default::default(),
        schedule_business_day: None,
        jobs: Vec::new(),
    }
}

/// One executor's share of a running job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The executor's lease the assignment key is attached to.
    pub lease: i64,
    /// Items it owns (finished ones may stay listed until the next rewrite).
    pub items: ItemSet,
    /// Owned items it was asked to stop.
    #[serde(default)]
    pub cancel: ItemSet,
    /// Mod revision of the assignment key as last written: the fencing token.
    pub token: i64,
    /// When the assignment was last written.
    pub assigned_at_ms: i64,
}

/// One job of a live run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Job state.
    pub state: JobState,
    /// Number of items (`0..shards`).
    pub shards: u32,
    /// When it was dispatched.
    #[serde(default)]
    pub started_at_ms: Option<i64>,
    /// When it ended.
    #[serde(default)]
    pub ended_at_ms: Option<i64>,
    /// Since when it waits for an executor offering its handler.
    #[serde(default)]
    pub waiting_since_ms: Option<i64>,
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
    /// Current attempt number of the items past their first attempt
    /// (attempt → items; only attempts ≥ 2, see [`JobRecord::set_attempt`]).
    #[serde(default)]
    pub attempts: ItemMap<u32>,
    /// Failed attempts (the item's own failures, which use up retries):
    /// failure count → items, counts ≥ 1.
    #[serde(default)]
    pub failures: ItemMap<u32>,
    /// Items waiting for their retry backoff: due time (ms) → items.
    #[serde(default)]
    pub retry_at: ItemMap<i64>,
    /// Unfinished items nobody owns (no live executor could take them).
    #[serde(default)]
    pub unowned: ItemSet,
    /// Executor an item was moved from, for the next attempt's history:
    /// executor → items.
    #[serde(default)]
    pub moved_from: ItemMap<ExecutorId>,
    /// Items the leader cancelled because they stalled past the item
    /// timeout: their `cancelled` report counts as a timed-out attempt.
    #[serde(default)]
    pub timed_out: ItemSet,
    /// Who owns what.
    #[serde(default)]
    pub owners: BTreeMap<ExecutorId, Owner>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The current start's generation (see `JobRunSpec::generation`):
    /// its assignments and spec carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The first error line of the first item that failed for good
    /// (`item N: line`, [`crate::first_error`]), for the job's failure
    /// message and its alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl JobRecord {
    /// A job not started yet.
    pub fn pending(shards: u32) -> Self {
        JobRecord {
            state: JobState::Pending,
            shards,
            started_at_ms: None,
            ended_at_ms: None,
            waiting_since_ms: None,
            succeeded: ItemSet::new(),
            failed: ItemSet::new(),
            skipped: ItemSet::new(),
            cancelled: ItemSet::new(),
            attempts: ItemMap::new(),
            failures: ItemMap::new(),
            retry_at: ItemMap::new(),
            unowned: ItemSet::new(),
            moved_from: ItemMap::new(),
            timed_out: ItemSet::new(),
            owners: BTreeMap::new(),
            error: None,
            generation: None,
            first_error: None,
        }
    }

    /// Items in a terminal state.
    pub fn done(&self) -> ItemSet {
        self.succeeded
            .union(&self.failed)
            .union(&self.skipped)
            .union(&self.cancelled)
    }

    /// Current attempt number of an item.
    pub fn attempt(&self, item: u32) -> u32 {
        self.attempts.get(item).copied().unwrap_or(1)
    }

    /// Sets an item's current attempt number; attempt 1 (or 0) is the
    /// default and is not stored.
    pub fn set_attempt(&mut self, item: u32, attempt: u32) {
        if attempt <= 1 {
            self.attempts.remove(item);
        } else {
            self.attempts.insert(item, attempt);
        }
    }

    /// Moves every item of `items` to its next attempt.
    pub fn next_attempts(&mut self, items: &ItemSet) {
        let later: Vec<(u32, ItemSet)> = self
            .attempts
            .by_value()
            .map(|(&a, with)| (a.saturating_add(1), with.intersection(items)))
            .filter(|(_, with)| !with.is_empty())
            .collect();
        // Items with no attempt yet: `items` minus those found above (not
        // minus every item of the map, which is O(map) per call and made a
        // failover of 1,000 executors slow on a large job).
        let seen = later
            .iter()
            .fold(ItemSet::new(), |acc, (_, with)| acc.union(with));
        let first = items.difference(&seen);
        // Out of the map first: the sets below are disjoint, so the order
        // of the inserts cannot move an item twice.
        self.attempts.remove_all(items);
        for (attempt, with) in later {
            self.attempts.insert_all(&with, attempt);
        }
        self.attempts.insert_all(&first, 2);
    }

    /// Failed attempts of an item so far.
    pub fn failure_count(&self, item: u32) -> u32 {
        self.failures.get(item).copied().unwrap_or(0)
    }

    /// Sets an item's failure count; 0 is the default and is not stored.
    pub fn set_failure_count(&mut self, item: u32, failures: u32) {
        if failures == 0 {
            self.failures.remove(item);
        } else {
            self.failures.insert(item, failures);
        }
    }

    /// The executor owning an item, if any.
    pub fn owner_of(&self, item: u32) -> Option<&ExecutorId> {
        self.owners
            .iter()
            .find(|(_, o)| o.items.contains(item))
            .map(|(e, _)| e)
    }
}

/// `{p}assignments/{dag}/{job}`: the assignment of the job's last start,
/// the input of the next reshard.
///
/// Only `sticky` reads the previous assignment (`core::sharding`), so only
/// a sticky job's is stored with its items; for the other strategies the
/// value names the run and item count only. A sticky job's items are cut
/// into chunks of [`LAST_ASSIGNMENT_CHUNK`] executors under
/// `{p}assignments/{dag}/{job}/{n}` (10,000 executors in one value were
/// 340 KiB), each carrying the start's `generation`: a read that finds a
/// chunk of another generation, or a missing one, takes the assignment as
/// absent (the job is assigned afresh) rather than reading a torn mix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastAssignment {
    /// Item count it covered.
    pub shards: u32,
    /// Items per executor (in the chunks on the wire, never in the head).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub executors: BTreeMap<ExecutorId, ItemSet>,
    /// The run that made it.
    pub run: Option<RunId>,
    /// The start that wrote it (the job's generation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// How many chunks hold its items.
    #[serde(default)]
    pub chunks: u32,
}

impl Record for LastAssignment {
    const KIND: &'static str = "last assignment";
}

/// Executors per chunk of a sticky job's last assignment: ~35 KiB.
pub const LAST_ASSIGNMENT_CHUNK: usize = 1_000;

/// `{p}assignments/{dag}/{job}/{n}`: executors of one chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastAssignmentChunk {
    /// The start that wrote it: must be the head's.
    pub generation: Option<i64>,
    /// Items per executor.
    pub executors: BTreeMap<ExecutorId, ItemSet>,
}

impl Record for LastAssignmentChunk {
    const KIND: &'static str = "last assignment chunk";
}

/// Puts (key → bytes) and deletes (keys) that store a value.
pub type ValueWrites = (Vec<(String, Vec<u8>)>, Vec<String>);

/// The values that store `last` for a job of `strategy`: key → bytes,
/// head first (with items only for `sticky`), then the keys of chunks a
/// longer earlier assignment left (`previous_chunks`) to delete.
pub fn last_assignment_values(
    prefix: &str,
    dag: &DagName,
    job: &JobName,
    last: &LastAssignment,
    strategy: nightshift_core::dag::Strategy,
    previous_chunks: u32,
) -> Result<ValueWrites, nightshift_core::keyspace::RecordError> {
    use nightshift_core::keyspace::{encode, last_assignment_chunk_key};
    let mut head = last.clone();
    head.executors = BTreeMap::new();
    let mut puts = Vec::new();
    if strategy == nightshift_core::dag::Strategy::Sticky {
        let all: Vec<(&ExecutorId, &ItemSet)> = last.executors.iter().collect();
        for (n, part) in all.chunks(LAST_ASSIGNMENT_CHUNK).enumerate() {
            let chunk = LastAssignmentChunk {
                generation: last.generation,
                executors: part
                    .iter()
                    .map(|(e, s)| ((*e).clone(), (*s).clone()))
                    .collect(),
            };
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            puts.push((
                last_assignment_chunk_key(prefix, dag, job, n),
                encode(&chunk)?,
            ));
            head.chunks = n + 1;
        }
    }
    let deletes = (head.chunks..previous_chunks)
        .map(|n| last_assignment_chunk_key(prefix, dag, job, n))
        .collect();
    puts.insert(0, (last_assignment_key(prefix, dag, job), encode(&head)?));
    Ok((puts, deletes))
}

/// A last assignment that cannot be used as it is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LastAssignmentError {
    /// A value does not decode.
    #[error("{key}: {source}")]
    Value {
        /// The key.
        key: String,
        /// Why.
        source: nightshift_core::keyspace::RecordError,
    },
    /// A chunk is missing or of another start (a torn write).
    #[error("{key} is missing or belongs to another start")]
    Torn {
        /// The chunk's key.
        key: String,
    },
}

/// The job's last assignment from one read of the keys starting with
/// `last_assignment_key` (`kvs`, other keys skipped): `Ok(None)` without a
/// head; `Err` when a value is unreadable or the chunks are torn. The
/// head's `chunks` says how many chunks it was stored in.
pub fn assemble_last_assignment(
    prefix: &str,
    dag: &DagName,
    job: &JobName,
    kvs: &[(&str, &[u8])],
) -> Result<Option<LastAssignment>, LastAssignmentError> {
    use nightshift_core::keyspace::{decode, last_assignment_chunk_key};
    let head_key = last_assignment_key(prefix, dag, job);
    let value = |key: &str| kvs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let Some(bytes) = value(&head_key) else {
        return Ok(None);
    };
    let mut head: LastAssignment = decode(bytes).map_err(|source| LastAssignmentError::Value {
        key: head_key.clone(),
        source,
    })?;
    for n in 0..head.chunks {
        let key = last_assignment_chunk_key(prefix, dag, job, n);
        let Some(bytes) = value(&key) else {
            return Err(LastAssignmentError::Torn { key });
        };
        let chunk: LastAssignmentChunk =
            decode(bytes).map_err(|source| LastAssignmentError::Value {
                key: key.clone(),
                source,
            })?;
        if chunk.generation != head.generation {
            return Err(LastAssignmentError::Torn { key });
        }
        head.executors.extend(chunk.executors);
    }
    Ok(Some(head))
}

/// Reads a job's last assignment in one read at one revision (the leader
/// at a job's start and `nightshift plan` both use it).
pub async fn read_last_assignment(
    coord: &dyn nightshift_coord::Coordinator,
    prefix: &str,
    dag: &DagName,
    job: &JobName,
) -> Result<Result<Option<LastAssignment>, LastAssignmentError>, nightshift_coord::CoordError> {
    let head_key = last_assignment_key(prefix, dag, job);
    // The head and its chunks share the head's key as a prefix (another
    // job whose name extends this one's does too: skipped by key).
    let (kvs, _) = coord
        .get_prefix_paged(&head_key, nightshift_coord::PAGE_KEYS_ANY)
        .await?;
    let chunk_prefix = nightshift_core::keyspace::last_assignment_chunks_prefix(prefix, dag, job);
    let mine: Vec<(&str, &[u8])> = kvs
        .iter()
        .filter(|kv| kv.key == head_key || kv.key.starts_with(&chunk_prefix))
        .map(|kv| (kv.key.as_str(), kv.value.as_slice()))
        .collect();
    Ok(assemble_last_assignment(prefix, dag, job, &mine))
}

/// `{p}cron/{dag}`: the last schedule instant the leader handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronRecord {
    /// Last handled schedule instant (fired or deliberately skipped), ms.
    pub last_ms: i64,
}

impl Record for CronRecord {
    const KIND: &'static str = "cron";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_state_keys_parse_back_and_do_not_clash_with_job_keys() {
        let run = RunId::new("daily-s1700000000000");
        let key = run_state_key("/n/", &run);
        assert_eq!(parse_run_state_key("/n/", &key), Some(run.clone()));
        assert_eq!(nightshift_core::keyspace::parse_job_key("/n/", &key), None);
        let spec = nightshift_core::keyspace::spec_key("/n/", &run, &JobName::new("a"));
        assert_eq!(parse_run_state_key("/n/", &spec), None);
    }
}
