//! The session's reactions to each of its inputs. Each handler runs to
//! completion without awaiting, so the session's state is only ever changed
//! by one of them at a time.

use super::{own_assignment, Runnable, Session, SessionEnd, Slot};
use crate::assignment::{JobRef, JobSlot};
use crate::clock::now_ms;
use crate::feeds::{self, SpecLoaded, WatchReady};
use crate::item::ItemDone;
use crate::recorder::{Batch, Written};
use crate::stats::Stats;
use nightshift_coord::lease::LeaseStatus;
use nightshift_coord::{CoordError, KeyValue, WatchEvent};
use nightshift_protocol::keyspace::{self, AssignmentRecord};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;

impl Session {
    pub(super) fn on_status(&mut self) {
        let status = *self.status.borrow_and_update();
        match status {
            LeaseStatus::Alive { .. } => {
                if self.fenced && self.lease_confirmed() {
                    self.fenced = false;
                    tracing::info!(lease = self.lease.0, "lease confirmed again; resuming work");
                }
            }
            LeaseStatus::Expiring => self.self_fence("lease renewal not confirmed in time"),
            LeaseStatus::Lost => {
                self.self_fence("lease lost");
                self.end = Some(SessionEnd::Fenced);
            }
        }
    }

    pub(super) fn on_item_done(&mut self, done: ItemDone) {
        self.in_flight = self.in_flight.saturating_sub(1);
        crate::telemetry::in_flight(self.in_flight);
        if let Some(handler) = &done.handler {
            if let Some(n) = self.in_flight_by_handler.get_mut(handler) {
                *n = n.saturating_sub(1);
            }
        }
        self.board.finish(&done.job, done.item);
        // A pause (GC, SIGSTOP, overload) may have outlived the lease while
        // the handler ran: fence first, so this outcome is voided.
        self.can_write();
        if let Some(slot) = self.slots.get_mut(&done.job) {
            slot.state.finish_with_log(
                done.item,
                done.attempt,
                (done.started_ms, done.ended_ms),
                done.finish,
                done.log,
            );
        }
    }

    pub(super) fn on_written(&mut self, batch: Batch, written: Written) {
        let n = batch.results.len();
        let stored = matches!(written, Written::Stored);
        if stored {
            Stats::add(&self.stats.results_recorded, n);
            Stats::add(&self.stats.batches_written, 1);
            crate::telemetry::batch_written(n);
        }
        let Some(slot) = self
            .slots
            .get_mut(&batch.job)
            .filter(|s| s.id == batch.slot)
        else {
            return;
        };
        slot.flushing = false;
        match written {
            Written::Stored | Written::Abandoned => {}
            Written::Failed(e) => {
                tracing::error!(error = %e, "outcomes cannot be recorded; re-registering");
                Stats::add(&self.stats.results_dropped, n);
                self.self_fence("outcomes cannot be recorded");
                self.end = Some(SessionEnd::Fenced);
            }
            Written::Rejected { current } => self.on_rejected(batch, current),
        }
    }

    /// The fenced write was refused: find out whether we still own the items.
    fn on_rejected(&mut self, batch: Batch, current: Option<KeyValue>) {
        let job = batch.job.clone();
        let record = match current.as_ref().map(|kv| own_assignment(kv, self.lease)) {
            Some(Ok(record)) => record,
            Some(Err(reason)) => return self.fenced_batch(batch, &reason),
            None => return self.fenced_batch(batch, "assignment is gone"),
        };
        let token = current.map_or(0, |kv| kv.mod_revision);
        self.apply_assignment(&job, token, record);
        let Some(slot) = self.slots.get_mut(&job) else {
            return self.fenced_batch(batch, "assignment is gone");
        };
        if slot.state.token == batch.token {
            return self.fenced_batch(batch, "write refused under the current token");
        }
        let (kept, dropped): (Vec<_>, Vec<_>) =
            batch.results.into_iter().partition(|r| slot.state.owns(r));
        if !dropped.is_empty() {
            Stats::add(&self.stats.results_dropped, dropped.len());
            tracing::warn!(run = %job.run, job = %job.job, dropped = dropped.len(), "fenced: items no longer assigned here; their outcomes are dropped");
        }
        if !kept.is_empty() {
            slot.flushing = true;
            let retry = Batch {
                token: slot.state.token,
                results: kept,
                ..batch
            };
            self.spawn_write(retry);
        }
    }

