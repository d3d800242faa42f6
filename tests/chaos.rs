//! The chaos suite, CI-sized: `nightshift chaos --duration 30s` against a
//! real etcd and PostgreSQL with two schedulers and four executor processes.
//! It passes only when every fault kind was injected, work was actually
//! lost to the faults and moved elsewhere, and every check held (terminal
//! runs and items, no overlapping attempts, each success recorded once, the
//! ledger reconciled, no alert left open without cause). The 10-minute soak
//! is run by hand and recorded in RELIABILITY.md.

use serde_json::Value;
use std::process::Command;

#[test]
fn etcd_chaos_30s_loses_nothing_and_does_nothing_twice() {
    let admin = nightshift_testkit::db::pg_admin_url();
    let out = Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .args([
            "chaos",
            "--duration",
            "30s",
            "--json",
            "--pg-admin-url",
            &admin,
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("running nightshift chaos");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chaos failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    let report: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {line}"));
    assert_eq!(report["passed"], true, "{stdout}");

    let kinds: std::collections::BTreeSet<&str> = report["faults"]
        .as_array()
        .expect("faults")
        .iter()
        .filter(|f| f["injected"] == true)
        .filter_map(|f| f["kind"].as_str())
        .collect();
    for kind in [
        "kill-executor",
        "stop-executor",
        "kill-leader",
        "restart-etcd",
        "cut-database",
        "drop-db-connections",
        "partition-executor",
    ] {
        assert!(kinds.contains(kind), "{kind} was not injected: {stdout}");
    }
    let checks = report["checks"].as_array().expect("checks");
    assert!(
        checks.len() >= 8 && checks.iter().all(|c| c["ok"] == true),
        "{stdout}"
    );
    assert!(
        report["runs_succeeded"].as_u64().unwrap_or(0) >= 2,
        "too little work was done under fire: {stdout}"
    );
    // The faults bit: some attempt was lost with its executor and its item
    // ran again elsewhere.
    assert!(
        report["attempts_lost"].as_u64().unwrap_or(0) > 0,
        "no attempt was lost to a fault: {stdout}"
    );
    assert!(
        report["attempts_moved"].as_u64().unwrap_or(0) > 0,
        "no item moved to another executor: {stdout}"
    );
}
