//! The etcd backend on a 3-member cluster losing one member (SIGKILL): the
//! client moves to the live members within seconds. After the kill every
//! request succeeds (none is sent to the dead member and failed back to the
//! caller), a watch delivers every later write exactly once, and a lease
//! kept by a [`LeaseKeeper`] never stops being `Alive`.
//!
//! Real etcd processes with etcd's default raft timing
//! (`testkit::etcd::EtcdCluster`). `tests/etcd_member_loss.rs` at the
//! workspace root measures the same on whole runs of real processes.

use futures::StreamExt;
use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_coord::lease::{LeaseKeeper, LeaseStatus};
use nightshift_coord::{Compare, Coordinator, Txn, TxnOp, WatchEvent};
use nightshift_testkit::etcd::EtcdCluster;
use nightshift_testkit::wait::wait_for;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Requests made one after the other once the cluster is usable again.
const REQUESTS: usize = 40;

#[derive(Debug, Clone, Copy)]
enum Victim {
    Leader,
    Follower,
}

async fn lose_one_member(victim: Victim) {
    let cluster = EtcdCluster::start(3).await.unwrap();
    let coord: Arc<dyn Coordinator> = Arc::new(
        EtcdCoordinator::connect(EtcdConfig::new(cluster.endpoints()))
            .await
            .unwrap(),
    );
    let keeper = LeaseKeeper::grant(coord.clone(), Duration::from_secs(10))
        .await
        .unwrap();
    // Records whether the lease ever stopped being Alive.
    let mut status = keeper.status();
    let left_alive = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let left_alive = left_alive.clone();
        tokio::spawn(async move {
            while status.changed().await.is_ok() {
                if !matches!(*status.borrow_and_update(), LeaseStatus::Alive { .. }) {
                    left_alive.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
        })
    };
    let mut events = coord.watch_prefix("/ml/", None).await.unwrap();
    coord.put("/ml/before", b"x".to_vec(), None).await.unwrap();
    match events.next().await {
        Some(Ok(WatchEvent::Put(kv))) => assert_eq!(kv.key, "/ml/before"),
        other => panic!("expected the put, got {other:?}"),
    }

    let member = match victim {
        Victim::Leader => cluster.wait_leader(Duration::from_secs(10)).await.unwrap(),
        Victim::Follower => cluster.followers().await[0],
    };
    let killed = Instant::now();
    cluster.kill(member);

    // The cluster is usable again once the survivors have a leader (about
    // etcd's election timeout after a leader's death; at once otherwise).
    wait_for(
        Duration::from_secs(10),
        "a write succeeds again",
        || async { coord.put("/ml/probe", b"p".to_vec(), None).await.is_ok() },
    )
    .await
    .unwrap();
    let usable = killed.elapsed();
    assert!(
        usable < Duration::from_secs(4),
        "{victim:?}: the first write succeeded only {usable:?} after the kill"
    );

    // From then on nothing fails: a request the balancer hands to the dead
    // member is retried on a live one instead of failing.
    for i in 0..REQUESTS {
        let key = format!("/ml/k{i:03}");
        coord.put(&key, vec![1], None).await.unwrap();
        assert!(coord.get(&key).await.unwrap().is_some());
        let resp = coord
            .txn(Txn {
                compares: vec![Compare::absent(format!("{key}-t"))],
                success: vec![TxnOp::Put {
                    key: format!("{key}-t"),
                    value: vec![2],
                    lease: Some(keeper.lease()),
                }],
                failure: vec![],
            })
            .await
            .unwrap();
        assert!(resp.succeeded);
        coord.keep_alive(keeper.lease()).await.unwrap();
    }

    // The watch, wherever its stream was, delivers every write after the
    // kill, once and in order.
    let mut seen = Vec::new();
    while seen.len() < 2 * REQUESTS {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("watch stalled")
            .expect("watch ended")
            .unwrap();
        if let WatchEvent::Put(kv) = event {
            if kv.key.starts_with("/ml/k") {
                seen.push(kv.key);
            }
        }
    }
    let expected: Vec<String> = (0..REQUESTS)
        .flat_map(|i| [format!("/ml/k{i:03}"), format!("/ml/k{i:03}-t")])
        .collect();
    assert_eq!(seen, expected);

    // The lease never left Alive: renewals moved to a live member in time.
    assert!(
        matches!(*keeper.status().borrow(), LeaseStatus::Alive { .. }),
        "{:?}",
        *keeper.status().borrow()
    );
    assert!(
        !left_alive.load(std::sync::atomic::Ordering::SeqCst),
        "{victim:?}: the lease status left Alive"
    );
    watcher.abort();
    eprintln!("{victim:?} killed: usable again after {usable:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_watches_and_leases_move_on_when_the_leader_member_dies() {
    lose_one_member(Victim::Leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_watches_and_leases_move_on_when_a_follower_member_dies() {
    lose_one_member(Victim::Follower).await;
}
