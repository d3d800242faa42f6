//! [`ItemContext`]: everything a handler gets to know about the item it runs,
//! plus the two ways it talks back while running — cancellation (it listens)
//! and progress (it reports).
//!
//! The context is handed in, never fetched from globals, so a handler can be
//! unit-tested with [`crate::testing`] without an executor.

use crate::assignment::JobRef;
use crate::checkpoint::{CheckpointStore, Checkpoints, Owner};
use crate::progress::ProgressBoard;
use crate::stop::{StopClock, StopRules};
use chrono::NaiveDate;
use nightshift_coord::lease::LeaseStatus;
use nightshift_protocol::ids::{DagName, ExecutorId, FencingToken, ItemIndex, JobName, RunId};
use nightshift_protocol::keyspace::{self, ItemProgress, WorkKey};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
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
    /// Redo generation of the run (part of the work key).
    pub redo: u32,
}

/// Grace of blocking work after its item ends, outside an executor
/// ([`crate::testing`]), where an overrun is only logged.
const UNLEASED_GRACE: Duration = Duration::from_secs(1);

/// What a handler knows about the item it runs. Cheap to clone.
///
/// # When the item's work stops
///
/// In an executor, the handler's future is polled only while the item is
/// safely this executor's: it is dropped (never polled again) once the
/// executor's lease could expire unrenewed, at once when the lease is lost,
/// and at the latest a short grace (TTL/6 by default) after the item is
/// cancelled. Watch [`cancelled`](Self::cancelled) to stop cleanly within
/// the grace; blocking work goes through [`spawn_blocking`](Self::spawn_blocking).
/// The crate docs ("Ownership") state the guarantee exactly.
#[derive(Clone)]
pub struct ItemContext {
    facts: Arc<ItemFacts>,
    cancel: CancellationToken,
    progress: ProgressSink,
    /// The registration's lease status, so that work running outside this
    /// process (a [`crate::program::ProgramJob`]) can be stopped before the
    /// lease could have expired. `None` outside an executor (tests).
    lease: Option<watch::Receiver<LeaseStatus>>,
    stop: Arc<StopClock>,
    /// This attempt's log ([`crate::item_log`]).
    pub(crate) item_log: crate::log_tail::ItemLog,
    checkpoints: Arc<Checkpoints>,
}

impl ItemContext {
    pub(crate) fn new(facts: ItemFacts, cancel: CancellationToken, progress: ProgressSink) -> Self {
        Self {
            facts: Arc::new(facts),
            stop: Arc::new(StopClock::unleased(cancel.clone(), UNLEASED_GRACE)),
            cancel,
            progress,
            lease: None,
            item_log: Default::default(),
            checkpoints: Arc::new(Checkpoints::new(
                CheckpointStore::Memory(Default::default()),
            )),
        }
    }

    /// Where the item's checkpoints are stored and read.
    pub(crate) fn with_checkpoints(mut self, store: CheckpointStore) -> Self {
        self.checkpoints = Arc::new(Checkpoints::new(store));
        self
    }

    /// Binds the item's deadline to the registration's lease.
    pub(crate) fn with_lease(
        mut self,
        lease: watch::Receiver<LeaseStatus>,
        rules: StopRules,
    ) -> Self {
        self.stop = Arc::new(StopClock::leased(self.cancel.clone(), lease.clone(), rules));
        self.lease = Some(lease);
        self
    }

    /// The registration's lease status, when the item runs in an executor.
    pub(crate) fn lease_status(&self) -> Option<watch::Receiver<LeaseStatus>> {
        self.lease.clone()
    }

    /// The item's stop clock.
    pub(crate) fn stop_clock(&self) -> Arc<StopClock> {
        self.stop.clone()
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

    /// The job's parameters (DAG, job and run params merged) decoded into
    /// the handler's params type; a mismatch is a permanent failure
    /// (retrying will not fix the DAG). A job without params decodes as
    /// `{}`. Declare the type with
    /// [`ExecutorBuilder::handler_with_params`](crate::ExecutorBuilder::handler_with_params)
    /// or [`Job::params_schema`](crate::Job::params_schema) so that
    /// `nightshift apply` refuses params that would not decode.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(crate::params::as_object_or_null(&self.facts.params))
            .map_err(|e| JobError::permanent(format!("bad job params: {e}")))
    }

