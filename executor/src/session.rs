//! One registration of an executor: from granting its lease to revoking (or
//! losing) it. A new registration starts with an empty state, so nothing a
//! stale registration knew can leak into the next one.
//!
//! The session is a single loop over its inputs — lease status, watch
//! events, finished items, written batches, loaded specs, timers — and owns
//! all the state ([`JobSlot`]s); background tasks only fetch and write. Its
//! safety rules:
//!
//! - **Self-fencing.** When the lease status leaves `Alive` (or the local
//!   clock says it is about to), every running item is cancelled and its
//!   outcome voided, and nothing starts or is written until the lease is
//!   confirmed again. `Lost` ends the registration.
//! - **Fencing.** Outcomes are written only by the fenced txn of
//!   [`crate::recorder`]; a refused write leads to re-reading the assignment
//!   and either retrying under the new token or dropping what is no longer ours.
//! - **Drain.** On shutdown nothing new starts; running items get up to the
//!   drain grace; outcomes are flushed; the lease is revoked.

use crate::assignment::{JobRef, JobSlot};
use crate::builder::Config;
use crate::context::{ItemContext, ItemFacts, ProgressSink};
use crate::feeds::{self, SpecLoaded, WatchReady};
use crate::item::{self, ItemDone};
use crate::job::Job;
use crate::progress::{self, ProgressBoard};
use crate::recorder::{Batch, Recorder, Written, MAX_BATCH_BYTES, MAX_BATCH_RESULTS};
use crate::stats::Stats;
use crate::stop::StopRules;
use nightshift_coord::lease::{LeaseKeeper, LeaseStatus};
use nightshift_coord::{CoordError, Coordinator, KeyValue, LeaseId, WatchEvent, WatchStream};
use nightshift_protocol::ids::{FencingToken, HandlerName, ItemIndex};
use nightshift_protocol::keyspace::{self, AssignmentRecord, JobRunSpec};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod events;

/// How a registration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionEnd {
    /// Drained after a shutdown request; the lease is revoked.
    Shutdown,
    /// The lease is lost (or recording became impossible): register again.
    Fenced,
}

/// Whether a job's items can run here.
enum Runnable {
    Loading,
    Ready {
        spec: Arc<JobRunSpec>,
        job: Arc<dyn Job>,
        params: Arc<serde_json::Value>,
    },
    /// Its items are reported failed without running (retryable, message).
    No(bool, String),
}

struct Slot {
    /// Distinguishes this slot from an earlier one of the same job.
    id: u64,
    state: JobSlot,
    runnable: Runnable,
    flushing: bool,
    /// When the oldest buffered outcome not yet in flight was buffered.
    buffered_since: Option<Instant>,
    /// Stops the spec fetch when the slot goes away.
    fetch: CancellationToken,
    /// The job start the slot's assignment belongs to: a rewrite naming
    /// another one is a new start (the slot is replaced).
    generation: Option<i64>,
}

pub(crate) struct Session {
    config: Arc<Config>,
    stats: Arc<Stats>,
    coord: Arc<dyn Coordinator>,
    lease: LeaseId,
    status: watch::Receiver<LeaseStatus>,
    recorder: Recorder,
    board: Arc<ProgressBoard>,
    /// Cancels every background task of the registration.
    tasks: CancellationToken,
    slots: HashMap<JobRef, Slot>,
    /// Spawned item tasks not yet returned, including voided ones.
    in_flight: usize,
    /// The same, per handler with a limit of its own.
    in_flight_by_handler: HashMap<HandlerName, usize>,
    rr: usize,
    seq: u64,
    next_slot: u64,
    /// Items are cancelled and writes paused: the lease is in doubt.
    fenced: bool,
    draining: Option<Instant>,
    grace_over: bool,
    end: Option<SessionEnd>,
    watch: Option<WatchStream>,
    items_tx: mpsc::UnboundedSender<ItemDone>,
    flushes_tx: mpsc::UnboundedSender<(Batch, Written)>,
    specs_tx: mpsc::UnboundedSender<SpecLoaded>,
    watch_tx: mpsc::UnboundedSender<WatchReady>,
}

