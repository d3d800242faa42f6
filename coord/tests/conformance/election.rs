//! Leader election and leader fencing.

use crate::backend::Backend;
use crate::support::{put, SOON};
use futures::stream::BoxStream;
use futures::StreamExt;
use nightshift_coord::election::Election;
use nightshift_coord::{CoordError, KeyValue, Txn};
use std::time::Duration;

const PREFIX: &str = "/nightshift/leader/";

pub async fn first_campaigner_leads_second_waits(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    let election = Election::new(c.clone(), PREFIX);
    let (l1, l2) = (
        c.grant_lease(Duration::from_secs(30)).await?,
        c.grant_lease(Duration::from_secs(30)).await?,
    );
    let first = election.campaign(b"one".to_vec(), l1).await?;
    assert_eq!(first.key(), election.candidate_key(l1));

    let second = tokio::spawn({
        let election = election.clone();
        async move { election.campaign(b"two".to_vec(), l2).await }
    });
    // The second candidacy is visible but not leading.
    nightshift_testkit::wait::wait_for(SOON, "second candidate registered", || async {
        c.get(&election.candidate_key(l2))
            .await
            .map(|kv| kv.is_some())
            .unwrap_or(false)
    })
    .await?;
    assert!(
        !second.is_finished(),
        "second campaigner elected while the first leads"
    );
    assert_eq!(
        election.leader().await?.map(|kv| kv.value),
        Some(b"one".to_vec())
    );
    assert!(first.is_current().await?);

    // Campaigning again with the same lease reuses the candidacy.
    let again = election.campaign(b"one".to_vec(), l1).await?;
    assert_eq!(again.create_revision(), first.create_revision());
    second.abort();
    Ok(())
}

pub async fn revoked_leader_is_replaced_and_its_fenced_writes_fail(
    b: &dyn Backend,
) -> anyhow::Result<()> {
    let c = b.coord();
    let election = Election::new(c.clone(), PREFIX);
    let (l1, l2) = (
        c.grant_lease(Duration::from_secs(30)).await?,
        c.grant_lease(Duration::from_secs(30)).await?,
    );
    let old = election.campaign(b"one".to_vec(), l1).await?;
    let fenced = |leader: &nightshift_coord::election::Leadership, value: &str| Txn {
        compares: vec![leader.fence()],
        success: vec![put("/run/state", value)],
        failure: vec![],
    };
    assert!(
        c.txn(fenced(&old, "by-old")).await?.succeeded,
        "the leader's fenced write failed"
    );

    let second = tokio::spawn({
        let election = election.clone();
        async move { election.campaign(b"two".to_vec(), l2).await }
    });
    let lost = tokio::spawn({
        let old = old.clone();
        async move { old.lost().await }
    });
    c.revoke_lease(l1).await?;

    let new = tokio::time::timeout(SOON, second).await???;
    assert_eq!(new.key(), election.candidate_key(l2));
    tokio::time::timeout(SOON, lost).await???;
    assert!(!old.is_current().await?);

    // The deposed leader's writes fail; the new leader's succeed.
    assert!(
        !c.txn(fenced(&old, "by-deposed")).await?.succeeded,
        "deposed leader wrote"
    );
    assert!(!old.proclaim(b"still me".to_vec()).await?);
    assert!(c.txn(fenced(&new, "by-new")).await?.succeeded);
    assert_eq!(c.get("/run/state").await?.expect("state").value, b"by-new");
    Ok(())
}

pub async fn resign_hands_over_and_observe_reports_it(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    let election = Election::new(c.clone(), PREFIX);
    let mut observed = election.observe().await?;
    assert_eq!(
        next(&mut observed).await,
        Some(Ok(None)),
        "no leader before any campaign"
    );

    let (l1, l2) = (
        c.grant_lease(Duration::from_secs(30)).await?,
        c.grant_lease(Duration::from_secs(30)).await?,
    );
    let first = election.campaign(b"one".to_vec(), l1).await?;
    let leader = next(&mut observed)
        .await
        .expect("leader change")?
        .expect("a leader");
    assert_eq!(leader.value, b"one");

    let second = tokio::spawn({
        let election = election.clone();
        async move { election.campaign(b"two".to_vec(), l2).await }
    });
    // Resign only once the second candidate waits, so the leader passes
    // straight from one to two (otherwise "no leader" would come between).
    nightshift_testkit::wait::wait_for(SOON, "second candidate registered", || async {
        c.get(&election.candidate_key(l2))
            .await
            .map(|kv| kv.is_some())
            .unwrap_or(false)
    })
    .await?;
    first.resign().await?;
    let new = tokio::time::timeout(SOON, second).await???;
    assert!(new.is_current().await?);
    let leader = next(&mut observed)
        .await
        .expect("leader change")?
        .expect("a leader");
    assert_eq!(
        (leader.key.as_str(), leader.value.as_slice()),
        (new.key(), &b"two"[..])
    );
    // The lease outlives the resignation; only the leader key went.
    assert!(c.lease_time_to_live(l1).await?.is_some());
    Ok(())
}

type Observed = BoxStream<'static, Result<Option<KeyValue>, CoordError>>;

async fn next(observed: &mut Observed) -> Option<Result<Option<KeyValue>, CoordError>> {
    tokio::time::timeout(SOON, observed.next())
        .await
        .ok()
        .flatten()
}
