//! Reading and writing the applied DAGs (`{p}dags/{name}` keys), and pairing
//! each loaded DAG with the TOML text it came from.
//!
//! Shared by `apply` (writes), `trigger`, `backfill` and `plan` (read).

use crate::cli::conn::bad_input;
use anyhow::Context as _;
use nightshift_coord::{Compare, Coordinator, Txn, TxnOp};
use nightshift_core::dag::{load_dags, DagSpec};
use nightshift_core::ids::DagName;
use nightshift_core::keyspace::{self, decode, encode, AppliedDag};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// A valid DAG and the text of the file it was read from.
#[derive(Debug, Clone)]
pub struct LoadedDag {
    /// The validated spec.
    pub spec: DagSpec,
    /// The file's TOML text.
    pub source: String,
    /// The file, for messages.
    pub path: PathBuf,
}

/// Pairs each DAG of a successful [`load_dags`] with its file's text.
///
/// `load_dags` does not say which file a DAG came from, so each DAG file is
/// loaded again on its own (with its calendars); `paths` were just validated
/// as a whole, so each file yields exactly one DAG.
pub fn with_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<LoadedDag>> {
    let mut out = Vec::new();
    for file in dag_files(paths)? {
        let source = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let report = load_dags(std::slice::from_ref(&file));
        match <[DagSpec; 1]>::try_from(report.dags) {
            Ok([spec]) => out.push(LoadedDag {
                spec,
                source,
                path: file,
            }),
            Err(_) => anyhow::bail!("{} changed while it was being applied", file.display()),
        }
    }
    Ok(out)
}

/// The DAG files `load_dags` reads for `paths`: files as given, and the
/// `*.toml` files directly inside folders, sorted by name.
fn dag_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading folder {}", path.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else if !in_calendars_dir(path) {
            files.push(path.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(f.clone()));
    Ok(files)
}

fn in_calendars_dir(file: &Path) -> bool {
    file.parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "calendars")
}
