//! When an item's work must stop, and making it stop.
//!
//! Cancelling an item is a request its handler may ignore; this module is
//! what makes it a fact. Each item has a [`StopClock`]: the instant by which
//! all of its work must have ended, on the monotonic clock. It is the
//! earliest of
//!
//! - the lease's `confirmed_until` (the conservative end the keeper computes,
//!   see `nightshift_coord::lease`) minus a margin (TTL/6) for clock-rate
//!   differences with etcd and for the drop itself; it moves later with every
//!   renewal while the item is not cancelled;
//! - the moment the item was cancelled (for any reason), or ended, plus a
//!   short grace (default TTL/6) to return cleanly;
//! - now, once the lease is known lost (revoked, not found, the keeper stopped).
//!
//! [`guarded`] wraps the handler's future: **before every poll** it reads the
//! monotonic clock and the deadline, and once the deadline has passed it
//! drops the handler's future instead of polling it. A process resumed after
//! SIGSTOP or a VM freeze therefore never polls a handler whose lease may
//! have expired meanwhile, whatever order its tasks wake in: the check comes
//! first.
//!
//! Blocking work cannot be dropped. [`StopClock::watch_blocking`] watches a
//! blocking task started through [`ItemContext::spawn_blocking`]; if it is
//! still running at its item's deadline, the process exits (status
//! [`EXIT_BLOCKING_OVERRUN`]) — only the end of the process stops a thread.
//!
//! [`ItemContext::spawn_blocking`]: crate::ItemContext::spawn_blocking

use nightshift_coord::lease::LeaseStatus;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Exit status of an executor whose blocking work outlived its item's
/// deadline (`EX_SOFTWARE` from sysexits.h).
pub const EXIT_BLOCKING_OVERRUN: i32 = 70;

/// Why the SDK stopped an item's handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// The lease could expire soon and was not confirmed again.
    LeaseDeadline,
    /// The lease is gone (revoked, not found, no longer kept).
    LeaseLost,
    /// The item was cancelled (or ended) and the grace passed.
    Grace,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::LeaseDeadline => "its lease could have expired",
            StopReason::LeaseLost => "its lease is lost",
            StopReason::Grace => "it did not return within the grace after its cancellation",
        })
    }
}

/// What happens when blocking work outlives its item.
#[derive(Debug, Clone)]
pub(crate) enum Overrun {
    /// Exit the process (in an executor).
    Exit,
    /// Only log it (outside an executor: [`crate::testing`]).
    Log,
    /// Remember it (this module's tests).
    #[cfg(test)]
    Flag(Arc<std::sync::atomic::AtomicBool>),
}

/// How an item's deadline is derived from its lease and its cancellation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StopRules {
    /// How long before the lease's `confirmed_until` work must have stopped.
    pub margin: Duration,
    /// How long after its cancellation (or end) an item may still run.
    pub grace: Duration,
}

impl StopRules {
    /// The rules for a lease of `ttl`: margin TTL/6, grace `grace` (TTL/6
    /// unless set).
    pub(crate) fn for_ttl(ttl: Duration, grace: Option<Duration>) -> Self {
        StopRules {
            margin: ttl / 6,
            grace: grace.unwrap_or(ttl / 6),
        }
    }
}

#[derive(Debug, Default)]
struct ClockState {
    /// Latest `confirmed_until` seen.
    lease_until: Option<Instant>,
    /// When the cancellation (or the end of the item) was first seen.
    stop_from: Option<Instant>,
    lease_lost: bool,
}

/// The deadline of one item's work; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct StopClock {
    cancel: CancellationToken,
    /// Cancelled when the item ends, to wake watchers of its blocking work.
    ended: CancellationToken,
    lease: Option<watch::Receiver<LeaseStatus>>,
    rules: StopRules,
    overrun: Overrun,
    state: Mutex<ClockState>,
}

impl StopClock {
    /// A clock without a lease (outside an executor): only cancellation
    /// bounds the work.
    pub(crate) fn unleased(cancel: CancellationToken, grace: Duration) -> Self {
        StopClock {
            cancel,
            ended: CancellationToken::new(),
            lease: None,
            rules: StopRules {
                margin: Duration::ZERO,
                grace,
            },
            overrun: Overrun::Log,
            state: Mutex::new(ClockState::default()),
        }
    }

    /// A clock bound to the registration's lease.
    pub(crate) fn leased(
        cancel: CancellationToken,
        lease: watch::Receiver<LeaseStatus>,
        rules: StopRules,
    ) -> Self {
        let clock = StopClock {
            cancel,
            ended: CancellationToken::new(),
            lease: Some(lease),
            rules,
            overrun: Overrun::Exit,
            state: Mutex::new(ClockState::default()),
        };
        clock.deadline_at(Instant::now());
        clock
    }

    #[cfg(test)]
    pub(crate) fn with_overrun(mut self, overrun: Overrun) -> Self {
        self.overrun = overrun;
        self
    }

