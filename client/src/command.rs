//! [`CommandClient`]: one way to issue an operator command and learn what
//! the leader did with it, over either of two backends.
//!
//! - **Direct** (admins): the command is put into etcd ([`crate::issue`])
//!   and its outcome read from wherever the caller can read the leader's
//!   records ([`OutcomeSource`]; the CLI reads SQL). Needs etcd (and, to
//!   wait for outcomes, database) credentials.
//! - **Server** (operators): the console's API with a token
//!   ([`ServerClient`]); the console issues the command and
//!   `GET /api/v1/commands/{id}` reports its outcome. Needs only the
//!   console's URL and a token.
//!
//! Callers see the same [`Issued`] and [`Outcome`] either way, so the CLI's
//! verbs (and their exit codes) do not depend on the path taken.

use crate::server::ServerClient;
use crate::IssueError;
use nightshift_coord::Coordinator;
use nightshift_core::ids::RunId;
use nightshift_core::keyspace::commands::{trigger_run_id, OutcomeReading};
use nightshift_core::keyspace::{Command, CommandId};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a command could not be issued or followed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Writing the command to etcd failed (direct backend).
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// Reading the leader's outcome failed (direct backend).
    #[error("reading the command's outcome: {0}")]
    Outcome(String),
    /// The console URL or token cannot be used.
    #[error("{0}")]
    BadServer(String),
    /// The console did not answer.
    #[error("the console at {url} is unreachable: {detail}")]
    Unreachable {
        /// The console's base URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The console answered with an error: its own message.
    #[error("{message} (HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The console's error code (`forbidden`, `conflict`, ...).
        code: String,
        /// The console's message.
        message: String,
    },
    /// The console's answer did not read.
    #[error("unexpected answer from the console to {what}: {detail}")]
    Decode {
        /// The request.
        what: String,
        /// Why it did not read.
        detail: String,
    },
    /// This backend cannot carry the command.
    #[error("{0}")]
    Unsupported(String),
}

impl ClientError {
    /// The HTTP status of a console error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A command that was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// Its id.
    pub id: CommandId,
    /// Its kind (`trigger`, `cancel_run`, ...).
    pub kind: String,
    /// The run it concerns, or the run a trigger creates.
    pub run_id: Option<RunId>,
}

/// What the leader did with a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Applied or rejected, with the leader's words.
    pub reading: OutcomeReading,
    /// The outcome as the leader wrote it (`triggered`, `rejected: why`).
    pub text: String,
}

impl Outcome {
    /// Whether the leader refused the command.
    pub fn rejected(&self) -> bool {
        self.reading.is_rejection()
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A boxed future, so that [`OutcomeSource`] can be a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the direct backend reads the leader's outcome of a command (the
/// CLI: the `command_{kind}` event in SQL). Kept abstract so that this
/// crate does not depend on the store.
pub trait OutcomeSource: Send + Sync {
    /// The outcome of command `id` of `kind`, once recorded; errors as text.
    fn outcome<'a>(
        &'a self,
        id: &'a CommandId,
        kind: &'a str,
    ) -> BoxFuture<'a, Result<Option<Outcome>, String>>;
}

/// The direct backend: etcd for commands, an [`OutcomeSource`] for outcomes.
#[derive(Clone)]
pub struct Direct {
    /// The coordination service.
    pub coord: Arc<dyn Coordinator>,
    /// The installation's key prefix.
    pub prefix: String,
    /// Who issues the commands.
    pub user: String,
    /// Where outcomes are read; `None`: commands can be issued, not followed.
    pub outcomes: Option<Arc<dyn OutcomeSource>>,
}

/// Issues commands and follows them to the leader's outcome.
#[derive(Clone)]
pub enum CommandClient {
    /// Straight to etcd (admins).
    Direct(Direct),
    /// Through the console's API with a token (operators).
    Server(ServerClient),
}

/// The run a command concerns, or will create (a trigger's run id follows
/// from its command id).
pub fn command_run(command: &Command, id: &CommandId) -> Option<RunId> {
    match command {
        Command::Trigger { dag, .. } | Command::Redo { dag, .. } => Some(trigger_run_id(dag, id)),
        Command::CancelRun { run }
        | Command::Retry { run, .. }
        | Command::MarkItemSucceeded { run, .. }
        | Command::SkipJob { run, .. }
        | Command::Clear { run, .. } => Some(run.clone()),
        _ => None,
    }
}

impl CommandClient {
    /// Whether outcomes can be followed (always through a console; direct
    /// only with an [`OutcomeSource`]).
    pub fn can_follow(&self) -> bool {
        match self {
            CommandClient::Direct(d) => d.outcomes.is_some(),
            CommandClient::Server(_) => true,
        }
    }

