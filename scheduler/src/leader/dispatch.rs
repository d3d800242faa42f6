//! Job start: the full reshard. The job's open items are assigned among the
//! live executors that registered its handler, with the job's strategy and
//! the previous start's assignment of the same (DAG, job) as input — so a
//! membership change between runs is applied here, moving as little as the
//! strategy allows ("reshard before the next run"). One assignment per
//! executor, attached to that executor's lease and carrying the start's
//! generation, and the new assignment stored for the next start are
//! *staged*; the job's spec naming the generation *activates* them in the
//! txn that writes the run record (see `commit`).

use super::{put, Leader, LeaderError};
use crate::plan::plan_job;
use crate::reconcile::assignment_of;
use crate::record::{self, LastAssignment, Owner, RunRecord};
use nightshift_coord::TxnOp;
use nightshift_core::ids::{ExecutorId, JobName};
use nightshift_core::keyspace::{self, ExecutorInfo, ItemSet, JobRunSpec};
use nightshift_core::sharding::ShardingError;
use std::collections::BTreeMap;

/// The spec executors read for `job` of `rec`: handler, merged params,
/// shard params, timeout, redo generation.
pub(super) fn job_run_spec(rec: &RunRecord, job: &JobName) -> Option<JobRunSpec> {
    let spec = rec.job_spec(job)?;
    let params = nightshift_core::params::merge_run_params(&spec.params, &rec.params);
    Some(JobRunSpec {
        run: rec.run.clone(),
        dag: rec.spec.name.clone(),
        job: job.clone(),
        handler: spec.handler.clone(),
        business_date: rec.business_date,
        total_items: spec.shards,
        params,
        shard_params: spec.shard_params.clone(),
        item_timeout_ms: spec
            .item_timeout
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        generation: rec.jobs.get(job).and_then(|j| j.generation),
        redo: rec.redo,
    })
}

/// Ops writing a job's spec.
pub(super) fn spec_op(
    prefix: &str,
    rec: &RunRecord,
    job: &JobName,
) -> Result<Option<TxnOp>, LeaderError> {
    let Some(run_spec) = job_run_spec(rec, job) else {
        return Ok(None);
    };
    Ok(Some(put(
        keyspace::spec_key(prefix, &rec.run, job),
        &run_spec,
        None,
    )?))
}

/// What a start attempt did.
pub(super) enum Started {
    /// Assigned (owners filled in): the ops to commit. `staged`: deletes
    /// of other assignments of the job, the new assignments (under the
    /// start's generation), the last assignment; `activate`: the spec
    /// naming the generation (see `commit`).
    Assigned {
        staged: Vec<TxnOp>,
        activate: Vec<TxnOp>,
    },
    /// No live executor serves the handler.
    NoExecutor,
}

impl Leader {
    /// Assigns a job's open items and fills in its owners.
    #[tracing::instrument(level = "debug", skip_all, fields(run = %rec.run, job = %name))]
    pub(super) async fn start_job(
        &mut self,
        rec: &mut RunRecord,
        name: &JobName,
        executors: &BTreeMap<ExecutorId, ExecutorInfo>,
        now_ms: i64,
    ) -> Result<Started, LeaderError> {
        let prefix = self.config.prefix.clone();
        let Some(spec) = rec.job_spec(name).cloned() else {
            return Ok(Started::NoExecutor);
        };
        let previous = match record::read_last_assignment(
            &*self.coord,
            &prefix,
            &rec.spec.name,
            name,
        )
        .await?
        {
            Ok(previous) => previous,
            Err(e) => {
                tracing::warn!(run = %rec.run, job = %name, error = %e, "the last assignment is unusable; the job is assigned afresh");
                None
            }
        };
        let previous_chunks = previous.as_ref().map_or(0, |p| p.chunks);
        let layout = match plan_job(&rec.spec.name, &spec, executors.values(), previous.as_ref()) {
            Ok(a) => a,
            Err(ShardingError::NoExecutors) => return Ok(Started::NoExecutor),
            Err(e) => {
                tracing::error!(run = %rec.run, job = %name, error = %e, "cannot assign items");
                return Ok(Started::NoExecutor);
            }
        };
        let Some(job) = rec.jobs.get_mut(name) else {
            return Ok(Started::NoExecutor);
        };
        let open = ItemSet::range(0, spec.shards).difference(&job.done());
        let mut last = LastAssignment {
            shards: spec.shards,
            executors: BTreeMap::new(),
            run: Some(rec.run.clone()),
            generation: Some(self.owned.1),
            chunks: 0,
        };
        job.owners.clear();
        for (exec, items) in layout.iter() {
            let set: ItemSet = items.iter().map(|i| i.0).collect();
            last.executors.insert(exec.clone(), set.clone());
            let mine = set.intersection(&open);
            let Some(info) = executors.get(exec) else {
                continue;
            };
            if !mine.is_empty() {
                job.owners.insert(
                    exec.clone(),
                    Owner {
                        lease: info.lease,
                        items: mine,
                        cancel: ItemSet::new(),
                        token: 0,
                        assigned_at_ms: now_ms,
                    },
                );
            }
        }
        job.unowned = ItemSet::new();
        job.state = nightshift_core::state::JobState::Running;
        job.started_at_ms.get_or_insert(now_ms);
        job.waiting_since_ms = None;
        job.generation = Some(self.owned.1);
        self.seed_checkpoints(rec, name, &open).await?;
        // Assignments left by an earlier start of this job (a leader that
        // crashed before activating its start) are deleted key by key, not
        // by prefix: etcd refuses a txn whose delete range overlaps its
        // puts. They go before the activation, like the new ones.
        let existing = self.owned.of(&rec.run, name);
        let mut staged: Vec<TxnOp> = Vec::new();
        if let Some(job) = rec.jobs.get(name) {
            let assigned = job.owners.keys().cloned().collect();
            for exec in super::commit::orphans(&existing, &assigned) {
                staged.push(TxnOp::Delete {
                    key: keyspace::assign_key(&prefix, &rec.run, name, &exec),
                });
            }
            for (exec, owner) in &job.owners {
                let value = assignment_of(job, owner);
                staged.push(put(
                    keyspace::assign_key(&prefix, &rec.run, name, exec),
                    &value,
                    Some(owner.lease),
                )?);
                tracing::info!(run = %rec.run, job = %name, executor = %exec, items = %value.items, "assigned");
                super::telemetry::items_assigned(
                    rec.spec.name.as_str(),
                    name.as_str(),
                    value.items.len(),
                );
            }
        }
        // Staged like the assignments: a torn write of its chunks is read
        // as no previous assignment (the next start assigns afresh).
        let (puts, deletes) = record::last_assignment_values(
            &prefix,
            &rec.spec.name,
            name,
            &last,
            spec.strategy,
            previous_chunks,
        )?;
        staged.extend(puts.into_iter().map(|(key, value)| TxnOp::Put {
            key,
            value,
            lease: None,
        }));
        staged.extend(deletes.into_iter().map(|key| TxnOp::Delete { key }));
        let activate = spec_op(&prefix, rec, name)?.into_iter().collect();
        Ok(Started::Assigned { staged, activate })
    }
}
