//! The Nightshift executor SDK: what a batch developer embeds in their own
//! service to run Nightshift jobs.
//!
//! Implement [`Job`] (or wrap an async closure with [`job_fn`]), register it
//! under a handler name, and run the [`Executor`]:
//!
//! ```no_run
//! use nightshift_executor::{job_fn, Executor, ItemContext, ItemOutcome};
//!
//! # async fn main_() -> Result<(), Box<dyn std::error::Error>> {
//! let executor = Executor::builder()
//!     .etcd(["http://127.0.0.1:2379"])
//!     .handler("accrue-interest", job_fn(|ctx: ItemContext| async move {
//!         tracing::info!(item = %ctx.item(), date = %ctx.business_date(), "accruing");
//!         Ok(ItemOutcome::Succeeded)
//!     }))
//!     .build()?;
//! executor.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! The executor registers in etcd with a lease, runs the shard items the
//! scheduler assigns to it (up to its capacity, across all jobs), and records
//! their outcomes in batches with fenced writes: once its lease is gone, or
//! it merely cannot confirm it, it cancels its running items and records
//! nothing more, so a stale executor can never overwrite what the new owner
//! of an item does. The protocol is documented in
//! [`nightshift_core::keyspace`].
//!
//! Handlers can be unit-tested without etcd with [`testing::run_item`].
//!
//! **Architecture invariant:** this crate must not depend on sqlx, axum or
//! the scheduler crate: services embed it, and it must stay small. It talks
//! to the scheduler only through the coordination keyspace.
#![deny(missing_docs)]

mod assignment;
mod builder;
pub mod builtin;
mod clock;
mod connect;
mod context;
mod feeds;
mod host;
mod item;
mod job;
#[cfg(target_os = "linux")]
pub mod program;
mod progress;
mod recorder;
mod runtime;
mod session;
mod stats;
pub mod testing;

pub use builder::{BuildError, EtcdSettings, Executor, ExecutorBuilder, MIN_LEASE_TTL};
pub use context::ItemContext;
pub use job::{job_fn, ItemOutcome, Job, JobError, JobFn, JobResultExt};
/// PEM files for TLS to etcd (CA, and client certificate and key for mutual TLS).
pub use nightshift_coord::etcd::TlsFiles;
pub use runtime::RunError;
pub use stats::{StatsHandle, StatsSnapshot};

/// The attribute that lets [`Job`] have an async method, re-exported so
/// that implementing `Job` needs no extra dependency.
pub use async_trait::async_trait;

/// Ids used in the SDK's API, re-exported for convenience.
pub use nightshift_core::ids::{
    DagName, ExecutorId, FencingToken, HandlerName, ItemIndex, JobName, RunId,
};
