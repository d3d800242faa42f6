//! The JSON records stored under the keys of [`crate::keyspace`].
//!
//! These are wire types: each exists to be written to and read from the
//! coordination store by different processes (and different versions of
//! them), so every record is encoded with a schema version field `v` by
//! [`encode`] and checked by [`decode`]. Fields added later must be optional
//! (`#[serde(default)]`) so that an older reader ignores them and a newer
//! reader accepts old records; anything else bumps [`SCHEMA_VERSION`].

use super::item_set::ItemSet;
use crate::ids::{DagName, ExecutorId, FencingToken, HandlerName, ItemIndex, JobName, RunId};
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Schema version written in the `v` field of every record.
pub const SCHEMA_VERSION: u32 = 1;

/// A record stored in the coordination keyspace.
pub trait Record: Serialize + DeserializeOwned {
    /// What the record is, for error messages ("assignment", ...).
    const KIND: &'static str;
}

/// A record that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes are not the JSON of this record.
    #[error("malformed {kind} record: {message}")]
    Malformed {
        /// Record kind.
        kind: &'static str,
        /// Parser message.
        message: String,
    },
    /// The record was written by a newer, incompatible version.
    #[error("{kind} record has schema version {found}, this build reads up to {supported}")]
    UnsupportedVersion {
        /// Record kind.
        kind: &'static str,
        /// Version in the record.
        found: u32,
        /// Highest version this build understands.
        supported: u32,
    },
}

/// Encodes a record as a JSON object with `"v"` first.
pub fn encode<T: Record>(record: &T) -> Result<Vec<u8>, RecordError> {
    let body = serde_json::to_vec(record).map_err(|e| malformed::<T>(&e))?;
    // The records are structs, so the body is `{...}`: splice `"v":N` in
    // rather than going through an intermediate `serde_json::Value`, which
    // would cost a second allocation per result batch.
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(format!("{{\"v\":{SCHEMA_VERSION}").as_bytes());
    match body.get(1..) {
        Some(b"}") | None => out.push(b'}'),
        Some(rest) => {
            out.push(b',');
            out.extend_from_slice(rest);
        }
    }
    Ok(out)
}

/// Decodes a record, rejecting a schema version newer than this build's.
/// A record without `v` is read as version 1.
pub fn decode<T: Record>(bytes: &[u8]) -> Result<T, RecordError> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default = "first_version")]
        v: u32,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| malformed::<T>(&e))?;
    if probe.v > SCHEMA_VERSION {
        return Err(RecordError::UnsupportedVersion {
            kind: T::KIND,
            found: probe.v,
            supported: SCHEMA_VERSION,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| malformed::<T>(&e))
}

fn first_version() -> u32 {
    1
}

fn malformed<T: Record>(err: &serde_json::Error) -> RecordError {
    RecordError::Malformed {
        kind: T::KIND,
        message: err.to_string(),
    }
}

/// `executors/{id}`: a live executor, attached to its own lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    /// Executor id (also the last key segment).
    pub id: ExecutorId,
    /// The executor's lease id: the leader attaches assignments to it.
    pub lease: i64,
    /// Handlers this executor can run.
    pub handlers: Vec<HandlerName>,
    /// How many items it runs at once, across all jobs.
    pub capacity: u32,
    /// Operator labels (`zone = "eu-1"`, ...).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Version of the SDK.
    pub version: String,
    /// When this registration started, Unix epoch milliseconds.
    pub started_at_ms: i64,
    /// Handlers with their own limit on items at once (within `capacity`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub handler_capacity: BTreeMap<HandlerName, u32>,
    /// JSON Schema of the params of each handler that declares a params
    /// type (absent: the handler takes any params). `nightshift apply` and
    /// the leader check a job's merged params against it before a run.
    /// Bounded by the SDK ([`MAX_PARAMS_SCHEMA_BYTES`] each) so that the
    /// record stays small.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params_schemas: BTreeMap<HandlerName, serde_json::Value>,
}

/// Largest JSON Schema (compact JSON, in bytes) an executor publishes for
/// one handler's params; a larger one is refused when the executor is
/// built. Every executor record is read on each leader pass, so records
/// stay a few KiB.
pub const MAX_PARAMS_SCHEMA_BYTES: usize = 8 * 1024;

impl ExecutorInfo {
    /// How many items of `handler` it can run at once: its handler limit
    /// if it has one, capped by its capacity; at least 1.
    pub fn capacity_for(&self, handler: &HandlerName) -> u32 {
        self.handler_capacity
            .get(handler)
            .map_or(self.capacity, |&limit| limit.min(self.capacity))
            .max(1)
    }
}

impl Record for ExecutorInfo {
    const KIND: &'static str = "executor";
}

