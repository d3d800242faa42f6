//! `nightshift plan DAG [--format text|json]`: the assignment the next run
//! of a DAG would get, without running anything.
//!
//! For each job: the live executors that registered its handler (with their
//! capacity as weight), the job's sharding strategy, and the assignment the
//! job got when it last started (`{p}assignments/{dag}/{job}`, written by the
//! leader) go through the leader's own `nightshift_scheduler::plan`
//! functions, so the plan and the next job start cannot disagree; it is
//! printed per executor with item ranges and how many items
//! move compared with the last run. Read-only: nothing is written.

use crate::cli::conn::{self, EtcdArgs};
use crate::cli::{applied, status::Format};
use anyhow::Context as _;
use nightshift_coord::Coordinator;
use nightshift_core::dag::{DagSpec, JobSpec};
use nightshift_core::keyspace::{self, decode, ExecutorInfo};
use nightshift_core::sharding::{moved_items, moves_by_executor};
use nightshift_scheduler::plan::{plan_job as leader_plan, previous_assignment, slots_for};
use nightshift_scheduler::record::{read_last_assignment, LastAssignment};
use serde::Serialize;
use std::process::ExitCode;

/// Flags of `nightshift plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The applied DAG.
    #[arg(value_name = "DAG")]
    pub dag: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// The plan of one DAG.
#[derive(Debug, Serialize)]
struct Plan {
    dag: String,
    version: u32,
    live_executors: Vec<String>,
    /// The next five scheduled fires (RFC 3339, in the DAG's zone) with the
    /// business date each run is for.
    next_fires: Vec<NextFire>,
    jobs: Vec<JobPlan>,
}

#[derive(Debug, Serialize)]
struct NextFire {
    at: String,
    business_date: String,
}

/// The next `n` fires of the DAG's schedule after now (none when it has no
/// schedule), with their business dates under its policy.
fn next_fires(spec: &DagSpec, n: usize) -> Vec<NextFire> {
    spec.next_fires(chrono::Utc::now(), n)
        .into_iter()
        .map(|(fire, day)| NextFire {
            at: fire.with_timezone(&spec.timezone).to_rfc3339(),
            business_date: day.to_string(),
        })
        .collect()
}

#[derive(Debug, Serialize)]
struct JobPlan {
    job: String,
    handler: String,
    strategy: String,
    items: u32,
    /// The run whose assignment is the "before", if there was one.
    previous_run: Option<String>,
    has_previous: bool,
    /// Items whose owner changes.
    moved: usize,
    /// Why no assignment can be made (no live executor offers the handler).
    waiting: Option<String>,
    /// The job's `executor_labels` as `k=v,...` (absent: any executor).
    #[serde(skip_serializing_if = "Option::is_none")]
    executor_labels: Option<String>,
    /// Live executors eligible for the job (its handler and its labels).
    matching_executors: Vec<String>,
    executors: Vec<ExecutorPlan>,
}

#[derive(Debug, Serialize)]
struct ExecutorPlan {
    executor: String,
    items: usize,
    /// Inclusive `[first, last]` item ranges.
    ranges: Vec<[u32; 2]>,
    kept: usize,
    moved_in: usize,
    moved_out: usize,
}

