//! The coordination keyspace: which keys Nightshift writes to etcd, what
//! their values are, and the protocol between the scheduler leader and the
//! executors that these keys carry. This module is the contract; the leader
//! (scheduler crate) and the executor SDK both implement their side of it and
//! build every key with the functions here, never by hand.
//!
//! All keys live under a configurable prefix `{p}` (default
//! [`DEFAULT_PREFIX`], `/nightshift/`, always ending in `/`). Run ids, job
//! names and executor ids are key segments: one to 128 characters from
//! `[A-Za-z0-9_.:-]` ([`validate_segment`]), so that a key can be split back
//! into its parts without escaping. Values are JSON [`records`] with a schema
//! version `v`.
//!
//! # Keys
//!
//! | key | value | written by | lease |
//! |---|---|---|---|
//! | `{p}executors/{executor}` | [`ExecutorInfo`] | the executor | its own |
//! | `{p}runs/{run}/jobs/{job}/spec` | [`JobRunSpec`] | the leader | none |
//! | `{p}owners/{executor}/{run}/{job}` | [`AssignmentRecord`] | the leader | **the executor's** |
//! | `{p}results/{run}/{job}/{executor}/{seq}` | [`ResultBatch`] | the executor, fenced | none |
//! | `{p}runs/{run}/jobs/{job}/progress/{executor}` | [`ProgressRecord`] | the executor | its own |
//! | `{p}checkpoints/{run}/{job}/{item}` | [`CheckpointRecord`] | the executor, fenced; the leader (seeds) | none |
//! | `{p}dags/{dag}` | `AppliedDag` (`nightshift apply`; in `nightshift_core::keyspace::dags`) | the CLI, the leader (pause) | none |
//! | `{p}dag_versions/{dag}/{version}` | `DagVersionRecord` (the spec of a DAG version live runs name; in `nightshift_core::keyspace::dags`) | the leader | none |
//! | `{p}commands/{id}` | `CommandRecord` (operator commands; in `nightshift_core::keyspace::commands`) | the CLI / console | none |
//! | `{p}health/store` | [`StoreHealth`] (only during and just after a SQL store outage) | the leader, fenced | none |
//! | `{p}health/coord` | the write time (a probe, deleted at once, after etcd was full) | the leader, fenced | none |
//! | `{p}format` | [`format::FormatRecord`] (the layout's number, [`format::KEYSPACE_FORMAT`]) | the first leader; `nightshift migrate` | none |
//!
//! # Protocol
//!
//! **Registration.** An executor grants a lease (TTL default 10 s, kept alive
//! every TTL/3) and puts its [`ExecutorInfo`] with it, including the lease id.
//! The key vanishes when the lease ends: that is how the leader learns an
//! executor is gone. An executor whose lease is lost never revives it: it
//! registers again with a new lease and an empty state, as a new member.
//!
//! **Dispatch.** For each job it starts, the leader writes the
//! [`JobRunSpec`] once, then one assignment per executor, **attached to that
//! executor's lease** (etcd accepts a put with another client's lease id).
//! Assignments live under the executor (`{p}owners/{executor}/`), and that
//! prefix is all an executor watches: nothing another executor does, no
//! result batch and no run state ever reaches its watch, so the etcd egress
//! of dispatch grows with items, not with executors × items. The executor
//! reads the job's spec once per assignment with a plain `get` (its key
//! follows from the run and job in the assignment key).
//! Consequences the leader relies on:
//! - when the executor dies, etcd deletes its assignments with its lease; the
//!   leader sees the delete on its watch and moves the items that have no
//!   result yet to live executors (failover, not a retry);
//! - the assignment key's mod_revision is the **fencing token**. The leader
//!   may rewrite an assignment (add failover items, raise `attempts` for a
//!   retry, fill `cancel`); each rewrite is a new token.
//!
//! An executor owns item `i` of `(run, job)` exactly while its assignment key
//! exists, is attached to its current lease, and lists `i` in `items`. Items
//! also listed in `cancel` are owned but must be stopped: the executor reports
//! them `cancelled` (or their real outcome if they finished first).
//!
//! **Recording outcomes.** Outcomes are buffered and written in batches (a
//! [`ResultBatch`] per txn: up to a few hundred results, under 1 MiB, or
//! after a few tens of milliseconds of linger), so that recording costs far
//! less than one etcd write per item. Each batch is one txn:
//!
//! ```text
//! if  mod_revision(assign_key) == token
//! and lease(assign_key)        == executor's lease
//! and create_revision(result_key) == 0
//! then put result_key = batch          (no lease: results outlive executors)
//! else get assign_key, get result_key
//! ```
//!
//! `result_key` is `{p}results/{run}/{job}/{executor}/{seq}` with
//! `seq` = [`result_seq`]`(lease, counter)`, unique per registration, so a
//! retried txn after an ambiguous failure reuses its key and never writes the
//! batch twice. If the guard fails and the result key exists, the earlier try
//! landed. Otherwise the executor looks at the current assignment: if it still
//! exists with its lease and lists the items (the leader rewrote it: new
//! token), it retries with the new token, dropping results for items no longer
//! listed (or whose attempt changed); if the assignment is gone the executor
//! is **fenced**: it drops the results and cancels that job's in-flight items.
//! A stale owner can therefore never record a result: its lease, hence its
//! assignment, is gone, so its guard cannot hold.
//!
//! The leader consumes result batches (watching `results/`), applies each
//! `(item, attempt)` outcome at most once (a batch may in rare cases be seen
//! again after the leader deleted it and an executor re-put it on retry), and
//! deletes the batch key. It then rewrites or deletes the assignment as it
//! sees fit; an executor treats a deleted assignment as "stop everything of
//! this job and forget it".
//!
//! **Self-fencing.** An executor that cannot confirm its lease before it may
//! have expired cancels every in-flight item and records nothing more under
//! that lease, before the TTL runs out — so that by the time the leader
//! reassigns the items the old owner has stopped. It then registers anew.
//!
//! **Drain.** On shutdown an executor stops starting items, lets in-flight
//! ones finish up to a grace period, flushes their outcomes, then *revokes*
//! its lease: its executor key and assignments vanish at once and the leader
//! reassigns what is unfinished without waiting for the TTL.
//!
//! **Progress.** Running items report progress into
//! `progress/{executor}` with the executor's lease, at most once a second per
//! (job, executor), latest value wins; it is informational and unfenced.
//!
//! **Idempotency.** Handlers that write elsewhere (a ledger, a payment API)
//! should key their writes by the item's [`WorkKey`] — stable per (DAG,
//! business date, job, item, params) across attempts, owners, retries,
//! reruns and backfills, and changed only by an explicit redo — because
//! the same work can run again. [`attempt_id`] names one attempt, for logs.
//!
//! **Checkpoints.** An item's owner may store a small value in
//! `checkpoints/{run}/{job}/{item}`, fenced like a result batch; see
//! [`checkpoint`] for who reads, copies and deletes it.

