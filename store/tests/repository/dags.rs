//! Cases for applied DAG versions and the `dags` rows.

use nightshift_core::ids::DagName;
use nightshift_store::{NewDagVersion, RecordedVersion, Store, StoreError};

fn version<'a>(dag: &'a DagName, checksum: &'a str, at_ms: i64) -> NewDagVersion<'a> {
    NewDagVersion {
        dag,
        spec_json: checksum,
        source_toml: checksum,
        checksum,
        applied_by: "alice",
        at_ms,
    }
}

pub async fn new_version_only_when_checksum_changes(store: &Store) {
    let dag = DagName::new("nightly");
    assert_eq!(store.latest_dag_version(&dag).await.unwrap(), None);

    let first = store
        .record_dag_version(&version(&dag, "a", 10))
        .await
        .unwrap();
    assert_eq!(
        first,
        RecordedVersion {
            version: 1,
            created: true
        }
    );
    let same = store
        .record_dag_version(&version(&dag, "a", 20))
        .await
        .unwrap();
    assert_eq!(
        same,
        RecordedVersion {
            version: 1,
            created: false
        }
    );
    let changed = store
        .record_dag_version(&version(&dag, "b", 30))
        .await
        .unwrap();
    assert_eq!(
        changed,
        RecordedVersion {
            version: 2,
            created: true
        }
    );
    // Going back to an older spec is a change relative to the latest one.
    let back = store
        .record_dag_version(&version(&dag, "a", 40))
        .await
        .unwrap();
    assert_eq!(
        back,
        RecordedVersion {
            version: 3,
            created: true
        }
    );

    let all = store.dag_versions(&dag).await.unwrap();
    let summary: Vec<(u32, &str, i64)> = all
        .iter()
        .map(|v| (v.version, v.checksum.as_str(), v.applied_at_ms))
        .collect();
    assert_eq!(summary, [(1, "a", 10), (2, "b", 30), (3, "a", 40)]);
    assert_eq!(all[1].spec_json, "b");
    assert_eq!(all[1].source_toml, "b");
    assert_eq!(all[1].applied_by, "alice");

    let latest = store.latest_dag_version(&dag).await.unwrap().unwrap();
    assert_eq!((latest.version, latest.checksum.as_str()), (3, "a"));
    assert_eq!(store.dag_version(&dag, 2).await.unwrap().unwrap(), all[1]);
    assert_eq!(store.dag_version(&dag, 9).await.unwrap(), None);
    assert_eq!(
        store.get_dag(&dag).await.unwrap().unwrap().current_version,
        3
    );
}

pub async fn versions_are_per_dag(store: &Store) {
    let a = DagName::new("a");
    let b = DagName::new("b");
    store
        .record_dag_version(&version(&a, "x", 1))
        .await
        .unwrap();
    store
        .record_dag_version(&version(&a, "y", 2))
        .await
        .unwrap();
    let first_b = store
        .record_dag_version(&version(&b, "x", 3))
        .await
        .unwrap();
    assert_eq!(
        first_b,
        RecordedVersion {
            version: 1,
            created: true
        }
    );
    assert_eq!(store.dag_versions(&b).await.unwrap().len(), 1);
    assert_eq!(store.dag_versions(&a).await.unwrap().len(), 2);
}

pub async fn concurrent_applies_get_distinct_versions(store: &Store) {
    let dag = DagName::new("raced");
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            let dag = dag.clone();
            tokio::spawn(async move {
                let checksum = format!("c{i}");
                store.record_dag_version(&version(&dag, &checksum, i)).await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for t in tasks {
        let recorded = t.await.unwrap().unwrap();
        assert!(recorded.created);
        versions.push(recorded.version);
    }
    versions.sort_unstable();
    assert_eq!(versions, [1, 2, 3, 4]);
    assert_eq!(
        store.get_dag(&dag).await.unwrap().unwrap().current_version,
        4
    );
}

pub async fn pause_remove_and_reapply(store: &Store) {
    let a = DagName::new("a");
    let b = DagName::new("b");
    store
        .record_dag_version(&version(&b, "x", 1))
        .await
        .unwrap();
    store
        .record_dag_version(&version(&a, "x", 2))
        .await
        .unwrap();

    store.set_dag_paused(&a, true, 5).await.unwrap();
    let dags = store.list_dags().await.unwrap();
    let names: Vec<&str> = dags.iter().map(|d| d.dag.as_str()).collect();
    assert_eq!(names, ["a", "b"], "sorted by name");
    assert!(dags[0].paused && !dags[1].paused);
    assert_eq!(dags[0].updated_at_ms, 5);

    store.mark_dag_removed(&a, 6).await.unwrap();
    let a_row = store.get_dag(&a).await.unwrap().unwrap();
    assert!(a_row.removed && a_row.paused);
    assert_eq!(
        store.dag_versions(&a).await.unwrap().len(),
        1,
        "history is kept"
    );

    // Re-applying the same file un-removes it without a new version, and
    // keeps it paused.
    let again = store
        .record_dag_version(&version(&a, "x", 7))
        .await
        .unwrap();
    assert_eq!(
        again,
        RecordedVersion {
            version: 1,
            created: false
        }
    );
    let a_row = store.get_dag(&a).await.unwrap().unwrap();
    assert!(!a_row.removed && a_row.paused);

    store.set_dag_paused(&a, false, 8).await.unwrap();
    assert!(!store.get_dag(&a).await.unwrap().unwrap().paused);

    let ghost = DagName::new("ghost");
    assert!(matches!(
        store.set_dag_paused(&ghost, true, 9).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.mark_dag_removed(&ghost, 9).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.get_dag(&ghost).await.unwrap(), None);
}
