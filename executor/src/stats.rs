//! Counters of what an executor did, for tests, benchmarks and operators.
//!
//! Plain relaxed atomics: they are observations, never used to decide
//! anything, so they need no ordering with the state they describe.

use nightshift_coord::lease::RenewalStats;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Live counters, shared between the executor's tasks.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub registrations: AtomicU64,
    pub items_started: AtomicU64,
    pub items_finished: AtomicU64,
    pub results_recorded: AtomicU64,
    pub batches_written: AtomicU64,
    pub results_dropped: AtomicU64,
    pub items_cancelled: AtomicU64,
    pub self_fences: AtomicU64,
    /// Renewals of every registration's lease.
    pub lease: Arc<RenewalStats>,
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// A handle on an executor's counters; see [`crate::Executor::stats`].
#[derive(Debug, Clone)]
pub struct StatsHandle(pub(crate) Arc<Stats>);

/// A copy of the counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Registrations so far (1 + re-registrations after a lost lease).
    pub registrations: u64,
    /// Item attempts started.
    pub items_started: u64,
    /// Item attempts whose handler returned (or panicked, or timed out).
    pub items_finished: u64,
    /// Outcomes written to the coordination store.
    pub results_recorded: u64,
    /// Result batches written (one etcd txn each).
    pub batches_written: u64,
    /// Outcomes dropped because the items were no longer owned (fenced).
    pub results_dropped: u64,
    /// Running items cancelled by this executor (removed, fenced, drained).
    pub items_cancelled: u64,
    /// Times the executor stopped its work because its lease was in doubt.
    pub self_fences: u64,
    /// Lease renewals confirmed, all registrations.
    pub lease_renewals: u64,
    /// Lease renewal calls that failed (and were retried).
    pub lease_renew_failures: u64,
    /// Longest renewal round trip (sent → confirmed), µs.
    pub lease_renew_max_round_trip_us: u64,
    /// Longest delay of a renewal past when it was due, µs (the runtime
    /// running the keeper late, not etcd answering late).
    pub lease_renew_max_late_us: u64,
}

impl StatsHandle {
    /// Reads the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let s = &self.0;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let lease = s.lease.snapshot();
        StatsSnapshot {
            registrations: get(&s.registrations),
            items_started: get(&s.items_started),
            items_finished: get(&s.items_finished),
            results_recorded: get(&s.results_recorded),
            batches_written: get(&s.batches_written),
            results_dropped: get(&s.results_dropped),
            items_cancelled: get(&s.items_cancelled),
            self_fences: get(&s.self_fences),
            lease_renewals: lease.renewals,
            lease_renew_failures: lease.failures,
            lease_renew_max_round_trip_us: lease.max_round_trip_us,
            lease_renew_max_late_us: lease.max_late_us,
        }
    }
}
