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

/// The compares that hold while an executor holding `lease` owns the
/// assignment at `assign` as of `token`: the fence of every write it makes
/// for the assignment's items (result batches, checkpoints).
pub(crate) fn ownership_guard(assign: &str, token: i64, lease: LeaseId) -> [Compare; 2] {
    [
        Compare::mod_revision(assign.to_owned(), token),
        Compare::lease(assign.to_owned(), lease),
    ]
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
        compares: ownership_guard(&assign, batch.token, lease)
            .into_iter()
            .chain([Compare::absent(result.clone())])
            .collect(),
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

    /// etcd's default request limit (`--max-request-bytes`).
    const ETCD_MAX_REQUEST: usize = 1536 * 1024;

    #[test]
    fn batches_of_full_log_tails_stay_under_the_etcd_request_limit() {
        use crate::assignment::{Finish, JobSlot, MAX_ERROR_LEN};
        use crate::job::JobError;
        use crate::log_tail::MAX_TAIL_BYTES;
        use nightshift_protocol::keyspace::{AssignmentRecord, ItemSet};
        // The worst a handler can do: a full tail of control characters
        // (each escaped to 6 bytes in JSON) and the longest error, on
        // every item of a job bigger than a batch.
        let items = 300;
        let mut slot = JobSlot::new(
            9,
            AssignmentRecord {
                items: ItemSet::range(0, items),
                ..Default::default()
            },
            0,
        );
        let worst_log = "\u{1}".repeat(MAX_TAIL_BYTES);
        let plain_log = "x".repeat(MAX_TAIL_BYTES);
        while let Some(start) = slot.start_next() {
            let log = if start.item % 2 == 0 {
                &worst_log
            } else {
                &plain_log
            };
            assert!(slot.finish_with_log(
                start.item,
                start.attempt,
                (0, 1),
                Finish::Returned(Err(JobError::permanent("e".repeat(MAX_ERROR_LEN * 2)))),
                Some(log.clone()),
            ));
        }
        let mut recorded = 0;
        let mut batches = 0;
        loop {
            let (results, _) = slot.take_batch(MAX_BATCH_RESULTS, MAX_BATCH_BYTES);
            if results.is_empty() {
                break;
            }
            assert!(results.iter().all(|r| r.log.is_some()), "logs are shipped");
            let batch = Batch {
                job: JobRef::new("r".into(), "j".into()),
                slot: 1,
                seq: format!("s{batches}"),
                token: 9,
                results,
            };
            let txn =
                batch_txn("/nightshift/", &ExecutorId::new("e1"), LeaseId(7), &batch).unwrap();
            let request: usize = txn
                .success
                .iter()
                .map(|op| match op {
                    TxnOp::Put { key, value, .. } => key.len() + value.len(),
                    _ => 0,
                })
                .sum::<usize>()
                + txn.compares.iter().map(|c| c.key.len() + 16).sum::<usize>();
            assert!(
                request <= MAX_BATCH_BYTES,
                "batch {batches}: {request} bytes of {} results",
                batch.results.len()
            );
            assert!(request < ETCD_MAX_REQUEST);
            recorded += batch.results.len();
            batches += 1;
        }
        assert_eq!(recorded, items as usize, "every outcome goes out");
        assert!(batches > 30, "the bound split them: {batches} batches");
    }

    #[test]
    fn the_size_estimate_is_never_below_the_encoded_result() {
        for log in [
            "plain",
            "tab\tnewline\n\"quote\" back\\slash \u{1}\u{1f}",
            "€uro ✓",
        ] {
            let r = ItemResult {
                item: nightshift_protocol::ids::ItemIndex(u32::MAX),
                attempt: u32::MAX,
                outcome: nightshift_protocol::keyspace::ResultOutcome::TimedOut,
                retryable: true,
                error: Some(log.repeat(100)),
                started_at_ms: i64::MIN,
                ended_at_ms: i64::MIN,
                log: Some(log.repeat(1000)),
            };
            let encoded = serde_json::to_vec(&r).unwrap().len();
            assert!(
                crate::assignment::estimated_size(&r) >= encoded,
                "{log:?}: {encoded}"
            );
            assert_eq!(
                crate::assignment::json_string_len(&log.repeat(1000)) + 2,
                serde_json::to_string(&log.repeat(1000)).unwrap().len()
            );
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
                    "/n/owners/e1/r/j",
                    CmpOp::Equal,
                    &CompareTarget::ModRevision(42)
                ),
                ("/n/owners/e1/r/j", CmpOp::Equal, &CompareTarget::Lease(7)),
                (
                    "/n/results/r/j/e1/s1",
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
