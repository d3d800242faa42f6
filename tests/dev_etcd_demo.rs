//! The settlement DAG in production shape: a real etcd, PostgreSQL, one
//! `nightshift scheduler`, a console and three `nightshift demo executor`
//! processes. One executor is SIGKILLed mid-run; its items move to the
//! others and the run succeeds with the ledger reconciled.

mod dev_support;

use anyhow::Context as _;
use dev_support::*;
use nightshift_testkit::db::fresh_postgres;
use nightshift_testkit::etcd::EtcdServer;
use std::path::Path;
use std::time::{Duration, Instant};

const DAG: &str = "nightly-settlement";

#[test]
fn etcd_postgres_settlement_survives_a_killed_executor() -> anyhow::Result<()> {
    let started = Instant::now();
    let runtime = tokio::runtime::Runtime::new()?;
    let etcd = runtime.block_on(EtcdServer::start())?;
    let pg = runtime.block_on(fresh_postgres())?;
    let dir = tempfile::tempdir()?;
    let endpoint = etcd.endpoint();
    let conn = ["--etcd", endpoint.as_str(), "--database", pg.url.as_str()];
    let run_cli = |args: &[&str], log: &str| -> anyhow::Result<()> {
        let mut p = Proc::start(args, &dir.path().join(log), false)?;
        let status = p.child.wait()?;
        anyhow::ensure!(
            status.success(),
            "nightshift {args:?} failed:\n{}",
            p.tail()
        );
        Ok(())
    };
    run_cli(
        &[&[
            "demo",
            "seed",
            "--accounts",
            "10000",
            "--database",
            pg.url.as_str(),
        ][..]]
        .concat(),
        "seed.log",
    )?;
    let dag_file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dags/nightly-settlement.toml")
        .display()
        .to_string();
    run_cli(
        &[&["apply", dag_file.as_str()][..], &conn].concat(),
        "apply.log",
    )?;

    let _scheduler = Proc::start(
        &[&["scheduler", "--lease-ttl", "3s"][..], &conn].concat(),
        &dir.path().join("scheduler.log"),
        false,
    )?;
    let mut executors = Vec::new();
    let reports = dir.path().join("demo-reports");
    let report_dir = reports.display().to_string();
    for i in 0..3 {
        let id = format!("demo-{i}");
        let args = [
            &[
                "demo",
                "executor",
                "--id",
                id.as_str(),
                "--lease-ttl",
                "2s",
                "--capacity",
                "4",
                "--report-dir",
                report_dir.as_str(),
            ][..],
            &conn,
        ]
        .concat();
        executors.push(Proc::start(
            &args,
            &dir.path().join(format!("{id}.log")),
            false,
        )?);
    }
    let console_log = dir.path().join("console.log");
    let mut console_cmd = std::process::Command::new(env!("CARGO_BIN_EXE_nightshift"));
    console_cmd
        .args([&["console", "--listen", "127.0.0.1:0"][..], &conn].concat())
        .env("NIGHTSHIFT_OPERATOR_TOKEN", TOKEN)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&console_log)?);
    let console = Proc {
        child: console_cmd.spawn()?,
        log: console_log.clone(),
    };
    let addr = poll(Duration::from_secs(30), "the console address", || {
        let log = std::fs::read_to_string(&console_log).ok()?;
        let line = log.lines().find_map(|l| {
            l.split_once("console on http://")
                .map(|(_, a)| a.to_owned())
        })?;
        Some(line.split('/').next()?.to_owned())
    })
    .with_context(|| console.tail())?;

    poll(
        Duration::from_secs(30),
        "three registered executors",
        || {
            let list = get_json(&addr, "/api/v1/executors").ok()?;
            (list.as_array()?.len() == 3).then_some(())
        },
    )?;
    let date = "2026-03-05";
    let mut last = String::new();
    poll(
        Duration::from_secs(30),
        "the trigger to be accepted",
        || {
            let (status, body) = http(
                &addr,
                "POST",
                &format!("/api/v1/dags/{DAG}/trigger"),
                Some(&format!("{{\"business_date\":\"{date}\"}}")),
            )
            .ok()?;
            last = format!("{status} {body}");
            (status == 202).then_some(())
        },
    )
    .with_context(|| format!("last answer: {last}\n{}", console.tail()))?;
    let run = poll(Duration::from_secs(30), "the run", || {
        find_run(&addr, DAG, date)
    })?;
    // fx-revaluation sleeps 5 s per item, dealt round-robin over the three
    // executors: once interest has accrued, every executor holds items.
    poll(Duration::from_secs(40), "interest accrued", || {
        let detail = get_json(&addr, &format!("/api/v1/runs/{run}")).ok()?;
        (job_state(&detail, "interest-accrual").as_deref() == Some("succeeded")).then_some(())
    })?;
    let before_kill = get_json(&addr, &format!("/api/v1/runs/{run}"))?;
    executors[0].kill();
    assert_eq!(
        before_kill["run"]["state"], "running",
        "killed mid-run: {before_kill:#}"
    );

    let killed_log = std::fs::read_to_string(&executors[0].log)?;
    assert!(
        killed_log
            .lines()
            .any(|l| l.contains("new assignment") && l.contains("fx-revaluation")),
        "the killed executor held fx-revaluation items:\n{killed_log}"
    );

    let detail = wait_terminal(&addr, &run, Duration::from_secs(60))
        .map_err(|e| anyhow::anyhow!("{e}\n{}", executors[1].tail()))?;
    assert_eq!(detail["run"]["state"], "succeeded", "{detail:#}");
    assert_eq!(
        job_state(&detail, "reconciliation").as_deref(),
        Some("succeeded")
    );
    runtime.block_on(assert_ledger_reconciled(&pg.url, date))?;
    // settlement-report ran as a program (a shell script reading PostgreSQL
    // with psql) and wrote the day's report.
    let report = std::fs::read_to_string(
        reports
            .join("reports")
            .join(format!("settlement-{date}.txt")),
    )?;
    assert!(
        report.starts_with(&format!("settlement report for business date {date}")),
        "{report}"
    );
    eprintln!("etcd test took {:?}", started.elapsed());
    drop(executors);
    drop(console);
    Ok(())
}
