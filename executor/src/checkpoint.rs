//! Item checkpoints, the executor's side: storing a handler's value fenced
//! like a result batch, and reading the item's last one (one `get`, at the
//! first ask, never a watch). The keys, the record and the leader's part
//! (copy to SQL when the run ends, seed the next run of the same work) are
//! in [`nightshift_protocol::keyspace::checkpoint`].

use crate::clock::now_ms;
use crate::job::JobError;
use nightshift_coord::{Coordinator, LeaseId, Txn, TxnOp};
use nightshift_protocol::ids::{ExecutorId, FencingToken, ItemIndex, JobName, RunId};
use nightshift_protocol::keyspace::{self, CheckpointRecord, MAX_CHECKPOINT_BYTES};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// Where an item's checkpoints live.
#[derive(Clone)]
pub(crate) enum CheckpointStore {
    /// The coordination store, written under the item's assignment.
    Coord {
        coord: Arc<dyn Coordinator>,
        prefix: String,
        lease: LeaseId,
    },
    /// A plain cell, for [`crate::testing`]: it starts with the test's seed
    /// and holds every value stored, latest last.
    Memory(Arc<Mutex<Vec<serde_json::Value>>>),
}

/// Who is storing: the item attempt and its fencing token.
#[derive(Clone)]
pub(crate) struct Owner {
    pub executor: ExecutorId,
    pub run: RunId,
    pub job: JobName,
    pub item: ItemIndex,
    pub attempt: u32,
    pub token: FencingToken,
}

/// One item's checkpoint: its store, and the value as this attempt knows it
/// (`None` until first read or stored).
pub(crate) struct Checkpoints {
    store: CheckpointStore,
    known: tokio::sync::Mutex<Option<Option<serde_json::Value>>>,
}

impl Checkpoints {
    pub(crate) fn new(store: CheckpointStore) -> Self {
        Checkpoints {
            store,
            known: tokio::sync::Mutex::new(None),
        }
    }

    /// Stores `value` for the item, if it is still `owner`'s.
    pub(crate) async fn save<T: Serialize + ?Sized>(
        &self,
        owner: &Owner,
        value: &T,
    ) -> Result<(), JobError> {
        let value = serde_json::to_value(value)
            .map_err(|e| JobError::permanent(format!("checkpoint cannot be encoded: {e}")))?;
        let bytes = serde_json::to_vec(&value).map_or(usize::MAX, |b| b.len());
        if bytes > MAX_CHECKPOINT_BYTES {
            // Permanent: the same handler would build the same value again.
            return Err(JobError::permanent(format!(
                "checkpoint of {bytes} bytes is over the limit of {MAX_CHECKPOINT_BYTES} bytes: \
                 store where to resume (a page, a cursor), not the work done"
            )));
        }
        let mut known = self.known.lock().await;
        match &self.store {
            CheckpointStore::Memory(cell) => {
                if let Ok(mut cell) = cell.lock() {
                    cell.push(value.clone());
                }
            }
            CheckpointStore::Coord {
                coord,
                prefix,
                lease,
            } => {
                let txn = save_txn(prefix, *lease, owner, value.clone())?;
                let resp = coord
                    .txn(txn)
                    .await
                    .map_err(|e| JobError::retryable(format!("checkpoint not stored: {e}")))?;
                if !resp.succeeded {
                    return Err(JobError::retryable(
                        "checkpoint refused: the item is no longer this executor's \
                         (moved, cancelled, or its lease ended); stop working on it",
                    ));
                }
            }
        }
        *known = Some(Some(value));
        Ok(())
    }

    /// The item's last checkpoint: the latest this attempt stored, else the
    /// one stored when it started (by an earlier attempt or run).
    pub(crate) async fn last<T: DeserializeOwned>(
        &self,
        owner: &Owner,
    ) -> Result<Option<T>, JobError> {
        let mut known = self.known.lock().await;
        let value = match &*known {
            Some(value) => value.clone(),
            None => {
                let value = self.read(owner).await?;
                *known = Some(value.clone());
                value
            }
        };
        value
            .map(|v| {
                serde_json::from_value(v).map_err(|e| {
                    JobError::permanent(format!(
                        "the item's checkpoint does not decode into the type asked for: {e}"
                    ))
                })
            })
            .transpose()
    }

