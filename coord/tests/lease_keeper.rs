//! `LeaseKeeper` timing in virtual time: the in-process backend behind a
//! wrapper that can make renewals fail or answer late, under
//! `tokio::time::pause()`, so the self-fencing deadlines are checked to the
//! millisecond.

use async_trait::async_trait;
use nightshift_coord::lease::{LeaseKeeper, LeaseStatus};
use nightshift_coord::memory::MemoryCoordinator;
use nightshift_coord::{CoordError, Coordinator, Decorated, Intercept, LeaseId};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Delegates to a `MemoryCoordinator`; renewals can be made to fail or to
/// take a while.
#[derive(Default)]
struct Flaky {
    inner: MemoryCoordinator,
    fail_renewals: AtomicBool,
    renewal_delay_ms: AtomicU64,
    renewals: AtomicU64,
}

#[async_trait]
impl Intercept for Flaky {
    fn inner(&self) -> &dyn Coordinator {
        &self.inner
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, CoordError> {
        self.renewals.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(
            self.renewal_delay_ms.load(Ordering::SeqCst),
        ))
        .await;
        if self.fail_renewals.load(Ordering::SeqCst) {
            return Err(CoordError::Unavailable("injected".into()));
        }
        self.inner.keep_alive(lease).await
    }
}

const TTL: Duration = Duration::from_secs(3);

/// Waits (in virtual time) for the next status change; returns the new
/// status and when it happened.
async fn next_status(rx: &mut tokio::sync::watch::Receiver<LeaseStatus>) -> (LeaseStatus, Instant) {
    rx.changed().await.expect("keeper dropped its status");
    (*rx.borrow_and_update(), Instant::now())
}

#[tokio::test(start_paused = true)]
async fn failing_renewals_lead_to_expiring_at_two_thirds_then_lost_at_ttl() {
    let flaky = Arc::new(Decorated::new(Flaky::default()));
    let t0 = Instant::now();
    let keeper = LeaseKeeper::grant(flaky.clone(), TTL).await.unwrap();
    let mut status = keeper.status();
    assert_eq!(
        *status.borrow_and_update(),
        LeaseStatus::Alive {
            confirmed_until: t0 + TTL
        }
    );

    flaky.fail_renewals.store(true, Ordering::SeqCst);
    let (s, at) = next_status(&mut status).await;
    assert_eq!(
        (s, at - t0),
        (LeaseStatus::Expiring, Duration::from_secs(2)),
        "expiring must start at 2/3 ttl"
    );
    let (s, at) = next_status(&mut status).await;
    assert_eq!(
        (s, at - t0),
        (LeaseStatus::Lost, TTL),
        "lost exactly at the ttl"
    );
    // Failed renewals are retried at most ttl/6 apart: at 1 s, then after
    // 200, 400, 500, 500 ms; the next would be past the ttl.
    assert!(
        flaky.renewals.load(Ordering::SeqCst) >= 5,
        "too few retries: {}",
        flaky.renewals.load(Ordering::SeqCst)
    );
}

#[tokio::test(start_paused = true)]
async fn renewals_recover_from_expiring_back_to_alive() {
    let flaky = Arc::new(Decorated::new(Flaky::default()));
    let keeper = LeaseKeeper::grant(flaky.clone(), TTL).await.unwrap();
    let mut status = keeper.status();
    flaky.fail_renewals.store(true, Ordering::SeqCst);
    loop {
        if next_status(&mut status).await.0 == LeaseStatus::Expiring {
            break;
        }
    }
    flaky.fail_renewals.store(false, Ordering::SeqCst);
    let (s, _) = next_status(&mut status).await;
    assert!(matches!(s, LeaseStatus::Alive { .. }), "got {s:?}");
}

#[tokio::test(start_paused = true)]
async fn confirmed_until_counts_from_when_the_renewal_was_sent() {
    let flaky = Arc::new(Decorated::new(Flaky::default()));
    flaky.renewal_delay_ms.store(400, Ordering::SeqCst);
    let keeper = LeaseKeeper::start(
        flaky.clone(),
        flaky.inner.grant_lease(TTL).await.unwrap(),
        TTL,
    );
    let mut status = keeper.status();
    let sent = Instant::now();
    assert_eq!(
        *status.borrow_and_update(),
        LeaseStatus::Expiring,
        "unconfirmed lease reported alive"
    );
    let (s, answered) = next_status(&mut status).await;
    assert_eq!(answered - sent, Duration::from_millis(400));
    // Measured from the send, not from the (later) answer.
    assert_eq!(
        s,
        LeaseStatus::Alive {
            confirmed_until: sent + TTL
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_renewal_does_not_delay_the_status() {
    let flaky = Arc::new(Decorated::new(Flaky::default()));
    let t0 = Instant::now();
    let keeper = LeaseKeeper::grant(flaky.clone(), TTL).await.unwrap();
    // Every renewal from now on takes longer than the whole lease.
    flaky.renewal_delay_ms.store(60_000, Ordering::SeqCst);
    let mut status = keeper.status();
    let (s, at) = next_status(&mut status).await;
    assert_eq!(
        (s, at - t0),
        (LeaseStatus::Expiring, Duration::from_secs(2))
    );
    let (s, at) = next_status(&mut status).await;
    assert_eq!((s, at - t0), (LeaseStatus::Lost, TTL));
}

#[tokio::test(start_paused = true)]
async fn revoked_lease_is_lost_at_the_next_renewal_and_revoke_deletes_keys() {
    let flaky = Arc::new(Decorated::new(Flaky::default()));
    let keeper = LeaseKeeper::grant(flaky.clone(), TTL).await.unwrap();
    flaky
        .put("k", b"v".to_vec(), Some(keeper.lease()))
        .await
        .unwrap();
    let mut status = keeper.status();
    flaky.revoke_lease(keeper.lease()).await.unwrap();
    let t0 = Instant::now();
    loop {
        let (s, at) = next_status(&mut status).await;
        if s == LeaseStatus::Lost {
            assert!(at - t0 <= TTL / 3, "lost noticed only after {:?}", at - t0);
            break;
        }
    }

    let keeper = LeaseKeeper::grant(flaky.clone(), TTL).await.unwrap();
    flaky
        .put("k2", b"v".to_vec(), Some(keeper.lease()))
        .await
        .unwrap();
    let status = keeper.status();
    keeper.revoke().await.unwrap();
    assert_eq!(*status.borrow(), LeaseStatus::Lost);
    assert_eq!(flaky.get("k2").await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn renewals_slower_than_a_third_of_the_ttl_keep_the_lease_alive() {
    // Each answer takes 40 % of the TTL: waiting for it before sending the
    // next renewal (sent at TTL/3, answered at 73 % of the TTL) would pass
    // the 2/3 mark and self-fence. Renewals sent every TTL/4 regardless of
    // the one in flight keep the lease confirmed throughout.
    let flaky = Arc::new(Decorated::new(Flaky::default()));
    let keeper = LeaseKeeper::grant(flaky.clone(), TTL).await.unwrap();
    flaky
        .renewal_delay_ms
        .store(TTL.as_millis() as u64 * 2 / 5, Ordering::SeqCst);
    let mut status = keeper.status();
    let watched = async {
        loop {
            let (s, at) = next_status(&mut status).await;
            assert!(
                matches!(s, LeaseStatus::Alive { .. }),
                "left Alive at {at:?}: {s:?}"
            );
        }
    };
    let _ = tokio::time::timeout(TTL * 5, watched).await;
    assert!(matches!(*status.borrow(), LeaseStatus::Alive { .. }));
    assert!(flaky.renewals.load(Ordering::SeqCst) >= 15);
}
