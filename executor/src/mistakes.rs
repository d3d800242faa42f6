//! Mistakes the compiler catches, what it says, and the fix.
//!
//! Each wrong example below is a doc test that must *fail* to compile
//! (`compile_fail`), next to the right one, which must compile: if an SDK
//! change made a mistake compile, or its fix stop compiling, the doc tests
//! fail.
//!
//! # `async fn run` without `#[async_trait]` (E0195)
//!
//! [`Job`](crate::Job) is declared with `async_trait`, so an impl written
//! with a native `async fn` does not match it, and rustc says only
//! "lifetime parameters or bounds on method `run` do not match the trait
//! declaration":
//!
//! ```compile_fail,E0195
//! use nightshift_executor::{ItemContext, ItemOutcome, Job, JobError};
//!
//! struct Accrue;
//!
//! impl Job for Accrue {
//!     async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
//!         Ok(ItemOutcome::Succeeded)
//!     }
//! }
//! ```
//!
//! Fix: put the re-exported attribute on the impl block.
//!
//! ```
//! use nightshift_executor::{async_trait, ItemContext, ItemOutcome, Job, JobError};
//!
//! struct Accrue;
//!
//! #[async_trait]
//! impl Job for Accrue {
//!     async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
//!         Ok(ItemOutcome::Succeeded)
//!     }
//! }
//! ```
//!
//! # A closure given to `.handler(..)` as is (E0277)
//!
//! A closure is not a [`Job`](crate::Job); the error says so and names the
//! fix: "`{closure}` is not a Nightshift job handler … wrap an async closure
//! with `job_fn(|ctx: ItemContext| async move { .. })`".
//!
//! ```compile_fail,E0277
//! use nightshift_executor::{Executor, ItemContext, ItemOutcome, JobError};
//!
//! let builder = Executor::builder().handler("accrue", |ctx: ItemContext| async move {
//!     Ok::<_, JobError>(ItemOutcome::Succeeded)
//! });
//! ```
//!
//! ```
//! use nightshift_executor::{job_fn, Executor, ItemContext, ItemOutcome};
//!
//! let builder = Executor::builder().handler("accrue", job_fn(|ctx: ItemContext| async move {
//!     Ok(ItemOutcome::Succeeded)
//! }));
//! ```
//!
//! # A pool captured by `job_fn`'s closure (E0507)
//!
//! The closure runs once per item, so it cannot move what it captured into
//! the future it returns: "cannot move out of `pool`, a captured variable in
//! an `Fn` closure".
//!
//! ```compile_fail,E0507
//! use nightshift_executor::{job_fn, ItemContext, ItemOutcome};
//!
//! struct Pool(Vec<u8>); // stands for sqlx::PgPool or an HTTP client
//! impl Pool { async fn post(&self, _key: String) {} }
//!
//! let pool = Pool(Vec::new());
//! let job = job_fn(move |ctx: ItemContext| async move {
//!     pool.post(ctx.idempotency_key()).await;
//!     Ok(ItemOutcome::Succeeded)
//! });
//! ```
//!
//! Fix: pass the state in with [`job_fn_with`](crate::job_fn_with); each
//! item gets its own clone (pools and clients are cheap handles; wrap
//! anything else in an `Arc`).
//!
//! ```
//! use nightshift_executor::{job_fn_with, ItemContext, ItemOutcome};
//! use std::sync::Arc;
//!
//! struct Pool(Vec<u8>);
//! impl Pool { async fn post(&self, _key: String) {} }
//!
//! let job = job_fn_with(Arc::new(Pool(Vec::new())), |pool: Arc<Pool>, ctx: ItemContext| async move {
//!     pool.post(ctx.idempotency_key()).await;
//!     Ok(ItemOutcome::Succeeded)
//! });
//! ```
//!
//! # `?` on an error that is not a `std::error::Error` (E0277)
//!
//! Any `std::error::Error` (sqlx, reqwest, io, serde_json …) converts into a
//! retryable [`JobError`](crate::JobError) with `?`. A `String` or `&str`
//! error does not:
//!
//! ```compile_fail,E0277
//! use nightshift_executor::{ItemOutcome, JobError};
//!
//! fn check(balance: i64) -> Result<(), String> {
//!     if balance < 0 { Err(format!("negative balance {balance}")) } else { Ok(()) }
//! }
//! fn run() -> Result<ItemOutcome, JobError> {
//!     check(-5)?;
//!     Ok(ItemOutcome::Succeeded)
//! }
//! ```
//!
//! Fix: say what kind of failure it is with
//! [`JobResultExt`](crate::JobResultExt).
//!
//! ```
//! use nightshift_executor::{ItemOutcome, JobError, JobResultExt};
//!
//! fn check(balance: i64) -> Result<(), String> {
//!     if balance < 0 { Err(format!("negative balance {balance}")) } else { Ok(()) }
//! }
//! fn query() -> Result<i64, std::io::Error> { Ok(5) }
//! fn run() -> Result<ItemOutcome, JobError> {
//!     let balance = query()?;       // a std error: retryable
//!     check(balance).permanent()?;  // bad data: a retry will not help
//!     Ok(ItemOutcome::Succeeded)
//! }
//! ```
//!
//! # Comparing an item index with a count (E0308)
//!
//! Indices are [`ItemIndex`](crate::ItemIndex), counts are `u32`:
//!
//! ```compile_fail,E0308
//! # fn f(ctx: nightshift_executor::ItemContext) {
//! let last = ctx.item() == ctx.total_items() - 1;
//! # }
//! ```
//!
//! ```
//! # fn f(ctx: nightshift_executor::ItemContext) {
//! let last = ctx.item().get() == ctx.total_items() - 1;
//! # }
//! ```
//!
//! # A raw number as a test's fencing token (E0308)
//!
//! [`TestItem::fencing_token`](crate::testing::TestItem::fencing_token)
//! takes the [`FencingToken`](crate::FencingToken) that
//! [`ItemContext::fencing_token`](crate::ItemContext::fencing_token)
//! returns:
//!
//! ```compile_fail,E0308
//! let item = nightshift_executor::testing::TestItem::new(0).fencing_token(7);
//! ```
//!
//! ```
//! use nightshift_executor::{testing::TestItem, FencingToken};
//! let item = TestItem::new(0).fencing_token(FencingToken(7));
//! ```
