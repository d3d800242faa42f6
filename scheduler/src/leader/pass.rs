//! One level-triggered pass of the leader: read what should be (applied
//! DAGs, commands, the clock) and what is (live executors, run keys), write
//! the difference, flush the history outbox.

use super::{Leader, LeaderError};
use nightshift_core::ids::{ExecutorId, RunId};
use nightshift_core::keyspace::{self, ExecutorInfo};
use std::collections::{BTreeMap, BTreeSet};

/// How often the leader sweeps alerts of ended runs (`Leader::sweep_alerts`).
pub const ALERT_SWEEP_MS: i64 = 10_000;

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
        self.sweep_alerts().await;
        let checked = self.check_store().await;
        self.unless_full(checked)
    }

    /// Resolves the alerts that end with a run (`RULES_ENDED_WITH_THE_RUN`)
    /// of every run SQL shows ended, at most every [`ALERT_SWEEP_MS`] and
    /// once the outbox is empty. `finish_run` resolves a run's alerts
    /// before removing its keys; this is the level-triggered half, for
    /// what no finish can see: an alert opened after the run ended — a
    /// deposed leader's late write (alert rows carry no term) — or left
    /// open by a leader that removed the run's keys before resolving (as
    /// builds before 532053d did; a 10-minute chaos soak caught one).
    async fn sweep_alerts(&mut self) {
        let now = self.clock.now_ms();
        if !self.outbox.is_empty()
            || self
                .alerts_swept_at_ms
                .is_some_and(|at| now.saturating_sub(at) < ALERT_SWEEP_MS)
        {
            return;
        }
        match self
            .store
            .resolve_alerts_of_ended_runs(super::history::RULES_ENDED_WITH_THE_RUN, now)
            .await
        {
            Ok(resolved) => {
                for alert in resolved {
                    tracing::info!(
                        alert = alert.id.0,
                        rule = %alert.rule,
                        run = alert.run_id.as_ref().map(|r| r.as_str()).unwrap_or(""),
                        "resolved an alert of a run that has ended"
                    );
                }
                self.alerts_swept_at_ms = Some(now);
            }
            Err(e) => self.store_failed(super::health::describe(&e)),
        }
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

    /// The live executors' registrations. Every pass lists `executors/`
    /// keys only (names, mod revisions) and reads the values of those that
    /// changed since the last pass: at 1,000 executors a full read was ~25
    /// sequential pages, each waiting on etcd's apply backlog.
    pub(super) async fn live_executors(
        &mut self,
    ) -> Result<BTreeMap<ExecutorId, ExecutorInfo>, LeaderError> {
        let prefix = keyspace::executors_prefix(&self.config.prefix);
        let (listed, _) = self.coord.get_prefix_keys(&prefix).await?;
        let changed: Vec<&str> = listed
            .iter()
            .filter(|k| self.executors.is_stale(&k.key, k.mod_revision))
            .map(|k| k.key.as_str())
            .collect();
        let fresh = if changed.len() > READ_ONE_BY_ONE {
            self.coord
                .get_prefix_paged(&prefix, nightshift_coord::PAGE_KEYS_ANY)
                .await?
                .0
        } else {
            let mut kvs = Vec::new();
            for key in changed {
                // Gone since the listing: the next pass drops it.
                if let Some(kv) = self.coord.get(key).await? {
                    kvs.push(kv);
                }
            }
            kvs
        };
        for kv in fresh {
            // The lease the key really has is the one assignments must use.
            let info = self
                .decode_or_report::<ExecutorInfo>(
                    &kv,
                    "ignored: not an executor until it registers again",
                )
                .map(|mut info| {
                    if let Some(lease) = kv.lease {
                        info.lease = lease.0;
                    }
                    info
                });
            self.executors.0.insert(kv.key, (kv.mod_revision, info));
        }
        let keys: BTreeSet<&str> = listed.iter().map(|k| k.key.as_str()).collect();
        self.executors.0.retain(|k, _| keys.contains(k.as_str()));
        let mut out = BTreeMap::new();
        for (key, (_, info)) in &self.executors.0 {
            let Some(id) = keyspace::parse_executor_key(&self.config.prefix, key) else {
                continue;
            };
            if let Some(info) = info {
                out.insert(id, info.clone());
            }
        }
        Ok(out)
    }
}

/// Changed registrations read one `get` each up to this many; more (a
/// leader's first pass, a fleet restarting) are read as one paged listing.
const READ_ONE_BY_ONE: usize = 20;

/// Registrations as last read, by key: the mod revision and the decoded
/// record (`None`: undecodable, reported once).
#[derive(Debug, Default)]
pub(super) struct ExecutorCache(BTreeMap<String, (i64, Option<ExecutorInfo>)>);

impl ExecutorCache {
    /// Whether `key` at `mod_revision` must be read again.
    fn is_stale(&self, key: &str, mod_revision: i64) -> bool {
        self.0
            .get(key)
            .is_none_or(|(read_at, _)| *read_at < mod_revision)
    }
}
