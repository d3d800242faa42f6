//! Read-only access to what the scheduler leader keeps in etcd, for
//! `status` and `plan`.
//!
//! A live run is read with the scheduler's own reader
//! ([`nightshift_scheduler::record_values::read_run`]: the run record's
//! split values, one read at one revision), so the CLI holds no mirror of
//! the record's layout.

use anyhow::Context as _;
use nightshift_coord::Coordinator;
use nightshift_core::ids::RunId;
use nightshift_core::keyspace::{decode, Record};
use nightshift_scheduler::record::RunRecord;

/// A live run as the leader tracks it; `None` when it is not live.
pub async fn read_run(
    coord: &dyn Coordinator,
    prefix: &str,
    run: &RunId,
) -> anyhow::Result<Option<RunRecord>> {
    let stored = nightshift_scheduler::record_values::read_run(coord, prefix, run)
        .await
        .with_context(|| format!("reading live run {run}"))?;
    Ok(stored.map(|s| s.rec))
}

/// Reads and decodes one key; `None` when absent.
pub async fn read<T: Record>(coord: &dyn Coordinator, key: &str) -> anyhow::Result<Option<T>> {
    let Some(kv) = coord
        .get(key)
        .await
        .with_context(|| format!("reading {key} from etcd"))?
    else {
        return Ok(None);
    };
    decode::<T>(&kv.value)
        .map(Some)
        .with_context(|| format!("reading {key}"))
}
