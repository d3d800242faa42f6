//! Nightshift's operator command client: the one way a command (trigger,
//! cancel, retry, clear, ...) reaches the scheduler leader.
//!
//! The CLI, the console's actions and the lab (chaos, bench) all issue
//! commands through [`issue`]: one [`CommandRecord`] put under
//! `{p}commands/{id}` for the leader to carry out. Nothing here changes run
//! or DAG state itself: only the leader does.
//!
//! Must not depend on the scheduler, the console, sqlx or axum, and the
//! executor SDK must not depend on it.
//!
//! [`CommandRecord`]: nightshift_core::keyspace::CommandRecord

mod issue;

pub use issue::{issue, IssueError};
