//! What one executor knows about one of its assignments: the items it owns,
//! which are waiting, running or done, and the outcomes not yet recorded.
//!
//! [`JobSlot`] is pure bookkeeping (no I/O, no clock): the session feeds it
//! assignment rewrites and finished items, and asks it what to start and what
//! to record. Its rules are the executor half of the protocol in
//! `nightshift_protocol::keyspace`:
//!
//! - only owned items (listed in the current assignment, at the attempt the
//!   assignment names) are started or recorded;
//! - an item done locally at an attempt is not run again when the assignment
//!   is rewritten (only a higher attempt re-runs it);
//! - an item removed from the assignment, or whose attempt changed, is
//!   cancelled and its outcome discarded; an item in `cancel` is cancelled and
//!   reported as cancelled (or as whatever it finished with first).

use crate::job::{ItemOutcome, JobError};
use crate::stop::StopReason;
use nightshift_protocol::ids::{ItemIndex, JobName, RunId};
use nightshift_protocol::keyspace::{AssignmentRecord, ItemResult, ItemSet, ResultOutcome};
use std::collections::HashMap;
use tokio_util::sync::CancellationToken;

/// Longest error message recorded, in bytes: keeps a batch under etcd's
/// request size whatever a handler puts in its error.
pub(crate) const MAX_ERROR_LEN: usize = 4096;

/// Identity of a job within a run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct JobRef {
    pub run: RunId,
    pub job: JobName,
}

impl JobRef {
    pub(crate) fn new(run: RunId, job: JobName) -> Self {
        Self { run, job }
    }
}

/// What happens to a running item's outcome when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Record it.
    Record,
    /// The leader asked to stop it: record it, an error as `cancelled`.
    CancelRequested,
    /// No longer ours (removed, fenced, drained): never record it.
    Discard,
}

/// How an item's handler ended.
#[derive(Debug)]
pub(crate) enum Finish {
    /// It returned.
    Returned(Result<ItemOutcome, JobError>),
    /// It panicked with this message.
    Panicked(String),
    /// It ran past the job's item timeout (its future was dropped).
    TimedOut { after_ms: u64 },
    /// The executor dropped it: the item had to stop (lease deadline, or
    /// the grace after its cancellation passed).
    Stopped(StopReason),
}

struct Running {
    attempt: u32,
    cancel: CancellationToken,
    fate: Fate,
}

/// What a rewrite took away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applied {
    /// Running items cancelled.
    pub cancelled: usize,
    /// Buffered outcomes dropped because their items are no longer owned.
    pub dropped: usize,
}

/// An item the session should start now.
#[derive(Debug)]
pub(crate) struct Start {
    pub item: u32,
    pub attempt: u32,
    pub cancel: CancellationToken,
}

/// Local state of one assignment of this executor.
pub(crate) struct JobSlot {
    /// The current fencing token (assignment mod_revision).
    pub token: i64,
    assignment: AssignmentRecord,
    /// Owned items not started, not done, not cancelled.
    pending: ItemSet,
    running: HashMap<u32, Running>,
    /// Item → attempt completed here (recorded, or waiting in `buffer`).
    completed: HashMap<u32, u32>,
    /// Outcomes not yet handed to the recorder.
    buffer: Vec<ItemResult>,
}

impl JobSlot {
    /// A slot for a newly seen assignment.
    pub(crate) fn new(token: i64, assignment: AssignmentRecord, now_ms: i64) -> Self {
        let mut slot = JobSlot {
            token: 0,
            assignment: AssignmentRecord::default(),
            pending: ItemSet::new(),
            running: HashMap::new(),
            completed: HashMap::new(),
            buffer: Vec::new(),
        };
        slot.apply(token, assignment, now_ms);
        slot
    }

