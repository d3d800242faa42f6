//! Watches: replay from the past, ordering, restarts, compaction.

use crate::backend::Backend;
use crate::support::{describe, next_event, put, SOON};
use nightshift_coord::{Txn, TxnOp, WatchEvent};
use nightshift_testkit::wait::wait_for_value;

pub async fn watch_from_past_revision_replays_missed_events_in_order(
    b: &dyn Backend,
) -> anyhow::Result<()> {
    let c = b.coord();
    c.put("/w/before", b"0".to_vec(), None).await?;
    let from = c.put("/w/a", b"1".to_vec(), None).await?;
    c.put("/w/b", b"2".to_vec(), None).await?;
    c.put("/other/x", b"x".to_vec(), None).await?;
    c.put("/w/a", b"3".to_vec(), None).await?;
    c.delete("/w/b").await?;

    let mut watch = c.watch_prefix("/w/", Some(from)).await?;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next_event(&mut watch).await?);
    }
    let described: Vec<_> = got.iter().map(describe).collect();
    assert_eq!(
        described,
        [
            ("put", "/w/a".into(), b"1".to_vec()),
            ("put", "/w/b".into(), b"2".to_vec()),
            ("put", "/w/a".into(), b"3".to_vec()),
            ("delete", "/w/b".into(), vec![]),
        ]
    );
    assert_eq!(got[0].revision(), from);
    assert!(
        got.windows(2).all(|w| w[0].revision() < w[1].revision()),
        "not in revision order"
    );
    // Replay flows straight into live events.
    let live = c.put("/w/c", b"4".to_vec(), None).await?;
    let event = next_event(&mut watch).await?;
    assert_eq!(
        (describe(&event).1, event.revision()),
        ("/w/c".to_string(), live)
    );
    Ok(())
}

pub async fn watch_without_start_sees_only_later_changes(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    c.put("/f/old", b"old".to_vec(), None).await?;
    let mut watch = c.watch_prefix("/f/", None).await?;
    // Written right after watch_prefix returns: must be delivered.
    c.put("/f/new", b"new".to_vec(), None).await?;
    let event = next_event(&mut watch).await?;
    assert_eq!(describe(&event), ("put", "/f/new".into(), b"new".to_vec()));
    Ok(())
}

pub async fn txn_events_share_one_revision_in_order(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    c.put("/t/gone", b"x".to_vec(), None).await?;
    let mut watch = c.watch_prefix("/t/", None).await?;
    let txn = Txn {
        success: vec![
            put("/t/b", "1"),
            put("/t/a", "2"),
            TxnOp::Delete {
                key: "/t/gone".into(),
            },
        ],
        ..Txn::default()
    };
    let rev = c.txn(txn).await?.revision;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next_event(&mut watch).await?);
    }
    assert!(
        got.iter().all(|e| e.revision() == rev),
        "txn events with different revisions: {got:?}"
    );
    // Within one revision, etcd delivers the ops in txn order.
    let keys: Vec<String> = got.iter().map(|e| describe(e).1).collect();
    assert_eq!(keys, ["/t/b", "/t/a", "/t/gone"]);
    Ok(())
}

/// etcd: the process is killed and started again on the same data dir while
/// a watch is open; the supervised watch must resume from the last delivered
/// revision + 1. The in-process backend has no process to restart (its
/// `restart` is a no-op), so there this case checks the same delivery
/// guarantees without an interruption.
pub async fn watch_survives_restart_without_gaps_or_duplicates(
    b: &dyn Backend,
) -> anyhow::Result<()> {
    let c = b.coord();
    let mut watch = c.watch_prefix("/rs/", None).await?;
    c.put("/rs/1", b"1".to_vec(), None).await?;
    c.put("/rs/2", b"2".to_vec(), None).await?;
    assert_eq!(describe(&next_event(&mut watch).await?).1, "/rs/1");
    assert_eq!(describe(&next_event(&mut watch).await?).1, "/rs/2");

    b.restart().await?;

    // The client reconnects on its own; wait for that with a read, so that
    // no write is retried (a retried write could have been applied twice).
    wait_for_value(SOON, "etcd answers after restart", || {
        let c = c.clone();
        async move { c.current_revision().await.ok() }
    })
    .await?;
    let mut expected = Vec::new();
    for i in 3..=6 {
        let key = format!("/rs/{i}");
        let rev = c.put(&key, key.as_bytes().to_vec(), None).await?;
        expected.push((key, rev));
    }
    let mut got = Vec::new();
    for _ in 0..expected.len() {
        let event = next_event(&mut watch).await?;
        got.push((describe(&event).1, event.revision()));
    }
    assert_eq!(
        got, expected,
        "events after restart: gaps, duplicates or reordering"
    );
    // Nothing else is pending: the next event is the next write.
    let sentinel = c.put("/rs/sentinel", b"s".to_vec(), None).await?;
    let event = next_event(&mut watch).await?;
    assert_eq!(
        (describe(&event).1, event.revision()),
        ("/rs/sentinel".to_string(), sentinel)
    );
    Ok(())
}

pub async fn watch_from_compacted_revision_resyncs_then_continues(
    b: &dyn Backend,
) -> anyhow::Result<()> {
    let c = b.coord();
    let old = c.put("/cp/a", b"1".to_vec(), None).await?;
    c.put("/cp/b", b"2".to_vec(), None).await?;
    c.put("/cp/a", b"3".to_vec(), None).await?;
    c.delete("/cp/b").await?;
    c.put("/cp/c", b"4".to_vec(), None).await?;
    let now = c.current_revision().await?;
    b.compact(now).await?;

    let mut watch = c.watch_prefix("/cp/", Some(old)).await?;
    match next_event(&mut watch).await? {
        WatchEvent::Resync { kvs, revision } => {
            assert!(
                revision >= now,
                "resync at {revision}, before the compaction at {now}"
            );
            let state: Vec<(String, Vec<u8>)> =
                kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
            assert_eq!(
                state,
                [
                    ("/cp/a".to_string(), b"3".to_vec()),
                    ("/cp/c".to_string(), b"4".to_vec())
                ]
            );
        }
        other => panic!("expected a resync after compaction, got {other:?}"),
    }
    let later = c.put("/cp/d", b"5".to_vec(), None).await?;
    let event = next_event(&mut watch).await?;
    assert_eq!(
        (describe(&event), event.revision()),
        (("put", "/cp/d".to_string(), b"5".to_vec()), later)
    );
    Ok(())
}
