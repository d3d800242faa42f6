//! Issuing operator commands: one [`CommandRecord`] put under
//! `{p}commands/{id}` for the scheduler leader to carry out.
//!
//! The CLI never changes run or DAG state itself (only the leader does); it
//! writes the command and returns its id. The put is guarded by the key's
//! absence so a command is never overwritten, even by an id collision.
//! Within one process issue times strictly increase, so a backfill's
//! commands are handled in the order they were issued.

use anyhow::Context as _;
use nightshift_coord::{Compare, Coordinator, Txn, TxnOp};
use nightshift_core::keyspace::{self, encode, Command, CommandId, CommandRecord};
use std::sync::atomic::{AtomicI64, Ordering};

/// Writes `command` and returns its id.
pub async fn issue(
    coord: &dyn Coordinator,
    prefix: &str,
    command: Command,
) -> anyhow::Result<CommandId> {
    for _ in 0..3 {
        let issued_at_ms = next_issue_ms(crate::cli::conn::now_ms());
        let id = CommandId::new(issued_at_ms, rand::random::<u64>());
        let record = CommandRecord {
            id: id.clone(),
            issued_at_ms,
            issued_by: crate::cli::conn::user_name(),
            command: command.clone(),
        };
        let key = keyspace::command_key(prefix, &id);
        let value = encode(&record).context("encoding the command")?;
        let txn = Txn {
            compares: vec![Compare::absent(key.clone())],
            success: vec![TxnOp::Put {
                key: key.clone(),
                value,
                lease: None,
            }],
            failure: vec![],
        };
        if coord
            .txn(txn)
            .await
            .with_context(|| format!("writing command {key} to etcd"))?
            .succeeded
        {
            tracing::debug!(command = %id, kind = command.kind(), "command issued");
            return Ok(id);
        }
    }
    anyhow::bail!("could not find a free command id (three random ids were taken)")
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
