//! Item checkpoints, the leader's side (the protocol is in
//! `nightshift_protocol::keyspace::checkpoint`): executors write
//! `{p}checkpoints/{run}/{job}/{item}` fenced by their assignment; the
//! leader bounds their life to the run's.
//!
//! - **Run end:** before a finished run's keys are deleted, each job's
//!   checkpoints are read (one range read per job) and stored in SQL with
//!   the item's work key and whether the item is still to do (`resumable`:
//!   it did not succeed or skip); `{p}checkpoints/{run}/` is then deleted
//!   in the same txn as the run's other keys. So etcd holds checkpoints of
//!   live runs only.
//! - **Job start:** the open items of a job are seeded from SQL: for each,
//!   the latest checkpoint of the same work key, if resumable. A retry of a
//!   failed run and a `--rerun` of the same day resume; a redo (another
//!   work key) starts fresh. Seeding is best effort: without SQL, or on an
//!   unreadable row, the job starts without seeds (a resume is an
//!   optimisation; effects are safe through the work key).

use super::{put, Leader, LeaderError};
use crate::record::RunRecord;
use nightshift_coord::TxnOp;
use nightshift_core::ids::{ItemIndex, JobName, RunId};
use nightshift_core::keyspace::{self, CheckpointRecord, ItemSet};
use nightshift_store::StoredCheckpoint;
use std::collections::{BTreeMap, BTreeSet};

impl Leader {
    /// Stores the checkpoints of a finished run in SQL; returns the op that
    /// deletes them from etcd, for the txn that removes the run's keys.
    pub(super) async fn save_run_checkpoints(&mut self, run: &RunId) -> Result<TxnOp, LeaderError> {
        let prefix = self.config.prefix.clone();
        let Some(rec) = self.runs.get(run).map(|l| l.rec.clone()) else {
            return Ok(TxnOp::DeletePrefix {
                prefix: keyspace::run_checkpoints_prefix(&prefix, run),
            });
        };
        let mut rows = Vec::new();
        for (name, job) in &rec.jobs {
            let (kvs, _) = self
                .coord
                .get_prefix_paged(
                    &keyspace::job_checkpoints_prefix(&prefix, run, name),
                    nightshift_coord::PAGE_KEYS_SMALL,
                )
                .await?;
            if kvs.is_empty() {
                continue;
            }
            let Some(spec) = super::dispatch::job_run_spec(&rec, name) else {
                continue;
            };
            let done = job.succeeded.union(&job.skipped);
            for kv in kvs {
                let Some((_, _, item)) = keyspace::parse_checkpoint_key(&prefix, &kv.key) else {
                    continue;
                };
                let Some(cp) = self
                    .decode_or_report::<CheckpointRecord>(&kv, "not kept: deleted with its run")
                else {
                    continue;
                };
                rows.push(StoredCheckpoint {
                    run_id: run.clone(),
                    job: name.clone(),
                    item,
                    dag: rec.spec.name.clone(),
                    business_date: rec.business_date,
                    work_key: spec.work_key(item).to_string(),
                    attempt: cp.attempt,
                    executor: cp.executor,
                    fencing_token: cp.token,
                    saved_at_ms: cp.saved_at_ms,
                    value: cp.value,
                    resumable: !done.contains(item.0),
                });
            }
        }
        if !rows.is_empty() {
            self.store
                .save_checkpoints(&rows)
                .await
                .map_err(|e| LeaderError::Store(super::health::describe(&e)))?;
            tracing::debug!(run = %run, checkpoints = rows.len(), "checkpoints stored");
        }
        Ok(TxnOp::DeletePrefix {
            prefix: keyspace::run_checkpoints_prefix(&prefix, run),
        })
    }

    /// Seeds the checkpoints of a starting job's `open` items from earlier
    /// runs of the same work (best effort, see the module docs). Items that
    /// already have one in this run (a restarted start) keep theirs.
    pub(super) async fn seed_checkpoints(
        &mut self,
        rec: &RunRecord,
        name: &JobName,
        open: &ItemSet,
    ) -> Result<(), LeaderError> {
        if open.is_empty() {
            return Ok(());
        }
        let stored = match self
            .store
            .resumable_checkpoints(&rec.spec.name, rec.business_date, name)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(run = %rec.run, job = %name, error = %super::health::describe(&e), "cannot read checkpoints to resume from; the job starts without them");
                return Ok(());
            }
        };
        if stored.is_empty() {
            return Ok(());
        }
        let Some(spec) = super::dispatch::job_run_spec(rec, name) else {
            return Ok(());
        };
        let prefix = self.config.prefix.clone();
        let (present, _) = self
            .coord
            .get_prefix_paged(
                &keyspace::job_checkpoints_prefix(&prefix, &rec.run, name),
                nightshift_coord::PAGE_KEYS_SMALL,
            )
            .await?;
        let present: BTreeSet<ItemIndex> = present
            .iter()
            .filter_map(|kv| keyspace::parse_checkpoint_key(&prefix, &kv.key).map(|k| k.2))
            .collect();
        let by_work: BTreeMap<String, StoredCheckpoint> = stored
            .into_iter()
            .map(|c| (c.work_key.clone(), c))
            .collect();
        let mut ops = Vec::new();
        for item in open.iter().map(ItemIndex) {
            if present.contains(&item) {
                continue;
            }
            let Some(cp) = by_work.get(&spec.work_key(item).to_string()) else {
                continue;
            };
            let seed = CheckpointRecord {
                value: cp.value.clone(),
                run: cp.run_id.clone(),
                attempt: cp.attempt,
                executor: cp.executor.clone(),
                token: cp.fencing_token,
                saved_at_ms: cp.saved_at_ms,
            };
            ops.push(put(
                keyspace::checkpoint_key(&prefix, &rec.run, name, item),
                &seed,
                None,
            )?);
        }
        if ops.is_empty() {
            return Ok(());
        }
        let seeded = ops.len();
        // Each op is at most ~4.5 KiB, so a commit's chunks of 127 ops stay
        // far below etcd's 1.5 MiB request limit.
        self.fenced.commit(ops).await?;
        tracing::info!(run = %rec.run, job = %name, seeded, "checkpoints seeded from earlier runs of the same work");
        Ok(())
    }
}
