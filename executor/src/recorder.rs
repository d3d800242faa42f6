//! The fenced outcome writer: one [`ResultBatch`] per etcd txn, guarded by
//! the assignment's mod_revision (the fencing token) and lease.
//!
//! Batching is decided by the session (which outcomes, when); this module
//! writes one batch and says what happened, retrying only what is safe to
//! retry: a transient error re-sends the *same* batch under the same key,
//! and the `create_revision(result_key) == 0` guard turns a re-send of a
//! batch that did land into a no-op instead of a duplicate.

use crate::assignment::JobRef;
use nightshift_coord::{
    Compare, CoordError, Coordinator, KeyValue, LeaseId, Txn, TxnOp, TxnOpResult,
};
use nightshift_protocol::ids::{ExecutorId, FencingToken};
use nightshift_protocol::keyspace::{self, ItemResult, ResultBatch};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most outcomes in one batch.
pub(crate) const MAX_BATCH_RESULTS: usize = 256;
/// Most bytes of outcomes in one batch, well under etcd's 1.5 MiB request limit.
pub(crate) const MAX_BATCH_BYTES: usize = 900 * 1024;

/// A batch being written.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub job: JobRef,
    /// Session slot the batch was taken from.
    pub slot: u64,
    /// Result key sequence, kept across retries of this batch.
    pub seq: String,
    /// Fencing token the batch is written under.
    pub token: i64,
    pub results: Vec<ItemResult>,
}

/// How writing a batch ended.
#[derive(Debug)]
pub(crate) enum Written {
    /// The batch is in the store (now, or by an earlier try).
    Stored,
    /// The guard failed: here is the assignment as it is now (`None`: gone).
    Rejected { current: Option<KeyValue> },
    /// A non-transient error: the executor cannot record anything.
    Failed(CoordError),
    /// The registration ended while retrying.
    Abandoned,
}

/// Where batches go: one registration's identity.
#[derive(Clone)]
pub(crate) struct Recorder {
    pub coord: Arc<dyn Coordinator>,
    pub prefix: String,
    pub executor: ExecutorId,
    pub lease: LeaseId,
}

/// The txn that writes `batch` if `executor` (holding `lease`) still owns
/// the assignment at the batch's token.
pub(crate) fn batch_txn(
    prefix: &str,
    executor: &ExecutorId,
    lease: LeaseId,
    batch: &Batch,
) -> Result<Txn, keyspace::RecordError> {
    let assign = keyspace::assign_key(prefix, &batch.job.run, &batch.job.job, executor);
    let result = keyspace::result_key(prefix, &batch.job.run, &batch.job.job, executor, &batch.seq);
    let value = keyspace::encode(&ResultBatch {
        executor: executor.clone(),
        token: FencingToken(batch.token),
        results: batch.results.clone(),
    })?;
    Ok(Txn {
        compares: vec![
            Compare::mod_revision(assign.clone(), batch.token),
            Compare::lease(assign.clone(), lease),
            Compare::absent(result.clone()),
        ],
        success: vec![TxnOp::Put {
            key: result.clone(),
            value,
            lease: None,
        }],
        failure: vec![TxnOp::Get { key: assign }, TxnOp::Get { key: result }],
    })
}

impl Recorder {
    /// Writes one batch, retrying transient errors with backoff until `stop`.
    pub(crate) async fn write(&self, batch: &Batch, stop: &CancellationToken) -> Written {
        let txn = match batch_txn(&self.prefix, &self.executor, self.lease, batch) {
            Ok(txn) => txn,
            Err(e) => return Written::Failed(CoordError::Invalid(e.to_string())),
        };
        let mut backoff = Duration::from_millis(50);
        loop {
            let attempt = tokio::select! {
                _ = stop.cancelled() => return Written::Abandoned,
                r = self.coord.txn(txn.clone()) => r,
            };
            match attempt {
                Ok(resp) if resp.succeeded => return Written::Stored,
                Ok(resp) => return interpret_rejection(resp.results),
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, run = %batch.job.run, job = %batch.job.job, "recording outcomes failed; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return Written::Abandoned,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Written::Failed(e),
            }
        }
    }
}

fn interpret_rejection(results: Vec<TxnOpResult>) -> Written {
    let mut results = results.into_iter();
    let assignment = match results.next() {
        Some(TxnOpResult::Get(kv)) => kv,
        _ => None,
    };
    if let Some(TxnOpResult::Get(Some(_))) = results.next() {
        // Our result key exists: an earlier try of this batch landed.
        return Written::Stored;
    }
    Written::Rejected {
        current: assignment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift_coord::CmpOp;
    use nightshift_coord::CompareTarget;

    #[test]
    fn rejection_with_an_existing_result_key_counts_as_stored() {
        let kv = KeyValue {
            key: "k".into(),
            value: vec![],
            create_revision: 1,
            mod_revision: 1,
            version: 1,
            lease: None,
        };
        assert!(matches!(
            interpret_rejection(vec![
                TxnOpResult::Get(None),
                TxnOpResult::Get(Some(kv.clone()))
            ]),
            Written::Stored
        ));
        match interpret_rejection(vec![TxnOpResult::Get(Some(kv)), TxnOpResult::Get(None)]) {
            Written::Rejected {
                current: Some(current),
            } => assert_eq!(current.key, "k"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn txn_is_guarded_by_token_lease_and_absence() {
        let batch = Batch {
            job: JobRef::new("r".into(), "j".into()),
            slot: 1,
            seq: "s1".into(),
            token: 42,
            results: vec![],
        };
        let txn = batch_txn("/n/", &ExecutorId::new("e1"), LeaseId(7), &batch).unwrap();
        let targets: Vec<(&str, CmpOp, &CompareTarget)> = txn
            .compares
            .iter()
            .map(|c| (c.key.as_str(), c.op, &c.target))
            .collect();
        assert_eq!(
            targets,
            vec![
                (
                    "/n/runs/r/jobs/j/assign/e1",
                    CmpOp::Equal,
                    &CompareTarget::ModRevision(42)
                ),
                (
                    "/n/runs/r/jobs/j/assign/e1",
                    CmpOp::Equal,
                    &CompareTarget::Lease(7)
                ),
                (
                    "/n/runs/r/jobs/j/results/e1/s1",
                    CmpOp::Equal,
                    &CompareTarget::CreateRevision(0)
                ),
            ]
        );
        assert!(
            matches!(&txn.success[..], [TxnOp::Put { lease: None, .. }]),
            "results outlive the executor"
        );
    }
}
