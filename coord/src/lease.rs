//! Lease keep-alive supervision, written once over `Arc<dyn Coordinator>`.
//!
//! A [`LeaseKeeper`] renews a lease every TTL/4 and publishes a
//! [`LeaseStatus`] that holders (executors, the scheduler leader) use to
//! **self-fence**: stop writing before the lease could have expired.
//!
//! # The guarantee
//!
//! `confirmed_until` is computed from the instant a renewal request was
//! **sent** (before it left this process) plus the TTL etcd answered with.
//! etcd starts the new TTL only when it processes the request, which is later,
//! and never shortens a lease (a leader change only extends it). Therefore:
//!
//! > if the local monotonic clock and etcd's clock advance at rates differing
//! > by less than ε, the lease cannot expire on the server before
//! > `confirmed_until − ε·TTL` local time.
//!
//! Status leaves `Alive` (becomes `Expiring`) TTL/3 before `confirmed_until`,
//! i.e. once no renewal has succeeded for 2/3 of the TTL. A holder that stops
//! starting writes as soon as the status leaves `Alive` therefore never
//! starts a write after its lease could have expired, with TTL/3 to spare for
//! writes already in flight and for clock drift. Writes still in flight are
//! caught by the fenced txn (the lease-bound key they compare is gone once
//! the lease ends) — self-fencing narrows the window, fencing closes it.
//!
//! `Expiring` is not terminal: a later successful renewal makes the lease
//! `Alive` again (it never expired). `Lost` is terminal: the lease is gone
//! (the server said "not found") or its TTL passed without a confirmed
//! renewal; the keeper stops.
//!
//! Renewal timing: renew every TTL/4 from the last send, **without waiting
//! for a slow answer** (up to three renewals in flight): a renewal etcd
//! answers late — queued behind its apply backlog, which it waits for
//! before renewing — still confirms the lease from its send time, so one
//! answered within 5/12 of the TTL keeps the holder writing. Waiting for
//! each answer before sending the next (or abandoning it at the request
//! deadline and sending another behind it) made every answer slower than
//! 2 s self-fence 1,000-executor fleets (BENCHMARKS.md, "Fleet"). After a
//! failure retry after 200 ms, doubling, capped at TTL/6, so several
//! retries fit before `Expiring`. Status changes are published on time
//! even while renewals hang.

use crate::api::{CoordError, Coordinator, LeaseId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const RETRY_START: Duration = Duration::from_millis(200);
/// Renewals sent per TTL. Status leaves `Alive` 2/3 of a TTL after the last
/// confirmed send, so a renewal sent every TTL/4 may take up to 5/12 of the
/// TTL (4.2 s of a 10 s lease) to be answered without the holder
/// self-fencing; at TTL/3 it could take only 1/3.
const RENEWALS_PER_TTL: u32 = 4;
/// Renewals in flight at most (a stalled etcd is not sent an ever-growing
/// queue of them).
const MAX_IN_FLIGHT: usize = 3;

/// What a lease holder may do right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    /// The lease is certainly alive until `confirmed_until` (local monotonic
    /// time); writing is safe.
    Alive {
        /// Conservative end of the lease: renewal send time + TTL.
        confirmed_until: Instant,
    },
    /// No renewal confirmed for more than 2/3 of the TTL (or none yet):
    /// holders must stop writing now. May return to `Alive`.
    Expiring,
    /// The lease is gone or may be; terminal. Holders must consider
    /// everything attached to it lost.
    Lost,
}

/// What a keeper observed of its renewals, for benchmarks and operators
/// (relaxed atomics: observations, never used to decide anything). One
/// value may be shared by the successive keepers of a holder.
#[derive(Debug, Default)]
pub struct RenewalStats {
    renewals: AtomicU64,
    failures: AtomicU64,
    max_round_trip_us: AtomicU64,
    max_late_us: AtomicU64,
}

/// A copy of [`RenewalStats`] at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenewalSnapshot {
    /// Renewals etcd confirmed.
    pub renewals: u64,
    /// Renewal calls that failed (each retried).
    pub failures: u64,
    /// Longest time from sending a renewal to its confirmation, µs.
    pub max_round_trip_us: u64,
    /// Longest delay between when a renewal was due and when it was sent,
    /// µs: how late the keeper's task ran (a busy runtime), not etcd.
    pub max_late_us: u64,
}

impl RenewalStats {
    /// Reads the counters.
    pub fn snapshot(&self) -> RenewalSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RenewalSnapshot {
            renewals: get(&self.renewals),
            failures: get(&self.failures),
            max_round_trip_us: get(&self.max_round_trip_us),
            max_late_us: get(&self.max_late_us),
        }
    }

    fn micros(d: Duration) -> u64 {
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
    }
}

