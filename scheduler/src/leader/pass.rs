//! One level-triggered pass of the leader: read what should be (applied
//! DAGs, commands, the clock) and what is (live executors, run keys), write
//! the difference, flush the history outbox.

use super::{Leader, LeaderError};
use nightshift_core::ids::{ExecutorId, RunId};
use nightshift_core::keyspace::{self, ExecutorInfo};
use std::collections::BTreeMap;

impl Leader {
    /// Reconciles everything once. SQL failures do not fail the pass (what
    /// needs SQL waits, etcd holds it); they are recorded as a store outage
    /// ([`super::health`]) and the loop retries with backoff.
    pub async fn pass(&mut self) -> Result<(), LeaderError> {
        self.store_trouble = None;
        self.load_dags().await?;
        let executors = self.live_executors().await?;
        let step = async {
            self.run_commands().await?;
            self.run_cron().await
        };
        match step.await {
            Err(LeaderError::Store(e)) => {
                tracing::warn!(error = %e, "sql store unavailable; commands and cron wait");
                self.store_failed(e);
            }
            other => other?,
        }
        let runs: Vec<RunId> = self.runs.keys().cloned().collect();
        for run in runs {
            match self.reconcile_run(&run, &executors).await {
                Ok(()) => {}
                Err(LeaderError::Store(e)) => {
                    tracing::warn!(run = %run, error = %e, "sql store unavailable; run waits (nothing is lost: etcd holds it)");
                    self.store_failed(e);
                }
                Err(LeaderError::Deposed) => return Err(LeaderError::Deposed),
                // E.g. an executor's lease ended between reading it and
                // attaching an assignment to it: the pass is redone from the
                // unchanged record next time, other runs go on now.
                Err(e) => tracing::warn!(run = %run, error = %e, "run pass failed; retrying"),
            }
        }
        let runs: Vec<RunId> = self.runs.keys().cloned().collect();
        for run in runs {
            match self.persist_run(&run).await {
                Ok(()) => {}
                Err(LeaderError::Store(e)) => {
                    tracing::warn!(run = %run, error = %e, "sql store unavailable; run history waits (etcd holds the run)");
                    self.store_failed(e);
                }
                Err(LeaderError::Deposed) => return Err(LeaderError::Deposed),
                Err(e) => tracing::warn!(run = %run, error = %e, "persisting the run failed; retrying"),
            }
        }
        if let Err(e) = self.outbox.flush(&self.store).await {
            self.store_failed(super::health::describe(&e));
        }
        self.check_store().await
    }

    async fn live_executors(&mut self) -> Result<BTreeMap<ExecutorId, ExecutorInfo>, LeaderError> {
        let (kvs, _) = self.coord.get_prefix(&keyspace::executors_prefix(&self.config.prefix)).await?;
        let mut out = BTreeMap::new();
        for kv in kvs {
            let Some(id) = keyspace::parse_executor_key(&self.config.prefix, &kv.key) else { continue };
            // The lease the key really has is the one assignments must use.
            if let Some(mut info) = self.decode_or_report::<ExecutorInfo>(&kv, "ignored: not an executor until it registers again") {
                if let Some(lease) = kv.lease {
                    info.lease = lease.0;
                }
                out.insert(id, info);
            }
        }
        Ok(out)
    }
}