/// Channels the loop reads; kept apart from [`Session`] so that `select!`
/// can borrow them while handlers borrow the session.
struct Inputs {
    items: mpsc::UnboundedReceiver<ItemDone>,
    flushes: mpsc::UnboundedReceiver<(Batch, Written)>,
    specs: mpsc::UnboundedReceiver<SpecLoaded>,
    watch: mpsc::UnboundedReceiver<WatchReady>,
}

/// Registers, runs until `stop` (drain) or the lease is lost, cleans up.
pub(crate) async fn run(
    config: Arc<Config>,
    stats: Arc<Stats>,
    coord: Arc<dyn Coordinator>,
    stop: &CancellationToken,
) -> Result<SessionEnd, CoordError> {
    let keeper =
        LeaseKeeper::grant_observed(coord.clone(), config.lease_ttl, stats.lease.clone()).await?;
    let lease = keeper.lease();
    if let Err(e) = register(&config, &coord, lease).await {
        let _ = tokio::time::timeout(Duration::from_secs(5), keeper.revoke()).await;
        return Err(e);
    }
    Stats::add(&stats.registrations, 1);
    crate::telemetry::registered();
    tracing::info!(executor = %config.id, lease = lease.0, capacity = config.capacity, "executor registered");

    let (items_tx, items) = mpsc::unbounded_channel();
    let (flushes_tx, flushes) = mpsc::unbounded_channel();
    let (specs_tx, specs) = mpsc::unbounded_channel();
    let (watch_tx, watch) = mpsc::unbounded_channel();
    let tasks = CancellationToken::new();
    let board = Arc::new(ProgressBoard::default());
    tokio::spawn(progress::publish(
        board.clone(),
        coord.clone(),
        config.prefix.clone(),
        config.id.clone(),
        lease,
        config.progress_interval,
        tasks.clone(),
    ));
    let mut session = Session {
        recorder: Recorder {
            coord: coord.clone(),
            prefix: config.prefix.clone(),
            executor: config.id.clone(),
            lease,
        },
        status: keeper.status(),
        config,
        stats,
        coord,
        lease,
        board,
        tasks,
        slots: HashMap::new(),
        in_flight: 0,
        in_flight_by_handler: HashMap::new(),
        rr: 0,
        seq: 0,
        next_slot: 0,
        fenced: false,
        draining: None,
        grace_over: false,
        end: None,
        watch: None,
        items_tx,
        flushes_tx,
        specs_tx,
        watch_tx,
    };
    session.reconnect_watch();
    let mut inputs = Inputs {
        items,
        flushes,
        specs,
        watch,
    };
    let end = session.run_loop(&mut inputs, stop).await;
    if end == SessionEnd::Shutdown {
        session.wind_down(&mut inputs).await;
    }

    session.tasks.cancel();
    for slot in session.slots.values_mut() {
        slot.state.discard_running();
    }
    match end {
        SessionEnd::Shutdown => {
            match tokio::time::timeout(session.config.lease_ttl, keeper.revoke()).await {
                Ok(Ok(())) => tracing::info!(
                    lease = lease.0,
                    "drained; lease revoked, assignments released"
                ),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "lease not revoked; its keys expire with its ttl")
                }
                Err(_) => tracing::warn!("lease revoke timed out; its keys expire with its ttl"),
            }
        }
        SessionEnd::Fenced => {
            // Best effort, in the background: the lease is most likely gone
            // already, and the next registration must not wait for etcd.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), keeper.revoke()).await;
            });
        }
    }
    Ok(end)
}

