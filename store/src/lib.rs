//! Nightshift's SQL store: run history, item attempts, the append-only event
//! log, alerts and applied DAG versions, in PostgreSQL (production) or SQLite
//! (the embedded default).
//!
//! [`Store::connect`] takes one URL (`sqlite://path/to/file.db` or
//! `postgres://…`), opens a pool, and applies the embedded migrations from
//! `migrations/sqlite` or `migrations/postgres`. Everything else is a method on
//! [`Store`], grouped by table: [`dags`], [`runs`], [`jobs`], [`attempts`],
//! [`attempt_logs`], [`events`], [`alerts`], [`checkpoints`] (run redo
//! generations and item checkpoints).
//!
//! # Why one implementation per backend, not `sqlx::Any`
//!
//! [`Store`] holds an enum over a `SqlitePool` and a `PgPool`, and a small
//! macro (`on_pool!`) writes each query body once and compiles it once per
//! backend. We chose that over `sqlx::Any` because:
//!
//! * every value is decoded by the backend's own driver, with its real types
//!   (`Any` knows only a handful of types and would still force us to write
//!   backend-specific SQL for placeholders and locking);
//! * backend-specific behaviour stays possible where it matters — `BEGIN
//!   IMMEDIATE` for SQLite write transactions (so two writers wait on the busy
//!   timeout instead of failing with "database is locked"), and an advisory
//!   lock in PostgreSQL so event sequence numbers are committed in order;
//! * the SQL text itself is shared: both drivers accept `$1`-style
//!   placeholders, `RETURNING`, partial indexes and `ON CONFLICT`.
//!
//! Instants are epoch milliseconds in `BIGINT` columns and JSON is `TEXT`, so
//! the two schemas differ only in integer type names.
//!
//! # What this crate does not do
//!
//! It does not decide anything: the scheduler decides and the store records.
//! It does check the run and job state machines of
//! [`nightshift_core::state`] on every state write, so an illegal move is
//! refused at the database rather than silently stored. Times are always
//! passed in by the caller (no clock in here), which keeps tests deterministic.
#![deny(missing_docs)]

#[macro_use]
mod connect;
#[macro_use]
mod filter;
pub mod alerts;
pub mod attempt_logs;
pub mod attempts;
pub mod checkpoints;
pub mod command_outcomes;
pub mod dags;
mod error;
pub mod events;
pub mod jobs;
mod rows;
pub mod runs;

pub use alerts::{Alert, AlertFilter, AlertId, AlertOpened, NewAlert, Silence};
pub use attempt_logs::AttemptLog;
pub use attempts::{Attempt, AttemptId, EndedAttempt, NewAttempt, SucceededCounts};
pub use checkpoints::StoredCheckpoint;
pub use command_outcomes::RecordedOutcome;
pub use connect::{Backend, Store, StoreOptions};
pub use dags::{DagSummary, DagVersion, NewDagVersion, RecordedVersion};
pub use error::{redact_url, StoreError};
pub use events::{Event, EventFilter, NewEvent};
pub use jobs::JobRun;
pub use runs::{NewRun, Run, RunFilter};

/// Result type of every store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
