//! Nightshift scheduler: the process that decides what runs where.
//!
//! Pure rules, property-tested on their own:
//! - [`orchestration`]: which jobs start, which are resolved by their trigger
//!   rule, how each reported item outcome changes the job (retries with
//!   backoff), when jobs and runs end;
//! - [`failover`]: a departed executor's unfinished items → live executors;
//! - [`trigger`]: cron instants, misfire and concurrency policies.
//!
//! Live state: [`record`] (the run records the leader keeps in etcd).
//!
//! The process: [`leader::run_scheduler`] campaigns for leadership and, once
//! elected, runs the level-triggered leader loop ([`leader::Leader`]): every
//! pass reconciles applied DAGs, operator commands, cron, live executors,
//! assignments and result batches, writes etcd through fenced txns and SQL
//! history idempotently.
//!
//! **Architecture invariant:** the scheduler never depends on axum or on the
//! executor SDK; executors and the console reach it only through the
//! coordination service.
#![deny(missing_docs)]

pub mod failover;
pub mod leader;
pub mod orchestration;
pub mod record;
pub mod trigger;

pub use leader::{run_scheduler, Clock, SchedulerConfig, SystemClock};
pub use nightshift_coord as coord;
pub use nightshift_store as store;
