//! The scheduler process: campaign for leadership, then lead until deposed
//! or shut down, then campaign again.
//!
//! Leading is one loop consuming a closed [`Event`] enum. Each event leads to
//! one level-triggered **pass** ([`Leader::pass`]) that reads the desired
//! and actual state (applied DAGs, commands, the clock, live executors,
//! assignments, result batches) and writes the difference. A missed watch
//! event therefore never leaves the leader wrong: the next tick sees the
//! state. Every etcd write is a txn guarded by the leadership fence
//! ([`Fenced`]), so a deposed leader's writes fail (invariant 6).

mod bad_keys;
mod checkpoints;
mod commit;
mod coord_full;
mod dag_versions;
mod dispatch;
pub mod format;
pub mod health;
pub mod history;
mod intake;
mod owned;
mod params;
mod pass;
mod reopen;
mod retry;
mod runs;
mod slow;
mod telemetry;

use crate::record::{CronRecord, RunRecord};
use futures::StreamExt;
use nightshift_coord::election::{Election, Leadership};
use nightshift_coord::lease::{LeaseKeeper, LeaseStatus};
use nightshift_coord::{Compare, CoordError, Coordinator, Revision, Txn, TxnOp};
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::keyspace::{self, AppliedDag, Record};
use nightshift_store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Most operations per txn: etcd's limit is 128, one goes to the fence.
pub const MAX_OPS: usize = 127;

/// Test-only hooks into the leader's commit path.
#[derive(Clone, Default)]
pub struct TestHooks {
    /// Called after each staged txn of a run's commit that needs several
    /// (a job start's assignments before the txn that activates them): a
    /// test makes the process exit here to kill a leader between chunks.
    pub after_staged_txn: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Called after the txn of a *logged* run commit's head (its marker
    /// committed, its values not yet written in place): a test makes the
    /// process exit here so that a successor must read through the log.
    pub after_logged_head: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Called when an ended run's history is in SQL and its keys are
    /// still in etcd (`finish_run`, before the commit that removes them).
    pub before_run_removed: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Called right after the commit that removes an ended run's keys.
    pub after_run_removed: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for TestHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHooks")
            .field("after_staged_txn", &self.after_staged_txn.is_some())
            .field("after_logged_head", &self.after_logged_head.is_some())
            .field("before_run_removed", &self.before_run_removed.is_some())
            .field("after_run_removed", &self.after_run_removed.is_some())
            .finish()
    }
}

/// The wall clock, injectable so tests can run in accelerated time.
pub trait Clock: Send + Sync + 'static {
    /// Now, Unix epoch milliseconds.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// How a scheduler replica behaves.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// This replica's id (events are recorded as `scheduler:<id>`).
    pub id: String,
    /// Key prefix, normalized (ends with `/`).
    pub prefix: String,
    /// TTL of the leadership lease: standbys take over within it.
    pub lease_ttl: Duration,
    /// Longest time between two passes when nothing changes.
    pub tick: Duration,
    /// Pause after a change before the pass, so bursts are handled at once.
    pub debounce: Duration,
    /// How late a schedule instant may be seen and still count as on time.
    pub misfire_grace: Duration,
    /// How long the `store_unavailable` alert of a SQL outage stays open
    /// after the store is back (it can only be written then) before it is
    /// resolved, so that the console's notifier, which sends open alerts,
    /// sees it.
    pub store_alert_linger: Duration,
    /// Most ops per txn besides the fence: [`MAX_OPS`] (etcd's limit)
    /// unless a test lowers it so that job starts and passes need several
    /// txns (`NIGHTSHIFT_TEST_MAX_TXN_OPS` in the CLI). At least 2.
    pub max_txn_ops: usize,
    /// Test-only hooks (none in production).
    pub test_hooks: TestHooks,
}

impl SchedulerConfig {
    /// Defaults for `id` under `prefix`.
    pub fn new(id: impl Into<String>, prefix: impl Into<String>) -> Self {
        SchedulerConfig {
            id: id.into(),
            prefix: prefix.into(),
            lease_ttl: Duration::from_secs(10),
            tick: Duration::from_millis(500),
            debounce: Duration::from_millis(20),
            misfire_grace: Duration::from_secs(1),
            store_alert_linger: Duration::from_secs(60),
            max_txn_ops: MAX_OPS,
            test_hooks: TestHooks::default(),
        }
    }
}

