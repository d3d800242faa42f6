//! Nightshift's shared contract, and its pure core.
//!
//! This crate holds what every other crate agrees on: the DAG model (parsed and
//! validated from TOML files), schedules (cron in a time zone, with calendars),
//! sharding strategies, run/job/item states and the newtype ids. Everything
//! here is a pure function or a plain type: given the same input it gives the
//! same output, and nothing here performs network or database I/O. (Reading DAG
//! and calendar files from disk is the one exception, kept in one loader
//! function at the edge of [`dag`].)
//!
//! **Architecture invariant:** this crate depends on no I/O framework — not
//! `tokio`, `etcd-client`, `sqlx` nor `axum`. The scheduler, executor SDK and
//! console build on it; it builds on none of them.
#![deny(missing_docs)]

pub mod calendar;
pub mod dag;
pub mod duration;
/// The newtype ids, defined in `nightshift-protocol` (the SDK's small wire crate).
pub use nightshift_protocol::ids;
pub mod keyspace;
pub mod params;
pub mod schedule;
pub mod sharding;
pub mod slow;
pub mod state;
