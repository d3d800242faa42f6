//! The DAG versions live runs run, under `{p}dag_versions/{dag}/{version}`.
//!
//! A run record names its DAG version instead of copying the DAG (which
//! every rewrite of the record would carry again). The version's spec is
//! written once, with the run that first names it (creation, or the re-open
//! of a finished run), read back when a run record is decoded (cached: it
//! never changes), and deleted with the last live run that names it.

use super::{put, Leader, LeaderError};
use crate::record_values::{RunValuesError, StoredRun};
use nightshift_coord::{KeyValue, TxnOp};
use nightshift_core::dag::DagSpec;
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::keyspace::{self, DagVersionRecord};
use std::collections::BTreeMap;

/// Specs of DAG versions already read or written, by (DAG, version).
#[derive(Default)]
pub(super) struct DagVersions(BTreeMap<(DagName, u32), DagSpec>);

impl Leader {
    /// The put of a run's DAG version (rewriting the same immutable value
    /// is harmless), and the spec remembered.
    pub(super) fn dag_version_put(
        &mut self,
        spec: &DagSpec,
        version: u32,
    ) -> Result<TxnOp, LeaderError> {
        let key = keyspace::dag_version_key(&self.config.prefix, &spec.name, version);
        self.dag_versions
            .0
            .insert((spec.name.clone(), version), spec.clone());
        put(key, &DagVersionRecord { spec: spec.clone() }, None)
    }

    /// The record of `run` as assembled from one read (`kvs`), with its
    /// DAG version's spec put back; `None` (reported once as a bad key)
    /// when either cannot be read.
    pub(super) async fn resolve_run(
        &mut self,
        run: &RunId,
        found: Result<Option<StoredRun>, RunValuesError>,
        kvs: &[KeyValue],
    ) -> Result<Option<StoredRun>, LeaderError> {
        let head_key = keyspace::run_state_key(&self.config.prefix, run);
        let head = kvs.iter().find(|kv| kv.key == head_key).cloned();
        let mut stored = match found {
            Ok(Some(stored)) => stored,
            Ok(None) => return Ok(None),
            Err(e) => {
                if let Some(head) = &head {
                    self.report_bad_key(head, &e.to_string(), "left alone: this run is not led");
                }
                return Ok(None);
            }
        };
        let Some(head) = head else {
            return Ok(None);
        };
        let rec = &stored.rec;
        let id = (rec.dag.clone(), rec.dag_version);
        if !self.dag_versions.0.contains_key(&id) {
            let key = keyspace::dag_version_key(&self.config.prefix, &id.0, id.1);
            let Some(found) = self.coord.get(&key).await? else {
                self.report_bad_key(
                    &head,
                    &format!("its DAG version {key} is missing"),
                    "left alone: this run is not led",
                );
                return Ok(None);
            };
            let Some(version) =
                self.decode_or_report::<DagVersionRecord>(&found, "its runs are not led")
            else {
                return Ok(None);
            };
            self.dag_versions.0.insert(id.clone(), version.spec);
        }
        let spec = self.dag_versions.0.get(&id).cloned();
        match spec.and_then(|spec| stored.rec.clone().with_spec(spec)) {
            Some(rec) => {
                stored.rec = rec;
                Ok(Some(stored))
            }
            None => {
                self.report_bad_key(
                    &head,
                    "its DAG version names another DAG",
                    "left alone: this run is not led",
                );
                Ok(None)
            }
        }
    }

    /// The delete of `run`'s DAG version when no other live run names it
    /// (and forgetting it), for the txn that removes the run's keys.
    pub(super) fn dag_version_release(&mut self, run: &RunId) -> Option<TxnOp> {
        let rec = &self.runs.get(run)?.rec;
        let id = (rec.dag.clone(), rec.dag_version);
        let shared = self
            .runs
            .iter()
            .any(|(other, l)| other != run && l.rec.dag == id.0 && l.rec.dag_version == id.1);
        if shared {
            return None;
        }
        self.dag_versions.0.remove(&id);
        Some(TxnOp::Delete {
            key: keyspace::dag_version_key(&self.config.prefix, &id.0, id.1),
        })
    }
}
