//! The Nightshift executor SDK: what a batch developer embeds in their own
//! service to run Nightshift jobs.
//!
//! Implement [`Job`] (or wrap an async closure with [`job_fn`], or
//! [`job_fn_with`] when it needs a pool or client), register it under a
//! handler name, and run the [`Executor`]:
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
//! // Drains on SIGTERM (Kubernetes, systemd) and SIGINT (Ctrl-C).
//! executor.run_until_signal().await?;
//! # Ok(()) }
//! ```
//!
//! The executor registers in etcd with a lease, runs the shard items the
//! scheduler assigns to it (up to its capacity, across all jobs), and records
//! their outcomes in batches with fenced writes. Handlers can be unit-tested
//! without etcd with [`testing::run_item`]. The mistakes the compiler
//! catches, and their fixes, are in [`mistakes`].
//!
//! # Ownership
//!
//! The scheduler's leader gives each item of a running job to one executor
//! at a time, in an *assignment* attached to that executor's lease. An
//! executor owns an item exactly while its assignment lists it and its lease
//! is alive. When the lease ends (the process died, was frozen, or lost etcd
//! for longer than the lease TTL) its assignments vanish with it and the
//! leader hands the unfinished items to live executors. An executor that
//! cannot confirm its lease in time *self-fences*: it cancels its running
//! items and records nothing more, before the lease can have expired.
//!
//! Cancelling is not left to the handler. The SDK runs every handler's
//! future inside a guard that, **immediately before each poll**, reads the
//! monotonic clock and drops the future instead of polling it once the item
//! must stop, that is at the earliest of:
//!
//! - `confirmed_until − TTL/6`, where `confirmed_until` is the send time of
//!   the last lease renewal etcd confirmed plus the TTL (the lease cannot
//!   have expired on etcd before it, see `nightshift_coord::lease`);
//! - a short grace after the item is cancelled, for any reason — by an
//!   operator, a move, a self-fence or a drain past its grace
//!   ([`ExecutorBuilder::cancel_grace`], default TTL/6);
//! - the moment the executor knows its lease is lost (revoked, not found, or
//!   no longer kept when a registration ends).
//!
//! The guarantee: **no handler future of this executor is polled at or
//! after its item's deadline**, and the deadline comes before the lease can
//! expire (TTL/6 to spare, which also covers the monotonic clock running up
//! to 1/6 slower than etcd's). Dropping the future runs its destructors; the
//! item then ends without an outcome (an operator's cancel is recorded as
//! cancelled), and the leader's own bookkeeping of the lost or cancelled
//! attempt stands. So by the time another executor can be given the item,
//! the previous owner's handler has stopped.
//!
//! What the guard cannot do, and what is therefore yours to handle:
//!
//! - **A poll already running** is not interrupted: code between two
//!   `.await`s (a CPU loop, a blocking call) runs on. Put blocking work in
//!   [`ItemContext::spawn_blocking`]: the executor tracks it, and if it is
//!   still running at its item's deadline, **the process exits** (status
//!   [`EXIT_BLOCKING_OVERRUN`]) instead of registering again, because a
//!   thread cannot be stopped. Check [`ItemContext::should_stop`] inside
//!   long blocking work.
//! - **Work handed elsewhere** — a `tokio::spawn`ed task, a thread you
//!   started, another process, a request already sent to a database or an
//!   API — is not stopped by dropping the future, and a request sent before
//!   the deadline may be applied after it. Pass
//!   [`ItemContext::cancellation_token`] to your own tasks, and fence writes
//!   at the resource (below).
//! - **A paused process** (SIGSTOP, a VM freeze, heavy swapping) runs
//!   nothing, so it cannot stop anything: while paused it takes no step, but
//!   its lease may expire and the item move. On resuming, the deadline check
//!   comes before any poll, so no handler is polled again — a frozen
//!   executor's handlers never take a step after the freeze. Blocking
//!   threads resume at once, though, and may take a step before the
//!   executor exits; and writes in flight at the freeze may land late. If
//!   the monotonic clock does not advance during the pause (some
//!   hypervisors, host suspend), the executor cannot see that time passed:
//!   it learns that the lease is gone from its next renewal, at most TTL/3
//!   later, and stops then.
//!
//! That is what fencing is for: it makes a stale owner harmless even when
//! one of these lets it act late.
//!
//! # Fencing
//!
//! [`ItemContext::fencing_token`] is the revision of the assignment that
//! gave the item to this executor. For one `(run, job, item)` it **strictly
//! increases** from one owner or attempt to the next: every token is the
//! etcd revision of a write by the leader that gave the item to that owner,
//! ownership periods of an item never overlap, and etcd revisions only
//! increase. Outcomes sent to the scheduler are fenced by the SDK (a stale
//! owner's write fails). Your own writes are fenced if your store keeps the
//! highest token seen for the item and refuses lower ones, in the same
//! transaction as the write — see the example below.
//!
//! # Attempts and owners
//!
//! [`ItemContext::attempt`] counts how many times the item was started in
//! this run: a retry after a failure and a move to another executor after
//! its owner was lost are both new attempts. Only failures consume the job's
//! retry budget (`retries` in the DAG); a move does not. Either way a new
//! attempt may follow one that did part of the work (a crash between your
//! commit and the outcome's recording is enough), so write handlers that are
//! safe to run again.
//!
//! # Idempotency
//!
//! [`ItemContext::idempotency_key`] names the item's *work*:
//! `"{dag}/{business_date}/{job}/{item}/{params hash}"` ([`WorkKey`]). It is
//! the same for every attempt and owner of an item, for the retry of a
//! failed run (a new run id), a `trigger --rerun` and a backfill of a day
//! already done. Key your side effects by it (a unique constraint, an API's
//! idempotency header) so that running the work again changes nothing that
//! an earlier run did. The one exception is deliberate and visible: `nightshift
//! trigger --redo` gives the run a new redo generation
//! ([`ItemContext::redo`]) that changes the key (`…/redo-{n}`), for when the
//! effects must be applied again. Log with [`ItemContext::attempt_id`]
//! (`"{run}/{job}/{item}/{attempt}"`), which is unique per attempt.
//!
//! Idempotency makes a repeat harmless; fencing keeps a stale owner that is
//! still running from interleaving with the new one. The fencing token keeps
//! increasing across runs too (it is an etcd revision), so "the highest
//! token per idempotency key" works for retries in new runs.
//!
//! # Checkpoints
//!
//! A long item can store where it got to with [`ItemContext::checkpoint`]
//! (a small JSON value, at most [`MAX_CHECKPOINT_BYTES`]) and start from
//! there with [`ItemContext::last_checkpoint`]. The next attempt sees the
//! last checkpoint after a failover, a retry, or in a new run of the same
//! work (the scheduler seeds it from its history); a redo starts without
//! one. A checkpoint is written under the same fence as the item's outcome:
//! a stale owner cannot store one. Store it *after* the effects it covers:
//!
//! ```no_run
//! # use nightshift_executor::{ItemContext, ItemOutcome, JobError};
//! # async fn post_page(_key: &str, _page: u32) -> Result<(), JobError> { Ok(()) }
//! async fn accrue(ctx: ItemContext) -> Result<ItemOutcome, JobError> {
//!     let first = ctx.last_checkpoint::<u32>().await?.map_or(1, |done| done + 1);
//!     for page in first..=10 {
//!         post_page(&ctx.idempotency_key(), page).await?; // idempotent per (key, page)
//!         ctx.checkpoint(&page).await?;
//!     }
//!     Ok(ItemOutcome::Succeeded)
//! }
//! ```
//!
//! # Typed params
//!
//! A handler can declare the type of its params: register it with
//! [`ExecutorBuilder::handler_with_params`] (or implement
//! [`Job::params_schema`]) for a `P: Deserialize + JsonSchema`, and read
//! them with [`ItemContext::params`]`::<P>()`. The executor publishes the
//! schema in its registration, so a typo in a DAG's params is caught
//! before the night: `nightshift apply` and `nightshift validate --against`
//! report it at the DAG's `file:line:col`, and the scheduler rejects a
//! trigger whose run params do not fit (the reason is the command's
//! outcome). A handler nobody serves yet is a warning at `apply`.
//! [`ItemContext::params_json`] is the raw, merged JSON.
//!
//! # Errors and cancellation
//!
//! A handler returns [`ItemOutcome::Succeeded`] or
//! [`ItemOutcome::Skipped`], or fails with a [`JobError`]: `?` turns any
//! error into a **retryable** failure (retried within the job's policy);
//! mark the ones a retry cannot fix with [`JobResultExt::permanent`]. When
//! the item is cancelled it returns [`ItemOutcome::Cancelled`]: an
//! operator's cancel is recorded as cancelled, anything else (a move, a lost
//! lease, a drain past its grace) records nothing, and the log says
//! "cancelled", not "failed". A handler that has not returned a short grace
//! after its cancellation is dropped (see "Ownership"). A panic is a failure.
//!
//! # Example: an item that fences its database writes
//!
//! With [`job_fn_with`] passing a `sqlx::PgPool` to each item. Each page is
//! one transaction that first claims the item for this token — the row lock
//! orders the claims, so a stale owner still running after a failover finds
//! a higher token and stops before writing — and writes its page under the
//! idempotency key, so a page an earlier attempt committed is not written
//! twice.
//!
//! ```no_run
//! use nightshift_executor::{job_fn_with, Executor, ItemContext, ItemOutcome, JobError};
//! use sqlx::PgPool;
//!
//! // CREATE TABLE item_fence (item_key TEXT PRIMARY KEY, token BIGINT NOT NULL);
//! // CREATE TABLE accruals (item_key TEXT, page BIGINT, cents BIGINT,
//! //                        PRIMARY KEY (item_key, page));
//! async fn accrue(pool: PgPool, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
//!     let key = ctx.idempotency_key();
//!     let token = ctx.fencing_token().get();
//!     let pages = 10u32;
//!     for page in 0..pages {
//!         if ctx.is_cancelled() {
//!             return Ok(ItemOutcome::Cancelled);
//!         }
//!         let mut tx = pool.begin().await?; // sqlx::Error: retryable through `?`
//!         let claimed = sqlx::query(
//!             "INSERT INTO item_fence (item_key, token) VALUES ($1, $2)
//!              ON CONFLICT (item_key) DO UPDATE SET token = EXCLUDED.token
//!              WHERE item_fence.token <= EXCLUDED.token",
//!         )
//!         .bind(&key)
//!         .bind(token)
//!         .execute(&mut *tx)
//!         .await?
//!         .rows_affected();
//!         if claimed == 0 {
//!             // A newer owner has claimed the item: this one is stale. What
//!             // it returns now is not recorded; stop without writing.
//!             return Err(JobError::retryable(format!("fenced: {key} has a newer owner")));
//!         }
//!         sqlx::query(
//!             "INSERT INTO accruals (item_key, page, cents) VALUES ($1, $2, $3)
//!              ON CONFLICT (item_key, page) DO NOTHING",
//!         )
//!         .bind(&key)
//!         .bind(i64::from(page))
//!         .bind(125_i64)
//!         .execute(&mut *tx)
//!         .await?;
//!         tx.commit().await?;
//!         ctx.progress(u64::from(page) + 1, u64::from(pages), "");
//!     }
//!     Ok(ItemOutcome::Succeeded)
//! }
//!
//! # async fn main_() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = PgPool::connect("postgres://localhost/bank").await?;
//! Executor::builder()
//!     .etcd(["http://127.0.0.1:2379"])
//!     .handler("accrue-interest", job_fn_with(pool, accrue))
//!     .build()?
//!     .run_until_signal()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Attempt logs
//!
//! Each attempt keeps a log that operators read in the console (the item
//! panel), the API and `nightshift logs`: lines written with
//! [`ItemContext::log`], and the `tracing` events emitted inside the item's
//! span when the subscriber your service installs has an [`ItemLogLayer`]
//! (the SDK installs no global subscriber of its own):
//!
//! ```
//! use nightshift_executor::{job_fn, ItemContext, ItemLogLayer, ItemOutcome, LogLevel};
//! use tracing_subscriber::prelude::*;
//!
//! // In `main`, once: your formatter and filter, plus the item log layer.
//! let _subscriber = tracing_subscriber::registry().with(ItemLogLayer::new());
//! // (`.with(tracing_subscriber::fmt::layer()).init()` in a real service.)
//!
//! let job = job_fn(|ctx: ItemContext| async move {
//!     ctx.log(LogLevel::Info, "posting 12 accounts"); // always kept
//!     tracing::warn!(account = 17, "account closed"); // kept with the layer
//!     Ok(ItemOutcome::Succeeded)
//! });
//! # let _ = job;
//! ```
//!
//! Lines are `TIMESTAMP LEVEL message fields`. The last [`MAX_TAIL_BYTES`]
//! (64 KiB) of them travel with the attempt's result when it ends, with a
//! marker line at the top when earlier lines were dropped; the log is not
//! streamed while the attempt runs. Events of work spawned onto other tasks
//! are kept only if the task is instrumented with the item's span
//! (`.in_current_span()`). [`testing::TestRun::log`] has the same log in
//! tests.
//!
//! # Shutdown
//!
//! [`Executor::run_until_signal`] drains on SIGTERM and SIGINT: it stops
//! taking items, lets running ones finish within the drain grace, records
//! them and revokes its lease so the scheduler reassigns the rest at once.
//! [`Executor::run_until`] does the same on any future you give it.
//!
//! The protocol underneath is documented in [`nightshift_protocol::keyspace`].
//!
//! **Architecture invariant:** this crate depends on neither sqlx, axum, the
//! scheduler nor `nightshift-core` (DAG parsing): services embed it, and it
//! must stay small. It talks to the scheduler only through the coordination
//! keyspace of `nightshift-protocol`.
#![deny(missing_docs)]

