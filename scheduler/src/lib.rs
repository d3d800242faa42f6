//! Nightshift scheduler: the process that decides what runs where.
//!
//! Pure rules, property-tested on their own (no I/O, no clock):
//! - [`orchestration`]: which jobs start, which are resolved by their trigger
//!   rule, how each reported item outcome changes the job (retries with
//!   backoff), when jobs and runs end (invariants 3 and 5);
//! - [`failover`]: a departed executor's unfinished items → live executors,
//!   capacity-weighted, moving nothing else (invariant 4);
//! - [`trigger`]: cron instants, misfire and concurrency policies
//!   (invariant 7);
//! - [`plan`]: the reshard a job gets when it starts (also what
//!   `nightshift plan` shows);
//! - [`reconcile`]: the leader's pass over a run — a snapshot in, the new
//!   record and typed effects (SQL rows, etcd ops, alerts, events) out;
//! - [`alert_key`]: the typed dedupe keys of the alerts the leader opens.
//!
//! Live state: [`record`], the run records the leader keeps in etcd under
//! `{p}runs/{run}/state`, the previous assignment of each job under
//! `{p}assignments/{dag}/{job}` (input of the next reshard, also read by
//! `nightshift plan`) and the last handled cron instant under `{p}cron/{dag}`.
//!
//! The process: [`leader::run_scheduler`] campaigns for leadership and, once
//! elected, runs the level-triggered leader loop ([`leader::Leader`]). Every
//! pass reconciles applied DAGs, operator commands, cron, live executors,
//! assignments and result batches; every etcd write is a txn carrying the
//! leadership fence (invariant 6); SQL history is written idempotently, and
//! etcd stays the source of truth until a run is persisted.
//!
//! **Architecture invariant:** the scheduler never depends on axum or on the
//! executor SDK; executors and the console reach it only through the
//! coordination service (the keyspace protocol of
//! `nightshift_core::keyspace`).
#![deny(missing_docs)]

pub mod alert_key;
pub mod commands;
pub mod failover;
pub mod first_error;
pub mod item_map;
pub mod leader;
pub mod orchestration;
pub mod plan;
pub mod reconcile;
pub mod record;
pub mod record_size;
pub mod record_values;
pub mod slow;
pub mod trigger;

pub use leader::{run_scheduler, Clock, SchedulerConfig, SystemClock};
pub use nightshift_coord as coord;
pub use nightshift_store as store;