    /// Takes in a rewritten assignment: cancels running items it no longer
    /// owns (or now must stop) and drops buffered outcomes it no longer owns.
    pub(crate) fn apply(
        &mut self,
        token: i64,
        assignment: AssignmentRecord,
        now_ms: i64,
    ) -> Applied {
        self.token = token;
        self.assignment = assignment;
        let a = &self.assignment;
        let mut cancelled = 0;
        for (&item, run) in self.running.iter_mut() {
            let owned = a.items.contains(item) && a.attempt(item) == run.attempt;
            let fate = if !owned {
                Fate::Discard
            } else if a.cancel.contains(item) && run.fate == Fate::Record {
                Fate::CancelRequested
            } else {
                run.fate
            };
            if fate != run.fate {
                run.fate = fate;
                run.cancel.cancel();
                cancelled += 1;
            }
        }
        // Forget completions of items no longer ours: if one comes back, the
        // leader never got (or no longer wants) that outcome, so it runs again.
        self.completed
            .retain(|&item, &mut attempt| a.items.contains(item) && a.attempt(item) == attempt);
        let before = self.buffer.len();
        self.buffer
            .retain(|r| a.items.contains(r.item.0) && a.attempt(r.item.0) == r.attempt);
        let dropped = before - self.buffer.len();
        // Owned, cancelled, never started: report them cancelled right away.
        let unstarted_cancels: Vec<u32> = a
            .items
            .intersection(&a.cancel)
            .iter()
            .filter(|i| !self.completed.contains_key(i) && !self.running.contains_key(i))
            .collect();
        for item in unstarted_cancels {
            let attempt = self.assignment.attempt(item);
            self.completed.insert(item, attempt);
            self.buffer.push(result(
                item,
                attempt,
                ResultOutcome::Cancelled,
                false,
                None,
                now_ms,
                now_ms,
            ));
        }
        let mut pending = self.assignment.items.difference(&self.assignment.cancel);
        for item in self.completed.keys().chain(self.running.keys()) {
            pending.remove(*item);
        }
        self.pending = pending;
        Applied { cancelled, dropped }
    }

    /// Pops the next item to run, marking it running.
    pub(crate) fn start_next(&mut self) -> Option<Start> {
        let item = self.pending.pop_first()?;
        let attempt = self.assignment.attempt(item);
        let cancel = CancellationToken::new();
        self.running.insert(
            item,
            Running {
                attempt,
                cancel: cancel.clone(),
                fate: Fate::Record,
            },
        );
        Some(Start {
            item,
            attempt,
            cancel,
        })
    }

    /// Whether items are waiting to start.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Items waiting to start (for the executor to fail them when it cannot run the job).
    pub(crate) fn take_pending(&mut self) -> ItemSet {
        std::mem::take(&mut self.pending)
    }

    /// Whether any running item's outcome would still be recorded.
    pub(crate) fn has_recordable_running(&self) -> bool {
        self.running.values().any(|r| r.fate != Fate::Discard)
    }

    /// An item's handler ended; returns whether its outcome was buffered.
    /// [`finish`](Self::finish), shipping the attempt's log tail with the
    /// outcome it records.
    pub(crate) fn finish_with_log(
        &mut self,
        item: u32,
        attempt: u32,
        (started_ms, ended_ms): (i64, i64),
        finish: Finish,
        log: Option<String>,
    ) -> bool {
        let recorded = self.finish(item, attempt, started_ms, ended_ms, finish);
        if recorded {
            if let Some(last) = self.buffer.last_mut() {
                if last.item.0 == item && last.attempt == attempt {
                    last.log = log;
                }
            }
        }
        recorded
    }

    pub(crate) fn finish(
        &mut self,
        item: u32,
        attempt: u32,
        started_ms: i64,
        ended_ms: i64,
        finish: Finish,
    ) -> bool {
        let Some(run) = self.running.get(&item) else {
            return false;
        };
        if run.attempt != attempt {
            return false;
        }
        let mut fate = run.fate;
        self.running.remove(&item);
        if matches!(finish, Finish::Stopped(_)) && fate == Fate::Record {
            // Stopped at the lease deadline before the session fenced: the
            // item was not finished, and is not ours to record any more.
            fate = Fate::Discard;
        }
        if fate == Fate::Discard {
            // Its outcome is void; if the item is ours again (it was removed
            // then given back, or its attempt changed), handle it afresh.
            let a = &self.assignment;
            if a.items.contains(item) && !self.completed.contains_key(&item) {
                if a.cancel.contains(item) {
                    let attempt = a.attempt(item);
                    self.completed.insert(item, attempt);
                    self.buffer.push(result(
                        item,
                        attempt,
                        ResultOutcome::Cancelled,
                        false,
                        None,
                        ended_ms,
                        ended_ms,
                    ));
                } else {
                    self.pending.insert(item);
                }
            }
            return false;
        }
        let (outcome, retryable, error) = match finish {
            Finish::Returned(Ok(ItemOutcome::Succeeded)) => (ResultOutcome::Succeeded, false, None),
            Finish::Returned(Ok(ItemOutcome::Skipped(reason))) => {
                (ResultOutcome::Skipped, false, Some(reason))
            }
            Finish::Returned(Ok(ItemOutcome::Cancelled)) if fate == Fate::CancelRequested => {
                (ResultOutcome::Cancelled, false, None)
            }
            // Nobody cancelled it: the work is not done, so a retry may do it.
            Finish::Returned(Ok(ItemOutcome::Cancelled)) => (
                ResultOutcome::Failed,
                true,
                Some("the handler returned Cancelled but the item was not cancelled".to_owned()),
            ),
            Finish::Returned(Err(e)) if fate == Fate::CancelRequested => {
                (ResultOutcome::Cancelled, false, Some(e.to_string()))
            }
            Finish::Returned(Err(e)) => {
                (ResultOutcome::Failed, e.is_retryable(), Some(e.to_string()))
            }
            Finish::Panicked(msg) => (
                ResultOutcome::Failed,
                false,
                Some(format!("handler panicked: {msg}")),
            ),
            // Only a requested cancel reaches here: record what was asked.
            Finish::Stopped(why) => (
                ResultOutcome::Cancelled,
                false,
                Some(format!("handler dropped: {why}")),
            ),
            Finish::TimedOut { after_ms } => (
                ResultOutcome::TimedOut,
                true,
                Some(format!("item timed out after {after_ms} ms")),
            ),
        };
        self.completed.insert(item, attempt);
        self.buffer.push(result(
            item, attempt, outcome, retryable, error, started_ms, ended_ms,
        ));
        true
    }