// `commands`, `dags` (AppliedDag needs the DAG model) and `leader` (the
// election, run state, last assignments, cron) are scheduler-side: they live
// in nightshift-core's `keyspace`, which re-exports this one.
pub mod checkpoint;
pub mod format;
mod item_set;
pub mod records;
pub mod work;

pub use checkpoint::{
    all_checkpoints_prefix, checkpoint_key, job_checkpoints_prefix, parse_checkpoint_key,
    run_checkpoints_prefix, CheckpointRecord, MAX_CHECKPOINT_BYTES,
};
pub use work::{params_hash, WorkKey};

pub use item_set::{ItemSet, ItemSetError};
pub use records::{
    decode, encode, AssignmentRecord, ExecutorInfo, ItemProgress, ItemResult, JobRunSpec,
    ProgressRecord, Record, RecordError, ResultBatch, ResultOutcome, MAX_PARAMS_SCHEMA_BYTES,
    SCHEMA_VERSION,
};

use crate::ids::{ExecutorId, ItemIndex, JobName, RunId};

/// Prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "/nightshift/";

/// Longest accepted key segment.
pub const MAX_SEGMENT_LEN: usize = 128;

/// A prefix or key segment that cannot be used in the keyspace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// An id contains characters outside `[A-Za-z0-9_.:-]`, is empty or too long.
    #[error("invalid {kind} `{value}`: use 1 to 128 characters from A-Z a-z 0-9 _ . : -")]
    InvalidSegment {
        /// What the value is ("run id", "executor id", ...).
        kind: &'static str,
        /// The rejected value.
        value: String,
    },
    /// The key prefix is empty or contains whitespace.
    #[error("invalid key prefix `{0}`: it must be non-empty and contain no whitespace")]
    InvalidPrefix(String),
}

