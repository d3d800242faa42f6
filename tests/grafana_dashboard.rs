//! The Grafana dashboard shipped in `deploy/grafana/` is valid JSON, and
//! every metric its queries use is one the code records: a renamed metric
//! would otherwise leave a panel silently empty.

use std::collections::BTreeSet;

fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("nightshift_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_metric_on_the_dashboard_is_recorded_somewhere() {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/deploy/grafana/nightshift.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "a dashboard, not a stub");
    let mut used = BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            used.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    let sources = [
        "scheduler/src/leader/telemetry.rs",
        "executor/src/telemetry.rs",
        "coord/src/lease.rs",
        "console/src/metrics.rs",
    ];
    let mut recorded = BTreeSet::new();
    for source in sources {
        recorded.extend(metric_names(
            &std::fs::read_to_string(format!("{root}/{source}")).unwrap(),
        ));
    }
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| {
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            !recorded.contains(base)
        })
        .collect();
    assert!(missing.is_empty(), "not recorded anywhere: {missing:?}");
}
