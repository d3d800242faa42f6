//! `nightshift pause DAG` / `nightshift resume DAG`: stop or restart the
//! scheduled runs of an applied DAG.
//!
//! Both write an operator command; the leader flips `paused` on the applied
//! DAG and records the change as an event. Manual triggers and backfills
//! still run while a DAG is paused.

use crate::cli::applied;
use crate::cli::conn::{self, EtcdArgs};
use crate::cli::issue::issue;
use nightshift_core::keyspace::Command;
use std::process::ExitCode;

/// Flags of `nightshift pause` and `nightshift resume`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The applied DAG.
    #[arg(value_name = "DAG")]
    pub dag: String,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// Runs `nightshift pause` (`pause = true`) or `nightshift resume`.
pub fn run(args: Args, pause: bool) -> ExitCode {
    conn::block_on(async move {
        let prefix = args.etcd.key_prefix()?;
        let dag = crate::cli::trigger::dag_name(&args.dag)?;
        let coord = args.etcd.connect().await?;
        let current = applied::require(coord.as_ref(), &prefix, &dag).await?;
        let command = if pause {
            Command::PauseDag { dag: dag.clone() }
        } else {
            Command::ResumeDag { dag: dag.clone() }
        };
        let id = issue(coord.as_ref(), &prefix, command).await?;
        let verb = if pause { "pause" } else { "resume" };
        let note = match (pause, current.paused) {
            (true, true) => " (it is already paused)",
            (false, false) => " (it is not paused)",
            _ => "",
        };
        println!("{verb} of {dag} requested: command {id}{note}");
        Ok(ExitCode::SUCCESS)
    })
}
