//! The identity of a unit of *work*, as opposed to one run of it.
//!
//! A run id names one execution: a retry of a finished run, a `trigger
//! --rerun` and a backfill all get new ones. Effects outside Nightshift (a
//! ledger posting, a payment) must not be applied again just because the
//! same work runs under a new run id, so handlers key them by the
//! [`WorkKey`]: the DAG, the business date, the job, the item and a hash of
//! what the item is given (its merged params and its shard param), plus the
//! **redo generation** — 0 for ordinary runs, raised only by an explicit
//! `nightshift trigger --redo`, the one deliberate way to make the same work
//! apply its effects again.
//!
//! The same identity names the item's checkpoint across runs
//! ([`super::checkpoint`]): a new run of the same work resumes where the
//! last one stopped; a redo starts fresh.

use crate::ids::{DagName, ItemIndex, JobName};
use chrono::NaiveDate;
use std::fmt;
use std::fmt::Write as _;

/// What identifies one item's work across runs, retries and reruns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkKey {
    /// The DAG.
    pub dag: DagName,
    /// The business date the work is for.
    pub business_date: NaiveDate,
    /// The job.
    pub job: JobName,
    /// The item.
    pub item: ItemIndex,
    /// [`params_hash`] of the item's params and shard param.
    pub params_hash: u64,
    /// Redo generation: 0 unless the run was triggered with `--redo`.
    pub redo: u32,
}

impl WorkKey {
    /// The work key of `item` of a job given `params` (merged run + job
    /// params) and `item_param` (its `shard_params` entry).
    pub fn new(
        dag: DagName,
        business_date: NaiveDate,
        job: JobName,
        item: ItemIndex,
        params: &serde_json::Value,
        item_param: Option<&str>,
        redo: u32,
    ) -> Self {
        WorkKey {
            dag,
            business_date,
            job,
            item,
            params_hash: params_hash(params, item_param),
            redo,
        }
    }
}

/// `{dag}/{business_date}/{job}/{item}/{params_hash:016x}`, followed by
/// `/redo-{n}` for a redo generation above 0. Every part is a valid key
/// segment, so the text is safe in keys, file names and SQL.
impl fmt::Display for WorkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}/{:016x}",
            self.dag, self.business_date, self.job, self.item, self.params_hash
        )?;
        if self.redo > 0 {
            write!(f, "/redo-{}", self.redo)?;
        }
        Ok(())
    }
}

/// A stable 64-bit hash (FNV-1a) of an item's params: the JSON written
/// canonically (object keys sorted, no spaces, so the same params always
/// hash alike whatever order they were written or merged in), then the
/// shard param. Not cryptographic: it tells two param sets of the same
/// (DAG, date, job, item) apart; it does not hide them.
pub fn params_hash(params: &serde_json::Value, item_param: Option<&str>) -> u64 {
    let mut text = String::new();
    canonical(params, &mut text);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(text.as_bytes());
    match item_param {
        // A tag byte keeps `None` apart from `Some("")`.
        Some(p) => {
            eat(&[1]);
            eat(p.as_bytes());
        }
        None => eat(&[0]),
    }
    h
}

fn canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // A string always serializes.
                let _ = write!(out, "{}", Value::String(k.clone()));
                out.push(':');
                if let Some(v) = map.get(k) {
                    canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn key(params: serde_json::Value, item_param: Option<&str>, redo: u32) -> WorkKey {
        WorkKey::new(
            DagName::new("eod"),
            NaiveDate::from_ymd_opt(2024, 3, 29).unwrap_or_default(),
            JobName::new("accrue"),
            ItemIndex(7),
            &params,
            item_param,
            redo,
        )
    }

    #[test]
    fn the_key_names_the_work_and_only_a_redo_changes_it_for_the_same_params() {
        let a = key(json!({"rate": 5, "region": "eu"}), Some("EU"), 0);
        let text = a.to_string();
        assert!(text.starts_with("eod/2024-03-29/accrue/7/"), "{text}");
        assert_eq!(text.split('/').count(), 5, "{text}");
        // Same params written in another order: same work.
        assert_eq!(a, key(json!({"region": "eu", "rate": 5}), Some("EU"), 0));
        // Other params, shard param or redo generation: other work.
        assert_ne!(a, key(json!({"rate": 6, "region": "eu"}), Some("EU"), 0));
        assert_ne!(a, key(json!({"rate": 5, "region": "eu"}), Some("US"), 0));
        assert_ne!(a, key(json!({"rate": 5, "region": "eu"}), None, 0));
        let redo = key(json!({"rate": 5, "region": "eu"}), Some("EU"), 2);
        assert_eq!(redo.to_string(), format!("{text}/redo-2"));
        assert_ne!(
            params_hash(&json!(null), None),
            params_hash(&json!(null), Some(""))
        );
    }

    #[test]
    fn the_hash_is_pinned() {
        // A changed hash would make every handler apply its effects again:
        // pin it so that a change here cannot go unnoticed.
        // FNV-1a of `null` then the tag byte 0, computed independently.
        assert_eq!(params_hash(&json!(null), None), 0x2ab8_2c9a_3142_1b6c);
        assert_eq!(
            params_hash(
                &json!({"b": [1, "x"], "a": {"d": true, "c": null}}),
                Some("p")
            ),
            params_hash(
                &json!({"a": {"c": null, "d": true}, "b": [1, "x"]}),
                Some("p")
            )
        );
    }

    proptest! {
        #[test]
        fn every_part_of_a_work_key_is_a_key_segment(item in 0u32..100_000, redo in 0u32..1000, p in ".{0,20}") {
            let k = WorkKey::new(DagName::new("d"), NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default(), JobName::new("j"), ItemIndex(item), &json!({"p": p}), None, redo);
            for part in k.to_string().split('/') {
                prop_assert!(super::super::validate_segment("part", part).is_ok(), "{}", part);
            }
        }
    }
}
