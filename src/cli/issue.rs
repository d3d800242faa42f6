//! Issuing operator commands from the CLI: [`nightshift_client::issue`]
//! under the name of the user running it.

use anyhow::Context as _;
use nightshift_coord::Coordinator;
use nightshift_core::keyspace::{Command, CommandId};

/// Writes `command` and returns its id.
pub async fn issue(
    coord: &dyn Coordinator,
    prefix: &str,
    command: Command,
) -> anyhow::Result<CommandId> {
    let kind = command.kind();
    nightshift_client::issue(coord, prefix, &crate::cli::conn::user_name(), command)
        .await
        .with_context(|| format!("issuing the {kind} command"))
}
