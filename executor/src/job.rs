//! What a batch developer implements: the [`Job`] trait (or a plain async
//! closure through [`job_fn`] / [`job_fn_with`]), and the ways an item can
//! end — an [`ItemOutcome`] or a [`JobError`] that tells the scheduler
//! whether a retry may help.

use crate::context::ItemContext;
use async_trait::async_trait;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// A handler: runs one shard item of a job.
///
/// One value serves every item of every run of the jobs that name its
/// handler, concurrently, so it is `Sync` and takes `&self`; put shared
/// clients (HTTP, database pools) in its fields. Everything about the item is
/// in the [`ItemContext`].
///
/// Implement it with [`#[async_trait]`](crate::async_trait) on the impl block
/// (a plain `async fn` without it does not match the trait: rustc reports
/// E0195, "lifetime parameters or bounds on method `run` do not match").
///
/// A handler should watch `ctx.cancelled()` in long loops: when the item is
/// cancelled (by an operator, a reassignment or the executor losing its
/// lease) its result is no longer recorded (except for an operator's cancel,
/// recorded as cancelled), so work past that point is wasted — return
/// [`ItemOutcome::Cancelled`]. A handler that does not is stopped anyway:
/// the executor drops its future a short grace after the cancellation
/// (default TTL/6), and never polls it once the executor's lease could
/// expire unrenewed — checked before every poll, so also right after the
/// process resumes from a freeze. A poll that is running is not interrupted:
/// run blocking work with [`ItemContext::spawn_blocking`] (the process exits
/// if it outlives the item). Side effects should be guarded by
/// [`ItemContext::idempotency_key`] and fenced with
/// [`ItemContext::fencing_token`]; the [crate docs](crate) ("Ownership")
/// state exactly what is and is not guaranteed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Nightshift job handler",
    label = "this does not implement `nightshift_executor::Job`",
    note = "wrap an async closure with `job_fn(|ctx: ItemContext| async move {{ .. }})`, or `job_fn_with(state, |state, ctx| async move {{ .. }})` when it needs a pool or client",
    note = "or implement `Job` for your type, with `#[nightshift_executor::async_trait]` on the impl block"
)]
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// Runs one item. `Err` is a failure; a panic is reported as a failure too.
    async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError>;

    /// How long the handler may take to wind down after its item timed out:
    /// the item's cancellation token is cancelled at the timeout and `run`
    /// gets this long to return before its future is dropped. Default zero
    /// (dropped at once); [`crate::program::ProgramJob`] uses it to stop its
    /// process group (SIGTERM, then SIGKILL after its grace).
    fn stop_grace(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// The JSON Schema of the params this handler decodes with
    /// [`ItemContext::params`]: `Some(ParamsSchema::of::<MyParams>())`.
    /// Published with the executor's registration, so that `nightshift
    /// apply` and the leader refuse params that would not decode. Default
    /// `None` (any params are accepted);
    /// [`ExecutorBuilder::handler_with_params`](crate::ExecutorBuilder::handler_with_params)
    /// sets it for a handler without implementing this.
    fn params_schema(&self) -> Option<crate::params::ParamsSchema> {
        None
    }
}

#[async_trait]
impl<J: Job + ?Sized> Job for Arc<J> {
    async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
        (**self).run(ctx).await
    }

    fn stop_grace(&self) -> std::time::Duration {
        (**self).stop_grace()
    }

    fn params_schema(&self) -> Option<crate::params::ParamsSchema> {
        (**self).params_schema()
    }
}

/// How an item ended when its handler did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// The work is done.
    Succeeded,
    /// There was nothing to do for this item; the reason is shown to operators.
    Skipped(String),
    /// The handler stopped because [`ItemContext::cancelled`] fired. What is
    /// recorded depends on why it was cancelled: an operator's cancel is
    /// recorded as cancelled; a move, a lost lease or a drain past its grace
    /// records nothing (the item is someone else's, or will be). Returned
    /// without a cancellation, it is recorded as a retryable failure, since
    /// the work was not done.
    Cancelled,
}