/// Checks that `value` can be used as one key segment.
pub fn validate_segment(kind: &'static str, value: &str) -> Result<(), KeyError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_SEGMENT_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::InvalidSegment {
            kind,
            value: value.to_owned(),
        })
    }
}

/// Validates a configured prefix and makes it end with `/`.
pub fn normalize_prefix(prefix: &str) -> Result<String, KeyError> {
    if prefix.is_empty() || prefix.chars().any(char::is_whitespace) {
        return Err(KeyError::InvalidPrefix(prefix.to_owned()));
    }
    if prefix.ends_with('/') {
        Ok(prefix.to_owned())
    } else {
        Ok(format!("{prefix}/"))
    }
}

/// `{p}executors/`
pub fn executors_prefix(prefix: &str) -> String {
    format!("{prefix}executors/")
}

/// `{p}executors/{executor}`
pub fn executor_key(prefix: &str, executor: &ExecutorId) -> String {
    format!("{prefix}executors/{executor}")
}

/// `{p}health/store`: present only while the leader cannot write to the SQL
/// store (and shortly after): etcd is then the only place the outage can be
/// seen before it ends. Once a write succeeds again the leader records the
/// outage as a `store_unavailable` alert, marks the key recovered, and
/// deletes it when that alert is resolved.
pub fn store_health_key(prefix: &str) -> String {
    format!("{prefix}health/store")
}

/// `{p}health/coord`: written (and deleted right after) by the leader to
/// prove that etcd accepts writes again after it was full (its NOSPACE
/// alarm). Its value is the write time; nothing reads it.
pub fn coord_probe_key(prefix: &str) -> String {
    format!("{prefix}health/coord")
}

/// `health/store`: a SQL store outage, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreHealth {
    /// When the first write failed, Unix epoch milliseconds.
    pub down_since_ms: i64,
    /// The latest error (never contains the database URL).
    pub last_error: String,
    /// Failed attempts since `down_since_ms` (the leader retries with backoff).
    pub attempts: u64,
    /// When writes succeeded again: the outage is over and its alert is
    /// stored; the key is deleted once that alert is resolved.
    #[serde(default)]
    pub recovered_at_ms: Option<i64>,
}

impl Record for StoreHealth {
    const KIND: &'static str = "store health";
}

/// `{p}runs/`: everything live about runs.
pub fn runs_prefix(prefix: &str) -> String {
    format!("{prefix}runs/")
}

/// `{p}runs/{run}/`
pub fn run_prefix(prefix: &str, run: &RunId) -> String {
    format!("{prefix}runs/{run}/")
}

/// `{p}runs/{run}/jobs/{job}/`
pub fn job_prefix(prefix: &str, run: &RunId, job: &JobName) -> String {
    format!("{prefix}runs/{run}/jobs/{job}/")
}

/// `{p}runs/{run}/jobs/{job}/spec`
pub fn spec_key(prefix: &str, run: &RunId, job: &JobName) -> String {
    format!("{prefix}runs/{run}/jobs/{job}/spec")
}

/// `{p}owners/`: every executor's assignments.
pub fn owners_prefix(prefix: &str) -> String {
    format!("{prefix}owners/")
}

/// `{p}owners/{executor}/`: the assignments of one executor, the only
/// prefix that executor watches.
pub fn owner_prefix(prefix: &str, executor: &ExecutorId) -> String {
    format!("{prefix}owners/{executor}/")
}

/// `{p}owners/{executor}/{run}/{job}`: the items of `(run, job)` the
/// executor owns, attached to its lease.
pub fn assign_key(prefix: &str, run: &RunId, job: &JobName, executor: &ExecutorId) -> String {
    format!("{prefix}owners/{executor}/{run}/{job}")
}

