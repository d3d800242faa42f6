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
        self.params_schemas = None;
        self.load_dags().await?;
        let executors = self.live_executors().await?;
        // Before any result batch is read (see `owned`).
        self.owned = self.read_owned().await?;
        let step = async {
            self.run_commands().await?;
            self.run_cron().await
        };
        match step.await {
            Err(LeaderError::Store(e)) => {
                tracing::warn!(error = %e, "sql store unavailable; commands and cron wait");
                self.store_failed(e);
            }
            other => self.unless_full(other)?,
        }
        // Every run's assignments first, then every run's SQL history: SQL
        // round trips never delay another run's dispatch.
        let runs: Vec<RunId> = self.runs.keys().cloned().collect();
        for run in &runs {
            let result = self.reconcile_run(run, &executors).await;
            self.absorb(run, "run pass", result)?;
        }
        for run in &runs {
            let result = self.persist_run(run).await;
            self.absorb(run, "persisting the run", result)?;
        }
        // Before the flush, so a new coordination_full alert goes out now.
        self.check_coord().await?;
        if let Err(e) = self.outbox.flush(&self.store).await {
            self.store_failed(super::health::describe(&e));
        }
        let checked = self.check_store().await;
        self.unless_full(checked)
    }

    /// What one run's failure means for the pass: a deposed leader stops;
    /// an unavailable store is recorded (the run waits, etcd holds it), and
    /// so is a full etcd (the run waits; see `coord_full`);
    /// anything else — e.g. an executor's lease ended between reading it and
    /// attaching an assignment to it — is logged and the run is redone from
    /// its unchanged record next pass while the other runs go on.
    fn absorb(
        &mut self,
        run: &RunId,
        what: &str,
        result: Result<(), LeaderError>,
    ) -> Result<(), LeaderError> {
        match result {
            Ok(()) => {}
            Err(LeaderError::Deposed) => return Err(LeaderError::Deposed),
            Err(e) if super::coord_full::is_full(&e) => {
                tracing::warn!(run = %run, error = %e, "{what}: etcd is full; the run waits");
                self.unless_full(Err(e))?;
            }
            Err(LeaderError::Store(e)) => {
                tracing::warn!(run = %run, error = %e, "{what}: sql store unavailable; the run waits (nothing is lost: etcd holds it)");
                self.store_failed(e);
            }
            Err(e) => tracing::warn!(run = %run, error = %e, "{what} failed; retrying"),
        }
        Ok(())
    }

    pub(super) async fn live_executors(
        &mut self,
    ) -> Result<BTreeMap<ExecutorId, ExecutorInfo>, LeaderError> {
        let (kvs, _) = self
            .coord
            .get_prefix_paged(
                &keyspace::executors_prefix(&self.config.prefix),
                nightshift_coord::PAGE_KEYS_ANY,
            )
            .await?;
        let mut out = BTreeMap::new();
        for kv in kvs {
            let Some(id) = keyspace::parse_executor_key(&self.config.prefix, &kv.key) else {
                continue;
            };
            // The lease the key really has is the one assignments must use.
            if let Some(mut info) = self.decode_or_report::<ExecutorInfo>(
                &kv,
                "ignored: not an executor until it registers again",
            ) {
                if let Some(lease) = kv.lease {
                    info.lease = lease.0;
                }
                out.insert(id, info);
            }
        }
        Ok(out)
    }
}
