//! In-process coordination backend, for `nightshift dev` and deterministic
//! simulation tests. Same semantics as etcd (see the `store` module for the rules it
//! copies), time driven by tokio's clock: under `tokio::time::pause()` leases
//! expire exactly when virtual time passes their deadline.
//!
//! Lease expiry is checked on every call (so no call ever sees an expired
//! lease's keys) and by a reaper task sleeping until the next deadline (so
//! watchers see the deletes even when nobody calls). The reaper is spawned on
//! the first `grant_lease` (it needs a runtime) and exits when the last clone
//! of the coordinator is dropped.
//!
//! **Slow watchers:** each watch gets an *unbounded* channel. A writer never
//! waits for a reader, and a watch never loses or reorders an event; the price
//! is that a watcher that stops reading accumulates events in memory. That is
//! the right trade for a development and test backend (a lost event would
//! break the conformance guarantees, a blocked writer would deadlock tests);
//! production uses etcd, which has its own flow control.
//!
//! **History:** events are kept for watches from a past revision, up to
//! `history_limit` events (default [`DEFAULT_HISTORY_LIMIT`]); older ones are
//! compacted away and a watch from before them gets a
//! [`WatchEvent::Resync`], exactly as after an etcd compaction.

mod store;

use crate::api::{
    CoordError, Coordinator, KeyValue, LeaseId, PrefixPage, Revision, Txn, TxnResponse, WatchEvent,
    WatchStream,
};
use async_trait::async_trait;
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use store::{event_key, Committed, Store};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

pub use store::MAX_TXN_OPS;

/// How many events the in-process backend keeps for watches from the past.
pub const DEFAULT_HISTORY_LIMIT: usize = 100_000;

type EventSender = mpsc::UnboundedSender<Result<WatchEvent, CoordError>>;

/// The in-process coordinator. Cloning is cheap and clones share one store.
#[derive(Clone)]
pub struct MemoryCoordinator {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Wakes the reaper when a lease with an earlier deadline appears, and
    /// when the store is dropped (so the reaper can exit).
    reaper_wake: Arc<Notify>,
    reaper_started: AtomicBool,
}

struct State {
    store: Store,
    watchers: Vec<Watcher>,
}

struct Watcher {
    prefix: String,
    /// Lowest revision this watcher still has to receive.
    from: Revision,
    tx: EventSender,
}

impl MemoryCoordinator {
    /// An empty store at revision 1, keeping [`DEFAULT_HISTORY_LIMIT`]
    /// events of history.
    pub fn new() -> Self {
        Self::with_history_limit(DEFAULT_HISTORY_LIMIT)
    }

    /// An empty store keeping at most `limit` events of history (at least 1).
    pub fn with_history_limit(limit: usize) -> Self {
        MemoryCoordinator {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    store: Store::new(limit.max(1)),
                    watchers: Vec::new(),
                }),
                reaper_wake: Arc::new(Notify::new()),
                reaper_started: AtomicBool::new(false),
            }),
        }
    }

    /// Moves the store's revision up to at least `revision` (a no-op when
    /// it is already there), as if the writes in between had happened and
    /// been compacted. `nightshift dev` restores a snapshot into a store
    /// advanced to the snapshot's revision, so that revisions — fencing
    /// tokens among them — keep increasing across a crash instead of
    /// starting again at 1 below tokens handed out before it.
    pub fn advance_to(&self, revision: Revision) {
        self.lock().store.advance_to(revision);
    }

    /// Discards history below `revision`, like `etcdctl compact`: a later
    /// watch from an older revision receives a [`WatchEvent::Resync`].
    pub fn compact(&self, revision: Revision) -> Result<(), CoordError> {
        self.lock().store.compact(revision)
    }

    /// Revision below which history has been compacted (0 = none).
    pub fn compacted_revision(&self) -> Revision {
        self.lock().store.compacted()
    }

    /// Locks the state and applies any lease expiry due by now, so every
    /// operation sees a store where expired leases are already gone.
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut state = lock_state(&self.inner.state);
        state.expire_due(Instant::now());
        state
    }

    fn ensure_reaper(&self) {
        if self.inner.reaper_started.swap(true, Ordering::SeqCst) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(reap(
                    Arc::downgrade(&self.inner),
                    self.inner.reaper_wake.clone(),
                ));
            }
            // Without a runtime expiry stays lazy; try again next grant.
            Err(_) => self.inner.reaper_started.store(false, Ordering::SeqCst),
        }
    }
}

