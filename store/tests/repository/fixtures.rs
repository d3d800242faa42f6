//! Small builders shared by the repository cases.

use chrono::NaiveDate;
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::state::TriggerSource;
use nightshift_store::{NewDagVersion, NewRun, Run, Store};

/// 2024-03-01, the business date most cases use.
pub fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

/// Records version 1 of `name` (checksum "c1").
pub async fn seed_dag(store: &Store, name: &str) -> DagName {
    let dag = DagName::new(name);
    store
        .record_dag_version(&NewDagVersion {
            dag: &dag,
            spec_json: "{}",
            source_toml: "",
            checksum: "c1",
            applied_by: "test",
            at_ms: 1,
        })
        .await
        .unwrap();
    dag
}

/// A manual run of version 1 of `dag` on 2024-03-01.
pub fn new_run(dag: &DagName, id: &str, created_at_ms: i64) -> NewRun {
    NewRun {
        run_id: RunId::new(id),
        dag: dag.clone(),
        dag_version: 1,
        business_date: day(1),
        trigger_source: TriggerSource::Manual,
        params: serde_json::json!({}),
        scheduled_for_ms: None,
        created_at_ms,
    }
}

/// Inserts [`new_run`].
pub async fn seed_run(store: &Store, dag: &DagName, id: &str, created_at_ms: i64) -> Run {
    store
        .insert_run(&new_run(dag, id, created_at_ms))
        .await
        .unwrap()
}
