//! The DAG versions live runs run, under `{p}dag_versions/{dag}/{version}`.
//!
//! A run record names its DAG version instead of copying the DAG (which
//! every rewrite of the record would carry again). The version's spec is
//! written once, with the run that first names it (creation, or the re-open
//! of a finished run), read back when a run record is decoded (cached: it
//! never changes), and deleted with the last live run that names it.

use super::{put, Leader, LeaderError};
use crate::record::RunRecord;
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

    /// Decodes a run record and puts its DAG version's spec back; `None`
    /// (reported once as a bad key) when either cannot be read.
    pub(super) async fn decode_run(
        &mut self,
        kv: &KeyValue,
    ) -> Result<Option<RunRecord>, LeaderError> {
        let Some(rec) = self.decode_or_report::<RunRecord>(kv, "left alone: this run is not led")
        else {
            return Ok(None);
        };
        let id = (rec.dag.clone(), rec.dag_version);
        if !self.dag_versions.0.contains_key(&id) {
            let key = keyspace::dag_version_key(&self.config.prefix, &id.0, id.1);
            let Some(found) = self.coord.get(&key).await? else {
                self.report_bad_key(
                    kv,
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
        let rec = spec.and_then(|spec| rec.with_spec(spec));
        if rec.is_none() {
            self.report_bad_key(
                kv,
                "its DAG version names another DAG",
                "left alone: this run is not led",
            );
        }
        Ok(rec)
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