/// Why leading stopped.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// A fenced write failed its compare: another replica leads now.
    #[error("leadership lost")]
    Deposed,
    /// etcd failed.
    #[error(transparent)]
    Coord(#[from] CoordError),
    /// A record in etcd could not be read or written.
    #[error(transparent)]
    Record(#[from] keyspace::RecordError),
    /// The SQL store failed; the step is retried on the next pass.
    #[error("sql store: {0}")]
    Store(String),
    /// A run's record in etcd is not the one this leader's copy was read
    /// at (a compare on its revision failed): the copy was reloaded and the
    /// run is redone on the next pass.
    #[error("the record of run {0} changed under this leader")]
    RunChanged(RunId),
    /// The keyspace follows another build's format: this replica does not
    /// lead it (the process stops with the message).
    #[error(transparent)]
    KeyspaceFormat(#[from] keyspace::format::FormatMismatch),
}

/// What wakes the leader loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Something under the prefix changed.
    Changed,
    /// The tick elapsed.
    Tick,
    /// The leadership key is gone.
    LeadershipLost,
    /// Shutdown was requested.
    Shutdown,
}

/// Writes carrying the leadership fence.
#[derive(Clone)]
pub struct Fenced {
    coord: Arc<dyn Coordinator>,
    fence: Compare,
    /// Most ops per txn (see [`SchedulerConfig::max_txn_ops`]).
    max_ops: usize,
}

impl Fenced {
    /// Fails with [`LeaderError::Deposed`] unless this leadership still
    /// holds: checked before SQL writes that etcd cannot fence, so a leader
    /// that already knows it is deposed does not write them.
    pub async fn check(&self) -> Result<(), LeaderError> {
        let resp = self
            .coord
            .txn(Txn {
                compares: vec![self.fence.clone()],
                success: vec![],
                failure: vec![],
            })
            .await?;
        if resp.succeeded {
            Ok(())
        } else {
            Err(LeaderError::Deposed)
        }
    }

    /// One txn of `ops` guarded by the fence and `guards`; the caller
    /// reads `succeeded` (a failed compare is not an error here).
    pub(crate) async fn txn(
        &self,
        guards: &[Compare],
        ops: Vec<TxnOp>,
    ) -> Result<nightshift_coord::TxnResponse, CoordError> {
        let mut compares = vec![self.fence.clone()];
        compares.extend(guards.iter().cloned());
        telemetry::values_written(&ops);
        self.coord
            .txn(Txn {
                compares,
                success: ops,
                failure: vec![],
            })
            .await
    }

    /// Commits `ops` in order, in txns of at most `max_ops`, each fenced.
    /// Returns the revision of the last txn. For writes that repeat safely
    /// (deletes, idempotent puts): nothing here compares a run's record —
    /// what touches a run goes through `commit::plan` instead.
    pub async fn commit(&self, ops: Vec<TxnOp>) -> Result<Revision, LeaderError> {
        let mut revision = 0;
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            let chunk: Vec<TxnOp> = ops.by_ref().take(self.max_ops).collect();
            telemetry::values_written(&chunk);
            let resp = self
                .coord
                .txn(Txn {
                    compares: vec![self.fence.clone()],
                    success: chunk,
                    failure: vec![],
                })
                .await
                .inspect_err(|e| telemetry::txn(Some(telemetry::error_kind(e))))?;
            telemetry::txn(None);
            if !resp.succeeded {
                return Err(LeaderError::Deposed);
            }
            revision = resp.revision;
        }
        Ok(revision)
    }
}

/// A put of a record.
pub fn put<T: Record>(key: String, value: &T, lease: Option<i64>) -> Result<TxnOp, LeaderError> {
    Ok(TxnOp::Put {
        key,
        value: keyspace::encode(value)?,
        lease: lease.map(nightshift_coord::LeaseId),
    })
}