/// Keeps one lease alive in a background task. Dropping the keeper is
/// [`stop`](Self::stop): renewals end, the status becomes `Lost`, and the
/// lease expires after its TTL.
pub struct LeaseKeeper {
    coord: Arc<dyn Coordinator>,
    lease: LeaseId,
    status_tx: Arc<watch::Sender<LeaseStatus>>,
    status_rx: watch::Receiver<LeaseStatus>,
    task: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Grants a lease of `ttl` and keeps it alive. The status starts `Alive`,
    /// confirmed until the grant request's send time + `ttl` (etcd may grant
    /// more, never less).
    pub async fn grant(
        coord: Arc<dyn Coordinator>,
        ttl: Duration,
    ) -> Result<LeaseKeeper, CoordError> {
        Self::grant_observed(coord, ttl, Arc::default()).await
    }

    /// [`grant`](Self::grant), recording what the renewals observe in
    /// `stats` (e.g. shared by every registration of one executor).
    pub async fn grant_observed(
        coord: Arc<dyn Coordinator>,
        ttl: Duration,
        stats: Arc<RenewalStats>,
    ) -> Result<LeaseKeeper, CoordError> {
        let sent = Instant::now();
        let lease = coord.grant_lease(ttl).await?;
        Ok(Self::spawn(coord, lease, ttl, Some(sent + ttl), stats))
    }

    /// Keeps an existing lease alive. Nothing is known about it yet, so the
    /// status starts `Expiring` and becomes `Alive` after the first renewal,
    /// which is sent at once (or `Lost` if the lease no longer exists).
    /// Prefer [`grant`](Self::grant) for a new lease.
    pub fn start(coord: Arc<dyn Coordinator>, lease: LeaseId, ttl: Duration) -> LeaseKeeper {
        Self::spawn(coord, lease, ttl, None, Arc::default())
    }

    fn spawn(
        coord: Arc<dyn Coordinator>,
        lease: LeaseId,
        ttl: Duration,
        confirmed: Option<Instant>,
        stats: Arc<RenewalStats>,
    ) -> LeaseKeeper {
        let tracker = Tracker {
            confirmed_until: confirmed,
            ttl,
        };
        let (tx, rx) = watch::channel(tracker.status_at(Instant::now()));
        let status_tx = Arc::new(tx);
        let task = tokio::spawn(keep(
            coord.clone(),
            lease,
            tracker,
            status_tx.clone(),
            stats,
        ));
        LeaseKeeper {
            coord,
            lease,
            status_tx,
            status_rx: rx,
            task,
        }
    }

    /// The lease being kept.
    pub fn lease(&self) -> LeaseId {
        self.lease
    }

    /// The current status and its changes.
    pub fn status(&self) -> watch::Receiver<LeaseStatus> {
        self.status_rx.clone()
    }

    /// Stops renewing. The status becomes `Lost`: nobody vouches for the
    /// lease any more (it lives on in etcd until its TTL passes).
    pub fn stop(&self) {
        self.task.abort();
        self.status_tx.send_replace(LeaseStatus::Lost);
    }

    /// Stops renewing and revokes the lease, deleting its keys at once. A
    /// lease that already expired counts as revoked.
    pub async fn revoke(self) -> Result<(), CoordError> {
        self.stop();
        match self.coord.revoke_lease(self.lease).await {
            Ok(()) | Err(CoordError::LeaseNotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        // Same as stop(): holders still watching the status must not go on
        // believing a lease nobody renews any more.
        self.stop();
    }
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper")
            .field("lease", &self.lease)
            .field("status", &*self.status_rx.borrow())
            .finish()
    }
}

/// The deadline arithmetic, separate from the I/O so it is easy to check.
#[derive(Debug, Clone, Copy)]
struct Tracker {
    confirmed_until: Option<Instant>,
    ttl: Duration,
}

impl Tracker {
    fn expiring_at(&self, confirmed_until: Instant) -> Instant {
        confirmed_until
            .checked_sub(self.ttl / 3)
            .unwrap_or(confirmed_until)
    }

    fn status_at(&self, now: Instant) -> LeaseStatus {
        match self.confirmed_until {
            None => LeaseStatus::Expiring,
            Some(until) if now >= until => LeaseStatus::Lost,
            Some(until) if now >= self.expiring_at(until) => LeaseStatus::Expiring,
            Some(until) => LeaseStatus::Alive {
                confirmed_until: until,
            },
        }
    }

