//! What a chaos run found: the faults injected, the work done, and each
//! check with its violations, as a table for people and one JSON object
//! for scripts. Gathering reads the history straight from the database.

use super::check::{self, RunHistory};
use super::plan::FaultKind;
use super::workload::{self, Triggered};
use anyhow::Context as _;
use nightshift_core::ids::DagName;
use nightshift_core::state::{AttemptOutcome, RunState};
use nightshift_demo::DemoDb;
use nightshift_executor::builtin::journal::{self, JournalStep};
use nightshift_store::{Alert, AlertFilter, RunFilter, Store};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// One fault as it happened.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    /// Milliseconds after the fault phase began.
    pub at_ms: u64,
    /// What.
    pub kind: FaultKind,
    /// Target and effect, or why it could not be injected.
    pub detail: String,
    /// Whether it was injected.
    pub injected: bool,
    /// Whether it hit an executor running a stubborn item (a SIGSTOP or a
    /// partition of its etcd links).
    pub stubborn: bool,
}

/// One check and its violations.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// What it checks.
    pub name: &'static str,
    /// The evidence of each violation; empty when the check holds.
    pub violations: Vec<String>,
}

/// The result of a chaos run.
#[derive(Debug)]
pub struct Report {
    seed: u64,
    duration: Duration,
    faults: Vec<FaultRecord>,
    runs: usize,
    succeeded: usize,
    items: u64,
    attempts: usize,
    lost: usize,
    moved: usize,
    stubborn_steps: usize,
    stubborn_moved: usize,
    unanswered: Vec<String>,
    checks: Vec<CheckResult>,
    /// With `--min-runs`: runs that succeeded before the faults stopped.
    under_fire: Option<usize>,
    /// Restarts per process.
    pub restarts: Vec<(String, u32)>,
    /// Run commits of the schedulers that failed or went unanswered (each
    /// followed by a reload of the run from etcd).
    pub unanswered_commits: usize,
}

/// Every run of the chaos DAG with its job rows and attempts.
pub async fn read_histories(store: &Store) -> anyhow::Result<Vec<RunHistory>> {
    let filter = RunFilter {
        dag: Some(DagName::new(workload::DAG)),
        limit: Some(100_000),
        ..Default::default()
    };
    let runs = store.list_runs(&filter).await.context("listing runs")?;
    let mut histories = Vec::new();
    for run in runs {
        let jobs = store
            .job_runs(&run.run_id)
            .await
            .context("reading job runs")?;
        let mut attempts = Vec::new();
        for j in &jobs {
            attempts.extend(
                store
                    .attempts(&run.run_id, &j.job, None)
                    .await
                    .context("reading attempts")?,
            );
        }
        histories.push(RunHistory {
            run,
            jobs,
            attempts,
        });
    }
    Ok(histories)
}

/// Every alert, in any state.
pub async fn read_alerts(store: &Store) -> anyhow::Result<Vec<Alert>> {
    store
        .list_alerts(&AlertFilter {
            limit: Some(100_000),
            ..Default::default()
        })
        .await
        .context("reading alerts")
}