    /// The job's parameters as raw JSON (`null` when the job has none), for
    /// handlers that pass them on untyped (a program's `NIGHTSHIFT_PARAMS`).
    pub fn params_json(&self) -> &serde_json::Value {
        &self.facts.params
    }

    /// Same as [`params`](Self::params); kept for code written before
    /// params were typed.
    pub fn params_as<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        self.params()
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
    /// [`idempotency_key`](Self::idempotency_key),
    /// [`last_checkpoint`](Self::last_checkpoint) and
    /// [`fencing_token`](Self::fencing_token).
    pub fn attempt(&self) -> u32 {
        self.facts.attempt
    }

    /// Fencing token of this item's ownership: the revision of the
    /// assignment that gave this executor the item, as it stood when the
    /// item started.
    ///
    /// For one `(run, job, item)` it **strictly increases** from one owner or
    /// attempt to the next — and, being an etcd revision, from one run of
    /// the same work to the next — so a store you write to can refuse a
    /// stale owner:
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

    /// **The key for your effects**: the same for the same work, whatever
    /// run, attempt or executor does it — the text of
    /// [`work_key`](Self::work_key),
    /// `"{dag}/{business_date}/{job}/{item}/{params hash}"`.
    ///
    /// An item can run again: after a failover, a retry (in the same run or
    /// a new run retrying a failed one), a `trigger --rerun` or a backfill
    /// of a day already done. Key every external write by this value
    /// (a unique constraint, an `Idempotency-Key` header) and the work is
    /// applied once. Only a deliberate `nightshift trigger --redo` changes
    /// it (a `/redo-{n}` suffix), for when effects must be applied again.
    ///
    /// It used to be `"{run}/{job}/{item}"`, which changed with every retry
    /// run; the name was kept (rather than adding a `work_key_text()`
    /// beside it) so that handlers already following the advice become
    /// correct across runs without a change, and no handler keeps the
    /// unsafe key by accident. For logs, use [`attempt_id`](Self::attempt_id).
    pub fn idempotency_key(&self) -> String {
        self.work_key().to_string()
    }

    /// The item's work identity, in parts: DAG, business date, job, item,
    /// a hash of its params (merged job/run params and shard param) and the
    /// redo generation. [`idempotency_key`](Self::idempotency_key) is its text.
    pub fn work_key(&self) -> WorkKey {
        let f = &self.facts;
        WorkKey::new(
            f.dag.clone(),
            f.business_date,
            f.job.clone(),
            f.item,
            &f.params,
            f.item_param.as_deref(),
            f.redo,
        )
    }

    /// Redo generation of the run: 0, unless an operator triggered it with
    /// `nightshift trigger --redo` to apply the work's effects again.
    pub fn redo(&self) -> u32 {
        self.facts.redo
    }

    /// Identity of this attempt, for logs and traces:
    /// `"{run}/{job}/{item}/{attempt}"`. Not for deduplicating effects (a
    /// retry is a new attempt of the same work).
    pub fn attempt_id(&self) -> String {
        keyspace::attempt_id(
            &self.facts.run,
            &self.facts.job,
            self.facts.item,
            self.facts.attempt,
        )
    }