mod assignment;
mod builder;
pub mod builtin;
mod checkpoint;
mod clock;
mod connect;
mod context;
mod feeds;
mod format;
mod host;
mod item;
mod item_log;
mod job;
mod log_tail;
pub mod mistakes;
mod params;
#[cfg(target_os = "linux")]
pub mod program;
mod progress;
mod recorder;
mod runtime;
mod session;
mod signal;
mod stats;
mod stop;
mod telemetry;
pub mod testing;

pub use builder::{BuildError, EtcdSettings, Executor, ExecutorBuilder, MIN_LEASE_TTL};
pub use context::ItemContext;
pub use item_log::ItemLogLayer;
pub use job::{job_fn, job_fn_with, ItemOutcome, Job, JobError, JobFn, JobFnWith, JobResultExt};
pub use log_tail::{LogLevel, MAX_TAIL_BYTES};
/// PEM files for TLS to etcd (CA, and client certificate and key for mutual TLS).
pub use nightshift_coord::etcd::TlsFiles;
pub use params::ParamsSchema;
pub use runtime::RunError;
/// The derive for params types (`#[derive(JsonSchema)]`); with it comes
/// the `schemars` crate, for `#[schemars(crate = "nightshift_executor::schemars")]`
/// when your crate does not depend on schemars itself.
pub use schemars::{self, JsonSchema};
pub use signal::shutdown_signal;
pub use stats::{StatsHandle, StatsSnapshot};
pub use stop::EXIT_BLOCKING_OVERRUN;