/// `runs/{run}/jobs/{job}/spec`: what an executor needs to run the job's
/// items; written by the leader before any assignment, without a lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRunSpec {
    /// Run id.
    pub run: RunId,
    /// DAG the run belongs to.
    pub dag: DagName,
    /// Job name.
    pub job: JobName,
    /// Handler to run each item with.
    pub handler: HandlerName,
    /// Business date of the run (`YYYY-MM-DD`).
    pub business_date: NaiveDate,
    /// Number of items: they are `0..total_items`.
    pub total_items: u32,
    /// Job parameters, handed to every item.
    #[serde(default)]
    pub params: serde_json::Value,
    /// Per-item parameter (`shard_params[i]` for item `i`), if the job has any.
    #[serde(default)]
    pub shard_params: Option<Vec<String>>,
    /// Time limit of one item attempt, in milliseconds.
    #[serde(default)]
    pub item_timeout_ms: Option<u64>,
    /// The job start this spec activates. Assignments carrying a
    /// generation are acted on only once the spec names the same one: the
    /// leader writes a start's assignments first (in as many txns as they
    /// need) and this spec last, together with the run record, so a start
    /// of any size becomes visible to executors in one txn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Redo generation of the run (0 unless triggered with `--redo`): part
    /// of every item's [`WorkKey`](super::WorkKey).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redo: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl JobRunSpec {
    /// The work key of `item`: what it does, whatever run does it.
    pub fn work_key(&self, item: ItemIndex) -> super::WorkKey {
        super::WorkKey::new(
            self.dag.clone(),
            self.business_date,
            self.job.clone(),
            item,
            &self.params,
            self.item_param(item),
            self.redo,
        )
    }

    /// The item's own parameter, when the job defines them.
    pub fn item_param(&self, item: ItemIndex) -> Option<&str> {
        let params = self.shard_params.as_ref()?;
        params
            .get(usize::try_from(item.0).ok()?)
            .map(String::as_str)
    }
}

impl Record for JobRunSpec {
    const KIND: &'static str = "job spec";
}

/// `owners/{executor}/{run}/{job}`: the items one executor owns,
/// written by the leader attached to the executor's lease. The key's
/// mod_revision is the fencing token of every result recorded for them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentRecord {
    /// Items the executor owns.
    pub items: ItemSet,
    /// Attempt number of the items whose attempt is above 1 (sparse).
    #[serde(default)]
    pub attempts: BTreeMap<u32, u32>,
    /// Owned items the leader wants stopped and reported as cancelled.
    #[serde(default)]
    pub cancel: ItemSet,
    /// The job start this assignment belongs to: the executor runs nothing
    /// of it until the job's spec names the same generation (see
    /// [`JobRunSpec::generation`]). `None` (older leaders): act at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

impl AssignmentRecord {
    /// Attempt number of an item (1 unless listed in `attempts`).
    pub fn attempt(&self, item: u32) -> u32 {
        self.attempts.get(&item).copied().unwrap_or(1)
    }
}

impl Record for AssignmentRecord {
    const KIND: &'static str = "assignment";
}

/// How an item attempt ended, as reported by its executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultOutcome {
    /// The handler succeeded.
    Succeeded,
    /// The handler failed (see `retryable`).
    Failed,
    /// The handler chose to skip the item (reason in `error`).
    Skipped,
    /// The leader asked for it to stop (it was in `cancel`).
    Cancelled,
    /// The attempt ran past the job's `item_timeout_ms`.
    TimedOut,
}

/// One finished item attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    /// Item index.
    pub item: ItemIndex,
    /// Attempt number the executor ran.
    pub attempt: u32,
    /// How it ended.
    pub outcome: ResultOutcome,
    /// For a failure: whether the handler says a retry may succeed.
    #[serde(default)]
    pub retryable: bool,
    /// Error message of a failure, or the reason of a skip.
    #[serde(default)]
    pub error: Option<String>,
    /// Start, Unix epoch milliseconds.
    pub started_at_ms: i64,
    /// End, Unix epoch milliseconds.
    pub ended_at_ms: i64,
    /// The attempt's log tail (the SDK keeps the last 64 KiB of lines, with
    /// a marker line at the top when earlier ones were dropped); absent when
    /// it logged nothing, and in records of SDKs older than the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// `results/{run}/{job}/{executor}/{seq}`: finished items, written
/// by the executor in a txn fenced by its assignment's mod_revision, without a
/// lease; the leader consumes and deletes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultBatch {
    /// Executor that ran the items.
    pub executor: ExecutorId,
    /// Fencing token (assignment mod_revision) the batch was written under.
    pub token: FencingToken,
    /// The results, at most one per (item, attempt).
    pub results: Vec<ItemResult>,
}

impl Record for ResultBatch {
    const KIND: &'static str = "result batch";
}

/// Progress of one running item, as last reported by its handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemProgress {
    /// Units done.
    pub done: u64,
    /// Units in total (0 when unknown).
    pub total: u64,
    /// Free-form status line.
    #[serde(default)]
    pub message: Option<String>,
    /// When it was reported, Unix epoch milliseconds.
    pub at_ms: i64,
}

