//! Running one item: a spawned task that calls the handler inside a tracing
//! span, turns a panic into a failure, applies the job's item timeout, drops
//! the handler once the item must stop ([`crate::stop`]), and reports how it
//! ended to the session.
//!
//! This module decides nothing about recording: it only reports. Whether the
//! outcome is recorded is the session's call ([`crate::assignment`]).

use crate::assignment::{Finish, JobRef};
use crate::clock::now_ms;
use crate::context::ItemContext;
use crate::job::{ItemOutcome, Job};
use crate::stats::Stats;
use crate::stop;
use futures::FutureExt;
use nightshift_protocol::ids::HandlerName;
use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;

/// An item's handler ended.
#[derive(Debug)]
pub(crate) struct ItemDone {
    pub job: JobRef,
    pub item: u32,
    pub attempt: u32,
    pub started_ms: i64,
    pub ended_ms: i64,
    pub finish: Finish,
    /// The attempt's log tail ([`crate::log_tail`]).
    pub log: Option<String>,
    /// The item's handler, when it has a capacity of its own to give back.
    pub handler: Option<HandlerName>,
}

/// Runs `job` for the item of `ctx` on a new task; sends [`ItemDone`] when
/// it ends (the send fails harmlessly if the registration is over).
pub(crate) fn spawn(
    job: Arc<dyn Job>,
    ctx: ItemContext,
    timeout: Option<Duration>,
    job_ref: JobRef,
    handler: Option<HandlerName>,
    done: mpsc::UnboundedSender<ItemDone>,
    stats: Arc<Stats>,
) {
    let span = item_span(&ctx);
    let item_log = ctx.item_log.clone();
    crate::item_log::attach(&span, &item_log);
    let (item, attempt) = (ctx.item().0, ctx.attempt());
    let (dag, job_name) = (ctx.dag().to_string(), ctx.job().to_string());
    crate::telemetry::item_started(&dag, &job_name);
    let cancel = ctx.cancellation_token();
    let stop_grace = job.stop_grace();
    let clock = ctx.stop_clock();
    let task = async move {
        let started_ms = now_ms();
        let call = stop::guarded(AssertUnwindSafe(job.run(ctx)).catch_unwind(), clock.clone());
        let finish = match timeout {
            Some(limit) => {
                tokio::pin!(call);
                match tokio::time::timeout(limit, &mut call).await {
                    Ok(ended) => from_guarded(ended),
                    Err(_) => {
                        // Cancel the token, for work the handler spawned that
                        // listens to it, and give the handler its stop grace
                        // (a program's process group is stopped in it) before
                        // its future is dropped; the stop clock still drops
                        // it at the lease deadline.
                        cancel.cancel();
                        if !stop_grace.is_zero() {
                            let _ = tokio::time::timeout(stop_grace, &mut call).await;
                        }
                        Finish::TimedOut {
                            after_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                        }
                    }
                }
            }
            None => from_guarded(call.await),
        };
        // Blocking work the handler left behind is bounded from now on.
        clock.item_ended();
        match &finish {
            // A cancelled item stopping is expected, not a failure, whatever
            // it returned: say so, so that logs do not cry wolf.
            Finish::Returned(Ok(ItemOutcome::Cancelled)) => {
                tracing::info!("item stopped: cancelled")
            }
            Finish::Returned(Err(e)) if cancel.is_cancelled() => {
                tracing::info!(returned = %e, "item stopped: cancelled")
            }
            Finish::Returned(Ok(_)) => tracing::debug!("item finished"),
            Finish::Returned(Err(e)) => tracing::info!(error = %e, "item failed"),
            Finish::Panicked(msg) => tracing::error!(panic = %msg, "item handler panicked"),
            Finish::TimedOut { after_ms } => tracing::warn!(after_ms, "item timed out"),
            Finish::Stopped(why) => tracing::warn!("item handler dropped by the executor: {why}"),
        }
        // Counted here, not by the session: a voided item whose
        // registration is over still finishes (and never reaches it).
        Stats::add(&stats.items_finished, 1);
        let ended_ms = now_ms();
        crate::telemetry::item_finished(
            &dag,
            &job_name,
            crate::telemetry::outcome(&finish, cancel.is_cancelled()),
            Duration::from_millis(u64::try_from(ended_ms - started_ms).unwrap_or(0)),
        );
        let _ = done.send(ItemDone {
            job: job_ref,
            item,
            attempt,
            started_ms,
            ended_ms,
            finish,
            log: item_log.render(),
            handler,
        });
    };
    tokio::spawn(task.instrument(span));
}

/// The span an item runs in (its events carry the item's ids, and
/// [`crate::ItemLogLayer`] finds the attempt log through it).
pub(crate) fn item_span(ctx: &ItemContext) -> tracing::Span {
    tracing::info_span!(
        "item",
        executor = %ctx.executor_id(),
        run = %ctx.run_id(),
        job = %ctx.job(),
        item = ctx.item().0,
        attempt = ctx.attempt(),
    )
}

/// What the handler's call gave: its result, or a panic's payload.
type Called = Result<Result<ItemOutcome, crate::JobError>, Box<dyn Any + Send>>;

fn from_guarded(ended: Result<Called, stop::StopReason>) -> Finish {
    match ended {
        Ok(call) => from_call(call),
        Err(why) => Finish::Stopped(why),
    }
}

fn from_call(ended: Called) -> Finish {
    match ended {
        Ok(result) => Finish::Returned(result),
        Err(payload) => Finish::Panicked(panic_message(payload.as_ref())),
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
