//! Reads of live state from the coordination service: applied DAGs,
//! registered executors, item progress and checkpoints. Read-only: the console writes
//! nothing here but commands (see [`crate::api::actions`]).
//!
//! A record that does not decode (written by a newer version, or damaged)
//! is logged and left out rather than failing the whole page.

use crate::error::ApiError;
use crate::AppState;
use nightshift_coord::KeyValue;
use nightshift_core::ids::{DagName, ExecutorId, JobName, RunId};
use nightshift_core::keyspace::{
    dag_key, dags_prefix, decode, executors_prefix, parse_progress_key, progress_prefix,
    AppliedDag, ExecutorInfo, ItemProgress, ProgressRecord, Record,
};
use std::collections::BTreeMap;

fn decoded<T: Record>(kv: &KeyValue) -> Option<T> {
    match decode::<T>(&kv.value) {
        Ok(record) => Some(record),
        Err(e) => {
            tracing::warn!(key = %kv.key, error = %e, "skipping undecodable record");
            None
        }
    }
}

/// Every applied DAG, by name.
pub async fn applied_dags(state: &AppState) -> Result<Vec<AppliedDag>, ApiError> {
    let (kvs, _) = state
        .coord
        .get_prefix_paged(&dags_prefix(&state.prefix), nightshift_coord::PAGE_KEYS_ANY)
        .await?;
    Ok(kvs.iter().filter_map(decoded::<AppliedDag>).collect())
}

/// One applied DAG.
pub async fn applied_dag(state: &AppState, dag: &DagName) -> Result<Option<AppliedDag>, ApiError> {
    let kv = state.coord.get(&dag_key(&state.prefix, dag)).await?;
    Ok(kv.as_ref().and_then(decoded::<AppliedDag>))
}

/// Every live executor, by id.
pub async fn executors(state: &AppState) -> Result<Vec<ExecutorInfo>, ApiError> {
    let (kvs, _) = state
        .coord
        .get_prefix_paged(
            &executors_prefix(&state.prefix),
            nightshift_coord::PAGE_KEYS_ANY,
        )
        .await?;
    Ok(kvs.iter().filter_map(decoded::<ExecutorInfo>).collect())
}

/// Latest progress of the running items of a job, with the executor that
/// reported each.
/// The checkpoints of a live run's job, by item (one range read).
pub async fn checkpoints(
    state: &AppState,
    run: &RunId,
    job: &JobName,
) -> Result<BTreeMap<u32, nightshift_core::keyspace::CheckpointRecord>, ApiError> {
    use nightshift_core::keyspace::{job_checkpoints_prefix, parse_checkpoint_key};
    let (kvs, _) = state
        .coord
        .get_prefix_paged(
            &job_checkpoints_prefix(&state.prefix, run, job),
            nightshift_coord::PAGE_KEYS_SMALL,
        )
        .await?;
    Ok(kvs
        .iter()
        .filter_map(|kv| {
            let (_, _, item) = parse_checkpoint_key(&state.prefix, &kv.key)?;
            Some((item.0, decoded(kv)?))
        })
        .collect())
}

/// The progress of a live run's job, by item.
pub async fn progress(
    state: &AppState,
    run: &RunId,
    job: &JobName,
) -> Result<BTreeMap<u32, (ExecutorId, ItemProgress)>, ApiError> {
    let (kvs, _) = state
        .coord
        .get_prefix_paged(
            &progress_prefix(&state.prefix, run, job),
            nightshift_coord::PAGE_KEYS_ANY,
        )
        .await?;
    let mut out = BTreeMap::new();
    for kv in &kvs {
        let Some((_, _, executor)) = parse_progress_key(&state.prefix, &kv.key) else {
            continue;
        };
        let Some(record) = decoded::<ProgressRecord>(kv) else {
            continue;
        };
        for (item, progress) in record.items {
            out.insert(item, (executor.clone(), progress));
        }
    }
    Ok(out)
}