/// What the leader knows between passes; rebuilt from etcd on election.
pub struct Leader {
    coord: Arc<dyn Coordinator>,
    store: Store,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    fenced: Fenced,
    /// This leadership's term: its election key's create revision. SQL
    /// attempt rows carry it, so a deposed term's late rows are ignored.
    term: Revision,
    actor: String,
    runs: BTreeMap<RunId, LiveRun>,
    dags: BTreeMap<DagName, AppliedDag>,
    cron: BTreeMap<DagName, CronRecord>,
    /// Earliest upcoming schedule instant seen by the last cron pass: the
    /// loop wakes for it instead of waiting for the next tick, so a fire
    /// starts on time rather than up to one tick late.
    next_fire_ms: Option<i64>,
    outbox: history::Outbox,
    /// Unreadable keys already reported.
    bad_keys: bad_keys::BadKeys,
    /// The first SQL error of the current pass.
    store_trouble: Option<String>,
    /// The executors' params schemas, read at this pass's first trigger
    /// command (a backfill issues hundreds) and dropped at the next pass.
    params_schemas: Option<nightshift_core::params::HandlerSchemas>,
    /// The SQL outage on record (`{p}health/store`), if any.
    store_health: Option<keyspace::StoreHealth>,
    /// Delay before retrying after a failed pass.
    retry: health::Backoff,
    /// Assignment keys as read at the start of the current pass.
    owned: owned::Owned,
    /// The first write etcd refused as full during the current pass.
    coord_trouble: Option<String>,
    /// etcd full (NOSPACE) on record: its alert is open.
    coord_full: Option<coord_full::Full>,
    /// Specs of the DAG versions live runs name.
    dag_versions: dag_versions::DagVersions,
    /// Executor registrations as last read (see `pass::live_executors`).
    executors: pass::ExecutorCache,
    /// When alerts of ended runs were last swept (see `pass::sweep_alerts`).
    alerts_swept_at_ms: Option<i64>,
}

/// One live run: its record and what was last written of it.
pub struct LiveRun {
    /// The record.
    pub rec: RunRecord,
    /// Its values (`record_values`) as last read or written, key →
    /// bytes: a commit writes only those that changed and deletes those
    /// that disappeared.
    written: BTreeMap<String, Vec<u8>>,
    /// Rows already stored in SQL.
    synced: history::Synced,
    /// Mod revision of `runs/{run}/state` as this copy was read or
    /// written: every commit touching the run compares it.
    revision: Revision,
    /// A commit of this run failed and the reload did not succeed yet:
    /// nothing is decided about the run until it is read again.
    stale: bool,
}

impl Leader {
    /// Takes over: loads live runs, cron records and a SQL outage on record
    /// from etcd.
    pub async fn recover(
        coord: Arc<dyn Coordinator>,
        store: Store,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
        leadership: &Leadership,
    ) -> Result<Leader, LeaderError> {
        let fenced = Fenced {
            coord: coord.clone(),
            fence: leadership.fence(),
            max_ops: config.max_txn_ops.max(2),
        };
        let actor = format!("scheduler:{}", config.id);
        let mut leader = Leader {
            coord,
            store,
            clock,
            config,
            fenced,
            term: leadership.create_revision(),
            actor,
            runs: BTreeMap::new(),
            dags: BTreeMap::new(),
            cron: BTreeMap::new(),
            next_fire_ms: None,
            outbox: Default::default(),
            bad_keys: Default::default(),
            store_trouble: None,
            params_schemas: None,
            store_health: None,
            retry: Default::default(),
            owned: Default::default(),
            coord_trouble: None,
            coord_full: None,
            dag_versions: Default::default(),
            executors: Default::default(),
            alerts_swept_at_ms: None,
        };
        let prefix = leader.config.prefix.clone();
        let (kvs, _) = leader
            .coord
            .get_prefix_paged(
                &keyspace::runs_prefix(&prefix),
                nightshift_coord::PAGE_KEYS_ANY,
            )
            .await?;
        // One read at one revision: every run's values are consistent.
        for (run, found) in crate::record_values::assemble_all(&prefix, &kvs) {
            if let Some(stored) = leader.resolve_run(&run, found, &kvs).await? {
                leader.runs.insert(
                    run,
                    LiveRun {
                        rec: stored.rec,
                        written: stored.values,
                        synced: Default::default(),
                        revision: stored.revision,
                        stale: false,
                    },
                );
            }
        }
        let (kvs, _) = leader
            .coord
            .get_prefix_paged(
                &keyspace::cron_prefix(&prefix),
                nightshift_coord::PAGE_KEYS_ANY,
            )
            .await?;
        for kv in kvs {
            let Some(name) = keyspace::parse_cron_key(&prefix, &kv.key) else {
                continue;
            };
            if let Some(rec) = leader
                .decode_or_report::<CronRecord>(&kv, "ignored: the schedule restarts from now")
            {
                leader.cron.insert(name, rec);
            }
        }
        if let Some(kv) = leader
            .coord
            .get(&keyspace::store_health_key(&prefix))
            .await?
        {
            leader.store_health =
                leader.decode_or_report(&kv, "ignored: a new outage record replaces it");
        }
        tracing::info!(
            runs = leader.runs.len(),
            store_outage = leader.store_health.is_some(),
            "leading: recovered live runs from etcd"
        );
        Ok(leader)
    }

