//! The states a run, a job and a shard item move through, and the rules for
//! moving between them.
//!
//! Everything here is a plain value: these enums are what the scheduler writes
//! to the store, what the console shows, and what the event log records. Each
//! one serializes as its `snake_case` name (the same text as
//! [`as_str`](RunState::as_str), which is what the SQL store keeps in its
//! `state` columns) and parses back with [`FromStr`], which rejects unknown
//! names with a [`ParseStateError`] that lists the valid ones.
//!
//! # The state machines
//!
//! [`StateMachine::can_transition`] is the single rule book for runs, jobs and
//! items; the scheduler asks it before every state write, so an illegal move
//! (say, a late report turning a cancelled item into a succeeded one) is a
//! bug caught at the write, not a surprise in the console.
//!
//! * **Terminal states are final.** Once a run, job or item is succeeded,
//!   failed, skipped, cancelled (or, for a job, upstream-failed) nothing moves
//!   it — with one documented exception:
//! * **Retry** re-opens a failed job or item: `Failed → Pending` for
//!   [`JobState`] and [`ItemState`], and `UpstreamFailed → Pending` for a job
//!   (retrying an upstream job must re-open the jobs that were failed because
//!   of it). Retrying a whole *finished* run creates a new run with
//!   [`TriggerSource::Retry`] that links back to it.
//! * **Clear** (an operator re-running chosen work of a run, Airflow's
//!   "clear") and **mark-succeeded** on a failed job re-open what had ended:
//!   any terminal job or item → `Pending`, a failed job or item →
//!   `Succeeded` (marked), and a finished run → `Running` (the same run,
//!   with new attempts). [`StateMachine::is_retry`] names
//!   exactly these re-opening moves; nothing else leaves a terminal state.
//! * **Failover is not a retry.** An item whose owner is lost goes
//!   `Running → Pending` (it is not terminal yet) and is handed to another
//!   executor; the attempt that was cut short is recorded as
//!   [`AttemptOutcome::Lost`] or [`AttemptOutcome::Fenced`].
//! * A state never "transitions" to itself: `can_transition(s, s)` is false,
//!   so a repeated write is visible as such to the caller.
//!
//! Every non-terminal state can reach a terminal one (property-tested in
//! `core/tests/state.rs`), so no run, job or item can be stuck by the rules
//! themselves.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A name that is not one of the values of a state enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}` (expected one of: {expected})")]
pub struct ParseStateError {
    /// What was being parsed, e.g. "run state".
    pub kind: &'static str,
    /// The text that did not match.
    pub value: String,
    /// The accepted names, comma-separated.
    pub expected: String,
}

/// Declares a string-like enum: serde `snake_case`, `as_str`, `Display`,
/// `FromStr` and a list of all values, kept in sync by construction.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The `snake_case` name, as stored and serialized.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseStateError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseStateError {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }
    };
}

string_enum! {
    /// Where a run of a DAG is in its life.
    RunState, "run state" {
        /// Created, not started yet.
        Pending => "pending",
        /// At least one job has been started.
        Running => "running",
        /// Every job ended successfully (or was skipped as allowed).
        Succeeded => "succeeded",
        /// A job failed and the run cannot succeed.
        Failed => "failed",
        /// An operator (or a `Replace` concurrency policy) cancelled it.
        Cancelled => "cancelled",
    }
}

string_enum! {
    /// Where one job of a run is in its life.
    JobState, "job state" {
        /// Upstream jobs are not done yet.
        Pending => "pending",
        /// Ready to run, but no live executor offers its handler.
        Waiting => "waiting",
        /// Its items have been assigned to executors.
        Running => "running",
        /// Every item succeeded (or was skipped).
        Succeeded => "succeeded",
        /// An item failed for good.
        Failed => "failed",
        /// An upstream job failed and the trigger rule forbids running.
        UpstreamFailed => "upstream_failed",
        /// Skipped by an operator or by its trigger rule.
        Skipped => "skipped",
        /// Cancelled with its run, or by an operator.
        Cancelled => "cancelled",
    }
}

