//! Reading and writing the applied DAGs (`{p}dags/{name}` keys).
//!
//! Shared by `apply` (writes), `trigger`, `backfill` and `plan` (read). The
//! DAG files themselves (each spec with its path and text) come from
//! [`nightshift_core::dag::load_dags`], the one walk over DAG folders.

use crate::cli::conn::bad_input;
use anyhow::Context as _;
use nightshift_coord::{Compare, Coordinator, Txn, TxnOp};
use nightshift_core::ids::DagName;
use nightshift_core::keyspace::{self, decode, encode, AppliedDag};
use std::collections::BTreeMap;

/// An applied DAG as read from etcd, with the revision to guard a rewrite.
#[derive(Debug, Clone)]
pub struct Published {
    /// The record; `None` when the key holds something unreadable (applying
    /// the DAG again replaces it, `apply --prune` removes it).
    pub dag: Option<AppliedDag>,
    /// mod_revision of its key.
    pub mod_revision: i64,
}

/// Reads `{p}dags/{dag}`; `None` when the DAG is not applied.
pub async fn get(
    coord: &dyn Coordinator,
    prefix: &str,
    dag: &DagName,
) -> anyhow::Result<Option<Published>> {
    let key = keyspace::dag_key(prefix, dag);
    let Some(kv) = coord
        .get(&key)
        .await
        .with_context(|| format!("reading {key} from etcd"))?
    else {
        return Ok(None);
    };
    let record = match decode::<AppliedDag>(&kv.value) {
        Ok(record) => Some(record),
        Err(e) => {
            tracing::warn!(%key, error = %e, "unreadable applied-DAG record");
            None
        }
    };
    Ok(Some(Published {
        dag: record,
        mod_revision: kv.mod_revision,
    }))
}

/// Reads `{p}dags/{dag}`, or fails with "unknown dag" (bad input, exit 1).
pub async fn require(
    coord: &dyn Coordinator,
    prefix: &str,
    dag: &DagName,
) -> anyhow::Result<AppliedDag> {
    match get(coord, prefix, dag).await? {
        Some(Published { dag: Some(record), .. }) => Ok(record),
        Some(Published { dag: None, .. }) => anyhow::bail!(
            "the etcd record of dag `{dag}` ({}) is unreadable: apply the DAG file again to replace it",
            keyspace::dag_key(prefix, dag)
        ),
        None => {
            let known = list(coord, prefix).await?;
            let names: Vec<&str> = known.keys().map(DagName::as_str).collect();
            let hint = if names.is_empty() {
                "no DAG is applied yet: run `nightshift apply PATH`".to_owned()
            } else {
                format!("applied DAGs: {}", names.join(", "))
            };
            bad_input(format!("unknown dag `{dag}` ({hint})"))
        }
    }
}

/// Every applied DAG by name, with its key's mod_revision. Keys that do not
/// parse as DAG keys are ignored; values are not decoded, so one unreadable
/// record neither hides the others nor blocks `apply --prune` (which removes it).
pub async fn list(coord: &dyn Coordinator, prefix: &str) -> anyhow::Result<BTreeMap<DagName, i64>> {
    let dags_prefix = keyspace::dags_prefix(prefix);
    let (kvs, _) = coord
        .get_prefix(&dags_prefix)
        .await
        .with_context(|| format!("listing {dags_prefix} in etcd"))?;
    let mut out = BTreeMap::new();
    for kv in kvs {
        let Some(name) = keyspace::parse_dag_key(prefix, &kv.key) else {
            continue;
        };
        out.insert(name, kv.mod_revision);
    }
    Ok(out)
}

/// Puts `record` at its key if the key is still at `expected` (its
/// mod_revision, or `None`: absent). Returns whether the write happened.
pub async fn put_if_unchanged(
    coord: &dyn Coordinator,
    prefix: &str,
    record: &AppliedDag,
    expected: Option<i64>,
) -> anyhow::Result<bool> {
    let key = keyspace::dag_key(prefix, &record.spec.name);
    let guard = match expected {
        Some(rev) => Compare::mod_revision(key.clone(), rev),
        None => Compare::absent(key.clone()),
    };
    let value = encode(record).context("encoding the applied dag")?;
    let txn = Txn {
        compares: vec![guard],
        success: vec![TxnOp::Put {
            key: key.clone(),
            value,
            lease: None,
        }],
        failure: vec![],
    };
    let response = coord
        .txn(txn)
        .await
        .with_context(|| format!("writing {key} to etcd"))?;
    Ok(response.succeeded)
}

/// Deletes `{p}dags/{dag}` if it is still at `expected`.
pub async fn delete_if_unchanged(
    coord: &dyn Coordinator,
    prefix: &str,
    dag: &DagName,
    expected: i64,
) -> anyhow::Result<bool> {
    let key = keyspace::dag_key(prefix, dag);
    let txn = Txn {
        compares: vec![Compare::mod_revision(key.clone(), expected)],
        success: vec![TxnOp::Delete { key: key.clone() }],
        failure: vec![],
    };
    let response = coord
        .txn(txn)
        .await
        .with_context(|| format!("deleting {key} from etcd"))?;
    Ok(response.succeeded)
}