/// `{p}results/`: every result batch not yet consumed by the leader.
pub fn all_results_prefix(prefix: &str) -> String {
    format!("{prefix}results/")
}

/// `{p}results/{run}/`
pub fn run_results_prefix(prefix: &str, run: &RunId) -> String {
    format!("{prefix}results/{run}/")
}

/// `{p}results/{run}/{job}/`
pub fn results_prefix(prefix: &str, run: &RunId, job: &JobName) -> String {
    format!("{prefix}results/{run}/{job}/")
}

/// `{p}results/{run}/{job}/{executor}/`
pub fn executor_results_prefix(
    prefix: &str,
    run: &RunId,
    job: &JobName,
    executor: &ExecutorId,
) -> String {
    format!("{prefix}results/{run}/{job}/{executor}/")
}

/// `{p}results/{run}/{job}/{executor}/{seq}`
pub fn result_key(
    prefix: &str,
    run: &RunId,
    job: &JobName,
    executor: &ExecutorId,
    seq: &str,
) -> String {
    format!("{prefix}results/{run}/{job}/{executor}/{seq}")
}

/// The `{seq}` of a result key: the lease in hex, then a per-registration
/// counter, both zero-padded so that keys sort in write order within a
/// registration and never collide across registrations of the same id.
pub fn result_seq(lease: i64, counter: u64) -> String {
    format!("{lease:016x}-{counter:010}")
}

/// `{p}runs/{run}/jobs/{job}/progress/`
pub fn progress_prefix(prefix: &str, run: &RunId, job: &JobName) -> String {
    format!("{prefix}runs/{run}/jobs/{job}/progress/")
}

/// `{p}runs/{run}/jobs/{job}/progress/{executor}`
pub fn progress_key(prefix: &str, run: &RunId, job: &JobName, executor: &ExecutorId) -> String {
    format!("{prefix}runs/{run}/jobs/{job}/progress/{executor}")
}

/// Identity of one attempt of an item, for logs and traces (not for
/// deduplicating effects: a retry is another attempt of the same work, see
/// [`WorkKey`]): `"{run}/{job}/{item}/{attempt}"`.
pub fn attempt_id(run: &RunId, job: &JobName, item: ItemIndex, attempt: u32) -> String {
    format!("{run}/{job}/{item}/{attempt}")
}

/// A key about one job of one run, split into its parts: a spec or
/// progress key under `{p}runs/`, an assignment under `{p}owners/`, a result
/// batch under `{p}results/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKey {
    /// `runs/{run}/jobs/{job}/spec`
    Spec {
        /// Run id.
        run: RunId,
        /// Job name.
        job: JobName,
    },
    /// `owners/{executor}/{run}/{job}`
    Assign {
        /// Run id.
        run: RunId,
        /// Job name.
        job: JobName,
        /// Executor the items are assigned to.
        executor: ExecutorId,
    },
    /// `results/{run}/{job}/{executor}/{seq}`
    Result {
        /// Run id.
        run: RunId,
        /// Job name.
        job: JobName,
        /// Executor that wrote the batch.
        executor: ExecutorId,
        /// Batch sequence ([`result_seq`]).
        seq: String,
    },
    /// `runs/{run}/jobs/{job}/progress/{executor}`
    Progress {
        /// Run id.
        run: RunId,
        /// Job name.
        job: JobName,
        /// Executor reporting.
        executor: ExecutorId,
    },
}

