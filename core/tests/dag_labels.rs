//! `executor_labels` on a job: parsed into the model, malformed selectors
//! rejected at `file:line:col`, and the matching rule (every label present
//! with the same value) checked by property.

use nightshift_core::dag::{parse_dag, CalendarSet, JobSpec, Severity};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

fn errors(source: &str) -> Vec<(usize, usize, String)> {
    let diagnostics = parse_dag(Path::new("dags/test.toml"), source, &CalendarSet::new())
        .expect_err("the file should be rejected");
    diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| (d.line, d.col, d.message.clone()))
        .collect()
}

#[test]
fn a_job_reads_its_label_selector() {
    let source = "[jobs.a]\nexecutor_labels = { zone = \"a\", tier = \"batch\" }\n[jobs.b]\n";
    let dag = parse_dag(Path::new("dags/test.toml"), source, &CalendarSet::new()).unwrap();
    let a = &dag.jobs[0];
    assert_eq!(a.executor_labels.len(), 2);
    assert_eq!(a.label_selector(), "tier=batch,zone=a");
    assert!(dag.jobs[1].executor_labels.is_empty());
    // The selector survives the JSON the leader stores in etcd; a job
    // without one serialises as before.
    let json = serde_json::to_value(a).unwrap();
    let back: JobSpec = serde_json::from_value(json).unwrap();
    assert_eq!(&back, a);
    let plain = serde_json::to_string(&dag.jobs[1]).unwrap();
    assert!(!plain.contains("executor_labels"), "{plain}");
}

#[test]
fn malformed_selectors_are_reported_where_they_are() {
    assert_eq!(
        errors("[jobs.a]\nexecutor_labels = \"zone=a\"\n"),
        vec![(
            2,
            19,
            "`executor_labels`: expected a table, found a string".to_owned()
        )]
    );
    let found =
        errors("[jobs.a]\nexecutor_labels = { zone = 1, \"bad key\" = \"x\", tier = \"a b\" }\n");
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_eq!((found[0].0, found[0].1), (2, 28));
    assert!(found[0].2.contains("expected a string"), "{found:#?}");
    assert_eq!((found[1].0, found[1].1), (2, 31));
    assert!(
        found[1].2.contains("invalid label key `bad key`"),
        "{found:#?}"
    );
    assert_eq!((found[2].0, found[2].1), (2, 55));
    assert!(
        found[2].2.contains("invalid label value \"a b\""),
        "{found:#?}"
    );
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map("[a-c]", "[x-z]", 0..4)
}

proptest! {
    /// An executor is accepted exactly when it carries every selected label
    /// with the selected value; extra labels never matter.
    #[test]
    fn accepts_exactly_the_executors_carrying_every_label(
        selector in labels(),
        carried in labels(),
        extra in labels(),
    ) {
        let mut job = JobSpec::new("j");
        job.executor_labels = selector.clone();
        let expected = selector.iter().all(|(k, v)| carried.get(k) == Some(v));
        prop_assert_eq!(job.accepts_labels(&carried), expected);
        // A superset of the selector is always accepted.
        let mut superset = extra.clone();
        superset.extend(selector.clone());
        prop_assert!(job.accepts_labels(&superset));
        // No selector: everyone.
        prop_assert!(JobSpec::new("k").accepts_labels(&carried));
    }
}
