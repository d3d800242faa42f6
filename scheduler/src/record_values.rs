//! How a [`RunRecord`] is stored: not one value but a small head and a
//! value per job, per owner and per item set, so that no value grows with
//! the items moved, retried or finished, nor with the executors.
//!
//! One value of `{p}runs/{run}/state` reached 2.7–24 MiB at 1,000,000
//! items × 10,000 executors (ARCHITECTURE "etcd limits"), past etcd's
//! 1.5 MiB request limit: the run would be stuck. Split, the largest value
//! holds one [`ItemSet`] (at most a bitmap of the job's items, span/6
//! bytes) or one owner:
//!
//! | key | value |
//! |---|---|
//! | `runs/{run}/state` | [`RunHead`]: the run-level fields and the job names |
//! | `runs/{run}/jobs/{job}/state` | [`JobHead`]: the job's scalar fields |
//! | `runs/{run}/jobs/{job}/items/{set}` | [`ItemsValue`]: `succeeded`, `failed`, `skipped`, `cancelled`, `unowned`, `timed_out` |
//! | `runs/{run}/jobs/{job}/items/{map}/{value}` | [`ItemsValue`]: the items holding one value of `attempts`, `failures`, `retry_at`, `moved_from` (an executor) |
//! | `runs/{run}/jobs/{job}/owners/{executor}` | [`OwnerValue`]: the owner and the job start (generation) it belongs to |
//!
//! The in-memory [`RunRecord`] keeps its shape: [`encode_run`] turns it
//! into key → bytes, [`decode_run`] assembles it back from one consistent
//! read of the run's keys. An owner value whose generation is not the
//! job's is ignored: a job start may stage its owners before it is
//! activated (commit.rs), and a start that never was leaves them behind.

