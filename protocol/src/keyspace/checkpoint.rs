//! Item checkpoints: a small JSON value a handler stores while it works so
//! that the item's next attempt — after a failover, a retry, or a new run
//! of the same work — resumes instead of starting over.
//!
//! `{p}checkpoints/{run}/{job}/{item}` holds a [`CheckpointRecord`]. The
//! executor that owns the item writes it in a txn fenced exactly like a
//! result batch (the assignment's mod_revision is the item's fencing token
//! and the assignment carries the writer's lease), without a lease of its
//! own, so that it survives the writer's death. The next owner reads it
//! with one `get` when its handler asks; no executor watches it.
//!
//! The key is per run so that its life is the run's: when a run ends the
//! leader copies the run's checkpoints into SQL (history, and the seed of a
//! later run) and deletes `{p}checkpoints/{run}/` with the run's other
//! keys. When a job starts, the leader seeds the checkpoints of its open
//! items from SQL: the latest one stored for the same
//! [`WorkKey`](super::WorkKey) by a run in which that item did not succeed.
//! A redo has another work key, so it starts fresh.

use super::records::Record;
use crate::ids::{ExecutorId, FencingToken, ItemIndex, JobName, RunId};
use serde::{Deserialize, Serialize};

/// Largest checkpoint value, in bytes of its JSON: a checkpoint says where
/// to resume (a page, a cursor), not what was done. Bounded so that the
/// leader can read a run's checkpoints and seed a job's in requests far
/// below etcd's 1.5 MiB limit.
pub const MAX_CHECKPOINT_BYTES: usize = 4 * 1024;

/// `checkpoints/{run}/{job}/{item}`: the latest checkpoint of an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// The handler's value (at most [`MAX_CHECKPOINT_BYTES`] of JSON).
    pub value: serde_json::Value,
    /// The run whose attempt stored it (another run's for a seeded one).
    pub run: RunId,
    /// The attempt (within `run`) that stored it.
    pub attempt: u32,
    /// The executor that stored it.
    pub executor: ExecutorId,
    /// The fencing token it was stored under.
    pub token: FencingToken,
    /// When it was stored, Unix epoch milliseconds.
    pub saved_at_ms: i64,
}

impl Record for CheckpointRecord {
    const KIND: &'static str = "checkpoint";
}

/// `{p}checkpoints/`: every live run's checkpoints.
pub fn all_checkpoints_prefix(prefix: &str) -> String {
    format!("{prefix}checkpoints/")
}

/// `{p}checkpoints/{run}/`
pub fn run_checkpoints_prefix(prefix: &str, run: &RunId) -> String {
    format!("{prefix}checkpoints/{run}/")
}

/// `{p}checkpoints/{run}/{job}/`
pub fn job_checkpoints_prefix(prefix: &str, run: &RunId, job: &JobName) -> String {
    format!("{prefix}checkpoints/{run}/{job}/")
}

/// `{p}checkpoints/{run}/{job}/{item}`
pub fn checkpoint_key(prefix: &str, run: &RunId, job: &JobName, item: ItemIndex) -> String {
    format!("{prefix}checkpoints/{run}/{job}/{item}")
}

/// Parts of a checkpoint key: `(run, job, item)`; `None` for any other key.
pub fn parse_checkpoint_key(prefix: &str, key: &str) -> Option<(RunId, JobName, ItemIndex)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix("checkpoints/")?;
    let mut parts = rest.split('/');
    let (run, job, item) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || super::validate_segment("run id", run).is_err()
        || super::validate_segment("job", job).is_err()
    {
        return None;
    }
    let item = item.parse::<u32>().ok()?;
    Some((RunId::new(run), JobName::new(job), ItemIndex(item)))
}

#[cfg(test)]
mod tests {
    use super::super::{decode, encode, owner_prefix, DEFAULT_PREFIX};
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn checkpoint_keys_parse_back_and_stay_out_of_an_executors_prefix(run in "[A-Za-z0-9_.:-]{1,20}", job in "[A-Za-z0-9_.:-]{1,20}", exec in "[A-Za-z0-9_.:-]{1,20}", item in any::<u32>()) {
            let p = DEFAULT_PREFIX;
            let (run, job, item) = (RunId::new(run), JobName::new(job), ItemIndex(item));
            let key = checkpoint_key(p, &run, &job, item);
            prop_assert_eq!(parse_checkpoint_key(p, &key), Some((run.clone(), job.clone(), item)));
            prop_assert!(key.starts_with(&job_checkpoints_prefix(p, &run, &job)));
            prop_assert!(job_checkpoints_prefix(p, &run, &job).starts_with(&run_checkpoints_prefix(p, &run)));
            prop_assert!(run_checkpoints_prefix(p, &run).starts_with(&all_checkpoints_prefix(p)));
            prop_assert!(!key.starts_with(&owner_prefix(p, &ExecutorId::new(exec))));
            prop_assert!(!key.starts_with(&super::super::runs_prefix(p)));
        }
    }

    #[test]
    fn a_checkpoint_record_round_trips_and_other_keys_do_not_parse() {
        let rec = CheckpointRecord {
            value: serde_json::json!({"page": 3}),
            run: RunId::new("r1"),
            attempt: 2,
            executor: ExecutorId::new("e1"),
            token: FencingToken(40),
            saved_at_ms: 5,
        };
        assert_eq!(
            decode::<CheckpointRecord>(&encode(&rec).unwrap()).unwrap(),
            rec
        );
        assert_eq!(parse_checkpoint_key("/n/", "/n/checkpoints/r/j/x"), None);
        assert_eq!(parse_checkpoint_key("/n/", "/n/checkpoints/r/j/1/2"), None);
        assert_eq!(parse_checkpoint_key("/n/", "/n/results/r/j/1"), None);
    }
}