/// A handler failure, saying what the scheduler should do next.
///
/// Any error type converts into it with `?`, as [`JobError::Retryable`]
/// with the error's message and its sources (`"query failed: connection
/// reset"`): most errors a handler meets (a database, an HTTP call) are
/// transient. Mark the ones a retry cannot fix with
/// [`JobResultExt::permanent`]:
///
/// ```
/// use nightshift_executor::{ItemContext, ItemOutcome, JobError, JobResultExt};
///
/// async fn run(ctx: ItemContext) -> Result<ItemOutcome, JobError> {
///     let text = std::fs::read_to_string("/etc/hostname")?; // io::Error: retryable
///     let n: u32 = text.trim().parse().permanent()?;       // bad data: do not retry
///     let _ = (ctx, n);
///     Ok(ItemOutcome::Succeeded)
/// }
/// ```
///
/// Like `anyhow::Error`, and for the same reason, `JobError` is not itself a
/// `std::error::Error` (that would make the blanket `From` overlap with
/// `From<T> for T`); it converts into `Box<dyn Error + Send + Sync>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// A transient failure (timeout, unavailable dependency): retrying the
    /// item may succeed, within the job's retry policy.
    Retryable(String),
    /// The item cannot succeed as is (bad data, rejected request): do not
    /// retry it.
    Permanent(String),
}

impl JobError {
    /// A failure worth retrying.
    pub fn retryable(message: impl fmt::Display) -> Self {
        JobError::Retryable(message.to_string())
    }

    /// A failure not worth retrying.
    pub fn permanent(message: impl fmt::Display) -> Self {
        JobError::Permanent(message.to_string())
    }

    /// Whether the scheduler may retry the item.
    pub fn is_retryable(&self) -> bool {
        matches!(self, JobError::Retryable(_))
    }

    /// The message recorded for the item.
    pub fn message(&self) -> &str {
        match self {
            JobError::Retryable(m) | JobError::Permanent(m) => m,
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// `?` on any error: a retryable failure carrying the error and its sources.
impl<E: std::error::Error> From<E> for JobError {
    fn from(error: E) -> Self {
        JobError::Retryable(with_sources(&error))
    }
}

/// A `JobError` as a standard error, for code that returns `Box<dyn Error>`.
#[derive(Debug)]
struct Failure(JobError);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Failure {}

impl From<JobError> for Box<dyn std::error::Error + Send + Sync> {
    fn from(error: JobError) -> Self {
        Box::new(Failure(error))
    }
}

impl From<JobError> for Box<dyn std::error::Error> {
    fn from(error: JobError) -> Self {
        Box::new(Failure(error))
    }
}

/// `"outer: inner: root"`: the message alone often hides the cause
/// (sqlx's "error communicating with database" says nothing of which).
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Many errors repeat their source in their own message.
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Classifies any `Result<T, E: Display>` in one word, for errors that `?`
/// would get wrong (a permanent one) or cannot convert (a `String`):
/// `parse(row).permanent()?`, `client.call().await.retryable()?`.
pub trait JobResultExt<T> {
    /// Maps the error to [`JobError::Retryable`].
    fn retryable(self) -> Result<T, JobError>;
    /// Maps the error to [`JobError::Permanent`].
    fn permanent(self) -> Result<T, JobError>;
}

impl<T, E: fmt::Display> JobResultExt<T> for Result<T, E> {
    fn retryable(self) -> Result<T, JobError> {
        self.map_err(JobError::retryable)
    }
    fn permanent(self) -> Result<T, JobError> {
        self.map_err(JobError::permanent)
    }
}

/// A [`Job`] made from an async function or closure; see [`job_fn`].
pub struct JobFn<F> {
    f: F,
}

/// Wraps an async function or closure as a [`Job`]:
///
/// ```
/// use nightshift_executor::{job_fn, ItemContext, ItemOutcome};
/// let job = job_fn(|ctx: ItemContext| async move {
///     tracing::info!(item = %ctx.item(), "accruing interest");
///     Ok(ItemOutcome::Succeeded)
/// });
/// # let _ = job;
/// ```
///
/// The closure is called once per item, so it cannot give away what it
/// captures: to use a pool or a client, pass it with [`job_fn_with`].
pub fn job_fn<F, Fut>(f: F) -> JobFn<F>
where
    // rustc quotes this line when a closure moves what it captured (E0507):
    F: Fn(ItemContext) -> Fut + Send + Sync + 'static, // moving a pool or client? use job_fn_with(pool, |pool, ctx| ..)
    Fut: Future<Output = Result<ItemOutcome, JobError>> + Send + 'static,
{
    JobFn { f }
}

#[async_trait]
impl<F, Fut> Job for JobFn<F>
where
    F: Fn(ItemContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ItemOutcome, JobError>> + Send + 'static,
{
    async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
        (self.f)(ctx).await
    }
}

impl<F> fmt::Debug for JobFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JobFn")
    }
}

/// A [`Job`] made from shared state and an async closure; see [`job_fn_with`].
pub struct JobFnWith<S, F> {
    state: S,
    f: F,
}

/// Wraps an async closure that needs shared state (a database pool, an HTTP
/// client, a config) as a [`Job`]. Each item gets its own clone of `state`,
/// so make it cheap to clone: pools and clients are handles already; wrap
/// anything else in an `Arc`.
///
/// ```
/// use nightshift_executor::{job_fn_with, ItemContext, ItemOutcome};
/// use std::sync::Arc;
///
/// struct Ledger { name: String } // stands for a pool, e.g. sqlx::PgPool
///
/// let ledger = Arc::new(Ledger { name: "main".into() });
/// let job = job_fn_with(ledger, |ledger: Arc<Ledger>, ctx: ItemContext| async move {
///     tracing::info!(ledger = %ledger.name, item = %ctx.item(), "posting");
///     Ok(ItemOutcome::Succeeded)
/// });
/// # let _ = job;
/// ```
pub fn job_fn_with<S, F, Fut>(state: S, f: F) -> JobFnWith<S, F>
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, ItemContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ItemOutcome, JobError>> + Send + 'static,
{
    JobFnWith { state, f }
}

#[async_trait]
impl<S, F, Fut> Job for JobFnWith<S, F>
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, ItemContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ItemOutcome, JobError>> + Send + 'static,
{
    async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
        (self.f)(self.state.clone(), ctx).await
    }
}