    /// Stores a checkpoint: a small JSON value (at most
    /// [`MAX_CHECKPOINT_BYTES`](crate::MAX_CHECKPOINT_BYTES) once encoded)
    /// saying where to resume — a page, a cursor, a count. The item's next
    /// attempt reads it with [`last_checkpoint`](Self::last_checkpoint),
    /// whether it comes after a failover, a retry or a new run of the same
    /// work ([`work_key`](Self::work_key)); a redo starts without one.
    ///
    /// The write is fenced like the item's outcome: it succeeds only while
    /// the item is still this executor's. Store a checkpoint *after* the
    /// effects it covers are applied (keyed by
    /// [`idempotency_key`](Self::idempotency_key)): an owner can die between
    /// the two, so the next one may redo the last step, never skip one.
    ///
    /// Errors: a value over the limit or that does not serialize is a
    /// permanent failure; a refused write (the item is no longer ours) or
    /// an unreachable etcd is retryable — stop and return it.
    pub async fn checkpoint<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), JobError> {
        self.checkpoints.save(&self.owner(), value).await
    }

    /// The item's last checkpoint, decoded into `T`; `None` when the work
    /// has none (a first run, or a redo). Read once from the coordination
    /// store at the first call (one `get`), then kept: after
    /// [`checkpoint`](Self::checkpoint) it returns the value just stored.
    /// A value that does not decode into `T` is a permanent failure.
    pub async fn last_checkpoint<T: DeserializeOwned>(&self) -> Result<Option<T>, JobError> {
        self.checkpoints.last(&self.owner()).await
    }

    fn owner(&self) -> Owner {
        let f = &self.facts;
        Owner {
            executor: f.executor.clone(),
            run: f.run.clone(),
            job: f.job.clone(),
            item: f.item,
            attempt: f.attempt,
            token: f.token,
        }
    }

    /// Resolves when the item is cancelled: by the scheduler, because it was
    /// moved away, or because this executor lost its lease or is shutting
    /// down past its grace period. Its result will not be recorded (except
    /// for a scheduler cancel, reported as cancelled): stop and return
    /// [`ItemOutcome::Cancelled`](crate::ItemOutcome::Cancelled). A handler
    /// still running a short grace later is dropped by the executor.
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

    /// The monotonic instant by which all of this item's work must have
    /// ended, as known now: the lease's conservative end less a margin, or
    /// the end of the grace after a cancellation. It moves later while the
    /// lease is renewed and the item is not cancelled. `None` outside an
    /// executor until the item is cancelled.
    pub fn stop_deadline(&self) -> Option<std::time::Instant> {
        self.stop.deadline().map(tokio::time::Instant::into_std)
    }

    /// Whether the item should stop now: it is cancelled, or its
    /// [`stop_deadline`](Self::stop_deadline) has passed. Cheap and
    /// synchronous: blocking code should check it between steps (after a
    /// process freeze, a thread runs on before anything can stop it).
    pub fn should_stop(&self) -> bool {
        self.is_cancelled() || self.stop.passed().is_some()
    }

    /// Runs blocking work `f` (a synchronous driver, file or CPU work) on
    /// the runtime's blocking threads and waits for it. A panic in `f` is a
    /// panic of the handler.
    ///
    /// Use this rather than `tokio::task::spawn_blocking`: the executor
    /// tracks the work. A thread cannot be stopped, so if `f` is still
    /// running when the item must stop (its
    /// [`stop_deadline`](Self::stop_deadline), even if the handler has
    /// returned or was dropped meanwhile), **the executor process exits**
    /// with status 70 rather than let the work overlap with the item's next
    /// owner. Keep each call short, or check [`should_stop`](Self::should_stop)
    /// inside `f`. Outside an executor ([`crate::testing`]) an overrun is
    /// only logged.
    ///
    /// Fails (retryably) without running `f` when the item should stop already.
    pub async fn spawn_blocking<F, T>(&self, f: F) -> Result<T, JobError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.should_stop() {
            return Err(JobError::retryable(
                "the item is stopping: blocking work not started",
            ));
        }
        let (done_tx, done) = oneshot::channel::<()>();
        let task = tokio::task::spawn_blocking(move || {
            // Dropped when `f` returns or unwinds: either way the work is over.
            let _done = done_tx;
            f()
        });
        self.stop
            .watch_blocking(done, format!("item {}", self.attempt_id()));
        match task.await {
            Ok(value) => Ok(value),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(JobError::retryable(format!(
                "blocking work did not finish: {e}"
            ))),
        }
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
