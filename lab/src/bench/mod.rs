//! `nightshift bench SCENARIO`: measure Nightshift against a real etcd and
//! against that etcd's own raw put rate, measured in the same run so the
//! figures compare across machines. Scenarios: `dispatch`, `failover`,
//! `trigger`, `scale`, `fleet` (see BENCHMARKS.md for what each measures).
//!
//! Without `--etcd` the command starts its own etcd (`etcd` on `PATH`) and
//! stops it at exit; the scheduler always runs as a child process so its CPU
//! time and peak memory are its own. Benchmarks report; they never fail
//! because a target was missed (exit 0, "NOT met" in the output).

mod dispatch;
mod egress;
pub(crate) mod etcd;
mod failover;
mod fleet;
mod fleet_scenario;
mod lag;
mod member_loss;
pub(crate) mod process;
mod report;
mod rig;
mod scale;
mod scrape;
mod trigger;

use anyhow::Context as _;
use nightshift_core::duration::parse_duration;
use report::Report;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `nightshift bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub scenario: Scenario,
    /// etcd endpoints to use instead of starting one (comma-separated);
    /// everything is written under a fresh prefix and removed afterwards.
    #[arg(long, global = true, value_delimiter = ',', value_name = "URLS")]
    pub etcd: Vec<String>,
    /// Also print the result as one JSON object on the last line.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long the raw etcd put rate is measured.
    #[arg(long, global = true, default_value = "1500ms", value_parser = duration, value_name = "DURATION")]
    pub raw_window: Duration,
}

/// Which benchmark to run.
#[derive(Debug, clap::Subcommand)]
pub enum Scenario {
    /// A DAG of a chain of jobs with no-op items over in-process executors:
    /// run time, items/s, scheduler CPU and memory, etcd writes per item.
    Dispatch(dispatch::Args),
    /// An executor process holding items is SIGKILLed, then another is
    /// SIGTERMed: time until their items are owned elsewhere.
    Failover(failover::Args),
    /// DAGs fired every second: schedule instant → first item started.
    Trigger(trigger::Args),
    /// Many registered executors and one huge job: reshard time, keys and
    /// bytes written, scheduler memory.
    Scale(scale::Args),
    /// A 3-member etcd of its own loses its leader member, then a
    /// follower, mid-run: seconds each loss adds to the run.
    MemberLoss(member_loss::Args),
    /// Issue 12's fleet run: a 3-job chain of no-op items over many real
    /// in-process executors: items/s, etcd egress per item, largest value
    /// written, leader pass p50/p99, self-fenced executors, lost leases,
    /// items that succeeded exactly once.
    Fleet(fleet_scenario::Args),
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// Runs the scenario; Ctrl-C or SIGTERM stops it and everything it started.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let bench = async {
            if let Scenario::MemberLoss(a) = &args.scenario {
                // Its own 3-member etcd, whose members it kills.
                return member_loss::run(a, args.raw_window).await;
            }
            let rig = rig::Rig::start(&args.etcd).await?;
            let result = match &args.scenario {
                Scenario::Dispatch(a) => dispatch::run(&rig, a, args.raw_window).await,
                Scenario::Failover(a) => failover::run(&rig, a, args.raw_window).await,
                Scenario::Trigger(a) => trigger::run(&rig, a, args.raw_window).await,
                Scenario::Scale(a) => scale::run(&rig, a, args.raw_window).await,
                Scenario::Fleet(a) => fleet_scenario::run(&rig, a, args.raw_window).await,
                Scenario::MemberLoss(_) => unreachable!("handled above"),
            };
            // Best effort: with our own etcd the keys die with it anyway.
            let _ = rig.clean().await;
            result
        };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        // Dropping the bench future drops the rig: children and etcd die.
        let report: Report = tokio::select! {
            r = bench => r?,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
            _ = term.recv() => anyhow::bail!("terminated"),
        };
        print!("{}", report.table());
        if args.json {
            println!("{}", report.to_json());
        }
        Ok(ExitCode::SUCCESS)
    })
}
