//! The CLI's [`CommandClient`]: through a console with `--server` (an
//! operator's token), else straight into etcd under the name of the user
//! running it, with outcomes read from the store when `--database` is
//! given.

use crate::cli::follow::command_outcome;
use crate::cli::remote;
use anyhow::Context as _;
use nightshift_client::{
    BoxFuture, ClientError, CommandClient, Direct, Issued, Outcome, OutcomeSource,
};
use nightshift_coord::Coordinator;
use nightshift_core::keyspace::{Command, CommandId};
use nightshift_store::Store;
use std::sync::Arc;

/// Writes `command` straight into etcd and returns its id (`dev` and
/// `backfill`, which always go direct).
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

/// Outcomes read from the `command_{kind}` events in SQL.
struct StoreOutcomes(Store);

impl OutcomeSource for StoreOutcomes {
    fn outcome<'a>(
        &'a self,
        id: &'a CommandId,
        kind: &'a str,
    ) -> BoxFuture<'a, Result<Option<Outcome>, String>> {
        Box::pin(async move {
            let recorded = command_outcome(&self.0, kind, None, id)
                .await
                .map_err(|e| e.to_string())?;
            Ok(recorded.map(|r| Outcome {
                reading: r.outcome,
                text: r.text,
            }))
        })
    }
}

/// The direct client: `coord` for commands, `store` (when given) for
/// their outcomes.
pub fn direct(coord: Arc<dyn Coordinator>, prefix: &str, store: Option<Store>) -> CommandClient {
    CommandClient::Direct(Direct {
        coord,
        prefix: prefix.to_owned(),
        user: crate::cli::conn::user_name(),
        outcomes: store.map(|s| Arc::new(StoreOutcomes(s)) as Arc<dyn OutcomeSource>),
    })
}

/// How issuing a command through a client ended, for the verbs' exit codes.
pub enum Sent {
    /// Issued.
    Issued(Issued),
    /// The console refused it with one of the `rejecting` statuses (409:
    /// it conflicts with the run's state; 404 for the runs verbs: no such
    /// run, job or item), which the leader would have rejected too: the
    /// console's message.
    Conflict(String),
}

/// Issues `command` through `client`; a console answer with a status in
/// `rejecting` is [`Sent::Conflict`], so that the verb exits as the direct
/// path does when the leader rejects the command; other errors as
/// [`remote::error`] maps them.
pub async fn send(
    client: &CommandClient,
    command: Command,
    rejecting: &[u16],
) -> anyhow::Result<Sent> {
    let kind = command.kind();
    match client.issue(command).await {
        Ok(issued) => Ok(Sent::Issued(issued)),
        Err(e) if e.status().is_some_and(|s| rejecting.contains(&s)) => {
            Ok(Sent::Conflict(match e {
                ClientError::Api { message, .. } => message,
                other => other.to_string(),
            }))
        }
        Err(e @ ClientError::Issue(_)) => {
            Err(anyhow::Error::new(e).context(format!("issuing the {kind} command")))
        }
        Err(e) => Err(remote::error(e)),
    }
}