    /// When the status will next change by the passing of time alone.
    fn next_change(&self, now: Instant) -> Option<Instant> {
        let until = self.confirmed_until?;
        let expiring = self.expiring_at(until);
        if now < expiring {
            Some(expiring)
        } else if now < until {
            Some(until)
        } else {
            None
        }
    }
}

/// Publishes the status if it changed; returns it.
fn publish(tx: &watch::Sender<LeaseStatus>, status: LeaseStatus) -> LeaseStatus {
    tx.send_if_modified(|current| {
        let changed = *current != status;
        *current = status;
        changed
    });
    status
}

async fn keep(
    coord: Arc<dyn Coordinator>,
    lease: LeaseId,
    mut tracker: Tracker,
    tx: Arc<watch::Sender<LeaseStatus>>,
    stats: Arc<RenewalStats>,
) {
    use futures::stream::{FuturesUnordered, StreamExt as _};
    let mut next_renewal = match tracker.confirmed_until {
        Some(_) => Instant::now() + tracker.ttl / RENEWALS_PER_TTL,
        None => Instant::now(),
    };
    let mut retry = RETRY_START;
    // Renewals in flight, each with its send time. A slow answer is not
    // abandoned for a newer request: etcd queues renewals behind its apply
    // backlog, so the pending one is the first to come back, and it still
    // counts from when it was sent.
    let mut pending = FuturesUnordered::new();
    loop {
        let now = Instant::now();
        if publish(&tx, tracker.status_at(now)) == LeaseStatus::Lost {
            tracing::warn!(
                lease = lease.0,
                pending = pending.len(),
                "lease ttl passed without a confirmed renewal"
            );
            return;
        }
        if now >= next_renewal && pending.len() < MAX_IN_FLIGHT {
            stats.max_late_us.fetch_max(
                RenewalStats::micros(now.saturating_duration_since(next_renewal)),
                Ordering::Relaxed,
            );
            let coord = coord.clone();
            pending.push(async move { (now, coord.keep_alive(lease).await) });
            next_renewal = now + tracker.ttl / RENEWALS_PER_TTL;
            continue;
        }
        // Wake for the next send (unless the pipeline is full), the next
        // status change, or an answer.
        let send_at = (pending.len() < MAX_IN_FLIGHT).then_some(next_renewal);
        let wake = match (send_at, tracker.next_change(now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let answer = tokio::select! {
            Some(answer) = pending.next(), if !pending.is_empty() => answer,
            _ = sleep_until_opt(wake) => continue,
        };
        let (sent, result) = answer;
        match result {
            Ok(ttl) => {
                let round_trip = sent.elapsed();
                metrics::histogram!("nightshift_lease_renew_seconds")
                    .record(round_trip.as_secs_f64());
                stats.renewals.fetch_add(1, Ordering::Relaxed);
                stats
                    .max_round_trip_us
                    .fetch_max(RenewalStats::micros(round_trip), Ordering::Relaxed);
                // Answers may arrive out of order: the latest send wins.
                let until = sent + ttl;
                if tracker.confirmed_until.is_none_or(|c| until > c) {
                    tracker = Tracker {
                        confirmed_until: Some(until),
                        ttl,
                    };
                }
                retry = RETRY_START;
            }
            Err(CoordError::LeaseNotFound(_)) => {
                tracing::warn!(lease = lease.0, "lease no longer exists");
                publish(&tx, LeaseStatus::Lost);
                return;
            }
            Err(e) => {
                tracing::warn!(lease = lease.0, error = %e, "lease renewal failed; retrying");
                metrics::counter!("nightshift_lease_renew_errors_total").increment(1);
                stats.failures.fetch_add(1, Ordering::Relaxed);
                let cap = (tracker.ttl / 6).max(Duration::from_millis(1));
                next_renewal = next_renewal.min(Instant::now() + retry.min(cap));
                retry = (retry * 2).min(cap);
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_conservative_deadlines() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(9);
        let tracker = Tracker {
            confirmed_until: Some(t0 + ttl),
            ttl,
        };
        assert_eq!(
            tracker.status_at(t0),
            LeaseStatus::Alive {
                confirmed_until: t0 + ttl
            }
        );
        assert_eq!(
            tracker.status_at(t0 + Duration::from_millis(5_999)),
            LeaseStatus::Alive {
                confirmed_until: t0 + ttl
            }
        );
        assert_eq!(
            tracker.status_at(t0 + Duration::from_secs(6)),
            LeaseStatus::Expiring
        );
        assert_eq!(
            tracker.status_at(t0 + Duration::from_secs(9)),
            LeaseStatus::Lost
        );
        assert_eq!(tracker.next_change(t0), Some(t0 + Duration::from_secs(6)));
        assert_eq!(
            tracker.next_change(t0 + Duration::from_secs(7)),
            Some(t0 + ttl)
        );
        assert_eq!(tracker.next_change(t0 + ttl), None);
        assert_eq!(
            Tracker {
                confirmed_until: None,
                ttl
            }
            .status_at(t0),
            LeaseStatus::Expiring
        );
    }
}
