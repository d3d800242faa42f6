//! Nightshift's wire protocol: what the scheduler and the executors agree on.
//!
//! - [`ids`]: the newtype ids (`RunId`, `JobName`, `ExecutorId`,
//!   `ItemIndex`, `FencingToken`, …);
//! - [`keyspace`]: the coordination keys and the JSON records stored under
//!   them (executor registration, job run spec, assignments, result batches,
//!   progress), with the protocol they carry.
//!
//! It is a crate of its own so that the executor SDK, which every batch
//! service embeds, builds without the DAG parser, schedules and sharding of
//! `nightshift-core` (toml, cron, chrono-tz, petgraph). `nightshift-core`
//! re-exports both modules under the same paths, and adds the records only
//! the scheduler side uses (applied DAGs, operator commands).
//!
//! **Architecture invariant:** plain types and pure functions only; its
//! dependencies are serde, serde_json, chrono and thiserror.
#![deny(missing_docs)]

pub mod ids;
pub mod keyspace;
