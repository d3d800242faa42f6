//! `nightshift pause DAG` / `nightshift resume DAG`: stop or restart the
//! scheduled runs of an applied DAG.
//!
//! Both write an operator command; the leader flips `paused` on the applied
//! DAG and records the change as an event. Manual triggers and backfills
//! still run while a DAG is paused. With `--server URL` and a console token
//! the command goes through the console's API (an unknown DAG is bad input,
//! exit 1, on both paths).

use crate::cli::applied;
use crate::cli::conn::{self, EtcdArgs};
use crate::cli::issue::issue;
use crate::cli::remote::{self, ServerArgs};
use nightshift_client::CommandClient;
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
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `nightshift pause` (`pause = true`) or `nightshift resume`.
pub fn run(args: Args, pause: bool) -> ExitCode {
    conn::block_on(async move {
        let dag = crate::cli::trigger::dag_name(&args.dag)?;
        let verb = if pause { "pause" } else { "resume" };
        if let Some(server) = args.server.client()? {
            let command = if pause {
                Command::PauseDag { dag: dag.clone() }
            } else {
                Command::ResumeDag { dag: dag.clone() }
            };
            let client = CommandClient::Server(server);
            let issued = client.issue(command).await.map_err(remote::error)?;
            println!("{verb} of {dag} requested: command {}", issued.id);
            return Ok(ExitCode::SUCCESS);
        }
        let prefix = args.etcd.key_prefix()?;
        let coord = args.etcd.connect().await?;
        let current = applied::require(coord.as_ref(), &prefix, &dag).await?;
        let command = if pause {
            Command::PauseDag { dag: dag.clone() }
        } else {
            Command::ResumeDag { dag: dag.clone() }
        };
        let id = issue(coord.as_ref(), &prefix, command).await?;
        let note = match (pause, current.paused) {
            (true, true) => " (it is already paused)",
            (false, false) => " (it is not paused)",
            _ => "",
        };
        println!("{verb} of {dag} requested: command {id}{note}");
        Ok(ExitCode::SUCCESS)
    })
}
