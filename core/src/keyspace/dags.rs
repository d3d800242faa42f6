//! `{p}dags/{name}`: the DAGs an operator applied, as the leader reads them.
//!
//! `nightshift apply` writes one [`AppliedDag`] per DAG (the validated spec
//! plus the TOML it came from); the leader watches `{p}dags/` and schedules
//! what it finds there, so applying a change needs no restart. The SQL store
//! keeps the full version history; this key holds only the current version.
//!
//! Pausing is an operator *command* (see [`super::commands`]) carried out by
//! the leader, which rewrites the record with `paused` flipped; `apply` keeps
//! the `paused` flag of the record it replaces.

use super::records::Record;
use super::validate_segment;
use crate::dag::DagSpec;
use crate::ids::DagName;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `{p}dags/{name}`: one applied DAG, current version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedDag {
    /// The validated spec the leader schedules.
    pub spec: DagSpec,
    /// The TOML source as applied, for display and diffing.
    pub source_toml: String,
    /// [`dag_checksum`] of the source and spec: equal checksums mean
    /// re-applying changed nothing.
    pub checksum: String,
    /// Version number in the SQL history (1, 2, 3… per DAG).
    pub version: u32,
    /// When this version was applied, Unix epoch milliseconds.
    pub applied_at_ms: i64,
    /// Who applied it (user name).
    pub applied_by: String,
    /// Whether scheduled runs are paused (manual triggers still run).
    #[serde(default)]
    pub paused: bool,
}

impl Record for AppliedDag {
    const KIND: &'static str = "applied dag";
}

/// The checksum recorded for an applied DAG: SHA-256 (hex) of the TOML
/// source and of the resolved spec's JSON. The spec is included because a
/// DAG's meaning also depends on its calendar file: editing a holiday list
/// changes the spec but not the DAG's own source.
pub fn dag_checksum(source_toml: &str, spec: &DagSpec) -> String {
    let mut hasher = Sha256::new();
    hasher.update(source_toml.as_bytes());
    hasher.update([0u8]);
    // Serializing a plain struct to JSON cannot fail; should it ever, the
    // source alone still identifies the file.
    if let Ok(json) = serde_json::to_vec(spec) {
        hasher.update(&json);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `{p}dags/`
pub fn dags_prefix(prefix: &str) -> String {
    format!("{prefix}dags/")
}

/// `{p}dags/{name}`
pub fn dag_key(prefix: &str, dag: &DagName) -> String {
    format!("{prefix}dags/{dag}")
}

/// The DAG name of a `{p}dags/{name}` key; `None` for any other key.
pub fn parse_dag_key(prefix: &str, key: &str) -> Option<DagName> {
    let name = key.strip_prefix(prefix)?.strip_prefix("dags/")?;
    validate_segment("dag name", name).ok()?;
    Some(DagName::new(name))
}

/// `{p}dag_versions/{dag}/{version}`: one version of a DAG that live runs
/// run, immutable. The leader writes it with a run that names the version
/// (creation, or a re-open of a finished run) and deletes it when the last
/// live run naming it ends: a run record names its DAG version instead of
/// copying the DAG into every rewrite of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DagVersionRecord {
    /// The version's validated spec.
    pub spec: DagSpec,
}

impl Record for DagVersionRecord {
    const KIND: &'static str = "dag version";
}

/// `{p}dag_versions/{dag}/{version}`
pub fn dag_version_key(prefix: &str, dag: &DagName, version: u32) -> String {
    format!("{prefix}dag_versions/{dag}/{version}")
}

/// The DAG and version of a `{p}dag_versions/{dag}/{version}` key; `None`
/// for any other key.
pub fn parse_dag_version_key(prefix: &str, key: &str) -> Option<(DagName, u32)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix("dag_versions/")?;
    let (name, version) = rest.split_once('/')?;
    validate_segment("dag name", name).ok()?;
    let version: u32 = version.parse().ok()?;
    (version.to_string() == rest[name.len() + 1..]).then(|| (DagName::new(name), version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::{parse_dag, CalendarSet};
    use crate::keyspace::{decode, encode, normalize_prefix, RecordError};
    use proptest::prelude::*;
    use std::path::Path;

    fn applied(source: &str) -> AppliedDag {
        let spec = parse_dag(Path::new("dags/daily.toml"), source, &CalendarSet::new()).unwrap();
        AppliedDag {
            checksum: dag_checksum(source, &spec),
            spec,
            source_toml: source.to_owned(),
            version: 3,
            applied_at_ms: 1_700_000_000_000,
            applied_by: "ops".into(),
            paused: true,
        }
    }

    #[test]
    fn applied_dag_round_trips_with_schema_version() {
        let dag = applied("schedule = \"0 2 * * *\"\ntimezone = \"Europe/Paris\"\n[jobs.a]\nshards = 4\n[jobs.b]\ndepends_on = [\"a\"]\n");
        let bytes = encode(&dag).unwrap();
        assert!(bytes.starts_with(b"{\"v\":1,"));
        assert_eq!(decode::<AppliedDag>(&bytes).unwrap(), dag);
    }

    #[test]
    fn applied_dag_without_paused_reads_as_not_paused() {
        let dag = applied("[jobs.a]\n");
        let mut json: serde_json::Value = serde_json::from_slice(&encode(&dag).unwrap()).unwrap();
        json.as_object_mut().unwrap().remove("paused");
        let back: AppliedDag = decode(&serde_json::to_vec(&json).unwrap()).unwrap();
        assert!(!back.paused);
    }

    #[test]
    fn newer_schema_is_rejected() {
        let err = decode::<AppliedDag>(b"{\"v\":99}").unwrap_err();
        assert!(
            matches!(err, RecordError::UnsupportedVersion { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn checksum_changes_with_source_and_is_stable() {
        let a = applied("[jobs.a]\nshards = 4\n");
        let b = applied("[jobs.a]\nshards = 5\n");
        assert_eq!(a.checksum, applied("[jobs.a]\nshards = 4\n").checksum);
        assert_ne!(a.checksum, b.checksum);
        assert_eq!(a.checksum.len(), 64);
        assert!(a.checksum.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    proptest! {
        #[test]
        fn dag_version_keys_parse_back(name in "[A-Za-z0-9_.:-]{1,40}", version: u32, prefix in "/[a-z]{0,5}/?") {
            let p = normalize_prefix(&prefix).unwrap();
            let dag = DagName::new(name);
            let key = dag_version_key(&p, &dag, version);
            prop_assert_eq!(parse_dag_version_key(&p, &key), Some((dag.clone(), version)));
            prop_assert_eq!(parse_dag_key(&p, &key), None);
            prop_assert_eq!(parse_dag_version_key(&p, &dag_key(&p, &dag)), None);
        }

        #[test]
        fn dag_keys_parse_back(name in "[A-Za-z0-9_.:-]{1,40}", prefix in "/[a-z]{0,5}/?") {
            let p = normalize_prefix(&prefix).unwrap();
            let dag = DagName::new(name);
            let key = dag_key(&p, &dag);
            prop_assert!(key.starts_with(&dags_prefix(&p)));
            prop_assert_eq!(parse_dag_key(&p, &key), Some(dag));
        }
    }

    #[test]
    fn other_keys_are_not_dag_keys() {
        assert_eq!(parse_dag_key("/n/", "/n/dags/"), None);
        assert_eq!(parse_dag_key("/n/", "/n/dags/a/b"), None);
        assert_eq!(parse_dag_key("/n/", "/n/executors/a"), None);
        assert_eq!(parse_dag_key("/n/", "/m/dags/a"), None);
    }
}
