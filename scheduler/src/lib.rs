//! Nightshift scheduler: the process that decides what runs where.
//!
//! This crate will hold leader election (via `nightshift-coord`), cron
//! triggering, DAG run orchestration, sharding at job start and in-run
//! failover, retries, alert evaluation and the SQL history writes (via
//! `nightshift-store`). Only the elected leader writes run state.
//!
//! Status: the orchestration loop is not built yet (see ARCHITECTURE.md,
//! "Not built yet"); today the crate only fixes its dependencies and
//! boundaries so the layering is visible from the start.
//!
//! **Architecture invariant:** the scheduler never depends on axum or on the
//! executor SDK; executors and the console reach it only through the
//! coordination service.
#![deny(missing_docs)]

pub use nightshift_coord as coord;
pub use nightshift_store as store;