    async fn read(&self, owner: &Owner) -> Result<Option<serde_json::Value>, JobError> {
        match &self.store {
            CheckpointStore::Memory(cell) => Ok(cell.lock().ok().and_then(|c| c.last().cloned())),
            CheckpointStore::Coord { coord, prefix, .. } => {
                let key = keyspace::checkpoint_key(prefix, &owner.run, &owner.job, owner.item);
                let kv = coord
                    .get(&key)
                    .await
                    .map_err(|e| JobError::retryable(format!("cannot read the checkpoint: {e}")))?;
                match kv {
                    None => Ok(None),
                    Some(kv) => keyspace::decode::<CheckpointRecord>(&kv.value)
                        .map(|rec| Some(rec.value))
                        .map_err(|e| JobError::retryable(format!("unreadable checkpoint: {e}"))),
                }
            }
        }
    }
}

/// The txn storing a checkpoint: the same guard as a result batch (the
/// assignment still at the item's token and on the writer's lease), no
/// lease on the checkpoint itself so that it outlives the writer.
pub(crate) fn save_txn(
    prefix: &str,
    lease: LeaseId,
    owner: &Owner,
    value: serde_json::Value,
) -> Result<Txn, JobError> {
    let assign = keyspace::assign_key(prefix, &owner.run, &owner.job, &owner.executor);
    let record = CheckpointRecord {
        value,
        run: owner.run.clone(),
        attempt: owner.attempt,
        executor: owner.executor.clone(),
        token: owner.token,
        saved_at_ms: now_ms(),
    };
    let encoded = keyspace::encode(&record)
        .map_err(|e| JobError::permanent(format!("checkpoint cannot be encoded: {e}")))?;
    Ok(Txn {
        compares: crate::recorder::ownership_guard(&assign, owner.token.0, lease).to_vec(),
        success: vec![TxnOp::Put {
            key: keyspace::checkpoint_key(prefix, &owner.run, &owner.job, owner.item),
            value: encoded,
            lease: None,
        }],
        failure: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift_coord::{CmpOp, CompareTarget};

    fn owner() -> Owner {
        Owner {
            executor: ExecutorId::new("e1"),
            run: RunId::new("r"),
            job: JobName::new("j"),
            item: ItemIndex(3),
            attempt: 2,
            token: FencingToken(42),
        }
    }

    #[test]
    fn a_checkpoint_is_fenced_like_a_result_batch_and_outlives_its_writer() {
        let txn = save_txn("/n/", LeaseId(7), &owner(), serde_json::json!({"page": 1}))
            .unwrap_or_else(|e| panic!("{e}"));
        let targets: Vec<(&str, CmpOp, &CompareTarget)> = txn
            .compares
            .iter()
            .map(|c| (c.key.as_str(), c.op, &c.target))
            .collect();
        assert_eq!(
            targets,
            vec![
                (
                    "/n/owners/e1/r/j",
                    CmpOp::Equal,
                    &CompareTarget::ModRevision(42)
                ),
                ("/n/owners/e1/r/j", CmpOp::Equal, &CompareTarget::Lease(7)),
            ]
        );
        match &txn.success[..] {
            [TxnOp::Put { key, lease, value }] => {
                assert_eq!(key, "/n/checkpoints/r/j/3");
                assert_eq!(*lease, None);
                let rec: CheckpointRecord =
                    keyspace::decode(value).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!((rec.attempt, rec.token), (2, FencingToken(42)));
            }
            other => panic!("unexpected ops {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_oversized_checkpoint_is_a_clear_permanent_error() {
        let cell = Arc::new(Mutex::new(Vec::new()));
        let cps = Checkpoints::new(CheckpointStore::Memory(cell.clone()));
        let big = "x".repeat(MAX_CHECKPOINT_BYTES);
        let err = cps.save(&owner(), &big).await.unwrap_err();
        assert!(
            matches!(&err, JobError::Permanent(m) if m.contains("over the limit of 4096 bytes")),
            "{err:?}"
        );
        assert!(cell.lock().map(|c| c.is_empty()).unwrap_or(false));
        // Just under the limit is fine (a JSON string adds its two quotes).
        let fits = "x".repeat(MAX_CHECKPOINT_BYTES - 2);
        cps.save(&owner(), &fits)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let back: Option<String> = cps.last(&owner()).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.map(|s| s.len()), Some(MAX_CHECKPOINT_BYTES - 2));
    }
}