/// The attribute that lets [`Job`] have an async method, re-exported so
/// that implementing `Job` needs no extra dependency.
pub use async_trait::async_trait;

/// Ids used in the SDK's API, re-exported for convenience.
pub use nightshift_protocol::ids::{
    DagName, ExecutorId, FencingToken, HandlerName, ItemIndex, JobName, RunId,
};

// Every other type that appears in a public signature of this crate, so that
// using the SDK never needs a dependency of its own to name them.

/// The business date's type ([`ItemContext::business_date`]).
pub use chrono::NaiveDate;
/// The coordination crate, for its backends (`coord::memory::MemoryCoordinator`
/// runs an executor in-process, as `nightshift dev` does).
pub use nightshift_coord as coord;
/// The coordination backend trait ([`ExecutorBuilder::coordinator`]) and its
/// error ([`RunError::Coordination`]).
pub use nightshift_coord::{CoordError, Coordinator};
/// A keyspace laid out by another build ([`RunError::KeyspaceFormat`]).
pub use nightshift_protocol::keyspace::format::FormatMismatch;
/// An item's progress report ([`testing::TestRun::progress`]).
pub use nightshift_protocol::keyspace::ItemProgress;
/// Why an id, handler name or prefix is refused ([`BuildError::InvalidKey`]).
pub use nightshift_protocol::keyspace::KeyError;
/// The work identity behind [`ItemContext::idempotency_key`], and the
/// checkpoint size limit of [`ItemContext::checkpoint`].
pub use nightshift_protocol::keyspace::{WorkKey, MAX_CHECKPOINT_BYTES};
/// The JSON crate of [`ItemContext::params`] (`serde_json::Value`).
pub use serde_json;
/// The token of [`ItemContext::cancellation_token`].
pub use tokio_util::sync::CancellationToken;
