//! Read-only access to the live runs the scheduler leader keeps in etcd,
//! for `status`.
//!
//! A live run is read with the scheduler's own reader
//! ([`nightshift_scheduler::record_values::read_run`]: the run record's
//! split values, one read at one revision), so the CLI holds no mirror of
//! the record's layout.

use anyhow::Context as _;
use nightshift_coord::Coordinator;
use nightshift_core::ids::RunId;
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