    fn fenced_batch(&mut self, batch: Batch, reason: &str) {
        Stats::add(&self.stats.results_dropped, batch.results.len());
        tracing::warn!(
            run = %batch.job.run,
            job = %batch.job.job,
            dropped = batch.results.len(),
            "fenced: {reason}; outcomes dropped and the job's running items cancelled"
        );
        self.remove_slot(&batch.job, reason);
    }

    pub(super) fn on_spec(&mut self, loaded: SpecLoaded) {
        let Some(slot) = self.slots.get_mut(&loaded.job) else {
            return;
        };
        slot.runnable = match loaded.result {
            Ok(spec) => match self.config.handlers.get(&spec.handler) {
                Some(job) => Runnable::Ready {
                    params: Arc::new(spec.params.clone()),
                    job: job.clone(),
                    spec: Arc::new(spec),
                },
                None => {
                    let msg = format!(
                        "executor {} has no handler `{}`",
                        self.config.id, spec.handler
                    );
                    tracing::warn!(run = %loaded.job.run, job = %loaded.job.job, "{msg}; failing its items");
                    Runnable::No(true, msg)
                }
            },
            Err(msg) => {
                tracing::error!(run = %loaded.job.run, job = %loaded.job.job, error = %msg, "job cannot run; failing its items");
                Runnable::No(false, msg)
            }
        };
        self.fail_unrunnable(&loaded.job);
    }

    /// Reports the waiting items of a job that cannot run here as failed.
    fn fail_unrunnable(&mut self, job: &JobRef) {
        let Some(slot) = self.slots.get_mut(job) else {
            return;
        };
        if let Runnable::No(retryable, msg) = &slot.runnable {
            let pending = slot.state.take_pending();
            slot.state.fail_items(&pending, msg, *retryable, now_ms());
        }
    }

    pub(super) fn on_watch_ready(&mut self, ready: WatchReady) {
        tracing::debug!(
            revision = ready.revision,
            keys = ready.kvs.len(),
            "watching assignments"
        );
        self.watch = Some(ready.stream);
        self.resync(ready.kvs);
    }