    /// Live runs, for tests and diagnostics.
    pub fn live_runs(&self) -> impl Iterator<Item = &RunRecord> {
        self.runs.values().map(|r| &r.rec)
    }

    /// How long to wait before the next pass without a change: the tick, or
    /// less when a schedule instant falls due sooner.
    fn until_next_pass(&self) -> Duration {
        let Some(next) = self.next_fire_ms else {
            return self.config.tick;
        };
        let ms = u64::try_from(next.saturating_sub(self.clock.now_ms())).unwrap_or(0);
        self.config.tick.min(Duration::from_millis(ms))
    }

    /// Leads until deposed, shut down, or etcd fails for good.
    ///
    /// A pass that failed (etcd error) or found the SQL store failing is
    /// retried with capped exponential backoff ([`health::Backoff`]); while
    /// backing off, changes do not trigger passes (the retry sees them).
    pub async fn lead(
        mut self,
        leadership: &Leadership,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), LeaderError> {
        let mut changes = self.coord.watch_prefix(&self.config.prefix, None).await?;
        let lost = leadership.lost();
        tokio::pin!(lost);
        loop {
            let started = std::time::Instant::now();
            let failed = match self.pass().await {
                Ok(()) => false,
                Err(LeaderError::Deposed) => return Err(LeaderError::Deposed),
                Err(e) => {
                    tracing::warn!(error = %e, "pass failed; retrying with backoff");
                    true
                }
            };
            telemetry::pass(started.elapsed(), !failed);
            telemetry::live_runs(self.runs.len());
            let retry_in = if failed || self.store_is_down() || self.coord_is_full() {
                Some(self.retry.fail())
            } else {
                self.retry.reset();
                None
            };
            let deadline =
                tokio::time::Instant::now() + retry_in.unwrap_or_else(|| self.until_next_pass());
            loop {
                let event = tokio::select! {
                    biased;
                    _ = shutdown.changed() => Event::Shutdown,
                    _ = &mut lost => Event::LeadershipLost,
                    change = changes.next() => match change {
                        Some(Ok(_)) => Event::Changed,
                        Some(Err(e)) => { tracing::warn!(error = %e, "watch failed; re-creating it"); changes = self.coord.watch_prefix(&self.config.prefix, None).await?; Event::Changed }
                        None => { changes = self.coord.watch_prefix(&self.config.prefix, None).await?; Event::Changed }
                    },
                    _ = tokio::time::sleep_until(deadline) => Event::Tick,
                };
                match event {
                    Event::Shutdown => return Ok(()),
                    Event::LeadershipLost => return Err(LeaderError::Deposed),
                    // Backing off: the retry at the deadline sees this change.
                    Event::Changed if retry_in.is_some() => continue,
                    Event::Changed => {
                        tokio::time::sleep(self.config.debounce).await;
                        // Drain what arrived meanwhile: one pass sees it all.
                        while let Some(Some(Ok(_))) =
                            futures::FutureExt::now_or_never(changes.next())
                        {
                        }
                        break;
                    }
                    Event::Tick => break,
                }
            }
        }
    }
}