/// Puts the executor's registration record with its lease.
async fn register(
    config: &Config,
    coord: &Arc<dyn Coordinator>,
    lease: LeaseId,
) -> Result<(), CoordError> {
    let key = keyspace::executor_key(&config.prefix, &config.id);
    if let Some(existing) = coord.get(&key).await? {
        if existing.lease.is_some_and(|l| l != lease) {
            // A previous incarnation (crashed, or a duplicate id): its
            // assignments stay bound to its own lease, so taking the key over
            // cannot let this process record for them.
            tracing::warn!(executor = %config.id, "executor id already registered by another lease; taking the key over");
        }
    }
    let info = keyspace::ExecutorInfo {
        id: config.id.clone(),
        lease: lease.0,
        handlers: config.handlers.keys().cloned().collect(),
        capacity: config.capacity,
        labels: config.labels.clone(),
        handler_capacity: config.handler_capacity.clone(),
        params_schemas: config.params_schemas.clone(),
        host: crate::host::hostname(),
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at_ms: crate::clock::now_ms(),
    };
    let value = keyspace::encode(&info).map_err(|e| CoordError::Invalid(e.to_string()))?;
    coord.put(&key, value, Some(lease)).await?;
    Ok(())
}

impl Session {
    /// Whether the lease is confirmed with margin right now. Checked against
    /// the clock, not only the last published status, because after a
    /// process pause the session may run before the keeper task notices.
    fn lease_confirmed(&self) -> bool {
        match *self.status.borrow() {
            LeaseStatus::Alive { confirmed_until } => {
                Instant::now() + self.config.lease_ttl / 3 < confirmed_until
            }
            LeaseStatus::Expiring | LeaseStatus::Lost => false,
        }
    }

    /// Before the lease is revoked (and the items handed to others), waits
    /// for the items still in flight — all cancelled by now — to return or
    /// be dropped at the end of their grace (the longer of the cancel grace
    /// and the handlers' stop grace: a program's process group being
    /// stopped), so that a handler that stops cleanly gets to, and none
    /// overlaps with its next owner.
    async fn wind_down(&mut self, inputs: &mut Inputs) {
        let handlers_grace = self
            .config
            .handlers
            .values()
            .map(|j| j.stop_grace())
            .max()
            .unwrap_or_default();
        let rules = StopRules::for_ttl(self.config.lease_ttl, self.config.cancel_grace);
        let until = Instant::now() + rules.grace.max(handlers_grace) + Duration::from_millis(100);
        while self.in_flight > 0 {
            match tokio::time::timeout_at(until, inputs.items.recv()).await {
                Ok(Some(_)) => self.in_flight -= 1,
                _ => break,
            }
        }
    }

    /// Whether items may start and outcomes be written; fences if not.
    fn can_write(&mut self) -> bool {
        if !self.fenced && !self.lease_confirmed() {
            self.self_fence("lease renewal not confirmed in time");
        }
        !self.fenced
    }

    fn self_fence(&mut self, reason: &str) {
        if self.fenced {
            return;
        }
        self.fenced = true;
        Stats::add(&self.stats.self_fences, 1);
        crate::telemetry::self_fenced();
        let cancelled: usize = self
            .slots
            .values_mut()
            .map(|s| s.state.discard_running())
            .sum();
        Stats::add(&self.stats.items_cancelled, cancelled);
        tracing::warn!(
            executor = %self.config.id,
            lease = self.lease.0,
            cancelled,
            "self-fenced: {reason}; cancelled in-flight items, their outcomes will not be recorded"
        );
    }

