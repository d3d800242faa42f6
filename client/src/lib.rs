//! Nightshift's operator command client: the one way a command (trigger,
//! cancel, retry, clear, ...) reaches the scheduler leader.
//!
//! The console's actions and the lab (chaos, bench) issue commands through
//! [`issue`]: one [`CommandRecord`] put under `{p}commands/{id}` for the
//! leader to carry out. The CLI uses [`CommandClient`], which either does
//! the same ([`Direct`], for admins with etcd credentials) or goes through
//! a console's API with a token ([`ServerClient`], for operators), and
//! follows each command to the leader's outcome either way. Nothing here
//! changes run or DAG state itself: only the leader does.
//!
//! Must not depend on the scheduler, the console, sqlx or axum, and the
//! executor SDK must not depend on it.
//!
//! [`CommandRecord`]: nightshift_core::keyspace::CommandRecord

mod command;
mod issue;
mod server;

pub use command::{
    command_run, BoxFuture, ClientError, CommandClient, Direct, Issued, Outcome, OutcomeSource,
};
pub use issue::{issue, IssueError};
pub use server::ServerClient;
