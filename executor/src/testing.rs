//! Unit-testing your own handlers without etcd or an executor:
//!
//! ```
//! use nightshift_executor::testing::{run_item, TestItem};
//! use nightshift_executor::{job_fn, ItemContext, ItemOutcome, JobError};
//!
//! # tokio_test_block(async {
//! let job = job_fn(|ctx: ItemContext| async move {
//!     if ctx.item_param() == Some("closed") {
//!         return Ok(ItemOutcome::Skipped("branch closed".into()));
//!     }
//!     ctx.progress(1, 1, "done");
//!     Ok(ItemOutcome::Succeeded)
//! });
//! let run = run_item(&job, TestItem::new(3).item_param("closed")).await;
//! assert_eq!(run.result, Ok(ItemOutcome::Skipped("branch closed".into())));
//! # });
//! # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use crate::context::{ItemContext, ItemFacts, ProgressSink};
use crate::job::{ItemOutcome, Job, JobError};
use chrono::NaiveDate;
use nightshift_protocol::ids::{DagName, ExecutorId, FencingToken, ItemIndex, JobName, RunId};
pub use nightshift_protocol::keyspace::ItemProgress;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// An item to run a handler on, with every context field settable.
#[derive(Debug, Clone)]
pub struct TestItem {
    run: RunId,
    dag: DagName,
    job: JobName,
    item: ItemIndex,
    total_items: u32,
    item_param: Option<String>,
    params: serde_json::Value,
    business_date: NaiveDate,
    attempt: u32,
    token: FencingToken,
    cancel: CancellationToken,
}

impl TestItem {
    /// The business date a `TestItem` has unless set: a fixed date, so that
    /// a test gives the same result whatever day it runs.
    pub const DEFAULT_BUSINESS_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2024, 1, 31) {
        Some(date) => date,
        None => NaiveDate::MIN,
    };

    /// Item `item` of run `test-run`, job `test-job` of DAG `test-dag`,
    /// `item + 1` items, attempt 1, fencing token 1, no params, business
    /// date [`DEFAULT_BUSINESS_DATE`](Self::DEFAULT_BUSINESS_DATE).
    pub fn new(item: u32) -> Self {
        let item = ItemIndex(item);
        TestItem {
            run: RunId::new("test-run"),
            dag: DagName::new("test-dag"),
            job: JobName::new("test-job"),
            item,
            total_items: item.get().saturating_add(1),
            item_param: None,
            params: serde_json::Value::Null,
            business_date: Self::DEFAULT_BUSINESS_DATE,
            attempt: 1,
            token: FencingToken(1),
            cancel: CancellationToken::new(),
        }
    }

    /// Sets the run id.
    pub fn run(mut self, run: impl Into<RunId>) -> Self {
        self.run = run.into();
        self
    }

    /// Sets the DAG name.
    pub fn dag(mut self, dag: impl Into<DagName>) -> Self {
        self.dag = dag.into();
        self
    }

    /// Sets the job name.
    pub fn job(mut self, job: impl Into<JobName>) -> Self {
        self.job = job.into();
        self
    }

    /// Sets the number of items of the job.
    pub fn total_items(mut self, total: u32) -> Self {
        self.total_items = total;
        self
    }

    /// Sets the item's own parameter.
    pub fn item_param(mut self, param: impl Into<String>) -> Self {
        self.item_param = Some(param.into());
        self
    }

    /// Sets the job params.
    pub fn params(mut self, params: serde_json::Value) -> Self {
        self.params = params;
        self
    }

    /// Sets the business date.
    pub fn business_date(mut self, date: NaiveDate) -> Self {
        self.business_date = date;
        self
    }

    /// Sets the attempt number.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Sets the fencing token.
    pub fn fencing_token(mut self, token: FencingToken) -> Self {
        self.token = token;
        self
    }

    /// The item's cancellation token: cancel it (before or during the run)
    /// to test how the handler reacts.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// What a handler did with a [`TestItem`].