use crate::item_map::ItemMap;
use crate::record::{JobRecord, Owner, RunRecord};
use chrono::NaiveDate;
use nightshift_core::ids::{DagName, ExecutorId, JobName, RunId};
use nightshift_core::keyspace::{self, ItemSet, Record, RecordError, RunValueKey};
use nightshift_core::state::{JobState, RunState, TriggerSource};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `runs/{run}/state`: the run-level fields of a [`RunRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunHead {
    /// The run.
    pub run: RunId,
    /// The DAG it runs.
    pub dag: DagName,
    /// Version of the DAG in the SQL history.
    pub dag_version: u32,
    /// Business date handed to every item.
    pub business_date: NaiveDate,
    /// Run parameters.
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
    /// Deadline, if the DAG has one.
    #[serde(default)]
    pub deadline_ms: Option<i64>,
    /// The run's jobs: each has a `jobs/{job}/state` value.
    pub jobs: Vec<JobName>,
    /// Executors lost while holding items of this run.
    #[serde(default)]
    pub lost_executors: BTreeSet<ExecutorId>,
    /// Self-resolving alerts this run opened.
    #[serde(default)]
    pub open_alerts: BTreeSet<crate::alert_key::AlertKey>,
    /// Redo generation.
    #[serde(default)]
    pub redo: u32,
    /// The run this one retries.
    #[serde(default)]
    pub retry_of: Option<RunId>,
    /// Run time past which the run is slower than usual.
    #[serde(default)]
    pub slow_after_ms: Option<i64>,
}

impl Record for RunHead {
    const KIND: &'static str = "run state";
}

/// `runs/{run}/jobs/{job}/state`: a job's scalar fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobHead {
    /// Job state.
    pub state: JobState,
    /// Number of items.
    pub shards: u32,
    /// When it was dispatched.
    #[serde(default)]
    pub started_at_ms: Option<i64>,
    /// When it ended.
    #[serde(default)]
    pub ended_at_ms: Option<i64>,
    /// Since when it waits for an executor.
    #[serde(default)]
    pub waiting_since_ms: Option<i64>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The current start's generation.
    #[serde(default)]
    pub generation: Option<i64>,
    /// The first error line of the first item that failed for good.
    #[serde(default)]
    pub first_error: Option<String>,
}

impl Record for JobHead {
    const KIND: &'static str = "job state";
}

/// `runs/{run}/jobs/{job}/items/...`: one item set of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemsValue {
    /// The items.
    pub items: ItemSet,
}

impl Record for ItemsValue {
    const KIND: &'static str = "job items";
}

/// `runs/{run}/jobs/{job}/owners/{executor}`: one owner, tied to the job
/// start that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerValue {
    /// The generation of the start the owner belongs to: read only while
    /// it is the job's.
    #[serde(default)]
    pub generation: Option<i64>,
    /// The owner.
    #[serde(flatten)]
    pub owner: Owner,
}

impl Record for OwnerValue {
    const KIND: &'static str = "job owner";
}

/// A run's keys that could not be assembled into a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunValuesError {
    /// A value is not the record its key names.
    #[error("{key}: {source}")]
    Value {
        /// The key.
        key: String,
        /// What is wrong with its value.
        source: RecordError,
    },
    /// The head names a job whose state value is missing.
    #[error("{key} is missing")]
    Missing {
        /// The missing key.
        key: String,
    },
    /// A per-item map value that is not a value of the map.
    #[error("{key}: not a value of the item map")]
    BadValue {
        /// The key.
        key: String,
    },
}

/// The job item sets stored one per key, by name.
const SETS: [&str; 6] = [
    "succeeded",
    "failed",
    "skipped",
    "cancelled",
    "unowned",
    "timed_out",
];

fn set_of<'a>(job: &'a JobRecord, kind: &str) -> Option<&'a ItemSet> {
    Some(match kind {
        "succeeded" => &job.succeeded,
        "failed" => &job.failed,
        "skipped" => &job.skipped,
        "cancelled" => &job.cancelled,
        "unowned" => &job.unowned,
        "timed_out" => &job.timed_out,
        _ => return None,
    })
}

fn set_of_mut<'a>(job: &'a mut JobRecord, kind: &str) -> Option<&'a mut ItemSet> {
    Some(match kind {
        "succeeded" => &mut job.succeeded,
        "failed" => &mut job.failed,
        "skipped" => &mut job.skipped,
        "cancelled" => &mut job.cancelled,
        "unowned" => &mut job.unowned,
        "timed_out" => &mut job.timed_out,
        _ => return None,
    })
}

/// The run's values: key → encoded bytes. Empty item sets and maps have
/// no key.
pub fn encode_run(prefix: &str, rec: &RunRecord) -> Result<BTreeMap<String, Vec<u8>>, RecordError> {
    let mut out = BTreeMap::new();
    let run = &rec.run;
    out.insert(
        keyspace::run_state_key(prefix, run),
        keyspace::encode(&head_of(rec))?,
    );
    for (name, job) in &rec.jobs {
        out.insert(
            keyspace::job_state_key(prefix, run, name),
            keyspace::encode(&job_head(job))?,
        );
        let mut items = |kind: &str, value: Option<String>, set: &ItemSet| {
            if set.is_empty() {
                return Ok::<(), RecordError>(());
            }
            let key = keyspace::job_items_key(prefix, run, name, kind, value.as_deref());
            let bytes = keyspace::encode(&ItemsValue { items: set.clone() })?;
            out.insert(key, bytes);
            Ok(())
        };
        for kind in SETS {
            if let Some(set) = set_of(job, kind) {
                items(kind, None, set)?;
            }
        }
        for (v, set) in job.attempts.by_value() {
            items("attempts", Some(v.to_string()), set)?;
        }
        for (v, set) in job.failures.by_value() {
            items("failures", Some(v.to_string()), set)?;
        }
        for (v, set) in job.retry_at.by_value() {
            items("retry_at", Some(v.to_string()), set)?;
        }
        for (v, set) in job.moved_from.by_value() {
            items("moved_from", Some(v.to_string()), set)?;
        }
        for (exec, owner) in &job.owners {
            out.insert(
                keyspace::job_owner_key(prefix, run, name, exec),
                keyspace::encode(&OwnerValue {
                    generation: job.generation,
                    owner: owner.clone(),
                })?,
            );
        }
    }
    Ok(out)
}

/// The job state values of `rec` alone (a part of [`encode_run`]).
pub fn job_states(prefix: &str, rec: &RunRecord) -> Result<Vec<(String, Vec<u8>)>, RecordError> {
    rec.jobs
        .iter()
        .map(|(name, job)| {
            Ok((
                keyspace::job_state_key(prefix, &rec.run, name),
                keyspace::encode(&job_head(job))?,
            ))
        })
        .collect()
}

fn job_head(job: &JobRecord) -> JobHead {
    JobHead {
        state: job.state,
        shards: job.shards,
        started_at_ms: job.started_at_ms,
        ended_at_ms: job.ended_at_ms,
        waiting_since_ms: job.waiting_since_ms,
        error: job.error.clone(),
        generation: job.generation,
        first_error: job.first_error.clone(),
    }
}

fn head_of(rec: &RunRecord) -> RunHead {
    RunHead {
        run: rec.run.clone(),
        dag: rec.dag.clone(),
        dag_version: rec.dag_version,
        business_date: rec.business_date,
        params: rec.params.clone(),
        source: rec.source,
        scheduled_for_ms: rec.scheduled_for_ms,
        created_at_ms: rec.created_at_ms,
        state: rec.state,
        deadline_ms: rec.deadline_ms,
        jobs: rec.jobs.keys().cloned().collect(),
        lost_executors: rec.lost_executors.clone(),
        open_alerts: rec.open_alerts.clone(),
        redo: rec.redo,
        retry_of: rec.retry_of.clone(),
        slow_after_ms: rec.slow_after_ms,
    }
}

fn value_err(key: &str) -> impl FnOnce(RecordError) -> RunValuesError + '_ {
    move |source| RunValuesError::Value {
        key: key.to_owned(),
        source,
    }
}

fn insert_parsed<V: Ord + Clone>(
    map: &mut ItemMap<V>,
    key: &str,
    value: Option<V>,
    items: &ItemSet,
) -> Result<(), RunValuesError> {
    let value = value.ok_or_else(|| RunValuesError::BadValue {
        key: key.to_owned(),
    })?;
    map.insert_all(items, value);
    Ok(())
}

/// Assembles the record of `run` from its keys as one read returned them
/// (any other keys are skipped); `Ok(None)` without a head: the run is not
/// live. The record's spec is the unresolved placeholder until the caller
/// puts the DAG version's back ([`RunRecord::with_spec`]). Owner values of
/// another generation than their job's are left out.
pub fn decode_run<'a>(
    prefix: &str,
    run: &RunId,
    kvs: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Option<RunRecord>, RunValuesError> {
    let mut head: Option<RunHead> = None;
    let mut jobs: BTreeMap<JobName, JobRecord> = BTreeMap::new();
    let mut owners: Vec<(JobName, ExecutorId, OwnerValue)> = Vec::new();
    let mut items: Vec<(String, JobName, String, Option<String>, ItemSet)> = Vec::new();
    for (key, value) in kvs {
        let Some(parsed) = keyspace::parse_run_value_key(prefix, key) else {
            continue;
        };
        if parsed.run() != run {
            continue;
        }
        match parsed {
            RunValueKey::Head(_) => {
                head = Some(keyspace::decode(value).map_err(value_err(key))?);
            }
            // Applied by `assemble` before decoding.
            RunValueKey::Wal(_) | RunValueKey::WalChunk(..) => {}
            RunValueKey::Job(_, job) => {
                let h: JobHead = keyspace::decode(value).map_err(value_err(key))?;
                let mut rec = JobRecord::pending(h.shards);
                rec.state = h.state;
                rec.started_at_ms = h.started_at_ms;
                rec.ended_at_ms = h.ended_at_ms;
                rec.waiting_since_ms = h.waiting_since_ms;
                rec.error = h.error;
                rec.generation = h.generation;
                rec.first_error = h.first_error;
                jobs.insert(job, rec);
            }
            RunValueKey::Owner(_, job, exec) => {
                let o: OwnerValue = keyspace::decode(value).map_err(value_err(key))?;
                owners.push((job, exec, o));
            }
            RunValueKey::Items(_, job, kind, v) => {
                let set: ItemsValue = keyspace::decode(value).map_err(value_err(key))?;
                items.push((key.to_owned(), job, kind, v, set.items));
            }
        }
    }
    let Some(head) = head else {
        return Ok(None);
    };
    // Values of jobs the head does not name are leftovers, not the run.
    for name in &head.jobs {
        if !jobs.contains_key(name) {
            return Err(RunValuesError::Missing {
                key: keyspace::job_state_key(prefix, run, name),
            });
        }
    }
    jobs.retain(|name, _| head.jobs.contains(name));
    for (key, name, kind, value, set) in items {
        let Some(job) = jobs.get_mut(&name) else {
            continue;
        };
        match (kind.as_str(), value) {
            ("attempts", v) => insert_parsed(
                &mut job.attempts,
                &key,
                v.and_then(|v| v.parse().ok()),
                &set,
            )?,
            ("failures", v) => insert_parsed(
                &mut job.failures,
                &key,
                v.and_then(|v| v.parse().ok()),
                &set,
            )?,
            ("retry_at", v) => insert_parsed(
                &mut job.retry_at,
                &key,
                v.and_then(|v| v.parse().ok()),
                &set,
            )?,
            ("moved_from", v) => {
                insert_parsed(&mut job.moved_from, &key, v.map(ExecutorId::new), &set)?
            }
            (kind, None) => match set_of_mut(job, kind) {
                Some(slot) => *slot = set,
                None => return Err(RunValuesError::BadValue { key }),
            },
            (_, Some(_)) => return Err(RunValuesError::BadValue { key }),
        }
    }
    for (name, exec, value) in owners {
        if let Some(job) = jobs.get_mut(&name) {
            if value.generation == job.generation {
                job.owners.insert(exec, value.owner);
            }
        }
    }
    Ok(Some(RunRecord {
        run: head.run,
        dag: head.dag,
        spec: crate::record::unresolved_spec(),
        dag_version: head.dag_version,
        business_date: head.business_date,
        params: head.params,
        source: head.source,
        scheduled_for_ms: head.scheduled_for_ms,
        created_at_ms: head.created_at_ms,
        state: head.state,
        deadline_ms: head.deadline_ms,
        jobs,
        lost_executors: head.lost_executors,
        open_alerts: head.open_alerts,
        redo: head.redo,
        retry_of: head.retry_of,
        slow_after_ms: head.slow_after_ms,
    }))
}

/// A live run as one read found it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    /// The record (spec unresolved: see [`RunRecord::with_spec`]).
    pub rec: RunRecord,
    /// The record's values as read, key → bytes (only keys of the record:
    /// job specs and progress keys under the run are not in it).
    pub values: BTreeMap<String, Vec<u8>>,
    /// Mod revision of the head (`runs/{run}/state`): every commit of the
    /// run compares it.
    pub revision: i64,
}

/// `{p}runs/{run}/wal`: a commit whose values did not fit in the head's
/// txn. Its chunks were written before the head's txn and are applied in
/// place after it; until the marker is deleted, readers apply them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalMarker {
    /// The chunks' tag (the head revision the commit was guarded by).
    pub tag: i64,
    /// How many chunks, `0..chunks`.
    pub chunks: u32,
}

impl Record for WalMarker {
    const KIND: &'static str = "run commit log";
}

/// One chunk of a logged commit: value writes in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalChunk {
    /// Each op: the key and its new value (JSON text), or `None` to delete.
    pub ops: Vec<(String, Option<String>)>,
}

impl Record for WalChunk {
    const KIND: &'static str = "run commit log chunk";
}

/// The run's values as its last *committed* commit left them: what was
/// read, with a logged commit's chunks applied when its marker is there
/// (a commit whose marker is absent never committed: its chunks are
/// ignored). Log keys themselves are left out.
fn with_wal(
    prefix: &str,
    run: &RunId,
    mine: &[&nightshift_coord::KeyValue],
) -> Result<BTreeMap<String, Vec<u8>>, RunValuesError> {
    let mut values = BTreeMap::new();
    let mut marker: Option<WalMarker> = None;
    let mut chunks: BTreeMap<(i64, u32), (&str, &[u8])> = BTreeMap::new();
    for kv in mine {
        match keyspace::parse_run_value_key(prefix, &kv.key) {
            Some(RunValueKey::Wal(_)) => {
                marker = Some(keyspace::decode(&kv.value).map_err(value_err(&kv.key))?);
            }
            Some(RunValueKey::WalChunk(_, tag, n)) => {
                chunks.insert((tag, n), (kv.key.as_str(), kv.value.as_slice()));
            }
            _ => {
                values.insert(kv.key.clone(), kv.value.clone());
            }
        }
    }
    let Some(marker) = marker else {
        return Ok(values);
    };
    for n in 0..marker.chunks {
        let Some((key, value)) = chunks.get(&(marker.tag, n)) else {
            return Err(RunValuesError::Missing {
                key: keyspace::run_wal_chunk_key(prefix, run, marker.tag, n),
            });
        };
        let chunk: WalChunk = keyspace::decode(value).map_err(value_err(key))?;
        for (key, value) in chunk.ops {
            match value {
                Some(v) => values.insert(key, v.into_bytes()),
                None => values.remove(&key),
            };
        }
    }
    Ok(values)
}

/// Assembles `run` from `kvs` (one read, at one revision, of at least the
/// run's keys): [`decode_run`], with the values as read and the head's
/// revision. `Ok(None)` without a head.
pub fn assemble(
    prefix: &str,
    run: &RunId,
    kvs: &[nightshift_coord::KeyValue],
) -> Result<Option<StoredRun>, RunValuesError> {
    let mine: Vec<&nightshift_coord::KeyValue> = kvs
        .iter()
        .filter(|kv| keyspace::parse_run_value_key(prefix, &kv.key).is_some_and(|k| k.run() == run))
        .collect();
    assemble_values(prefix, run, mine)
}

/// [`assemble`] over the run's own values, already picked out.
fn assemble_values(
    prefix: &str,
    run: &RunId,
    mine: Vec<&nightshift_coord::KeyValue>,
) -> Result<Option<StoredRun>, RunValuesError> {
    let head = keyspace::run_state_key(prefix, run);
    let Some(revision) = mine
        .iter()
        .find(|kv| kv.key == head)
        .map(|kv| kv.mod_revision)
    else {
        return Ok(None);
    };
    let applied = with_wal(prefix, run, &mine)?;
    let rec = decode_run(
        prefix,
        run,
        applied.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
    )?;
    Ok(rec.map(|rec| StoredRun {
        rec,
        values: mine
            .into_iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect(),
        revision,
    }))
}

/// Every live run under `kvs` (one read of `{p}runs/`), by run, each
/// assembled or with why it cannot be.
pub fn assemble_all(
    prefix: &str,
    kvs: &[nightshift_coord::KeyValue],
) -> BTreeMap<RunId, Result<Option<StoredRun>, RunValuesError>> {
    // Each key parsed once, into its run's bucket.
    let mut by_run: BTreeMap<RunId, Vec<&nightshift_coord::KeyValue>> = BTreeMap::new();
    for kv in kvs {
        if let Some(key) = keyspace::parse_run_value_key(prefix, &kv.key) {
            by_run.entry(key.run().clone()).or_default().push(kv);
        }
    }
    by_run
        .into_iter()
        .filter(|(run, values)| {
            let head = keyspace::run_state_key(prefix, run);
            values.iter().any(|kv| kv.key == head)
        })
        .map(|(run, values)| {
            let found = assemble_values(prefix, &run, values);
            (run, found)
        })
        .collect()
}

/// A run that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadRunError {
    /// etcd did not answer the read.
    #[error("reading the run from etcd: {0}")]
    Coord(#[from] nightshift_coord::CoordError),
    /// Its values do not make a record.
    #[error("the run's record is unreadable: {0}")]
    Values(#[from] RunValuesError),
}

/// Reads one live run — all its keys in one paged read at one revision —
/// as the leader loads it; `Ok(None)` when it is not live. The record's
/// spec is not resolved (the CLI and the leader have their own ways to
/// the DAG version). The one reader of the split record: the leader's
/// reload and the CLI's `status` both go through it.
pub async fn read_run(
    coord: &dyn nightshift_coord::Coordinator,
    prefix: &str,
    run: &RunId,
) -> Result<Option<StoredRun>, ReadRunError> {
    let (kvs, _) = coord
        .get_prefix_paged(
            &keyspace::run_prefix(prefix, run),
            nightshift_coord::PAGE_KEYS_ANY,
        )
        .await?;
    Ok(assemble(prefix, run, &kvs)?)
}

/// What a commit writes to bring etcd from `written` (the values as last
/// read or written) to `wanted`: puts of the values whose bytes changed,
/// deletes of the keys that disappeared. Sorted by key.
pub fn diff(
    written: &BTreeMap<String, Vec<u8>>,
    wanted: &BTreeMap<String, Vec<u8>>,
) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let puts = wanted
        .iter()
        .filter(|(k, v)| written.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let deletes = written
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect();
    (puts, deletes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(generation: Option<i64>) -> RunRecord {
        let mut job = JobRecord::pending(1_000);
        job.state = JobState::Running;
        job.generation = generation;
        job.succeeded = ItemSet::range(0, 10);
        job.failed = (20..400).step_by(7).collect();
        job.set_attempt(30, 3);
        job.set_attempt(31, 2);
        job.set_failure_count(30, 2);
        job.retry_at.insert(40, 1_700_000_000_123);
        job.moved_from
            .insert_all(&ItemSet::range(100, 200), ExecutorId::new("e-lost"));
        job.owners.insert(
            ExecutorId::new("e1"),
            Owner {
                lease: 7,
                items: ItemSet::range(10, 500),
                cancel: ItemSet::range(12, 13),
                token: 99,
                assigned_at_ms: 5,
            },
        );
        let mut rec = RunRecord {
            run: RunId::new("r1"),
            dag: DagName::new("unresolved"),
            spec: crate::record::unresolved_spec(),
            dag_version: 3,
            business_date: NaiveDate::from_ymd_opt(2026, 12, 4).unwrap_or_default(),
            params: serde_json::json!({"a": 1}),
            source: TriggerSource::Manual,
            scheduled_for_ms: None,
            created_at_ms: 1,
            state: RunState::Running,
            deadline_ms: Some(9),
            jobs: BTreeMap::from([(JobName::new("a"), job)]),
            lost_executors: BTreeSet::from([ExecutorId::new("e-lost")]),
            open_alerts: BTreeSet::from([crate::alert_key::AlertKey::from_stored("stalled:x")]),
            redo: 1,
            retry_of: None,
            slow_after_ms: Some(4),
        };
        rec.jobs.insert(JobName::new("b"), JobRecord::pending(5));
        rec
    }

    fn decode_map(map: &BTreeMap<String, Vec<u8>>) -> Option<RunRecord> {
        decode_run(
            "/n/",
            &RunId::new("r1"),
            map.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
        )
        .expect("decodes")
    }

    #[test]
    fn a_record_reads_back_from_its_values() {
        let rec = record(Some(42));
        let map = encode_run("/n/", &rec).expect("encodes");
        assert_eq!(decode_map(&map), Some(rec.clone()));
        // Keys of another run and other keys of the run are skipped.
        let mut more = map.clone();
        more.insert("/n/runs/r2/state".into(), b"garbage".to_vec());
        more.insert("/n/runs/r1/jobs/a/spec".into(), b"{}".to_vec());
        assert_eq!(decode_map(&more), Some(rec));
        assert_eq!(decode_map(&BTreeMap::new()), None);
    }

    fn kvs(map: &BTreeMap<String, Vec<u8>>) -> Vec<nightshift_coord::KeyValue> {
        map.iter()
            .map(|(k, v)| nightshift_coord::KeyValue {
                key: k.clone(),
                value: v.clone(),
                create_revision: 1,
                mod_revision: 7,
                version: 1,
                lease: None,
            })
            .collect()
    }

    /// What a commit too large for one txn leaves in etcd at each step:
    /// its log chunks (before the head's txn), then the marker with the
    /// head (the commit point), then the values in place. A reader sees
    /// the old record until the marker, the new one from it on.
    #[test]
    fn a_logged_commit_is_seen_whole_or_not_at_all() {
        let run = RunId::new("r1");
        let old = record(Some(42));
        let mut new = old.clone();
        if let Some(job) = new.jobs.get_mut(&JobName::new("a")) {
            job.owners.clear();
            job.set_attempt(11, 2);
            job.unowned = ItemSet::range(10, 500);
        }
        new.lost_executors.insert(ExecutorId::new("e1"));
        let before = encode_run("/n/", &old).expect("encodes");
        let after = encode_run("/n/", &new).expect("encodes");
        let (puts, deletes) = diff(&before, &after);
        let head = keyspace::run_state_key("/n/", &run);
        // The head goes with the marker; every other change is logged,
        // in two chunks.
        let mut ops: Vec<(String, Option<String>)> = puts
            .iter()
            .filter(|(k, _)| *k != head)
            .map(|(k, v)| (k.clone(), Some(String::from_utf8(v.clone()).expect("text"))))
            .chain(deletes.iter().map(|k| (k.clone(), None)))
            .collect();
        assert!(ops.len() >= 3, "{ops:?}");
        let second = WalChunk {
            ops: ops.split_off(ops.len() / 2),
        };
        let first = WalChunk { ops };
        let read = |map: &BTreeMap<String, Vec<u8>>| {
            assemble("/n/", &run, &kvs(map))
                .expect("assembles")
                .map(|s| s.rec)
        };

        // 1. Chunks written, no marker: the commit has not happened.
        let mut etcd = before.clone();
        for (n, chunk) in [&first, &second].into_iter().enumerate() {
            etcd.insert(
                keyspace::run_wal_chunk_key("/n/", &run, 7, n as u32),
                keyspace::encode(chunk).expect("encodes"),
            );
        }
        assert_eq!(read(&etcd), Some(old.clone()));
        // 2. Head and marker committed, values not yet in place.
        etcd.insert(head.clone(), after[&head].clone());
        let marker = keyspace::run_wal_key("/n/", &run);
        etcd.insert(
            marker.clone(),
            keyspace::encode(&WalMarker { tag: 7, chunks: 2 }).expect("encodes"),
        );
        assert_eq!(read(&etcd), Some(new.clone()));
        // 3. The first chunk in place: still the new record.
        for (k, v) in &first.ops {
            match v {
                Some(v) => etcd.insert(k.clone(), v.clone().into_bytes()),
                None => etcd.remove(k),
            };
        }
        assert_eq!(read(&etcd), Some(new.clone()));
        // A leader loading it now writes the rest in place and removes
        // the log with its next commit: the diff from what it read does.
        let stored = assemble("/n/", &run, &kvs(&etcd))
            .expect("reads")
            .expect("live");
        let (puts, deletes) = diff(&stored.values, &after);
        assert!(deletes.contains(&marker), "{deletes:?}");
        let mut next = etcd.clone();
        for (k, v) in puts {
            next.insert(k, v);
        }
        for k in deletes {
            next.remove(&k);
        }
        assert_eq!(next, after, "the log is gone and every value is in place");
        // A marker naming a chunk that is not there is an error, not a
        // half-read record.
        etcd.remove(&keyspace::run_wal_chunk_key("/n/", &run, 7, 1));
        assert!(matches!(
            assemble("/n/", &run, &kvs(&etcd)),
            Err(RunValuesError::Missing { .. })
        ));
    }

    #[test]
    fn an_owner_of_another_generation_is_ignored() {
        let rec = record(Some(42));
        let mut map = encode_run("/n/", &rec).expect("encodes");
        // A start staged owners (generation 50) and was never activated.
        let staged = OwnerValue {
            generation: Some(50),
            owner: Owner::default(),
        };
        let key =
            keyspace::job_owner_key("/n/", &rec.run, &JobName::new("a"), &ExecutorId::new("e9"));
        map.insert(key.clone(), keyspace::encode(&staged).expect("encodes"));
        let back = decode_map(&map).expect("a record");
        assert_eq!(back, rec);
        // A later commit of the decoded record deletes the stale value.
        let wanted = encode_run("/n/", &back).expect("encodes");
        let (puts, deletes) = diff(&map, &wanted);
        assert!(puts.is_empty());
        assert_eq!(deletes, vec![key]);
    }

    #[test]
    fn one_read_of_runs_assembles_every_run_with_its_head_revision() {
        let kv = |key: &str, value: &[u8], rev: i64| nightshift_coord::KeyValue {
            key: key.to_owned(),
            value: value.to_vec(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease: None,
        };
        let one = record(Some(1));
        let mut two = record(None);
        two.run = RunId::new("r2");
        let mut kvs = Vec::new();
        for (n, rec) in [&one, &two].into_iter().enumerate() {
            for (key, value) in encode_run("/n/", rec).expect("encodes") {
                let rev = if key.ends_with(&format!("{}/state", rec.run)) {
                    100 + n as i64
                } else {
                    5
                };
                kvs.push(kv(&key, &value, rev));
            }
        }
        // Values of a run without a head (its end deleted the head last)
        // are no run.
        kvs.push(kv("/n/runs/r3/jobs/a/state", b"{}", 7));
        let all = assemble_all("/n/", &kvs);
        assert_eq!(all.len(), 2);
        let got = all[&RunId::new("r1")].clone().expect("r1").expect("live");
        assert_eq!((got.rec, got.revision), (one, 100));
        let got = all[&RunId::new("r2")].clone().expect("r2").expect("live");
        assert_eq!((got.rec, got.revision), (two, 101));
    }

    #[test]
    fn a_head_naming_a_missing_job_is_an_error() {
        let rec = record(None);
        let mut map = encode_run("/n/", &rec).expect("encodes");
        map.remove(&keyspace::job_state_key(
            "/n/",
            &rec.run,
            &JobName::new("b"),
        ));
        let err = decode_run(
            "/n/",
            &rec.run,
            map.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
        )
        .unwrap_err();
        assert!(err.to_string().contains("jobs/b/state is missing"), "{err}");
    }

    proptest! {
        /// Only what changed is written: after any change of one owner,
        /// the diff puts that owner's value and the head... and nothing
        /// else; an owner removed is deleted.
        #[test]
        fn the_diff_holds_exactly_the_changed_values(token in 0i64..1000, drop_owner in any::<bool>(), succeeded in 0u32..1000) {
            let before = record(Some(1));
            let written = encode_run("/n/", &before).expect("encodes");
            let mut after = before.clone();
            let job = after.jobs.get_mut(&JobName::new("a")).expect("job a");
            if drop_owner {
                job.owners.clear();
            } else if let Some(o) = job.owners.get_mut(&ExecutorId::new("e1")) {
                o.token = token;
            }
            job.succeeded.insert(succeeded);
            let wanted = encode_run("/n/", &after).expect("encodes");
            let (puts, deletes) = diff(&written, &wanted);
            let mut applied = written.clone();
            for k in &deletes { applied.remove(k); }
            for (k, v) in &puts { applied.insert(k.clone(), v.clone()); }
            prop_assert_eq!(&applied, &wanted);
            for (k, _) in &puts {
                prop_assert_ne!(written.get(k), wanted.get(k));
            }
            prop_assert_eq!(decode_map(&applied), Some(after));
        }
    }
}