impl Default for MemoryCoordinator {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock_state(&self.inner.state);
        f.debug_struct("MemoryCoordinator")
            .field("revision", &state.store.revision())
            .field("watchers", &state.watchers.len())
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reaper_wake.notify_one();
    }
}

fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Store methods validate before mutating, so a panic elsewhere while the
    // lock was held cannot leave it half-applied: keep serving.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    fn expire_due(&mut self, now: Instant) {
        for committed in self.store.expire(now) {
            self.publish(&committed);
        }
    }

    /// Sends one write's events to every interested watcher, dropping
    /// watchers whose receiver is gone.
    fn publish(&mut self, events: &Committed) {
        if events.is_empty() {
            return;
        }
        self.watchers.retain_mut(|w| {
            for e in events
                .iter()
                .filter(|e| e.revision() >= w.from && event_key(e).starts_with(&w.prefix))
            {
                if w.tx.send(Ok(e.clone())).is_err() {
                    return false;
                }
            }
            true
        });
    }
}

/// Expires leases at their deadlines so watchers see the deletes promptly.
async fn reap(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let next = match inner.upgrade() {
            Some(inner) => {
                let mut state = lock_state(&inner.state);
                state.expire_due(Instant::now());
                state.store.next_deadline()
            }
            None => return,
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

#[async_trait]
impl Coordinator for MemoryCoordinator {
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, CoordError> {
        self.ensure_reaper();
        let (id, _) = self.lock().store.grant(ttl, Instant::now());
        self.inner.reaper_wake.notify_one();
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, CoordError> {
        self.lock().store.keep_alive(lease, Instant::now())
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), CoordError> {
        let mut state = self.lock();
        let committed = state.store.revoke(lease)?;
        state.publish(&committed);
        Ok(())
    }

    async fn lease_time_to_live(&self, lease: LeaseId) -> Result<Option<Duration>, CoordError> {
        Ok(self.lock().store.time_to_live(lease, Instant::now()))
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, CoordError> {
        let mut state = self.lock();
        let committed = state.store.put(key, value, lease)?;
        state.publish(&committed);
        Ok(state.store.revision())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, CoordError> {
        Ok(self.lock().store.get(key))
    }

    async fn get_prefix(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), CoordError> {
        let state = self.lock();
        Ok((state.store.get_prefix(prefix), state.store.revision()))
    }

    async fn get_prefix_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<PrefixPage, CoordError> {
        let state = self.lock();
        let (kvs, more) = state
            .store
            .get_prefix_page(prefix, after, limit.max(1), revision)?;
        Ok(PrefixPage {
            kvs,
            revision: revision.unwrap_or(state.store.revision()),
            more,
        })
    }

    async fn delete(&self, key: &str) -> Result<i64, CoordError> {
        let mut state = self.lock();
        let (n, committed) = state.store.delete_range(key, false);
        state.publish(&committed);
        Ok(n)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<i64, CoordError> {
        let mut state = self.lock();
        let (n, committed) = state.store.delete_range(prefix, true);
        state.publish(&committed);
        Ok(n)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, CoordError> {
        let mut state = self.lock();
        let (response, committed) = state.store.txn(txn)?;
        state.publish(&committed);
        Ok(response)
    }

    async fn current_revision(&self) -> Result<Revision, CoordError> {
        Ok(self.lock().store.revision())
    }

    async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: Option<Revision>,
    ) -> Result<WatchStream, CoordError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut state = self.lock();
        let current = state.store.revision();
        // Replay and registration happen under one lock: no write can fall
        // between the history read and the live subscription.
        if let Some(start) = start_revision {
            let start = start.max(1);
            match state.store.history_since(prefix, start) {
                Some(events) => events.into_iter().for_each(|e| {
                    let _ = tx.send(Ok(e));
                }),
                None => {
                    let kvs = state.store.get_prefix(prefix);
                    let _ = tx.send(Ok(WatchEvent::Resync {
                        kvs,
                        revision: current,
                    }));
                }
            }
        }
        let from = start_revision.unwrap_or(0).max(current + 1);
        state.watchers.push(Watcher {
            prefix: prefix.to_owned(),
            from,
            tx,
        });
        drop(state);
        Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
    }
}

#[cfg(test)]
mod tests;