#[derive(Debug)]
pub struct TestRun {
    /// What it returned.
    pub result: Result<ItemOutcome, JobError>,
    /// Every progress report it made, in order (`done`, `total`, `message`).
    pub progress: Vec<ItemProgress>,
    /// The attempt log it would ship ([`ItemContext::log`] lines, and its
    /// `tracing` events when the test's subscriber has an
    /// [`ItemLogLayer`](crate::ItemLogLayer)); `None` when it logged nothing.
    pub log: Option<String>,
}

/// Runs `job` on `item` in the current task (a panic propagates to the test).
pub async fn run_item<J: Job + ?Sized>(job: &J, item: TestItem) -> TestRun {
    let log = Arc::new(Mutex::new(Vec::new()));
    let facts = ItemFacts {
        executor: ExecutorId::new("test-executor"),
        run: item.run,
        dag: item.dag,
        job: item.job,
        item: item.item,
        total_items: item.total_items,
        item_param: item.item_param,
        params: Arc::new(item.params),
        business_date: item.business_date,
        attempt: item.attempt,
        token: item.token,
    };
    let ctx = ItemContext::new(facts, item.cancel, ProgressSink::Log(log.clone()));
    let item_log = ctx.item_log.clone();
    // The same span an executor runs items in, so that an
    // `ItemLogLayer` in the test's subscriber captures the handler's events.
    let span = crate::item::item_span(&ctx);
    crate::item_log::attach(&span, &item_log);
    let result = job.run(ctx).instrument(span).await;
    let progress = log.lock().map(|l| l.clone()).unwrap_or_default();
    TestRun {
        result,
        progress,
        log: item_log.render(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::job_fn;

    #[tokio::test]
    async fn a_test_item_has_the_same_facts_whatever_day_the_test_runs() {
        let job = job_fn(|ctx: ItemContext| async move {
            let facts = format!(
                "{} {} {}/{} {}",
                ctx.business_date(),
                ctx.fencing_token(),
                ctx.item(),
                ctx.total_items(),
                ctx.attempt()
            );
            ctx.progress(1, 2, facts);
            Ok(ItemOutcome::Succeeded)
        });
        let run = run_item(&job, TestItem::new(4)).await;
        assert_eq!(run.progress.len(), 1);
        assert_eq!(
            run.progress[0].message.as_deref(),
            Some("2024-01-31 1 4/5 1")
        );
        // The token a test sets is the type the context returns.
        let token: FencingToken = FencingToken(42);
        let job = job_fn(move |ctx: ItemContext| async move {
            assert_eq!(ctx.fencing_token(), token);
            Ok(ItemOutcome::Succeeded)
        });
        let run = run_item(&job, TestItem::new(0).fencing_token(token)).await;
        assert_eq!(run.result, Ok(ItemOutcome::Succeeded));
    }

    #[tokio::test]
    async fn blocking_work_runs_through_the_context_and_refuses_a_stopping_item() {
        let job = job_fn(|ctx: ItemContext| async move {
            let sum = ctx.spawn_blocking(|| (1..=10u64).sum::<u64>()).await?;
            ctx.progress(sum, 0, "");
            Ok(ItemOutcome::Succeeded)
        });
        let run = run_item(&job, TestItem::new(0)).await;
        assert_eq!(run.result, Ok(ItemOutcome::Succeeded));
        assert_eq!(run.progress[0].done, 55);

        let item = TestItem::new(0);
        item.cancellation_token().cancel();
        let run = run_item(&job, item).await;
        assert!(
            matches!(run.result, Err(JobError::Retryable(ref m)) if m.contains("stopping")),
            "{:?}",
            run.result
        );
    }

    #[tokio::test]
    #[should_panic(expected = "blocking boom")]
    async fn a_panic_in_blocking_work_is_a_panic_of_the_handler() {
        let job = job_fn(|ctx: ItemContext| async move {
            ctx.spawn_blocking(|| panic!("blocking boom")).await?;
            Ok(ItemOutcome::Succeeded)
        });
        run_item(&job, TestItem::new(0)).await;
    }
}