/// Runs a scheduler replica until `shutdown` turns true: campaign, lead,
/// and campaign again after losing leadership. On shutdown the leadership is
/// resigned and the lease revoked, so a standby takes over at once.
pub async fn run_scheduler(
    coord: Arc<dyn Coordinator>,
    store: Store,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), LeaderError> {
    let election = Election::new(coord.clone(), keyspace::leader_prefix(&config.prefix));
    let written_by = format!(
        "nightshift-scheduler {} ({})",
        env!("CARGO_PKG_VERSION"),
        config.id
    );
    // A standby of another build learns it at start, not when it is elected.
    // Only a refusal stops it here: an unreachable etcd is waited for below.
    if let Err(e @ LeaderError::KeyspaceFormat(_)) = format::settle(
        coord.as_ref(),
        &config.prefix,
        None,
        &written_by,
        clock.now_ms(),
    )
    .await
    {
        return Err(e);
    }
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let keeper = match LeaseKeeper::grant(coord.clone(), config.lease_ttl).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "cannot grant the scheduler lease; retrying");
                tokio::select! { _ = shutdown.changed() => return Ok(()), _ = tokio::time::sleep(Duration::from_secs(1)) => continue }
            }
        };
        let lease = keeper.lease();
        let campaign = election.campaign(config.id.clone().into_bytes(), lease);
        let leadership = tokio::select! {
            result = campaign => result,
            _ = shutdown.changed() => { let _ = keeper.revoke().await; return Ok(()); }
        };
        let leadership = match leadership {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "campaign failed; campaigning again");
                let _ = keeper.revoke().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        tracing::info!(id = %config.id, lease = lease.0, "elected leader");
        telemetry::leading(true);
        match format::settle(
            coord.as_ref(),
            &config.prefix,
            Some(leadership.fence()),
            &written_by,
            clock.now_ms(),
        )
        .await
        {
            Ok(()) => {}
            Err(e @ LeaderError::KeyspaceFormat(_)) => {
                let _ = leadership.resign().await;
                let _ = keeper.revoke().await;
                return Err(e);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot settle the keyspace format; campaigning again");
                let _ = leadership.resign().await;
                let _ = keeper.revoke().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        // Self-fence: stop leading as soon as the lease cannot be vouched for.
        let mut status = keeper.status();
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut outer = shutdown.clone();
        let guard = tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = status.changed() => {
                        if changed.is_err() || !matches!(*status.borrow(), LeaseStatus::Alive { .. }) {
                            tracing::warn!("leadership lease not confirmed; stepping down");
                            let _ = stop_tx.send(true);
                            return false;
                        }
                    }
                    _ = outer.changed() => { let _ = stop_tx.send(true); return true; }
                }
            }
        });
        let result = match Leader::recover(
            coord.clone(),
            store.clone(),
            clock.clone(),
            config.clone(),
            &leadership,
        )
        .await
        {
            Ok(leader) => {
                use tracing::Instrument as _;
                let span = tracing::info_span!("leader", scheduler = %config.id, term = leadership.create_revision());
                leader.lead(&leadership, stop_rx).instrument(span).await
            }
            Err(e) => Err(e),
        };
        guard.abort();
        telemetry::leading(false);
        telemetry::live_runs(0);
        let shutting_down = *shutdown.borrow();
        match &result {
            Ok(()) if shutting_down => tracing::info!("shutting down: resigning leadership"),
            Ok(()) => tracing::warn!("stepped down: lease not confirmed"),
            Err(e) => tracing::warn!(error = %e, "stopped leading"),
        }
        let _ = leadership.resign().await;
        let _ = keeper.revoke().await;
        if shutting_down {
            return Ok(());
        }
        tokio::select! { _ = shutdown.changed() => return Ok(()), _ = tokio::time::sleep(Duration::from_millis(200)) => {} }
    }
}