string_enum! {
    /// Where one shard item of a job is in its life.
    ItemState, "item state" {
        /// Not running: never started, or moved off a lost executor.
        Pending => "pending",
        /// Assigned to a live owner that is working on it.
        Running => "running",
        /// Its handler returned success.
        Succeeded => "succeeded",
        /// Its handler failed and no retry is left.
        Failed => "failed",
        /// Skipped by an operator.
        Skipped => "skipped",
        /// Cancelled with its job or run.
        Cancelled => "cancelled",
    }
}

string_enum! {
    /// How one attempt at an item ended. Every attempt ends exactly once.
    AttemptOutcome, "attempt outcome" {
        /// The handler returned success and the owner recorded it.
        Succeeded => "succeeded",
        /// The handler returned an error.
        Failed => "failed",
        /// The handler ran past the job's timeout.
        TimedOut => "timed_out",
        /// The attempt was cancelled (operator, run cancel, shutdown).
        Cancelled => "cancelled",
        /// The owner's lease ended: the executor died or was partitioned.
        Lost => "lost",
        /// The owner tried to record a result with a stale fencing token.
        Fenced => "fenced",
    }
}

string_enum! {
    /// What created a run.
    TriggerSource, "trigger source" {
        /// The DAG's cron schedule fired.
        Schedule => "schedule",
        /// An operator ran `nightshift trigger` or pressed the button.
        Manual => "manual",
        /// One date of a `nightshift backfill` range.
        Backfill => "backfill",
        /// A retry of an earlier run.
        Retry => "retry",
        /// A schedule instant missed while no scheduler was leading.
        CatchUp => "catch_up",
    }
}

string_enum! {
    /// The life of an alert.
    AlertState, "alert state" {
        /// Raised and not yet looked at.
        Open => "open",
        /// Someone took it; it stays active until its condition clears.
        Acknowledged => "acknowledged",
        /// Its condition cleared (or it was closed).
        Resolved => "resolved",
    }
}

string_enum! {
    /// How loudly an alert asks for attention.
    AlertSeverity, "alert severity" {
        /// Worth a look; nothing is lost yet.
        Warning => "warning",
        /// Work is failing or late.
        Critical => "critical",
    }
}

string_enum! {
    /// The condition that raised an alert; silences are per rule.
    AlertRule, "alert rule" {
        /// An item failed for good.
        ItemFailed => "item_failed",
        /// A run was not done by its deadline.
        RunDeadlineMissed => "run_deadline_missed",
        /// An executor's lease ended while it owned items.
        ExecutorLost => "executor_lost",
        /// A job is ready but no live executor offers its handler.
        NoExecutor => "no_executor",
        /// An item has been running far longer than expected.
        ItemStalled => "item_stalled",
        /// The SQL store refused writes for a while (opened at the start of
        /// the outage, resolved when writes succeeded again).
        StoreUnavailable => "store_unavailable",
        /// etcd's database is full (its NOSPACE alarm) and refuses writes
        /// until an operator compacts, defragments and disarms it.
        CoordinationFull => "coordination_full",
        /// A run has taken more than 1.5 × the median duration of its DAG's
        /// last 10 succeeded runs (a warning; resolved when the run ends).
        RunSlow => "run_slow",
    }
}

/// A state enum whose moves are governed by a transition table.
///
/// Implemented by [`RunState`], [`JobState`] and [`ItemState`]; the trait lets
/// callers (and the property tests) treat the three machines alike.
pub trait StateMachine: Copy + Eq + fmt::Debug + 'static {
    /// Every state.
    fn all() -> &'static [Self];
    /// Whether nothing but a retry can move this state.
    fn is_terminal(self) -> bool;
    /// Whether `from → to` is the documented retry (re-opening a failed state).
    fn is_retry(from: Self, to: Self) -> bool;
    /// Whether `from → to` is allowed (retry included).
    fn can_transition(from: Self, to: Self) -> bool;
}

