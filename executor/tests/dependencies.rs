//! The SDK stays lean: what a service embedding it compiles must not
//! include the DAG parser (`nightshift-core`: toml, cron, chrono-tz,
//! petgraph), the SQL store, the console or the scheduler. Checked on `cargo tree` of the SDK's normal
//! dependencies, so that a new `use nightshift_core::…` or dependency line in
//! `executor/` fails here and not in a user's build.

use std::process::Command;

/// Crates an executor never needs. (axum is not listed: etcd-client turns
/// on tonic's default features, which include its router; the SDK itself
/// does not depend on it.)
const FORBIDDEN: &[&str] = &[
    "nightshift-core",
    "nightshift-scheduler",
    "nightshift-store",
    "nightshift-console",
    "toml",
    "cron",
    "chrono-tz",
    "petgraph",
    "sqlx",
];

#[test]
fn the_sdk_pulls_no_dag_parser_store_or_scheduler_crates() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--manifest-path",
            manifest,
            "-p",
            "nightshift-executor",
        ])
        .args(["-e", "normal", "--prefix", "none", "--offline"])
        .output()
        .expect("running cargo tree");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    crates.sort_unstable();
    crates.dedup();
    assert!(crates.contains(&"nightshift-protocol"), "{crates:?}");
    let found: Vec<&&str> = FORBIDDEN.iter().filter(|c| crates.contains(c)).collect();
    assert!(found.is_empty(), "the SDK depends on {found:?}");
    // Measured 110 with typed params (schemars without default features:
    // +6 small crates), the item log layer (tracing-subscriber's registry:
    // +4) and the metrics facade (+3) since the split (97). BENCHMARKS.md
    // ("Executor SDK build") counts a service using the SDK. A jump means a
    // heavy new dependency worth a second look.
    assert!(crates.len() <= 115, "{} crates: {crates:?}", crates.len());
}
