//! Issuing a command: one put under `{p}commands/{id}`, guarded by the
//! key's absence so a command is never overwritten, even by an id
//! collision. Within one process issue times strictly increase, so a
//! backfill's commands are handled in the order they were issued.

use nightshift_coord::{Compare, CoordError, Coordinator, Txn, TxnOp};
use nightshift_core::keyspace::{self, encode, Command, CommandId, CommandRecord};
use std::sync::atomic::{AtomicI64, Ordering};

/// Why a command could not be written.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The record did not encode (a bug, not bad input).
    #[error("encoding the command: {0}")]
    Encode(String),
    /// etcd refused or did not answer.
    #[error("writing command {key} to etcd: {source}")]
    Coordination {
        /// The command's key.
        key: String,
        /// What etcd said.
        #[source]
        source: CoordError,
    },
    /// Three random ids in a row were taken.
    #[error("could not find a free command id (three random ids were taken)")]
    NoFreeId,
}

/// Writes `command`, issued by `issued_by`, and returns its id.
pub async fn issue(
    coord: &dyn Coordinator,
    prefix: &str,
    issued_by: &str,
    command: Command,
) -> Result<CommandId, IssueError> {
    for _ in 0..3 {
        let issued_at_ms = next_issue_ms(chrono::Utc::now().timestamp_millis());
        let id = CommandId::new(issued_at_ms, rand::random::<u64>());
        let record = CommandRecord {
            id: id.clone(),
            issued_at_ms,
            issued_by: issued_by.to_owned(),
            command: command.clone(),
        };
        let key = keyspace::command_key(prefix, &id);
        let value = encode(&record).map_err(|e| IssueError::Encode(e.to_string()))?;
        let txn = Txn {
            compares: vec![Compare::absent(key.clone())],
            success: vec![TxnOp::Put {
                key: key.clone(),
                value,
                lease: None,
            }],
            failure: vec![],
        };
        let response = coord
            .txn(txn)
            .await
            .map_err(|source| IssueError::Coordination { key, source })?;
        if response.succeeded {
            tracing::info!(command = %id, kind = command.kind(), user = %issued_by, "command issued");
            return Ok(id);
        }
    }
    Err(IssueError::NoFreeId)
}

/// Last issue time handed out by this process.
static LAST_ISSUE_MS: AtomicI64 = AtomicI64::new(0);

/// `now`, or one past the last issue time if that is not earlier: ids sort
/// by their millisecond first, so commands issued by one process within the
/// same millisecond (a backfill) must still get increasing ones.
fn next_issue_ms(now: i64) -> i64 {
    let mut last = LAST_ISSUE_MS.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST_ISSUE_MS.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::next_issue_ms;

    #[test]
    fn issue_times_strictly_increase_within_a_process() {
        let a = next_issue_ms(5_000);
        let b = next_issue_ms(5_000);
        let c = next_issue_ms(1);
        assert!(a < b && b < c, "{a} {b} {c}");
    }
}
