//! Nightshift's proving ground: `nightshift chaos` (faults injected into
//! real etcd, PostgreSQL, scheduler and executor processes, then checks of
//! the history and the ledger) and `nightshift bench` (figures measured
//! against a real etcd and its own raw put rate).
//!
//! It drives Nightshift from the outside, as a user would: processes of the
//! `nightshift` binary it is linked into, commands through the shared
//! command client ([`nightshift_client`]), keys through `core::keyspace`,
//! and the scheduler only through its public API. It ships in the binary,
//! so it must not depend on the test harness (`nightshift-testkit`), and
//! nothing but the CLI depends on it. Like the CLI it reports errors with
//! `anyhow`: every error here ends as a message to the person running it.

pub mod bench;
pub mod chaos;

/// A mistake in the command line (exit status 1, not 2): the CLI maps it
/// to its own bad-input error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}
