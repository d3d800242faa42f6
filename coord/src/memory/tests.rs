//! Tests specific to the in-process backend: exact timing under tokio's
//! paused clock, automatic history compaction, and a property test that the
//! event history always replays to the current state. Behaviour shared with
//! etcd is covered by the conformance suite in `coord/tests/conformance`.

use super::*;
use crate::api::{Compare, TxnOp};
use proptest::prelude::*;
use std::collections::BTreeMap;

#[tokio::test(start_paused = true)]
async fn lease_expires_exactly_at_ttl_in_virtual_time() {
    let coord = MemoryCoordinator::new();
    let lease = coord.grant_lease(Duration::from_secs(2)).await.unwrap();
    coord.put("k", b"v".to_vec(), Some(lease)).await.unwrap();

    tokio::time::advance(Duration::from_millis(1_999)).await;
    assert!(
        coord.get("k").await.unwrap().is_some(),
        "key gone before the ttl"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(
        coord.get("k").await.unwrap().is_none(),
        "key still there at the ttl"
    );
    assert_eq!(
        coord.keep_alive(lease).await,
        Err(CoordError::LeaseNotFound(lease))
    );
}

#[tokio::test(start_paused = true)]
async fn reaper_publishes_expiry_without_any_call() {
    let coord = MemoryCoordinator::new();
    let lease = coord.grant_lease(Duration::from_secs(5)).await.unwrap();
    let rev = coord.put("k", b"v".to_vec(), Some(lease)).await.unwrap();
    let mut watch = coord.watch_prefix("k", None).await.unwrap();
    let start = Instant::now();
    // Nothing else runs: the paused clock jumps to the reaper's deadline.
    let event = watch.next().await.unwrap().unwrap();
    assert_eq!(
        event,
        WatchEvent::Delete {
            key: "k".into(),
            mod_revision: rev + 1
        }
    );
    assert_eq!(Instant::now() - start, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn keep_alive_restarts_the_ttl() {
    let coord = MemoryCoordinator::new();
    let lease = coord
        .grant_lease(Duration::from_millis(1_500))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_millis(1_500)).await;
    // TTLs are whole seconds, like etcd: 1.5 s was granted as 2 s.
    assert_eq!(
        coord.keep_alive(lease).await.unwrap(),
        Duration::from_secs(2)
    );
    tokio::time::advance(Duration::from_millis(1_900)).await;
    assert_eq!(
        coord.lease_time_to_live(lease).await.unwrap(),
        Some(Duration::from_millis(100))
    );
}

#[tokio::test]
async fn history_limit_compacts_old_revisions_into_a_resync() {
    let coord = MemoryCoordinator::with_history_limit(3);
    let first = coord.put("p/a", b"1".to_vec(), None).await.unwrap();
    for i in 0..5 {
        coord.put("p/b", vec![i], None).await.unwrap();
    }
    assert!(coord.compacted_revision() > first);
    let mut watch = coord.watch_prefix("p/", Some(first)).await.unwrap();
    match watch.next().await.unwrap().unwrap() {
        WatchEvent::Resync { kvs, revision } => {
            assert_eq!(revision, coord.current_revision().await.unwrap());
            assert_eq!(
                kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(),
                ["p/a", "p/b"]
            );
        }
        other => panic!("expected a resync, got {other:?}"),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Delete(u8),
    DeletePrefix,
    PutIfAbsent(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6u8, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        (0..6u8).prop_map(Op::Delete),
        Just(Op::DeletePrefix),
        (0..6u8, any::<u8>()).prop_map(|(k, v)| Op::PutIfAbsent(k, v)),
    ]
}

fn key(k: u8) -> String {
    format!("p/{}/{k}", k % 2)
}

proptest! {
    /// Replaying the watch history from revision 1 rebuilds exactly the
    /// current store, and the revision grows by exactly one per write that
    /// changes something (none for a no-op delete or a failed txn).
    #[test]
    fn history_replays_to_current_state(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let coord = MemoryCoordinator::new();
            let mut expected_rev = coord.current_revision().await.unwrap();
            for op in ops {
                let changed = match op {
                    Op::Put(k, v) => { coord.put(&key(k), vec![v], None).await.unwrap(); true }
                    Op::Delete(k) => coord.delete(&key(k)).await.unwrap() > 0,
                    Op::DeletePrefix => coord.delete_prefix("p/1/").await.unwrap() > 0,
                    Op::PutIfAbsent(k, v) => {
                        let put = TxnOp::Put { key: key(k), value: vec![v], lease: None };
                        let txn = Txn { compares: vec![Compare::absent(key(k))], success: vec![put], failure: vec![] };
                        coord.txn(txn).await.unwrap().succeeded
                    }
                };
                expected_rev += i64::from(changed);
                prop_assert_eq!(coord.current_revision().await.unwrap(), expected_rev);
            }
            let (now, _) = coord.get_prefix("p/").await.unwrap();
            let mut watch = coord.watch_prefix("p/", Some(1)).await.unwrap();
            let mut replayed: BTreeMap<String, KeyValue> = BTreeMap::new();
            let mut last = 0;
            // The whole history is queued when the watch is created.
            while let Some(Ok(event)) = futures::FutureExt::now_or_never(watch.next()).flatten() {
                prop_assert!(event.revision() >= last, "history out of order");
                last = event.revision();
                match event {
                    WatchEvent::Put(kv) => { replayed.insert(kv.key.clone(), kv); }
                    WatchEvent::Delete { key, .. } => { replayed.remove(&key); }
                    WatchEvent::Resync { .. } => prop_assert!(false, "unexpected resync"),
                }
            }
            prop_assert_eq!(replayed.into_values().collect::<Vec<_>>(), now);
            Ok(())
        })?;
    }
}

proptest! {
    /// A page read pinned to any past revision still kept answers exactly
    /// what a whole-prefix read answered at that revision, for every page
    /// size; one below the compaction is `Compacted`.
    #[test]
    fn pinned_pages_see_the_past_exactly(
        ops in proptest::collection::vec(op(), 1..40),
        limit in 1..5usize,
        history in 1..30usize,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let coord = MemoryCoordinator::with_history_limit(history);
            let mut snapshots = vec![coord.get_prefix("p/").await.unwrap()];
            for op in ops {
                match op {
                    Op::Put(k, v) => { coord.put(&key(k), vec![v], None).await.unwrap(); }
                    Op::Delete(k) => { coord.delete(&key(k)).await.unwrap(); }
                    Op::DeletePrefix => { coord.delete_prefix("p/1/").await.unwrap(); }
                    Op::PutIfAbsent(k, v) => {
                        let put = TxnOp::Put { key: key(k), value: vec![v], lease: None };
                        let txn = Txn { compares: vec![Compare::absent(key(k))], success: vec![put], failure: vec![] };
                        coord.txn(txn).await.unwrap();
                    }
                }
                snapshots.push(coord.get_prefix("p/").await.unwrap());
            }
            let compacted = coord.compacted_revision();
            for (then, revision) in snapshots {
                let mut seen = Vec::new();
                let result = loop {
                    let after = seen.last().map(|kv: &KeyValue| kv.key.clone());
                    match coord.get_prefix_page("p/", after.as_deref(), limit, Some(revision)).await {
                        Ok(page) => {
                            prop_assert!(page.kvs.len() <= limit);
                            prop_assert_eq!(page.revision, revision);
                            seen.extend(page.kvs);
                            if !page.more { break Ok(seen); }
                        }
                        Err(e) => break Err(e),
                    }
                };
                if revision < compacted {
                    prop_assert!(matches!(result, Err(CoordError::Compacted { .. })), "{result:?}");
                } else {
                    prop_assert_eq!(result, Ok(then));
                }
            }
            Ok(())
        })?;
    }
}