    /// Issues `command`.
    pub async fn issue(&self, command: Command) -> Result<Issued, ClientError> {
        match self {
            CommandClient::Direct(d) => {
                let kind = command.kind().to_owned();
                let id =
                    crate::issue(d.coord.as_ref(), &d.prefix, &d.user, command.clone()).await?;
                let run_id = command_run(&command, &id);
                Ok(Issued { id, kind, run_id })
            }
            CommandClient::Server(s) => s.issue(&command).await,
        }
    }

    /// The leader's outcome of `issued`, if recorded yet.
    pub async fn outcome(&self, issued: &Issued) -> Result<Option<Outcome>, ClientError> {
        match self {
            CommandClient::Direct(d) => match &d.outcomes {
                Some(source) => source
                    .outcome(&issued.id, &issued.kind)
                    .await
                    .map_err(ClientError::Outcome),
                None => Err(ClientError::Unsupported(
                    "no outcome source: give the database to follow commands".to_owned(),
                )),
            },
            CommandClient::Server(s) => s.outcome(issued).await,
        }
    }

    /// Polls the outcome of `issued` (100 ms, doubling to 1 s) until the
    /// leader records one, or `within` has passed (`Ok(None)`).
    pub async fn wait_outcome(
        &self,
        issued: &Issued,
        within: Duration,
    ) -> Result<Option<Outcome>, ClientError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            if let Some(outcome) = self.outcome(issued).await? {
                return Ok(Some(outcome));
            }
            if started.elapsed() >= within {
                return Ok(None);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift_coord::memory::MemoryCoordinator;
    use std::sync::Mutex;

    /// Outcomes handed out in order, then recorded.
    struct Scripted(Mutex<Vec<Option<Outcome>>>);

    impl OutcomeSource for Scripted {
        fn outcome<'a>(
            &'a self,
            _id: &'a CommandId,
            kind: &'a str,
        ) -> BoxFuture<'a, Result<Option<Outcome>, String>> {
            let next = self
                .0
                .lock()
                .map(|mut v| v.pop().flatten())
                .map_err(|e| e.to_string());
            let kind = kind.to_owned();
            Box::pin(async move {
                assert_eq!(kind, "cancel_run");
                next
            })
        }
    }

    #[tokio::test]
    async fn direct_issues_into_etcd_and_follows_to_the_outcome() {
        let coord = Arc::new(MemoryCoordinator::new());
        let rejected = Outcome {
            reading: OutcomeReading::Rejected("run r1 already ended".into()),
            text: "rejected: run r1 already ended".into(),
        };
        let client = CommandClient::Direct(Direct {
            coord: coord.clone(),
            prefix: "/t/".into(),
            user: "ops".into(),
            outcomes: Some(Arc::new(Scripted(Mutex::new(vec![
                Some(rejected.clone()),
                None,
            ])))),
        });
        assert!(client.can_follow());
        let issued = client
            .issue(Command::CancelRun {
                run: RunId::new("r1"),
            })
            .await
            .unwrap();
        assert_eq!(issued.kind, "cancel_run");
        assert_eq!(issued.run_id, Some(RunId::new("r1")));
        let key = nightshift_core::keyspace::command_key("/t/", &issued.id);
        assert!(coord.get(&key).await.unwrap().is_some(), "written to etcd");
        let got = client
            .wait_outcome(&issued, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(got, Some(rejected));
        assert!(got.is_some_and(|o| o.rejected()));
    }
}