impl Report {
    /// Runs every check over the history read after the run.
    #[allow(clippy::too_many_arguments)]
    pub async fn gather(
        demo: &DemoDb,
        histories: Vec<RunHistory>,
        alerts: &[Alert],
        triggered: &Triggered,
        faults: Vec<FaultRecord>,
        crashes: Vec<String>,
        stubborn_steps: &[JournalStep],
        seed: u64,
        duration: Duration,
    ) -> anyhow::Result<Report> {
        let triggered_ids: Vec<_> = triggered.runs.iter().map(|(r, _)| r.clone()).collect();
        let ledger = ledger_violations(demo, &histories).await?;
        let injected: Vec<String> = faults
            .iter()
            .filter(|f| !f.injected)
            .map(|f| format!("{}: {}", f.kind, f.detail))
            .collect();
        let checks = vec![
            CheckResult {
                name: "every fault injected",
                violations: injected,
            },
            CheckResult {
                name: "no process exited on its own",
                violations: crashes,
            },
            CheckResult {
                name: "every run and item terminal",
                violations: check::all_terminal(&triggered_ids, &histories),
            },
            CheckResult {
                name: "every run succeeded",
                violations: check::all_succeeded(&histories),
            },
            CheckResult {
                name: "no overlapping attempts",
                violations: check::no_overlapping_attempts(&histories),
            },
            CheckResult {
                name: "every succeeded item recorded once",
                violations: check::succeeded_once(&histories),
            },
            CheckResult {
                name: "ledger reconciles, each item applied once",
                violations: ledger,
            },
            CheckResult {
                name: "no alert open without cause",
                violations: check::no_alert_without_cause(alerts, &histories),
            },
            CheckResult {
                name: "stubborn items: two owners' steps never interleave",
                violations: check::stubborn_never_interleaved(stubborn_steps, &histories),
            },
        ];
        let all_attempts = histories.iter().flat_map(|h| &h.attempts);
        Ok(Report {
            seed,
            duration,
            faults,
            runs: histories.len(),
            succeeded: histories
                .iter()
                .filter(|h| h.run.state == RunState::Succeeded)
                .count(),
            items: histories
                .iter()
                .flat_map(|h| &h.jobs)
                .map(|j| u64::from(j.shards))
                .sum(),
            attempts: all_attempts.clone().count(),
            lost: all_attempts
                .clone()
                .filter(|a| a.outcome == Some(AttemptOutcome::Lost))
                .count(),
            moved: all_attempts.filter(|a| a.moved_from.is_some()).count(),
            stubborn_steps: stubborn_steps.len(),
            stubborn_moved: journal::items_with_several_owners(stubborn_steps),
            unanswered: triggered.unanswered.clone(),
            checks,
            under_fire: None,
            restarts: Vec::new(),
            unanswered_commits: 0,
        })
    }

    /// With `--min-runs`: adds the check that at least `min_runs` runs
    /// succeeded while faults were injected (`under_fire` did).
    pub fn require_runs_under_fire(&mut self, min_runs: usize, under_fire: usize) {
        if min_runs == 0 {
            return;
        }
        let violations = if under_fire >= min_runs {
            Vec::new()
        } else {
            vec![format!(
                "{under_fire} runs succeeded before the faults stopped at {:.1}s, fewer than --min-runs {min_runs}",
                self.duration.as_secs_f64()
            )]
        };
        self.checks.push(CheckResult {
            name: "enough runs succeeded under fire",
            violations,
        });
        self.under_fire = Some(under_fire);
    }

    /// Injected faults per kind name; a kind whose every fault failed to
    /// inject is listed with 0.
    fn faults_by_kind(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for f in &self.faults {
            *out.entry(f.kind.as_str()).or_insert(0) += usize::from(f.injected);
        }
        out
    }

    /// Whether every check holds and the run did some work under fire.
    pub fn passed(&self) -> bool {
        self.runs > 0 && self.checks.iter().all(|c| c.violations.is_empty())
    }

    /// The human report.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nchaos: seed {} ({} s of faults, {} injected)",
            self.seed,
            self.duration.as_secs(),
            self.faults.iter().filter(|f| f.injected).count()
        );
        let under_fire = self
            .under_fire
            .map(|n| format!(", {n} before the faults stopped"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "work:  {} runs ({} succeeded{under_fire}), {} items, {} attempts, {} lost to faults, {} moved to another executor",
            self.runs, self.succeeded, self.items, self.attempts, self.lost, self.moved
        );
        let kinds: Vec<String> = self
            .faults_by_kind()
            .iter()
            .map(|(k, n)| format!("{k}×{n}"))
            .collect();
        let _ = writeln!(out, "faults: {}", kinds.join(", "));
        let _ = writeln!(
            out,
            "stubborn: {} steps journaled, {} items moved while running, {} faults hit an executor running one",
            self.stubborn_steps,
            self.stubborn_moved,
            self.faults.iter().filter(|f| f.injected && f.stubborn).count()
        );
        let _ = writeln!(
            out,
            "commits: {} run commits failed or went unanswered (the run reloaded from etcd)",
            self.unanswered_commits
        );
        if !self.restarts.is_empty() {
            let list: Vec<String> = self
                .restarts
                .iter()
                .map(|(n, r)| format!("{n}×{r}"))
                .collect();
            let _ = writeln!(out, "restarts: {}", list.join(", "));
        }
        for u in &self.unanswered {
            let _ = writeln!(out, "note:  {u}");
        }
        for c in &self.checks {
            let verdict = if c.violations.is_empty() {
                "ok  "
            } else {
                "FAIL"
            };
            let _ = writeln!(out, "{verdict}  {}", c.name);
            for v in c.violations.iter().take(20) {
                let _ = writeln!(out, "        {}", v.replace('\n', "\n        "));
            }
            if c.violations.len() > 20 {
                let _ = writeln!(out, "        ... and {} more", c.violations.len() - 20);
            }
        }
        if self.runs == 0 {
            let _ = writeln!(out, "FAIL  no run ended: nothing was tested");
        }
        let _ = writeln!(out, "{}", if self.passed() { "PASSED" } else { "FAILED" });
        out
    }

    /// The JSON line.
    pub fn to_json(&self) -> String {
        let records: Vec<_> = self.faults.iter().map(|f| json!({"at_ms": f.at_ms, "kind": f.kind.as_str(), "detail": f.detail, "injected": f.injected, "stubborn": f.stubborn})).collect();
        let checks: Vec<_> = self.checks.iter().map(|c| json!({"name": c.name, "ok": c.violations.is_empty(), "violations": c.violations})).collect();
        json!({
            "scenario": "chaos",
            "seed": self.seed,
            "duration_s": self.duration.as_secs_f64(),
            "passed": self.passed(),
            "runs": self.runs,
            "runs_succeeded": self.succeeded,
            "runs_succeeded_under_fire": self.under_fire,
            "items": self.items,
            "attempts": self.attempts,
            "attempts_lost": self.lost,
            "attempts_moved": self.moved,
            "faults": self.faults_by_kind(),
            "fault_records": records,
            "unanswered_commits": self.unanswered_commits,
            "stubborn_steps": self.stubborn_steps,
            "stubborn_items_moved": self.stubborn_moved,
            "stubborn_faults": self.faults.iter().filter(|f| f.injected && f.stubborn).count(),
            "checks": checks,
            "restarts": self.restarts.iter().map(|(n, r)| json!({"process": n, "restarts": r})).collect::<Vec<_>>(),
        })
        .to_string()
    }
}

