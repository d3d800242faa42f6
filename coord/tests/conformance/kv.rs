//! Keys, revisions and transactions.

use crate::backend::Backend;
use crate::support::{get, put, put_leased};
use anyhow::ensure;
use nightshift_coord::{
    CmpOp, Compare, CompareTarget, CoordError, LeaseId, Txn, TxnOp, TxnOpResult,
};
use std::time::Duration;

pub async fn put_get_delete(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    assert_eq!(c.get("/t/a").await?, None);
    let rev = c.put("/t/a", b"1".to_vec(), None).await?;
    let kv = c.get("/t/a").await?.expect("key just put");
    assert_eq!(
        (
            kv.key.as_str(),
            kv.value.as_slice(),
            kv.mod_revision,
            kv.lease
        ),
        ("/t/a", &b"1"[..], rev, None)
    );
    assert_eq!(c.delete("/t/a").await?, 1);
    assert_eq!(c.get("/t/a").await?, None);
    assert_eq!(
        c.delete("/t/a").await?,
        0,
        "deleting a missing key deletes nothing"
    );
    Ok(())
}

pub async fn get_prefix_is_sorted_and_delete_prefix_counts(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    for key in ["/p/c", "/p/a", "/p/b/x", "/q/a", "/pz"] {
        c.put(key, key.as_bytes().to_vec(), None).await?;
    }
    let (kvs, rev) = c.get_prefix("/p/").await?;
    let keys: Vec<&str> = kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/p/a", "/p/b/x", "/p/c"]);
    assert_eq!(rev, c.current_revision().await?);
    assert_eq!(c.delete_prefix("/p/").await?, 3);
    assert!(c.get_prefix("/p/").await?.0.is_empty());
    assert!(
        c.get("/pz").await?.is_some(),
        "a key outside the prefix was deleted"
    );
    assert_eq!(c.delete_prefix("/p/").await?, 0);
    Ok(())
}

pub async fn revisions_behave_like_etcd(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    let r1 = c.put("/r/k", b"1".to_vec(), None).await?;
    let r2 = c.put("/r/k", b"2".to_vec(), None).await?;
    assert_eq!(r2, r1 + 1, "each put is one revision");
    let kv = c.get("/r/k").await?.expect("key");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r2, 2)
    );

    // A txn writing several keys is one revision; all its writes share it.
    let t = c
        .txn(Txn {
            success: vec![put("/r/x", "x"), put("/r/y", "y")],
            ..Txn::default()
        })
        .await?;
    assert_eq!(t.revision, r2 + 1);
    for key in ["/r/x", "/r/y"] {
        let kv = c.get(key).await?.expect("txn key");
        assert_eq!(
            (kv.create_revision, kv.mod_revision, kv.version),
            (t.revision, t.revision, 1)
        );
    }

    // Writes that change nothing do not bump the revision.
    assert_eq!(c.delete("/r/missing").await?, 0);
    let read_only = c
        .txn(Txn {
            success: vec![get("/r/k")],
            ..Txn::default()
        })
        .await?;
    assert_eq!(read_only.revision, t.revision);
    assert_eq!(c.current_revision().await?, t.revision);

    // Delete then re-create starts a new life: new create revision, version 1.
    c.delete("/r/k").await?;
    let r3 = c.put("/r/k", b"3".to_vec(), None).await?;
    let kv = c.get("/r/k").await?.expect("re-created key");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r3, r3, 1)
    );
    assert_eq!(r3, t.revision + 2);
    Ok(())
}

pub async fn txn_absent_key_create_succeeds_once(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    let create = |value: &str| Txn {
        compares: vec![Compare::absent("/lock")],
        success: vec![put("/lock", value)],
        failure: vec![get("/lock")],
    };
    let first = c.txn(create("first")).await?;
    assert!(first.succeeded);
    assert_eq!(first.results, vec![TxnOpResult::Put]);
    let second = c.txn(create("second")).await?;
    assert!(
        !second.succeeded,
        "a second create of the same key succeeded"
    );
    match &second.results[..] {
        [TxnOpResult::Get(Some(kv))] => assert_eq!(kv.value, b"first"),
        other => panic!("failure branch should read the key, got {other:?}"),
    }
    assert_eq!(
        second.revision, first.revision,
        "a failed txn with a read-only branch wrote something"
    );
    Ok(())
}

pub async fn txn_stale_mod_revision_runs_failure_branch(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    let token = c.put("/assign", b"owner-1".to_vec(), None).await?;
    let fenced = |value: &str| Txn {
        compares: vec![Compare::mod_revision("/assign", token)],
        success: vec![put("/done", value)],
        failure: vec![put("/rejected", value)],
    };
    assert!(c.txn(fenced("a")).await?.succeeded, "fresh token rejected");
    c.put("/assign", b"owner-2".to_vec(), None).await?; // ownership moves on
    let stale = c.txn(fenced("b")).await?;
    assert!(!stale.succeeded, "stale token accepted");
    assert_eq!(stale.results, vec![TxnOpResult::Put]);
    assert_eq!(c.get("/done").await?.expect("done").value, b"a");
    assert_eq!(
        c.get("/rejected").await?.expect("failure branch ran").value,
        b"b"
    );
    Ok(())
}

