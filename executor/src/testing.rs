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

use crate::checkpoint::CheckpointStore;
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
    redo: u32,
    checkpoint: Option<serde_json::Value>,
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
            redo: 0,
            checkpoint: None,
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

    /// Sets the redo generation (0 by default), as `trigger --redo` would.
    pub fn redo(mut self, redo: u32) -> Self {
        self.redo = redo;
        self
    }

    /// Starts the item with a checkpoint left by an earlier attempt, as
    /// after a failover or a retry: the handler's
    /// [`last_checkpoint`](ItemContext::last_checkpoint) returns it.
    /// Panics if `value` does not serialize (a bug in the test).
    pub fn checkpoint<T: serde::Serialize>(mut self, value: &T) -> Self {
        self.checkpoint = Some(
            serde_json::to_value(value)
                .unwrap_or_else(|e| panic!("the test checkpoint does not serialize: {e}")),
        );
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
    /// Every checkpoint it stored, in order (the seed of
    /// [`TestItem::checkpoint`] not included): feed the last one to the
    /// next [`TestItem`] to test a resume.
    pub checkpoints: Vec<serde_json::Value>,
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
        redo: item.redo,
    };
    let seeded = usize::from(item.checkpoint.is_some());
    let cell = Arc::new(Mutex::new(item.checkpoint.into_iter().collect::<Vec<_>>()));
    let ctx = ItemContext::new(facts, item.cancel, ProgressSink::Log(log.clone()))
        .with_checkpoints(CheckpointStore::Memory(cell.clone()));
    let item_log = ctx.item_log.clone();
    // The same span an executor runs items in, so that an
    // `ItemLogLayer` in the test's subscriber captures the handler's events.
    let span = crate::item::item_span(&ctx);
    crate::item_log::attach(&span, &item_log);
    let result = job.run(ctx).instrument(span).await;
    let progress = log.lock().map(|l| l.clone()).unwrap_or_default();
    let checkpoints = cell
        .lock()
        .map(|c| c.iter().skip(seeded).cloned().collect())
        .unwrap_or_default();
    TestRun {
        result,
        progress,
        log: item_log.render(),
        checkpoints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::job_fn;
    use serde_json::json;

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

    /// A handler that works through 5 pages, checkpointing after each, and
    /// fails (retryably) after page 2 on its first attempt.
    fn pager() -> impl Job {
        job_fn(|ctx: ItemContext| async move {
            let start = ctx.last_checkpoint::<u32>().await?.map_or(1, |p| p + 1);
            for page in start..=5 {
                ctx.progress(u64::from(page), 5, format!("page {page}"));
                ctx.checkpoint(&page).await?;
                if page == 2 && ctx.attempt() == 1 {
                    return Err(JobError::retryable("connection reset"));
                }
            }
            Ok(ItemOutcome::Succeeded)
        })
    }

    #[tokio::test]
    async fn a_handler_resumes_from_the_checkpoint_its_last_attempt_stored() {
        let first = run_item(&pager(), TestItem::new(0)).await;
        assert!(first.result.is_err());
        assert_eq!(first.checkpoints, vec![json!(1), json!(2)]);
        let last = first.checkpoints.last().cloned().unwrap_or_default();
        let second = run_item(&pager(), TestItem::new(0).attempt(2).checkpoint(&last)).await;
        assert_eq!(second.result, Ok(ItemOutcome::Succeeded));
        assert_eq!(second.checkpoints, vec![json!(3), json!(4), json!(5)]);
        assert_eq!(second.progress[0].message.as_deref(), Some("page 3"));
    }

    #[tokio::test]
    async fn the_idempotency_key_is_the_work_not_the_run_and_a_redo_changes_it() {
        let key = |item: TestItem| async move {
            let job = job_fn(|ctx: ItemContext| async move {
                ctx.progress(
                    0,
                    0,
                    format!("{}|{}", ctx.idempotency_key(), ctx.attempt_id()),
                );
                Ok(ItemOutcome::Succeeded)
            });
            let run = run_item(&job, item).await;
            run.progress[0].message.clone().unwrap_or_default()
        };
        let first = key(TestItem::new(2).run("r1")).await;
        let retry = key(TestItem::new(2).run("r2").attempt(3)).await;
        let (work, attempt) = first.split_once('|').unwrap_or_default();
        assert!(
            work.starts_with("test-dag/2024-01-31/test-job/2/"),
            "{work}"
        );
        assert_eq!(attempt, "r1/test-job/2/1");
        assert_eq!(retry.split_once('|').map(|p| p.0), Some(work));
        assert_eq!(retry.split_once('|').map(|p| p.1), Some("r2/test-job/2/3"));
        let redo = key(TestItem::new(2).run("r3").redo(1)).await;
        assert_eq!(
            redo.split_once('|').map(|p| p.0),
            Some(&*format!("{work}/redo-1"))
        );
        let other = key(TestItem::new(2).params(json!({"rate": 1}))).await;
        assert_ne!(other.split_once('|').map(|p| p.0), Some(work));
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