/// Splits a spec, progress, assignment or result key into its parts; `None`
/// for any other key, including keys whose segments are not valid ids.
pub fn parse_job_key(prefix: &str, key: &str) -> Option<JobKey> {
    let rest = key.strip_prefix(prefix)?;
    let (root, rest) = rest.split_once('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    let valid = |s: &str| validate_segment("segment", s).is_ok();
    if !parts.iter().all(|s| valid(s)) {
        return None;
    }
    let ids = |r: &str, j: &str| (RunId::new(r), JobName::new(j));
    match (root, parts.as_slice()) {
        ("runs", [r, "jobs", j, "spec"]) => {
            let (run, job) = ids(r, j);
            Some(JobKey::Spec { run, job })
        }
        ("runs", [r, "jobs", j, "progress", e]) => {
            let (run, job) = ids(r, j);
            Some(JobKey::Progress {
                run,
                job,
                executor: ExecutorId::new(*e),
            })
        }
        ("owners", [e, r, j]) => {
            let (run, job) = ids(r, j);
            Some(JobKey::Assign {
                run,
                job,
                executor: ExecutorId::new(*e),
            })
        }
        ("results", [r, j, e, seq]) => {
            let (run, job) = ids(r, j);
            Some(JobKey::Result {
                run,
                job,
                executor: ExecutorId::new(*e),
                seq: (*seq).to_owned(),
            })
        }
        _ => None,
    }
}

/// Parts of an assignment key: `(run, job, executor)`.
pub fn parse_assign_key(prefix: &str, key: &str) -> Option<(RunId, JobName, ExecutorId)> {
    match parse_job_key(prefix, key)? {
        JobKey::Assign { run, job, executor } => Some((run, job, executor)),
        _ => None,
    }
}

/// Parts of a spec key: `(run, job)`.
pub fn parse_spec_key(prefix: &str, key: &str) -> Option<(RunId, JobName)> {
    match parse_job_key(prefix, key)? {
        JobKey::Spec { run, job } => Some((run, job)),
        _ => None,
    }
}

/// Parts of a result key: `(run, job, executor, seq)`.
pub fn parse_result_key(prefix: &str, key: &str) -> Option<(RunId, JobName, ExecutorId, String)> {
    match parse_job_key(prefix, key)? {
        JobKey::Result {
            run,
            job,
            executor,
            seq,
        } => Some((run, job, executor, seq)),
        _ => None,
    }
}

/// Parts of a progress key: `(run, job, executor)`.
pub fn parse_progress_key(prefix: &str, key: &str) -> Option<(RunId, JobName, ExecutorId)> {
    match parse_job_key(prefix, key)? {
        JobKey::Progress { run, job, executor } => Some((run, job, executor)),
        _ => None,
    }
}

/// The executor id of an executor key.
pub fn parse_executor_key(prefix: &str, key: &str) -> Option<ExecutorId> {
    let id = key.strip_prefix(prefix)?.strip_prefix("executors/")?;
    validate_segment("executor id", id).ok()?;
    Some(ExecutorId::new(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEGMENT: &str = "[A-Za-z0-9_.:-]{1,20}";

    proptest! {
        #[test]
        fn built_keys_parse_back(run in SEGMENT, job in SEGMENT, exec in SEGMENT, lease in any::<i64>(), n in any::<u64>(), prefix in "/[a-z]{0,5}/?") {
            let p = normalize_prefix(&prefix).unwrap();
            let (run, job, exec) = (RunId::new(run), JobName::new(job), ExecutorId::new(exec));
            prop_assert_eq!(parse_assign_key(&p, &assign_key(&p, &run, &job, &exec)), Some((run.clone(), job.clone(), exec.clone())));
            prop_assert_eq!(parse_spec_key(&p, &spec_key(&p, &run, &job)), Some((run.clone(), job.clone())));
            prop_assert_eq!(parse_progress_key(&p, &progress_key(&p, &run, &job, &exec)), Some((run.clone(), job.clone(), exec.clone())));
            let seq = result_seq(lease, n);
            prop_assert_eq!(parse_result_key(&p, &result_key(&p, &run, &job, &exec, &seq)), Some((run.clone(), job.clone(), exec.clone(), seq.clone())));
            prop_assert!(result_key(&p, &run, &job, &exec, &seq).starts_with(&executor_results_prefix(&p, &run, &job, &exec)));
            prop_assert_eq!(parse_executor_key(&p, &executor_key(&p, &exec)), Some(exec.clone()));
            // Each kind of key parses only as itself.
            prop_assert_eq!(parse_assign_key(&p, &spec_key(&p, &run, &job)), None);
            prop_assert_eq!(parse_assign_key(&p, &progress_key(&p, &run, &job, &exec)), None);
            prop_assert_eq!(parse_assign_key(&p, &result_key(&p, &run, &job, &exec, &seq)), None);
            prop_assert_eq!(parse_result_key(&p, &assign_key(&p, &run, &job, &exec)), None);
            prop_assert!(assign_key(&p, &run, &job, &exec).starts_with(&owner_prefix(&p, &exec)));
            prop_assert!(owner_prefix(&p, &exec).starts_with(&owners_prefix(&p)));
            prop_assert!(result_key(&p, &run, &job, &exec, &seq).starts_with(&run_results_prefix(&p, &run)));
            prop_assert!(run_results_prefix(&p, &run).starts_with(&all_results_prefix(&p)));
            prop_assert!(job_prefix(&p, &run, &job).starts_with(&run_prefix(&p, &run)));
            prop_assert!(run_prefix(&p, &run).starts_with(&runs_prefix(&p)));
        }

        /// An executor watches only `owner_prefix(itself)`: no key of
        /// another executor's assignments, no result batch and no run key
        /// falls under it.
        #[test]
        fn an_executors_prefix_holds_only_its_own_assignments(run in SEGMENT, job in SEGMENT, me in SEGMENT, other in SEGMENT, seq in SEGMENT) {
            prop_assume!(me != other);
            let p = DEFAULT_PREFIX;
            let (run, job, me, other) = (RunId::new(run), JobName::new(job), ExecutorId::new(me), ExecutorId::new(other));
            let mine = owner_prefix(p, &me);
            prop_assert!(assign_key(p, &run, &job, &me).starts_with(&mine));
            for key in [
                assign_key(p, &run, &job, &other),
                result_key(p, &run, &job, &me, &seq),
                result_key(p, &run, &job, &other, &seq),
                spec_key(p, &run, &job),
                progress_key(p, &run, &job, &me),
                executor_key(p, &me),
            ] {
                prop_assert!(!key.starts_with(&mine), "{key} is under {mine}");
            }
        }

        #[test]
        fn result_seqs_sort_in_counter_order(lease in 0i64..i64::MAX, a in 0u64..10_000_000_000, b in 0u64..10_000_000_000) {
            prop_assert_eq!(result_seq(lease, a).cmp(&result_seq(lease, b)), a.cmp(&b));
        }
    }

    #[test]
    fn segments_reject_separators_and_spaces() {
        for bad in ["", "a/b", "a b", "é", &"x".repeat(129)] {
            let err = validate_segment("run id", bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid run id"), "{err}");
        }
        validate_segment("run id", "daily-2024-03-31T02:00:00Z").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parse_assign_key("/n/", "/n/owners/e/r/j/x"), None);
        assert_eq!(parse_assign_key("/n/", "/n/owners/e/r/"), None);
        assert_eq!(parse_assign_key("/n/", "/n/owners/e/r/j d"), None);
        assert_eq!(parse_assign_key("/n/", "/other/owners/e/r/j"), None);
        assert_eq!(
            assign_key(
                "/n/",
                &RunId::new("r"),
                &JobName::new("j"),
                &ExecutorId::new("e")
            ),
            "/n/owners/e/r/j"
        );
    }

    #[test]
    fn store_health_key_is_no_other_kind_of_key() {
        let key = store_health_key("/n/");
        assert_eq!(key, "/n/health/store");
        assert_eq!(parse_executor_key("/n/", &key), None);
        assert_eq!(parse_job_key("/n/", &key), None);
        // (dags/ and commands/ are checked in nightshift-core, which defines them.)
        assert!(!key.starts_with(&runs_prefix("/n/")));
        let health = StoreHealth {
            down_since_ms: 5,
            last_error: "refused".into(),
            attempts: 3,
            recovered_at_ms: None,
        };
        assert_eq!(
            decode::<StoreHealth>(&encode(&health).unwrap()).unwrap(),
            health
        );
    }

    #[test]
    fn prefixes_get_a_trailing_slash() {
        assert_eq!(normalize_prefix("/ns").unwrap(), "/ns/");
        assert_eq!(normalize_prefix(DEFAULT_PREFIX).unwrap(), DEFAULT_PREFIX);
        assert!(normalize_prefix("").is_err());
        assert!(normalize_prefix("/a b/").is_err());
        assert_eq!(
            attempt_id(&RunId::new("r1"), &JobName::new("accrue"), ItemIndex(7), 2),
            "r1/accrue/7/2"
        );
    }
}
