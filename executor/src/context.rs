//! [`ItemContext`]: everything a handler gets to know about the item it runs,
//! plus the two ways it talks back while running — cancellation (it listens)
//! and progress (it reports).
//!
//! The context is handed in, never fetched from globals, so a handler can be
//! unit-tested with [`crate::testing`] without an executor.

use crate::assignment::JobRef;
use crate::progress::ProgressBoard;
use chrono::NaiveDate;
use nightshift_coord::lease::LeaseStatus;
use nightshift_protocol::ids::{DagName, ExecutorId, FencingToken, ItemIndex, JobName, RunId};
use nightshift_protocol::keyspace::{self, ItemProgress};
use serde::de::DeserializeOwned;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::job::JobError;

/// Where progress reports go.
#[derive(Clone)]
pub(crate) enum ProgressSink {
    /// The executor's board, written to the coordination store at a bounded rate.
    Board {
        /// Shared board of the registration.
        board: Arc<ProgressBoard>,
        /// Job the item belongs to.
        job: JobRef,
    },
    /// A plain log, for [`crate::testing`].
    Log(Arc<Mutex<Vec<ItemProgress>>>),
}

/// The facts about one item, fixed when it starts.
#[derive(Clone)]
pub(crate) struct ItemFacts {
    pub executor: ExecutorId,
    pub run: RunId,
    pub dag: DagName,
    pub job: JobName,
    pub item: ItemIndex,
    pub total_items: u32,
    pub item_param: Option<String>,
    pub params: Arc<serde_json::Value>,
    pub business_date: NaiveDate,
    pub attempt: u32,
    pub token: FencingToken,
}

/// What a handler knows about the item it runs. Cheap to clone.
#[derive(Clone)]
pub struct ItemContext {
    facts: Arc<ItemFacts>,
    cancel: CancellationToken,
    progress: ProgressSink,
    /// The registration's lease status, so that work running outside this
    /// process (a [`crate::program::ProgramJob`]) can be stopped before the
    /// lease could have expired. `None` outside an executor (tests).
    lease: Option<watch::Receiver<LeaseStatus>>,
}

impl ItemContext {
    pub(crate) fn new(facts: ItemFacts, cancel: CancellationToken, progress: ProgressSink) -> Self {
        Self {
            facts: Arc::new(facts),
            cancel,
            progress,
            lease: None,
        }
    }

    /// Attaches the registration's lease status.
    pub(crate) fn with_lease(mut self, lease: watch::Receiver<LeaseStatus>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The registration's lease status, when the item runs in an executor.
    pub(crate) fn lease_status(&self) -> Option<watch::Receiver<LeaseStatus>> {
        self.lease.clone()
    }

    /// Run this item belongs to.
    pub fn run_id(&self) -> &RunId {
        &self.facts.run
    }

    /// DAG of the run.
    pub fn dag(&self) -> &DagName {
        &self.facts.dag
    }

    /// Job this item belongs to.
    pub fn job(&self) -> &JobName {
        &self.facts.job
    }

    /// Index of the item, in `0..total_items()` (compare with
    /// `ctx.item().get() < ctx.total_items()`).
    pub fn item(&self) -> ItemIndex {
        self.facts.item
    }

    /// Number of items of the job (a count, hence a plain `u32`; indices
    /// are [`ItemIndex`]).
    pub fn total_items(&self) -> u32 {
        self.facts.total_items
    }

    /// The item's own parameter (`shard_params[item]`), if the job has them.
    pub fn item_param(&self) -> Option<&str> {
        self.facts.item_param.as_deref()
    }

    /// The job's parameters (JSON, `null` when the job has none).
    pub fn params(&self) -> &serde_json::Value {
        &self.facts.params
    }

    /// The job's parameters decoded into your own type; a mismatch is a
    /// permanent failure (retrying will not fix the DAG).
    pub fn params_as<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.facts.params.as_ref().clone())
            .map_err(|e| JobError::permanent(format!("bad job params: {e}")))
    }

    /// Business date of the run: the date the batch is *for*, not today.
    pub fn business_date(&self) -> NaiveDate {
        self.facts.business_date
    }

    /// Attempt number, from 1: how many times the item has been started in
    /// this run, counting both retries after a failure and moves to another
    /// executor after its owner was lost. A move uses no retry of the job's
    /// retry policy, but it is a new attempt in the history: the previous
    /// owner may have done part of the work, so treat any attempt above 1
    /// as "maybe partly done before" and rely on
    /// [`idempotency_key`](Self::idempotency_key) and
    /// [`fencing_token`](Self::fencing_token).
    pub fn attempt(&self) -> u32 {
        self.facts.attempt
    }

    /// Fencing token of this item's ownership: the revision of the
    /// assignment that gave this executor the item, as it stood when the
    /// item started.
    ///
    /// For one `(run, job, item)` it **strictly increases** from one owner or
    /// attempt to the next, so a store you write to can refuse a stale owner:
    /// keep the highest token seen per [`idempotency_key`](Self::idempotency_key)
    /// and reject writes carrying a lower one (see the crate docs for a
    /// complete SQL example). Results sent to the scheduler are fenced by the
    /// SDK already; this is for your own writes.
    pub fn fencing_token(&self) -> FencingToken {
        self.facts.token
    }

    /// Executor running the item.
    pub fn executor_id(&self) -> &ExecutorId {
        &self.facts.executor
    }

    /// Stable key of this item across attempts and executors
    /// (`"{run}/{job}/{item}"`): use it to make external side effects
    /// idempotent, since an item can run again after a failover.
    pub fn idempotency_key(&self) -> String {
        keyspace::idempotency_key(&self.facts.run, &self.facts.job, self.facts.item)
    }

    /// Resolves when the item is cancelled: by the scheduler, because it was
    /// moved away, or because this executor lost its lease or is shutting
    /// down past its grace period. Its result will not be recorded (except
    /// for a scheduler cancel, reported as cancelled): stop and return
    /// [`ItemOutcome::Cancelled`](crate::ItemOutcome::Cancelled).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Whether the item has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The item's cancellation token, to hand to code that takes one.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Reports progress (`done` of `total` units, 0 = unknown total, and a
    /// status line). Never blocks: the latest report is kept and published
    /// at most once a second.
    pub fn progress(&self, done: u64, total: u64, message: impl Into<String>) {
        let message = message.into();
        let report = ItemProgress {
            done,
            total,
            message: (!message.is_empty()).then_some(message),
            at_ms: crate::clock::now_ms(),
        };
        match &self.progress {
            ProgressSink::Board { board, job } => board.report(job, self.facts.item.0, report),
            ProgressSink::Log(log) => {
                if let Ok(mut log) = log.lock() {
                    log.push(report);
                }
            }
        }
    }
}

impl std::fmt::Debug for ItemContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemContext")
            .field("run", &self.facts.run)
            .field("job", &self.facts.job)
            .field("item", &self.facts.item)
            .field("attempt", &self.facts.attempt)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