impl RunState {
    /// Whether the run has ended; a run never leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl StateMachine for RunState {
    fn all() -> &'static [Self] {
        Self::ALL
    }
    fn is_terminal(self) -> bool {
        RunState::is_terminal(self)
    }
    fn is_retry(from: Self, to: Self) -> bool {
        // A clear (or a mark-succeeded on a failed job) re-opens the run.
        from.is_terminal() && to == RunState::Running
    }
    fn can_transition(from: Self, to: Self) -> bool {
        use RunState::*;
        if Self::is_retry(from, to) {
            return true;
        }
        match from {
            // Failed straight from pending: the run could not start at all
            // (its DAG version vanished, its parameters were rejected).
            Pending => matches!(to, Running | Failed | Cancelled),
            Running => matches!(to, Succeeded | Failed | Cancelled),
            Succeeded | Failed | Cancelled => false,
        }
    }
}

impl JobState {
    /// Whether the job has ended (until a retry re-opens a failure).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::UpstreamFailed | Self::Skipped | Self::Cancelled
        )
    }
}

impl StateMachine for JobState {
    fn all() -> &'static [Self] {
        Self::ALL
    }
    fn is_terminal(self) -> bool {
        JobState::is_terminal(self)
    }
    fn is_retry(from: Self, to: Self) -> bool {
        // Retry re-opens failures; clear re-opens any ended job;
        // mark-succeeded settles a failed job whose last failure it marks.
        (from.is_terminal() && to == JobState::Pending)
            || (from == JobState::Failed && to == JobState::Succeeded)
    }
    fn can_transition(from: Self, to: Self) -> bool {
        use JobState::*;
        if Self::is_retry(from, to) {
            return true;
        }
        match from {
            // Succeeded from pending: mark-success, or a job with no items.
            // Failed from pending: it cannot be dispatched (bad item params).
            Pending => matches!(
                to,
                Waiting | Running | Succeeded | Failed | UpstreamFailed | Skipped | Cancelled
            ),
            Waiting => matches!(to, Running | Succeeded | Failed | Skipped | Cancelled),
            // Back to waiting: every executor offering the handler is gone.
            Running => matches!(to, Waiting | Succeeded | Failed | Skipped | Cancelled),
            Succeeded | Failed | UpstreamFailed | Skipped | Cancelled => false,
        }
    }
}

impl ItemState {
    /// Whether the item has ended (until a retry re-opens a failure).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Skipped | Self::Cancelled
        )
    }
}

impl StateMachine for ItemState {
    fn all() -> &'static [Self] {
        Self::ALL
    }
    fn is_terminal(self) -> bool {
        ItemState::is_terminal(self)
    }
    fn is_retry(from: Self, to: Self) -> bool {
        // Retry re-opens a failure; clear re-opens any ended item;
        // mark-succeeded settles a failed item.
        (from.is_terminal() && to == ItemState::Pending)
            || (from == ItemState::Failed && to == ItemState::Succeeded)
    }
    fn can_transition(from: Self, to: Self) -> bool {
        use ItemState::*;
        if Self::is_retry(from, to) {
            return true;
        }
        match from {
            Pending => matches!(to, Running | Succeeded | Failed | Skipped | Cancelled),
            // Running → Pending is failover: the owner was lost or fenced.
            Running => matches!(to, Pending | Succeeded | Failed | Skipped | Cancelled),
            Succeeded | Failed | Skipped | Cancelled => false,
        }
    }
}

impl AttemptOutcome {
    /// Whether this outcome is the item's own failure (and so uses up a retry).
    ///
    /// A lost or fenced attempt is the infrastructure's fault: the item moves
    /// to another executor without spending a retry.
    pub fn is_item_failure(self) -> bool {
        matches!(self, Self::Failed | Self::TimedOut)
    }
}

impl AlertState {
    /// Whether the alert is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Resolved)
    }
}
