//! What a batch developer implements: the [`Job`] trait (or a plain async
//! closure through [`job_fn`]), and the two ways an item can end — an
//! [`ItemOutcome`] or a [`JobError`] that tells the scheduler whether a retry
//! may help.

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
/// A handler should watch `ctx.cancelled()` in long loops: when the item is
/// cancelled (by an operator, a reassignment or the executor losing its
/// lease) its result is no longer recorded, so work past that point is wasted
/// — and, for side effects, should be guarded by
/// [`ItemContext::idempotency_key`].
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
}

#[async_trait]
impl<J: Job + ?Sized> Job for Arc<J> {
    async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
        (**self).run(ctx).await
    }

    fn stop_grace(&self) -> std::time::Duration {
        (**self).stop_grace()
    }
}

/// How an item ended when its handler did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// The work is done.
    Succeeded,
    /// There was nothing to do for this item; the reason is shown to operators.
    Skipped(String),
}

/// A handler failure, saying what the scheduler should do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// A transient failure (timeout, unavailable dependency): retrying the
    /// item may succeed, within the job's retry policy.
    #[error("{0}")]
    Retryable(String),
    /// The item cannot succeed as is (bad data, rejected request): do not
    /// retry it.
    #[error("{0}")]
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
}

/// Turns any `Result<T, E: Display>` into a handler result with one word:
/// `client.post(..).await.retryable()?`.
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
pub fn job_fn<F, Fut>(f: F) -> JobFn<F>
where
    F: Fn(ItemContext) -> Fut + Send + Sync + 'static,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_ext_classifies_errors() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("disk on fire"));
        let e = r.retryable().unwrap_err();
        assert_eq!(e, JobError::Retryable("disk on fire".into()));
        assert!(e.is_retryable());
        let r: Result<(), &str> = Err("bad account");
        assert!(!r.permanent().unwrap_err().is_retryable());
    }
}