    pub(super) fn on_watch_event(&mut self, event: Option<Result<WatchEvent, CoordError>>) {
        match event {
            Some(Ok(WatchEvent::Put(kv))) => {
                if let Some(job) = self.our_assign_key(&kv.key) {
                    self.on_assignment_kv(job, &kv);
                }
            }
            Some(Ok(WatchEvent::Delete { key, .. })) => {
                if let Some(job) = self.our_assign_key(&key) {
                    self.remove_slot(&job, "removed");
                }
            }
            Some(Ok(WatchEvent::Resync { kvs, .. })) => self.resync(kvs),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "assignment watch failed; re-listing");
                self.reconnect_watch();
            }
            None => {
                tracing::warn!("assignment watch ended; re-listing");
                self.reconnect_watch();
            }
        }
    }

    /// Replaces what the session knew with a full listing of its assignments.
    fn resync(&mut self, kvs: Vec<KeyValue>) {
        let ours: HashMap<JobRef, KeyValue> = kvs
            .into_iter()
            .filter_map(|kv| self.our_assign_key(&kv.key).map(|job| (job, kv)))
            .collect();
        let gone: Vec<JobRef> = self
            .slots
            .keys()
            .filter(|j| !ours.contains_key(j))
            .cloned()
            .collect();
        for job in gone {
            self.remove_slot(&job, "gone");
        }
        for (job, kv) in ours {
            self.on_assignment_kv(job, &kv);
        }
    }

    fn our_assign_key(&self, key: &str) -> Option<JobRef> {
        let (run, job, executor) = keyspace::parse_assign_key(&self.config.prefix, key)?;
        (executor == self.config.id).then(|| JobRef::new(run, job))
    }

    fn on_assignment_kv(&mut self, job: JobRef, kv: &KeyValue) {
        match own_assignment(kv, self.lease) {
            Ok(record) => self.apply_assignment(&job, kv.mod_revision, record),
            Err(reason) => {
                if self.slots.contains_key(&job) {
                    self.remove_slot(&job, &reason);
                } else {
                    tracing::debug!(run = %job.run, job = %job.job, "ignoring assignment: {reason}");
                }
            }
        }
    }

    /// Takes in an assignment at `token` (ignored unless newer than known).
    fn apply_assignment(&mut self, job: &JobRef, token: i64, record: AssignmentRecord) {
        let now = now_ms();
        if self
            .slots
            .get(job)
            .is_some_and(|slot| slot.generation != record.generation)
        {
            // Another start of the job: what the old one held is void.
            self.remove_slot(job, "the job was started again");
        }
        match self.slots.get_mut(job) {
            Some(slot) => {
                if token <= slot.state.token {
                    return;
                }
                let applied = slot.state.apply(token, record, now);
                Stats::add(&self.stats.items_cancelled, applied.cancelled);
                Stats::add(&self.stats.results_dropped, applied.dropped);
                tracing::debug!(run = %job.run, job = %job.job, token, cancelled = applied.cancelled, "assignment rewritten");
            }
            None => {
                tracing::info!(run = %job.run, job = %job.job, token, items = %record.items, "new assignment");
                let fetch = self.tasks.child_token();
                tokio::spawn(feeds::fetch_spec(
                    self.coord.clone(),
                    self.config.prefix.clone(),
                    job.clone(),
                    record.generation,
                    self.specs_tx.clone(),
                    fetch.clone(),
                ));
                self.next_slot += 1;
                let generation = record.generation;
                let slot = Slot {
                    id: self.next_slot,
                    state: JobSlot::new(token, record, now),
                    runnable: Runnable::Loading,
                    flushing: false,
                    buffered_since: None,
                    fetch,
                    generation,
                };
                self.slots.insert(job.clone(), slot);
            }
        }
        self.fail_unrunnable(job);
    }

    /// Forgets an assignment: cancels its running items (their outcomes are
    /// void) and drops its unrecorded outcomes.
    pub(super) fn remove_slot(&mut self, job: &JobRef, reason: &str) {
        let Some(mut slot) = self.slots.remove(job) else {
            return;
        };
        slot.fetch.cancel();
        let cancelled = slot.state.discard_running();
        let dropped = slot.state.clear_buffer();
        self.board.forget(job);
        Stats::add(&self.stats.items_cancelled, cancelled);
        Stats::add(&self.stats.results_dropped, dropped);
        if cancelled + dropped > 0 {
            tracing::warn!(run = %job.run, job = %job.job, cancelled, dropped, "assignment {reason}: running items cancelled, unrecorded outcomes dropped");
        } else {
            tracing::info!(run = %job.run, job = %job.job, "assignment {reason}");
        }
    }

    pub(super) fn begin_drain(&mut self) {
        let running = self
            .slots
            .values()
            .filter(|s| s.state.has_recordable_running())
            .count();
        tracing::info!(grace = ?self.config.drain_grace, jobs_running = running, "shutdown requested: draining");
        self.draining = Some(Instant::now() + self.config.drain_grace);
    }

    pub(super) fn on_grace_over(&mut self) {
        self.grace_over = true;
        let cancelled: usize = self
            .slots
            .values_mut()
            .map(|s| s.state.discard_running())
            .sum();
        Stats::add(&self.stats.items_cancelled, cancelled);
        if cancelled > 0 {
            tracing::warn!(
                cancelled,
                "drain grace over: running items cancelled, they will be reassigned"
            );
        }
    }
}