    /// Records every given item as failed without running it (the job cannot
    /// run here: unknown handler, unreadable spec).
    pub(crate) fn fail_items(
        &mut self,
        items: &ItemSet,
        error: &str,
        retryable: bool,
        now_ms: i64,
    ) {
        for item in items.iter() {
            let attempt = self.assignment.attempt(item);
            self.completed.insert(item, attempt);
            self.buffer.push(result(
                item,
                attempt,
                ResultOutcome::Failed,
                retryable,
                Some(error.to_owned()),
                now_ms,
                now_ms,
            ));
        }
    }

    /// Cancels every running item and voids its outcome; returns how many.
    pub(crate) fn discard_running(&mut self) -> usize {
        let mut n = 0;
        for run in self.running.values_mut() {
            if run.fate != Fate::Discard {
                run.fate = Fate::Discard;
                n += 1;
            }
            run.cancel.cancel();
        }
        n
    }

    /// Number of outcomes waiting to be recorded.
    pub(crate) fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Drops every buffered outcome; returns how many.
    pub(crate) fn clear_buffer(&mut self) -> usize {
        std::mem::take(&mut self.buffer).len()
    }

    /// Whether a result is for an item this executor owns now, at its attempt.
    pub(crate) fn owns(&self, r: &ItemResult) -> bool {
        self.assignment.items.contains(r.item.0) && self.assignment.attempt(r.item.0) == r.attempt
    }

    /// Takes up to `max_results` owned outcomes, about `max_bytes` at most;
    /// returns them and how many buffered outcomes were dropped as not owned.
    pub(crate) fn take_batch(
        &mut self,
        max_results: usize,
        max_bytes: usize,
    ) -> (Vec<ItemResult>, usize) {
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut dropped = 0;
        let mut taken = 0;
        for r in &self.buffer {
            let size = estimated_size(r);
            if batch.len() >= max_results || (bytes + size > max_bytes && !batch.is_empty()) {
                break;
            }
            taken += 1;
            if self.owns(r) {
                bytes += size;
                batch.push(r.clone());
            } else {
                dropped += 1;
            }
        }
        self.buffer.drain(..taken);
        (batch, dropped)
    }
}

/// Upper estimate of a result's JSON size: fixed fields, the message, and
/// the log tail as JSON escapes it (exactly: a log of control characters
/// grows up to sixfold, and a batch of 64 KiB tails must stay under etcd's
/// request limit).
pub(crate) fn estimated_size(r: &ItemResult) -> usize {
    192 + r.error.as_ref().map_or(0, |e| e.len() * 2)
        + r.log.as_deref().map_or(0, |l| 10 + json_string_len(l))
}

/// Bytes of `s` inside a JSON string, as serde_json writes it (non-ASCII
/// stays UTF-8; quote, backslash and the short control escapes take 2 bytes, other
/// control characters 6).
pub(crate) fn json_string_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

fn result(
    item: u32,
    attempt: u32,
    outcome: ResultOutcome,
    retryable: bool,
    error: Option<String>,
    started_at_ms: i64,
    ended_at_ms: i64,
) -> ItemResult {
    ItemResult {
        item: ItemIndex(item),
        attempt,
        outcome,
        retryable,
        error: error.map(truncate_error),
        started_at_ms,
        ended_at_ms,
        log: None,
    }
}

fn truncate_error(mut message: String) -> String {
    if message.len() > MAX_ERROR_LEN {
        let mut cut = MAX_ERROR_LEN;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("… (truncated)");
    }
    message
}

#[cfg(test)]
#[path = "assignment_tests.rs"]
mod tests;