impl<S, F> fmt::Debug for JobFnWith<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JobFnWith")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run_item, TestItem};

    #[test]
    fn result_ext_classifies_errors() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("disk on fire"));
        let e = r.retryable().unwrap_err();
        assert_eq!(e, JobError::Retryable("disk on fire".into()));
        assert!(e.is_retryable());
        let r: Result<(), &str> = Err("bad account");
        assert!(!r.permanent().unwrap_err().is_retryable());
    }

    #[derive(Debug, thiserror::Error)]
    #[error("posting failed")]
    struct PostingFailed(#[source] std::io::Error);

    fn post() -> Result<(), PostingFailed> {
        Err(PostingFailed(std::io::Error::other("connection reset")))
    }

    fn handler_body() -> Result<ItemOutcome, JobError> {
        post()?;
        Ok(ItemOutcome::Succeeded)
    }

    #[test]
    fn question_mark_converts_any_error_into_a_retryable_failure_with_its_sources() {
        assert_eq!(
            handler_body(),
            Err(JobError::Retryable(
                "posting failed: connection reset".into()
            ))
        );
        // And back into a standard error, for code returning Box<dyn Error>.
        let boxed: Box<dyn std::error::Error + Send + Sync> =
            JobError::permanent("closed account").into();
        assert_eq!(boxed.to_string(), "closed account");
    }

    #[tokio::test]
    async fn job_fn_with_hands_each_item_its_own_clone_of_the_state() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let job = job_fn_with(
            seen.clone(),
            |seen: Arc<std::sync::Mutex<Vec<u32>>>, ctx: ItemContext| async move {
                seen.lock()
                    .map_err(|_| JobError::permanent("poisoned"))?
                    .push(ctx.item().get());
                Ok(ItemOutcome::Succeeded)
            },
        );
        for i in [4, 2] {
            assert_eq!(
                run_item(&job, TestItem::new(i)).await.result,
                Ok(ItemOutcome::Succeeded)
            );
        }
        assert_eq!(*seen.lock().unwrap(), vec![4, 2]);
    }
}