    /// The deadline as known at `now`, with why it is that, after taking in
    /// the lease status and the cancellation. `None`: no bound yet.
    fn deadline_at(&self, now: Instant) -> Option<(Instant, StopReason)> {
        let status = self.lease.as_ref().map(|rx| *rx.borrow());
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.stop_from.is_none() && (self.cancel.is_cancelled() || self.ended.is_cancelled()) {
            st.stop_from = Some(now);
        }
        match status {
            Some(LeaseStatus::Alive { confirmed_until }) => {
                st.lease_until = Some(
                    st.lease_until
                        .map_or(confirmed_until, |u| u.max(confirmed_until)),
                );
            }
            Some(LeaseStatus::Lost) => st.lease_lost = true,
            Some(LeaseStatus::Expiring) | None => {}
        }
        if st.lease_lost {
            return Some((now, StopReason::LeaseLost));
        }
        let lease = st.lease_until.map(|u| {
            let at = u.checked_sub(self.rules.margin).unwrap_or(u);
            (at, StopReason::LeaseDeadline)
        });
        let grace = st
            .stop_from
            .map(|t| (t + self.rules.grace, StopReason::Grace));
        match (lease, grace) {
            (Some(l), Some(g)) => Some(if g.0 < l.0 { g } else { l }),
            (l, g) => l.or(g),
        }
    }

    /// Why the item must stop, if its deadline has passed now.
    pub(crate) fn passed(&self) -> Option<StopReason> {
        let now = Instant::now();
        self.deadline_at(now)
            .filter(|(at, _)| now >= *at)
            .map(|(_, why)| why)
    }

    /// The deadline as known now.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline_at(Instant::now()).map(|(at, _)| at)
    }

    /// The item ended: whatever it left running (blocking work) gets the
    /// grace from now, as after a cancellation.
    pub(crate) fn item_ended(&self) {
        self.ended.cancel();
        self.deadline_at(Instant::now());
    }

    /// Resolves when the deadline has passed (never, without a lease or a
    /// cancellation).
    pub(crate) async fn reached(self: &Arc<Self>) -> StopReason {
        match guarded(std::future::pending::<()>(), self.clone()).await {
            Ok(()) => unreachable!("a pending future never completes"),
            Err(why) => why,
        }
    }

    /// Watches blocking work of the item that signals `done` when it ends:
    /// if it is still running at the item's deadline, the process exits.
    pub(crate) fn watch_blocking(self: &Arc<Self>, done: oneshot::Receiver<()>, what: String) {
        let clock = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                biased;
                _ = done => {}
                why = clock.reached() => clock.blocking_overrun(&what, why),
            }
        });
    }

    fn blocking_overrun(&self, what: &str, why: StopReason) {
        let message = format!(
            "blocking work of {what} is still running although the item had to stop ({why}); \
             a thread cannot be stopped, so the executor exits (status {EXIT_BLOCKING_OVERRUN}) \
             rather than let it overlap with the item's next owner"
        );
        match &self.overrun {
            Overrun::Exit => {
                tracing::error!("{message}");
                eprintln!("nightshift executor: {message}");
                std::process::exit(EXIT_BLOCKING_OVERRUN);
            }
            Overrun::Log => tracing::warn!("{message}"),
            #[cfg(test)]
            Overrun::Flag(flag) => flag.store(true, std::sync::atomic::Ordering::SeqCst),
        }
    }
}

/// Runs `fut` until it completes or the item's deadline passes, whichever is
/// first; in the second case `fut` is dropped without being polled again.
pub(crate) async fn guarded<F: Future>(
    fut: F,
    clock: Arc<StopClock>,
) -> Result<F::Output, StopReason> {
    let mut fut = std::pin::pin!(fut);
    let mut lease = clock.lease.clone();
    loop {
        let now = Instant::now();
        let deadline = clock.deadline_at(now);
        if let Some((at, why)) = deadline {
            if now >= at {
                return Err(why);
            }
        }
        let cancelled = clock.cancel.is_cancelled();
        let ended = clock.ended.is_cancelled();
        tokio::select! {
            biased;
            // Each of these only changes the deadline: go round and re-read it.
            _ = clock.cancel.cancelled(), if !cancelled => {}
            _ = clock.ended.cancelled(), if !ended => {}
            changed = lease_changed(&mut lease) => {
                if !changed {
                    lease = None;
                }
            }
            _ = sleep_until_opt(deadline.map(|(at, _)| at)) => {}
            polled = Checked { fut: fut.as_mut(), clock: &clock } => match polled {
                Ok(out) => return Ok(out),
                Err(why) => return Err(why),
            },
        }
    }
}

/// Polls the handler's future only if the deadline has not passed at the
/// moment of the poll: the timer of the deadline may fire after the
/// handler's own wake-up (after a freeze, both are due at once).
struct Checked<'a, F> {
    fut: Pin<&'a mut F>,
    clock: &'a StopClock,
}

impl<F: Future> Future for Checked<'_, F> {
    type Output = Result<F::Output, StopReason>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(why) = self.clock.passed() {
            return Poll::Ready(Err(why));
        }
        self.fut.as_mut().poll(cx).map(Ok)
    }
}

/// Resolves when the lease status changes; `false` once nobody publishes it.
async fn lease_changed(lease: &mut Option<watch::Receiver<LeaseStatus>>) -> bool {
    match lease {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "stop_tests.rs"]
mod tests;