/// The demo's ledger check for every succeeded day, and each ledger item's
/// effects applied exactly once (one `demo_effects` row per item).
async fn ledger_violations(demo: &DemoDb, histories: &[RunHistory]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for h in histories
        .iter()
        .filter(|h| h.run.state == RunState::Succeeded)
    {
        let date = h.run.business_date.format("%Y-%m-%d").to_string();
        let check = demo
            .check_ledger(&date)
            .await
            .context("checking the ledger")?;
        if !check.is_ok() {
            out.push(format!("{date} (run {}): {}", h.run.run_id, check.report()));
        }
        for (job, shards) in workload::LEDGER_JOBS {
            let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM demo_effects WHERE job = '{job}' AND business_date = '{date}'");
            let applied = demo.scalar(&sql).await.context("counting applied items")?;
            if applied != shards {
                out.push(format!(
                    "{date} (run {}): {applied} of {shards} {job} items applied",
                    h.run.run_id
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of a run that did nothing, with every other check held.
    fn empty(fault_time: Duration) -> Report {
        Report {
            seed: 1,
            duration: fault_time,
            faults: Vec::new(),
            runs: 3,
            succeeded: 3,
            items: 0,
            attempts: 0,
            lost: 0,
            moved: 0,
            stubborn_steps: 0,
            stubborn_moved: 0,
            unanswered: Vec::new(),
            checks: Vec::new(),
            under_fire: None,
            restarts: Vec::new(),
            unanswered_commits: 0,
        }
    }

    #[test]
    fn too_few_runs_under_fire_fail_the_run_and_show_in_both_reports() {
        let mut short = empty(Duration::from_secs(90));
        short.require_runs_under_fire(2, 1);
        assert!(!short.passed());
        assert!(short
            .table()
            .contains("FAIL  enough runs succeeded under fire"));
        let json: serde_json::Value = serde_json::from_str(&short.to_json()).unwrap();
        assert_eq!(json["runs_succeeded_under_fire"], 1);
        assert_eq!(json["duration_s"], 90.0);

        let mut enough = empty(Duration::from_secs(30));
        enough.require_runs_under_fire(2, 2);
        assert!(enough.passed(), "{}", enough.table());
        assert_eq!(enough.checks.len(), 1);

        // Without --min-runs there is no such check and no figure.
        let mut off = empty(Duration::from_secs(30));
        off.require_runs_under_fire(0, 0);
        assert!(off.checks.is_empty() && off.passed());
        let json: serde_json::Value = serde_json::from_str(&off.to_json()).unwrap();
        assert!(json["runs_succeeded_under_fire"].is_null());
    }
}