/// Runs `nightshift plan`.
pub fn run(args: Args) -> ExitCode {
    conn::block_on(async move {
        let prefix = args.etcd.key_prefix()?;
        let dag = crate::cli::trigger::dag_name(&args.dag)?;
        let coord = args.etcd.connect().await?;
        let published = applied::require(coord.as_ref(), &prefix, &dag).await?;
        let executors = live_executors(coord.as_ref(), &prefix).await?;
        let plan = make_plan(
            coord.as_ref(),
            &prefix,
            &published.spec,
            published.version,
            &executors,
        )
        .await?;
        match args.format {
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(&plan).context("encoding the plan")?
            ),
            Format::Text => print!("{}", render(&plan)),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Every registered executor (records that do not decode are skipped with a warning).
pub(crate) async fn live_executors(
    coord: &dyn Coordinator,
    prefix: &str,
) -> anyhow::Result<Vec<ExecutorInfo>> {
    let (kvs, _) = coord
        .get_prefix(&keyspace::executors_prefix(prefix))
        .await
        .context("listing executors in etcd")?;
    let mut out = Vec::new();
    for kv in kvs {
        if keyspace::parse_executor_key(prefix, &kv.key).is_none() {
            continue;
        }
        match decode::<ExecutorInfo>(&kv.value) {
            Ok(info) => out.push(info),
            Err(e) => {
                tracing::warn!(key = %kv.key, error = %e, "skipping unreadable executor record")
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

async fn make_plan(
    coord: &dyn Coordinator,
    prefix: &str,
    spec: &DagSpec,
    version: u32,
    executors: &[ExecutorInfo],
) -> anyhow::Result<Plan> {
    let mut jobs = Vec::new();
    for job in &spec.jobs {
        let previous = read_last_assignment(coord, prefix, &spec.name, &job.name)
            .await
            .context("reading the last assignment from etcd")?
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the last assignment is unusable; planned as a fresh one");
                None
            });
        jobs.push(plan_job(spec, job, executors, previous.as_ref())?);
    }
    Ok(Plan {
        dag: spec.name.to_string(),
        version,
        live_executors: executors.iter().map(|e| e.id.to_string()).collect(),
        next_fires: next_fires(spec, 5),
        jobs,
    })
}

/// The assignment of one job, the same pure computation the leader makes.
fn plan_job(
    spec: &DagSpec,
    job: &JobSpec,
    executors: &[ExecutorInfo],
    previous: Option<&LastAssignment>,
) -> anyhow::Result<JobPlan> {
    let slots = slots_for(job, executors);
    let before = previous_assignment(job, previous);
    let mut plan = JobPlan {
        job: job.name.to_string(),
        handler: job.handler.to_string(),
        strategy: job.strategy.to_string(),
        items: job.shards,
        previous_run: previous
            .and_then(|p| p.run.as_ref())
            .map(ToString::to_string),
        has_previous: previous.is_some(),
        moved: 0,
        waiting: None,
        executor_labels: (!job.executor_labels.is_empty()).then(|| job.label_selector()),
        matching_executors: slots.iter().map(|s| s.id.to_string()).collect(),
        executors: Vec::new(),
    };
    if slots.is_empty() {
        plan.waiting = Some(match &plan.executor_labels {
            Some(labels) => format!(
                "no live executor offers handler `{}` with labels {labels}: the job would wait for one",
                job.handler
            ),
            None => format!(
                "no live executor offers handler `{}`: the job would wait for one",
                job.handler
            ),
        });
        return Ok(plan);
    }
    let next =
        leader_plan(&spec.name, job, executors, previous).context("computing the assignment")?;
    // Only a sticky job's last assignment keeps its items: without them
    // there is nothing to compare with.
    let compared = before.is_some();
    let base = before.unwrap_or_default();
    plan.moved = if compared {
        moved_items(&base, &next)
    } else {
        0
    };
    for m in moves_by_executor(&base, &next) {
        let ranges = next
            .ranges_of(&m.executor)
            .into_iter()
            .map(|r| [r.start, r.end.saturating_sub(1)])
            .collect();
        let (moved_in, moved_out) = if compared {
            (m.moved_in, m.moved_out)
        } else {
            (0, 0)
        };
        plan.executors.push(ExecutorPlan {
            executor: m.executor.to_string(),
            items: m.after,
            ranges,
            kept: m.kept,
            moved_in,
            moved_out,
        });
    }
    Ok(plan)
}

/// The previous assignment as an [`Assignment`] of the job's current item
/// count (items beyond it are dropped: they are not moves).
fn render(plan: &Plan) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan for {} (v{}), {} live executor(s)",
        plan.dag,
        plan.version,
        plan.live_executors.len()
    );
    if !plan.next_fires.is_empty() {
        let _ = writeln!(out, "next fires (business date):");
        for fire in &plan.next_fires {
            let _ = writeln!(out, "  {} ({})", fire.at, fire.business_date);
        }
    }
    for job in &plan.jobs {
        let _ = writeln!(
            out,
            "\njob {} ({} items, handler {}, strategy {})",
            job.job, job.items, job.handler, job.strategy
        );
        if let Some(labels) = &job.executor_labels {
            let _ = writeln!(
                out,
                "  executor labels {labels}: matching executors {}",
                if job.matching_executors.is_empty() {
                    "none".to_owned()
                } else {
                    job.matching_executors.join(", ")
                }
            );
        }
        if let Some(why) = &job.waiting {
            let _ = writeln!(out, "  {why}");
            continue;
        }
        match (&job.previous_run, job.has_previous) {
            (_, false) => {
                let _ = writeln!(out, "  no previous assignment: planned from scratch");
            }
            (Some(run), true) => {
                let _ = writeln!(out, "  {} item(s) move compared with run {run}", job.moved);
            }
            (None, true) => {
                let _ = writeln!(
                    out,
                    "  {} item(s) move compared with the last run",
                    job.moved
                );
            }
        }
        let _ = writeln!(
            out,
            "  {:<24} {:>7} {:>6} {:>6}  ranges",
            "executor", "items", "in", "out"
        );
        for e in &job.executors {
            let ranges: Vec<String> = e
                .ranges
                .iter()
                .map(|[a, b]| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            let shown = if ranges.is_empty() {
                "-".to_owned()
            } else {
                ranges.join(",")
            };
            let _ = writeln!(
                out,
                "  {:<24} {:>7} {:>6} {:>6}  {shown}",
                e.executor, e.items, e.moved_in, e.moved_out
            );
        }
    }
    out
}

#[cfg(test)]
mod next_fire_tests {
    use super::*;
    use nightshift_core::dag::{parse_dag, CalendarSet};

    #[test]
    fn shows_five_fires_with_the_dates_they_are_for() {
        let spec = parse_dag(
            std::path::Path::new("nightly.toml"),
            "schedule = \"0 30 1 * * *\"\ntimezone = \"Asia/Shanghai\"\nbusiness_date = \"previous_day\"\n[jobs.a]\n",
            &CalendarSet::new(),
        )
        .unwrap();
        let fires = next_fires(&spec, 5);
        assert_eq!(fires.len(), 5);
        for fire in &fires {
            let at = chrono::DateTime::parse_from_rfc3339(&fire.at).unwrap();
            assert!(fire.at.ends_with("01:30:00+08:00"), "{}", fire.at);
            let day = at.date_naive().pred_opt().unwrap().to_string();
            assert_eq!(fire.business_date, day);
        }
        assert!(fires.windows(2).all(|w| w[0].at < w[1].at));
        let unscheduled = parse_dag(
            std::path::Path::new("t.toml"),
            "[jobs.a]\n",
            &CalendarSet::new(),
        )
        .unwrap();
        assert!(next_fires(&unscheduled, 5).is_empty());
    }
}