pub async fn txn_lease_and_value_compares(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    let lease = c.grant_lease(Duration::from_secs(30)).await?;
    c.put("/l/k", b"v".to_vec(), Some(lease)).await?;
    c.put("/l/plain", b"v".to_vec(), None).await?;
    let check = |compare: Compare| Txn {
        compares: vec![compare],
        ..Txn::default()
    };
    assert!(c.txn(check(Compare::lease("/l/k", lease))).await?.succeeded);
    assert!(
        !c.txn(check(Compare::lease("/l/k", LeaseId(lease.0 + 1))))
            .await?
            .succeeded
    );
    assert!(
        c.txn(check(Compare::lease("/l/plain", LeaseId(0))))
            .await?
            .succeeded,
        "no lease compares as 0"
    );
    assert!(
        c.txn(check(Compare::lease("/l/missing", LeaseId(0))))
            .await?
            .succeeded,
        "missing key has lease 0"
    );
    let value = |op, v: &str| Compare {
        key: "/l/k".into(),
        op,
        target: CompareTarget::Value(v.into()),
    };
    assert!(c.txn(check(value(CmpOp::Equal, "v"))).await?.succeeded);
    assert!(c.txn(check(value(CmpOp::Greater, "a"))).await?.succeeded);
    assert!(c.txn(check(value(CmpOp::Less, "w"))).await?.succeeded);
    assert!(!c.txn(check(value(CmpOp::NotEqual, "v"))).await?.succeeded);
    let missing = Compare {
        key: "/l/missing".into(),
        op: CmpOp::NotEqual,
        target: CompareTarget::Value(b"x".to_vec()),
    };
    assert!(
        !c.txn(check(missing)).await?.succeeded,
        "a value compare on a missing key must fail"
    );
    let version = Compare {
        key: "/l/missing".into(),
        op: CmpOp::Equal,
        target: CompareTarget::Version(0),
    };
    assert!(
        c.txn(check(version)).await?.succeeded,
        "missing key has version 0"
    );
    Ok(())
}

pub async fn txn_with_more_than_128_ops_is_invalid(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    let puts = |n: usize| {
        (0..n)
            .map(|i| put(&format!("/many/{i:03}"), "v"))
            .collect::<Vec<_>>()
    };
    let ok = c
        .txn(Txn {
            success: puts(128),
            ..Txn::default()
        })
        .await?;
    assert!(ok.succeeded);
    let err = c
        .txn(Txn {
            success: puts(129),
            ..Txn::default()
        })
        .await
        .expect_err("129 ops accepted");
    assert!(matches!(err, CoordError::Invalid(_)), "got {err:?}");
    assert!(!err.is_transient());
    assert_eq!(
        c.current_revision().await?,
        ok.revision,
        "a rejected txn wrote something"
    );
    Ok(())
}

pub async fn txn_writing_one_key_twice_is_invalid(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    let twice = Txn {
        success: vec![put("/d/k", "1"), put("/d/k", "2")],
        ..Txn::default()
    };
    let err = c.txn(twice).await.expect_err("duplicate put accepted");
    assert!(matches!(err, CoordError::Invalid(_)), "got {err:?}");
    let put_and_delete = Txn {
        success: vec![put("/d/k", "1"), TxnOp::Delete { key: "/d/k".into() }],
        ..Txn::default()
    };
    assert!(matches!(
        c.txn(put_and_delete).await,
        Err(CoordError::Invalid(_))
    ));
    assert_eq!(c.get("/d/k").await?, None);
    Ok(())
}

pub async fn put_with_unknown_lease_is_lease_not_found(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    let lease = c.grant_lease(Duration::from_secs(30)).await?;
    c.revoke_lease(lease).await?;
    let err = c
        .put("/u/k", b"v".to_vec(), Some(lease))
        .await
        .expect_err("put with revoked lease");
    ensure!(matches!(err, CoordError::LeaseNotFound(_)), "got {err:?}");
    // In a txn the whole txn fails, atomically.
    let txn = Txn {
        success: vec![put("/u/other", "v"), put_leased("/u/k", "v", lease)],
        ..Txn::default()
    };
    let err = c.txn(txn).await.expect_err("txn with revoked lease");
    ensure!(matches!(err, CoordError::LeaseNotFound(_)), "got {err:?}");
    assert_eq!(
        c.get("/u/other").await?,
        None,
        "part of a failed txn was applied"
    );
    Ok(())
}
