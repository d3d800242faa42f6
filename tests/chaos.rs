//! The chaos suite, CI-sized: `nightshift chaos` against a real etcd and
//! PostgreSQL with two schedulers and four executor processes, once on a
//! single etcd (30 s of faults) and once on a 3-member etcd cluster (40 s:
//! four more fault kinds), in both cases longer (up to three times) until
//! two runs have succeeded under fire. Each passes only when every fault
//! kind of its etcd was injected (etcd answers swallowed among them), work
//! was actually lost to the faults and moved elsewhere, a SIGSTOP or a
//! partition caught an executor running a stubborn item (one that ignores
//! cancellation and journals its steps), and every check held (terminal
//! runs and items, no overlapping attempts, each success recorded once, the
//! ledger reconciled, no alert left open without cause, no two owners'
//! stubborn steps interleaved). The 10-minute soak is run by hand and recorded in
//! RELIABILITY.md.

use serde_json::Value;
use std::process::Command;

/// Runs that must succeed while faults are injected. A fixed fault time
/// finishes fewer runs on a slower (or busier) machine, so the suite keeps
/// injecting, a round of every kind at a time, until this many have
/// (`--min-runs`), for at most `--max-duration`: the check means the same
/// on any machine, and a fast one spends no more time than before.
const MIN_RUNS: u64 = 2;

/// Runs `nightshift chaos` and checks its JSON report; `kinds` must each
/// have been injected at least once.
fn chaos_passes(members: &str, duration: &str, max_duration: &str, kinds: &[&str]) {
    let admin = nightshift_testkit::db::pg_admin_url();
    let min_runs = MIN_RUNS.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .args([
            "chaos",
            "--etcd-members",
            members,
            "--duration",
            duration,
            "--min-runs",
            &min_runs,
            "--max-duration",
            max_duration,
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

    let faults = report["faults"].as_object().expect("faults by kind");
    for kind in kinds {
        assert!(
            faults.get(*kind).and_then(Value::as_u64).unwrap_or(0) > 0,
            "{kind} was not injected: {stdout}"
        );
        // The text report names every kind too.
        assert!(
            stdout.contains(kind),
            "{kind} missing from the text: {stdout}"
        );
    }
    assert_eq!(faults.len(), kinds.len(), "unexpected kinds: {faults:?}");
    let records = report["fault_records"].as_array().expect("fault records");
    assert!(records.iter().all(|f| f["kind"].is_string()), "{records:?}");
    let checks = report["checks"].as_array().expect("checks");
    assert!(
        checks.len() >= 10 && checks.iter().all(|c| c["ok"] == true),
        "{stdout}"
    );
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "enough runs succeeded under fire"),
        "--min-runs added no check: {stdout}"
    );
    assert!(
        report["runs_succeeded_under_fire"].as_u64().unwrap_or(0) >= MIN_RUNS,
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
    // A stubborn item was caught by a SIGSTOP or a partition, and the
    // journal the interleaving check read is not empty.
    assert!(
        report["stubborn_faults"].as_u64().unwrap_or(0) > 0,
        "no fault hit a stubborn item: {stdout}"
    );
    assert!(
        report["stubborn_steps"].as_u64().unwrap_or(0) > 0,
        "no stubborn step journaled: {stdout}"
    );
}

/// Fault kinds of every run.
const COMMON_KINDS: [&str; 7] = [
    "kill-executor",
    "stop-executor",
    "kill-leader",
    "cut-database",
    "drop-db-connections",
    "partition-executor",
    "swallow-responses",
];

#[test]
fn etcd_chaos_30s_loses_nothing_and_does_nothing_twice() {
    let mut kinds = COMMON_KINDS.to_vec();
    kinds.push("restart-etcd");
    chaos_passes("1", "30s", "90s", &kinds);
}

#[test]
fn etcd_chaos_on_three_members_40s_loses_nothing_and_does_nothing_twice() {
    let mut kinds = COMMON_KINDS.to_vec();
    kinds.extend([
        "kill-etcd-follower",
        "kill-etcd-leader",
        "partition-etcd-member",
        "restart-etcd-member",
    ]);
    chaos_passes("3", "40s", "120s", &kinds);
}
