//! `nightshift dev` as a child process: it seeds 10,000 demo accounts, runs
//! the settlement DAG to success with a reconciled ledger; then a second
//! run is SIGKILLed mid-way, `dev` is started again on the same state
//! directory, and that run completes with the ledger still reconciled (no
//! double postings).

mod dev_support;

use dev_support::*;
use std::time::{Duration, Instant};

const DAG: &str = "nightly-settlement";

#[test]
fn dev_runs_the_settlement_and_resumes_after_sigkill() -> anyhow::Result<()> {
    let started = Instant::now();
    let state = tempfile::tempdir()?;
    let url = format!("sqlite://{}", state.path().join("nightshift.db").display());
    let runtime = tokio::runtime::Runtime::new()?;

    // 1. A full run, triggered with --run-now.
    let (mut dev, addr) = start_dev(
        state.path(),
        &["--executors", "3", "--accounts", "10000", "--run-now", DAG],
        "dev-1.log",
    )?;
    let run1 = poll(Duration::from_secs(30), "the --run-now run", || {
        let runs = get_json(&addr, &format!("/api/v1/runs?dag={DAG}")).ok()?;
        runs.as_array()?.first()?["run_id"]
            .as_str()
            .map(str::to_owned)
    })?;
    let detail = wait_terminal(&addr, &run1, Duration::from_secs(60))?;
    assert_eq!(
        detail["run"]["state"],
        "succeeded",
        "{detail:#}\n{}",
        dev.tail()
    );
    assert_eq!(
        job_state(&detail, "reconciliation").as_deref(),
        Some("succeeded")
    );
    let date1 = detail["run"]["business_date"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    runtime.block_on(assert_ledger_reconciled(&url, &date1))?;
    // settlement-report is a program handler (a shell script): it wrote the
    // day's report from the ledger.
    let report = std::fs::read_to_string(
        state
            .path()
            .join("reports")
            .join(format!("settlement-{date1}.txt")),
    )?;
    assert!(
        report.starts_with(&format!("settlement report for business date {date1}")),
        "{report}"
    );
    assert!(
        report.contains("postings (count|debit|credit): "),
        "{report}"
    );

    // 2. Another business date, killed once its interest has accrued.
    let date2 = "2026-03-05";
    let (status, body) = http(
        &addr,
        "POST",
        &format!("/api/v1/dags/{DAG}/trigger"),
        Some(&format!("{{\"business_date\":\"{date2}\"}}")),
    )?;
    assert_eq!(status, 202, "{body}");
    let run2 = poll(Duration::from_secs(20), "the second run", || {
        find_run(&addr, DAG, date2)
    })?;
    poll(
        Duration::from_secs(30),
        "interest accrued in the second run",
        || {
            let detail = get_json(&addr, &format!("/api/v1/runs/{run2}")).ok()?;
            (job_state(&detail, "interest-accrual").as_deref() == Some("succeeded")).then_some(())
        },
    )?;
    let before_kill = get_json(&addr, &format!("/api/v1/runs/{run2}"))?;
    dev.kill();
    assert_eq!(
        before_kill["run"]["state"], "running",
        "killed mid-run: {before_kill:#}"
    );
    assert_ne!(
        job_state(&before_kill, "reconciliation").as_deref(),
        Some("succeeded")
    );

    // 3. Start again on the same state: the run resumes and completes.
    let (dev2, addr2) = start_dev(state.path(), &["--executors", "3"], "dev-2.log")?;
    let log = std::fs::read_to_string(&dev2.log)?;
    assert!(
        log.contains("coordination keys restored"),
        "the restart did not resume from the snapshot:\n{log}"
    );
    let detail = wait_terminal(&addr2, &run2, Duration::from_secs(60))
        .map_err(|e| anyhow::anyhow!("{e}\n{}", dev2.tail()))?;
    assert_eq!(
        detail["run"]["state"],
        "succeeded",
        "{detail:#}\n{}",
        dev2.tail()
    );
    assert_eq!(
        job_state(&detail, "reconciliation").as_deref(),
        Some("succeeded")
    );
    runtime.block_on(assert_ledger_reconciled(&url, date2))?;

    // 4. SIGTERM stops everything cleanly.
    let mut dev2 = dev2;
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe { libc::kill(dev2.child.id() as i32, libc::SIGTERM) };
    let status = poll(Duration::from_secs(45), "dev to exit after SIGTERM", || {
        dev2.child.try_wait().ok().flatten()
    })?;
    assert!(
        status.success(),
        "dev exited with {status} after SIGTERM:\n{}",
        dev2.tail()
    );
    assert!(std::fs::read_to_string(&dev2.log)?.contains("stopped"));
    eprintln!("dev test took {:?}", started.elapsed());
    Ok(())
}
