//! Leases: expiry, revocation, keep-alive, and the `LeaseKeeper`.

use crate::backend::Backend;
use crate::support::{describe, next_event, SOON};
use nightshift_coord::lease::{LeaseKeeper, LeaseStatus};
use nightshift_coord::CoordError;
use nightshift_testkit::wait::wait_for;
use std::time::Duration;

pub async fn lease_expiry_deletes_keys_and_watchers_see_it(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    let lease = c.grant_lease(Duration::from_secs(1)).await?;
    c.put("/exp/a", b"1".to_vec(), Some(lease)).await?;
    c.put("/exp/b", b"2".to_vec(), Some(lease)).await?;
    c.put("/exp/keep", b"3".to_vec(), None).await?;
    let mut watch = c.watch_prefix("/exp/", None).await?;

    wait_for(SOON, "leased keys deleted by expiry", || async {
        c.get_prefix("/exp/")
            .await
            .map(|(kvs, _)| kvs.len() == 1)
            .unwrap_or(false)
    })
    .await?;
    assert!(
        c.get("/exp/keep").await?.is_some(),
        "a key without lease was deleted"
    );
    assert_eq!(c.lease_time_to_live(lease).await?, None);

    let first = next_event(&mut watch).await?;
    let second = next_event(&mut watch).await?;
    let mut seen = vec![describe(&first), describe(&second)];
    seen.sort();
    assert_eq!(
        seen,
        [
            ("delete", "/exp/a".into(), vec![]),
            ("delete", "/exp/b".into(), vec![])
        ]
    );
    assert_eq!(
        first.revision(),
        second.revision(),
        "one lease expiry must be one revision"
    );
    Ok(())
}

pub async fn revoke_deletes_keys_at_once(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    let lease = c.grant_lease(Duration::from_secs(60)).await?;
    let ttl = c.lease_time_to_live(lease).await?.expect("fresh lease");
    assert!(
        ttl > Duration::from_secs(50) && ttl <= Duration::from_secs(60),
        "ttl {ttl:?}"
    );
    c.put("/rev/a", b"1".to_vec(), Some(lease)).await?;
    c.revoke_lease(lease).await?;
    // No waiting: the keys are gone when revoke returns.
    assert_eq!(c.get("/rev/a").await?, None);
    assert_eq!(c.lease_time_to_live(lease).await?, None);
    assert_eq!(
        c.revoke_lease(lease).await,
        Err(CoordError::LeaseNotFound(lease))
    );
    Ok(())
}

pub async fn keep_alive_of_expired_lease_is_lease_not_found(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    let lease = c.grant_lease(Duration::from_secs(1)).await?;
    let renewed = c.keep_alive(lease).await?;
    assert!(renewed >= Duration::from_secs(1), "renewed for {renewed:?}");
    wait_for(SOON, "lease expired", || async {
        matches!(c.lease_time_to_live(lease).await, Ok(None))
    })
    .await?;
    assert_eq!(
        c.keep_alive(lease).await,
        Err(CoordError::LeaseNotFound(lease))
    );
    Ok(())
}

pub async fn lease_keeper_keeps_lease_alive_then_reports_lost(
    b: &dyn Backend,
) -> anyhow::Result<()> {
    let c = b.coord();
    let keeper = LeaseKeeper::grant(c.clone(), Duration::from_secs(2)).await?;
    let lease = keeper.lease();
    c.put("/keeper/k", b"v".to_vec(), Some(lease)).await?;
    let mut status = keeper.status();
    assert!(matches!(*status.borrow(), LeaseStatus::Alive { .. }));

    // Outlive the TTL well: the key must survive thanks to the keeper, and
    // the status must stay Alive with a deadline in the future throughout.
    let until = tokio::time::Instant::now() + Duration::from_millis(3_500);
    while tokio::time::Instant::now() < until {
        let _ = tokio::time::timeout_at(until, status.changed()).await;
        match *status.borrow_and_update() {
            LeaseStatus::Alive { confirmed_until } => {
                assert!(
                    confirmed_until > tokio::time::Instant::now(),
                    "alive with a past deadline"
                )
            }
            other => panic!("keeper reported {other:?} while etcd was healthy"),
        }
    }
    assert!(
        c.get("/keeper/k").await?.is_some(),
        "kept lease's key vanished"
    );

    // Revoke underneath the keeper: its next renewal finds no lease.
    c.revoke_lease(lease).await?;
    wait_for(SOON, "keeper reports Lost", || {
        let status = status.clone();
        async move { *status.borrow() == LeaseStatus::Lost }
    })
    .await?;
    Ok(())
}
