//! `nightshift bench` at tiny sizes, through the real binary: each scenario
//! starts (its own etcd, or `--etcd`), finishes, and prints one JSON line
//! with the expected fields. These are smoke tests, not benchmarks: they
//! assert what the scenario observed (the run succeeded, items moved, every
//! executor got an assignment) and never a timing.

use serde_json::Value;
use std::process::Command;

/// Runs `nightshift bench ARGS --json` and returns the parsed last line.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg("--raw-window")
        .arg("200ms")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {line}"))
}

fn number(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` missing or not a number in {v}"))
}

fn targets_are_verdicts(v: &Value) {
    let targets = v["targets"].as_array().expect("targets array");
    assert!(!targets.is_empty());
    for t in targets {
        assert!(
            t["met"].is_boolean() && t["name"].is_string() && t["limit"].is_string(),
            "{t}"
        );
    }
}

#[test]
fn etcd_bench_dispatch_runs_every_item_and_reports() {
    let v = bench(&["dispatch", "--executors", "2", "--items", "50"]);
    assert_eq!(v["scenario"], "dispatch");
    assert_eq!(v["run_state"], "succeeded");
    assert_eq!(number(&v, "item_attempts_started"), 50.0);
    for key in [
        "raw_etcd_puts_per_s",
        "end_to_end_s",
        "items_per_s",
        "scheduler_cpu_s",
        "scheduler_peak_rss_mib",
        "etcd_writes_per_item",
    ] {
        assert!(number(&v, key) >= 0.0, "{key}");
    }
    assert!(number(&v, "raw_etcd_puts_per_s") > 0.0);
    assert!(
        number(&v, "scheduler_peak_rss_mib") > 0.0,
        "read from /proc of the scheduler child"
    );
    targets_are_verdicts(&v);
}

#[tokio::test]
async fn etcd_bench_dispatch_uses_a_given_etcd_and_cleans_up() {
    use nightshift_coord::Coordinator;
    let etcd = nightshift_testkit::etcd::EtcdServer::start().await.unwrap();
    let endpoint = etcd.endpoint();
    let v = tokio::task::spawn_blocking(move || {
        bench(&[
            "dispatch",
            "--executors",
            "1",
            "--items",
            "9",
            "--etcd",
            &endpoint,
        ])
    })
    .await
    .unwrap();
    assert_eq!(v["run_state"], "succeeded");
    let coord = nightshift_coord::etcd::EtcdCoordinator::connect(
        nightshift_coord::etcd::EtcdConfig::new(etcd.endpoints()),
    )
    .await
    .unwrap();
    let (left, _) = coord.get_prefix("/").await.unwrap();
    assert!(
        left.is_empty(),
        "bench left keys behind: {:?}",
        left.iter().map(|kv| &kv.key).collect::<Vec<_>>()
    );
}

#[test]
fn etcd_bench_failover_moves_the_victims_items() {
    let v = bench(&["failover", "--lease-ttl", "2s", "--items", "4"]);
    assert_eq!(v["scenario"], "failover");
    assert!(number(&v, "sigkill_items_moved") >= 1.0);
    assert!(number(&v, "sigterm_items_moved") >= 1.0);
    for key in [
        "sigkill_reassigned_s",
        "sigkill_started_s",
        "sigterm_reassigned_s",
        "sigterm_started_s",
        "lease_ttl_s",
    ] {
        assert!(number(&v, key) >= 0.0, "{key}");
    }
    targets_are_verdicts(&v);
}

#[test]
fn etcd_bench_trigger_measures_scheduled_fires() {
    let v = bench(&["trigger", "--fires", "4", "--dags", "2"]);
    assert_eq!(v["scenario"], "trigger");
    assert!(number(&v, "fires_measured") >= 4.0);
    assert!(number(&v, "fire_to_first_item_p99_ms") >= number(&v, "fire_to_first_item_p50_ms"));
    targets_are_verdicts(&v);
}

/// The three runs all succeed (the scenario fails otherwise) and each
/// faulty one is measured against the fault-free one; the bound itself is
/// `tests/etcd_member_loss.rs`'s, not a smoke test's.
#[test]
fn etcd_bench_member_loss_measures_the_stall_of_each_loss() {
    let v = bench(&["member-loss", "--items", "8"]);
    assert_eq!(v["scenario"], "member-loss");
    assert_eq!(number(&v, "items"), 16.0);
    let free = number(&v, "fault_free_run_s");
    assert!(free > 0.0);
    for (run, stall) in [
        ("leader_lost_run_s", "leader_loss_stall_s"),
        ("follower_lost_run_s", "follower_loss_stall_s"),
    ] {
        let delta = number(&v, run) - free;
        assert!((number(&v, stall) - delta).abs() < 0.01, "{stall}");
    }
    targets_are_verdicts(&v);
}

#[test]
fn etcd_bench_scale_assigns_every_registered_executor() {
    let v = bench(&["scale", "--executors", "20", "--items", "1000"]);
    assert_eq!(v["scenario"], "scale");
    assert_eq!(number(&v, "assignment_keys"), 20.0);
    assert!(number(&v, "assignment_bytes") > 0.0);
    assert!(number(&v, "etcd_revisions") >= 1.0);
    assert!(number(&v, "scheduler_peak_rss_mib") > 0.0);
    targets_are_verdicts(&v);
}

#[test]
fn etcd_bench_fleet_runs_every_item_once_and_reports() {
    let v = bench(&["fleet", "--executors", "20", "--items", "3000"]);
    assert_eq!(v["scenario"], "fleet");
    assert_eq!(v["run_state"], "succeeded");
    assert_eq!(number(&v, "items"), 3000.0);
    assert_eq!(
        number(&v, "items_succeeded_once"),
        number(&v, "items"),
        "every item exactly one succeeded attempt in the SQL history"
    );
    assert_eq!(number(&v, "items_succeeded_twice_or_more"), 0.0);
    for key in [
        "items_per_s",
        "etcd_egress_bytes_per_item",
        "self_fenced",
        "leases_lost",
        "leader_pass_p50_ms",
        "leader_pass_p99_ms",
        "scheduler_cpu_s",
        "raw_etcd_puts_per_s",
    ] {
        assert!(number(&v, key) >= 0.0, "{key}");
    }
    assert!(
        number(&v, "largest_value_bytes") > 0.0,
        "scraped from the scheduler's gauge: the leader wrote records"
    );
    assert!(number(&v, "scheduler_peak_rss_mib") > 0.0);
    assert!(number(&v, "leader_pass_p99_ms") >= number(&v, "leader_pass_p50_ms"));
    targets_are_verdicts(&v);
}