    /// Starts items while there is capacity, round-robin across jobs.
    fn dispatch(&mut self) {
        if self.draining.is_some()
            || self.in_flight >= self.config.capacity as usize
            || !self.can_write()
        {
            return;
        }
        let mut ready: Vec<JobRef> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.runnable, Runnable::Ready { .. }) && s.state.has_pending())
            .map(|(k, _)| k.clone())
            .collect();
        ready.sort();
        while self.in_flight < self.config.capacity as usize && !ready.is_empty() {
            self.rr = self.rr.wrapping_add(1);
            let i = self.rr % ready.len();
            if !self.start_one(&ready[i]) {
                ready.remove(i);
            }
        }
    }

    fn start_one(&mut self, job_ref: &JobRef) -> bool {
        let Some(slot) = self.slots.get_mut(job_ref) else {
            return false;
        };
        let Runnable::Ready { spec, job, params } = &slot.runnable else {
            return false;
        };
        let limited = self.config.handler_capacity.get(&spec.handler).copied();
        if let Some(limit) = limited {
            let running = self.in_flight_by_handler.get(&spec.handler).copied();
            if running.unwrap_or(0) >= limit as usize {
                return false;
            }
        }
        let Some(start) = slot.state.start_next() else {
            return false;
        };
        let facts = ItemFacts {
            executor: self.config.id.clone(),
            run: spec.run.clone(),
            dag: spec.dag.clone(),
            job: spec.job.clone(),
            item: ItemIndex(start.item),
            total_items: spec.total_items,
            item_param: spec.item_param(ItemIndex(start.item)).map(str::to_owned),
            params: params.clone(),
            business_date: spec.business_date,
            attempt: start.attempt,
            token: FencingToken(slot.state.token),
            redo: spec.redo,
        };
        let sink = ProgressSink::Board {
            board: self.board.clone(),
            job: job_ref.clone(),
        };
        // A cancelled item gets the longer of the cancel grace and its
        // handler's stop grace (a program's SIGTERM-to-SIGKILL window); the
        // lease deadline still caps both.
        let mut rules = StopRules::for_ttl(self.config.lease_ttl, self.config.cancel_grace);
        rules.grace = rules.grace.max(job.stop_grace());
        let ctx = ItemContext::new(facts, start.cancel, sink)
            .with_lease(self.status.clone(), rules)
            .with_checkpoints(crate::checkpoint::CheckpointStore::Coord {
                coord: self.coord.clone(),
                prefix: self.config.prefix.clone(),
                lease: self.lease,
            });
        let timeout = spec.item_timeout_ms.map(Duration::from_millis);
        let handler = limited.map(|_| spec.handler.clone());
        item::spawn(
            job.clone(),
            ctx,
            timeout,
            job_ref.clone(),
            handler.clone(),
            self.items_tx.clone(),
            self.stats.clone(),
        );
        self.in_flight += 1;
        if let Some(handler) = handler {
            *self.in_flight_by_handler.entry(handler).or_default() += 1;
        }
        Stats::add(&self.stats.items_started, 1);
        crate::telemetry::in_flight(self.in_flight);
        true
    }

    /// Starts the flushes that are due; returns when the next one is due.
    fn flush_due(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let writable = self.can_write();
        let draining = self.draining.is_some();
        let mut next: Option<Instant> = None;
        let mut due = Vec::new();
        for (job, slot) in &mut self.slots {
            if slot.state.buffered() == 0 {
                slot.buffered_since = None;
                continue;
            }
            let since = *slot.buffered_since.get_or_insert(now);
            if slot.flushing || !writable {
                continue;
            }
            let at = since + self.config.linger;
            if draining || at <= now || slot.state.buffered() >= MAX_BATCH_RESULTS {
                due.push(job.clone());
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        for job in due {
            self.start_flush(&job);
        }
        next
    }

    fn start_flush(&mut self, job: &JobRef) {
        let Some(slot) = self.slots.get_mut(job) else {
            return;
        };
        let (results, dropped) = slot.state.take_batch(MAX_BATCH_RESULTS, MAX_BATCH_BYTES);
        Stats::add(&self.stats.results_dropped, dropped);
        if dropped > 0 {
            crate::telemetry::results_dropped(dropped);
        }
        slot.buffered_since = None;
        if results.is_empty() {
            return;
        }
        let seq = keyspace::result_seq(self.lease.0, self.seq);
        self.seq += 1;
        let batch = Batch {
            job: job.clone(),
            slot: slot.id,
            seq,
            token: slot.state.token,
            results,
        };
        slot.flushing = true;
        self.spawn_write(batch);
    }

    fn spawn_write(&self, batch: Batch) {
        let recorder = self.recorder.clone();
        let stop = self.tasks.clone();
        let tx = self.flushes_tx.clone();
        tokio::spawn(async move {
            let written = recorder.write(&batch, &stop).await;
            let _ = tx.send((batch, written));
        });
    }

    fn reconnect_watch(&mut self) {
        self.watch = None;
        // Only this executor's assignments: nothing another executor does,
        // no result batch and no run state reaches this watch.
        let prefix = keyspace::owner_prefix(&self.config.prefix, &self.config.id);
        tokio::spawn(feeds::connect_watch(
            self.coord.clone(),
            prefix,
            self.watch_tx.clone(),
            self.tasks.clone(),
        ));
    }

    /// Whether the drain is complete: nothing recordable running, nothing
    /// left to write (or no way left to write it).
    fn drained(&self) -> bool {
        let Some(deadline) = self.draining else {
            return false;
        };
        let busy = self
            .slots
            .values()
            .any(|s| s.state.has_recordable_running() || s.state.buffered() > 0 || s.flushing);
        // Past grace + one ttl, outcomes that could not be written are
        // given up: the lease is about to be revoked anyway.
        !busy || Instant::now() >= deadline + self.config.lease_ttl
    }

    async fn run_loop(&mut self, inputs: &mut Inputs, stop: &CancellationToken) -> SessionEnd {
        loop {
            if let Some(end) = self.end {
                return end;
            }
            self.dispatch();
            let next_flush = self.flush_due();
            if self.drained() {
                return SessionEnd::Shutdown;
            }
            let grace_end = self.draining.filter(|_| !self.grace_over);
            let drain_limit = self.draining.map(|d| d + self.config.lease_ttl);
            tokio::select! {
                biased;
                changed = self.status.changed() => match changed {
                    Ok(()) => self.on_status(),
                    Err(_) => self.end = Some(SessionEnd::Fenced),
                },
                Some(done) = inputs.items.recv() => self.on_item_done(done),
                Some((batch, written)) = inputs.flushes.recv() => self.on_written(batch, written),
                Some(loaded) = inputs.specs.recv() => self.on_spec(loaded),
                Some(ready) = inputs.watch.recv() => self.on_watch_ready(ready),
                event = next_event(&mut self.watch) => self.on_watch_event(event),
                _ = sleep_until_opt(next_flush) => {}
                _ = sleep_until_opt(grace_end) => self.on_grace_over(),
                _ = sleep_until_opt(drain_limit) => {}
                _ = stop.cancelled(), if self.draining.is_none() => self.begin_drain(),
            }
        }
    }
}

async fn next_event(watch: &mut Option<WatchStream>) -> Option<Result<WatchEvent, CoordError>> {
    use futures::StreamExt;
    match watch {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Decodes an assignment this session may act on: bound to its lease.
fn own_assignment(kv: &KeyValue, lease: LeaseId) -> Result<AssignmentRecord, String> {
    if kv.lease != Some(lease) {
        return Err(format!(
            "assignment is bound to lease {:?}, not ours",
            kv.lease.map(|l| l.0)
        ));
    }
    keyspace::decode(&kv.value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_assignments_bound_to_our_lease_are_ours() {
        let value = keyspace::encode(&AssignmentRecord::default()).unwrap();
        let kv = |lease| KeyValue {
            key: "k".into(),
            value: value.clone(),
            create_revision: 1,
            mod_revision: 1,
            version: 1,
            lease,
        };
        assert!(own_assignment(&kv(Some(LeaseId(7))), LeaseId(7)).is_ok());
        assert!(own_assignment(&kv(Some(LeaseId(8))), LeaseId(7))
            .unwrap_err()
            .contains("not ours"));
        assert!(own_assignment(&kv(None), LeaseId(7)).is_err());
    }
}