/// `runs/{run}/jobs/{job}/progress/{executor}`: progress of the executor's
/// running items of the job, attached to its lease, rewritten at most once a
/// second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressRecord {
    /// Running items that reported progress, by item index.
    pub items: BTreeMap<u32, ItemProgress>,
}

impl Record for ProgressRecord {
    const KIND: &'static str = "progress";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_the_schema_version_and_round_trip() {
        let record = AssignmentRecord {
            items: ItemSet::range(0, 10),
            attempts: BTreeMap::from([(3, 2)]),
            cancel: [4].into_iter().collect(),
            generation: None,
        };
        let bytes = encode(&record).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("{\"v\":1,\"items\":[[0,10]]"), "{text}");
        assert_eq!(decode::<AssignmentRecord>(&bytes).unwrap(), record);
        assert_eq!(record.attempt(3), 2);
        assert_eq!(record.attempt(5), 1);
        let empty = encode(&ProgressRecord::default()).unwrap();
        assert_eq!(
            decode::<ProgressRecord>(&empty).unwrap(),
            ProgressRecord::default()
        );
    }

    #[test]
    fn executor_records_without_params_schemas_still_decode() {
        // Written by an executor from before typed params.
        let old = br#"{"v":1,"id":"e1","lease":7,"handlers":["sleep"],"capacity":2,"host":"h","pid":1,"version":"0.1.0","started_at_ms":5}"#;
        let info = decode::<ExecutorInfo>(old).unwrap();
        assert!(info.params_schemas.is_empty());
        // No schema declared: the field is left out, so old readers see the old record.
        let text = String::from_utf8(encode(&info).unwrap()).unwrap();
        assert!(!text.contains("params_schemas"), "{text}");
        let mut typed = info;
        typed.params_schemas.insert(
            HandlerName::new("sleep"),
            serde_json::json!({"type": "object", "additionalProperties": false}),
        );
        let bytes = encode(&typed).unwrap();
        assert_eq!(decode::<ExecutorInfo>(&bytes).unwrap(), typed);
    }

    #[test]
    fn newer_schema_versions_are_refused_with_a_clear_error() {
        let err = decode::<AssignmentRecord>(br#"{"v":2,"items":[]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "assignment record has schema version 2, this build reads up to 1"
        );
        let err = decode::<AssignmentRecord>(b"not json").unwrap_err();
        assert!(
            err.to_string().starts_with("malformed assignment record"),
            "{err}"
        );
    }

    #[test]
    fn spec_reads_business_date_and_item_params() {
        let spec: JobRunSpec = decode(
            br#"{"run":"r1","dag":"d","job":"j","handler":"h","business_date":"2024-03-31",
                "total_items":2,"shard_params":["a","b"]}"#,
        )
        .unwrap();
        assert_eq!(
            spec.business_date,
            NaiveDate::from_ymd_opt(2024, 3, 31).unwrap()
        );
        assert_eq!(spec.item_param(ItemIndex(1)), Some("b"));
        assert_eq!(spec.item_param(ItemIndex(2)), None);
        assert_eq!(spec.params, serde_json::Value::Null);
        assert!(decode::<JobRunSpec>(br#"{"run":"r1","dag":"d","job":"j","handler":"h","business_date":"2024-02-30","total_items":2}"#).is_err());
    }

    #[test]
    fn progress_and_results_round_trip() {
        let progress = ProgressRecord {
            items: BTreeMap::from([(
                7,
                ItemProgress {
                    done: 1,
                    total: 2,
                    message: None,
                    at_ms: 5,
                },
            )]),
        };
        assert_eq!(
            decode::<ProgressRecord>(&encode(&progress).unwrap()).unwrap(),
            progress
        );
        let batch = ResultBatch {
            executor: ExecutorId::new("e1"),
            token: FencingToken(42),
            results: vec![ItemResult {
                item: ItemIndex(3),
                attempt: 1,
                outcome: ResultOutcome::TimedOut,
                retryable: true,
                error: Some("took too long".into()),
                started_at_ms: 1,
                ended_at_ms: 2,
                log: Some("2024-01-31T00:00:00.000Z INFO sleeping 5 ms\n".into()),
            }],
        };
        let bytes = encode(&batch).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("\"outcome\":\"timed_out\""));
        assert_eq!(decode::<ResultBatch>(&bytes).unwrap(), batch);
    }

    #[test]
    fn results_without_a_log_still_decode() {
        // Written by an SDK from before attempt logs.
        let old = br#"{"v":1,"executor":"e1","token":3,"results":[{"item":0,"attempt":1,
            "outcome":"failed","retryable":false,"error":"boom","started_at_ms":1,"ended_at_ms":2}]}"#;
        let batch = decode::<ResultBatch>(old).unwrap();
        assert_eq!(batch.results[0].log, None);
        assert_eq!(batch.results[0].error.as_deref(), Some("boom"));
        // And a result without a log writes no `log` key.
        let bytes = encode(&batch).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("\"log\""));
    }
}
