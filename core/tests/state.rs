//! Property and table tests for the run, job and item state machines in
//! `nightshift_core::state`: terminal states are final except the documented
//! retry, every state can still end, and names round-trip.

use nightshift_core::state::*;
use proptest::prelude::*;
use serde::Serialize;
use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::str::FromStr;

/// Indices of the states reachable from `start` by allowed moves,
/// optionally including retries.
fn reachable<S: StateMachine>(start: S, with_retry: bool) -> Vec<S> {
    let all = S::all();
    let index = |s: S| all.iter().position(|x| *x == s).unwrap();
    let mut seen = BTreeSet::from([index(start)]);
    let mut queue = VecDeque::from([start]);
    while let Some(from) = queue.pop_front() {
        for &to in all {
            let allowed = S::can_transition(from, to) && (with_retry || !S::is_retry(from, to));
            if allowed && seen.insert(index(to)) {
                queue.push_back(to);
            }
        }
    }
    seen.into_iter().map(|i| all[i]).collect()
}

/// Follows `choices` as a walk through allowed moves (each choice picks
/// among the moves allowed from the current state) and checks that only a
/// retry ever leaves a terminal state.
fn walk_never_leaves_terminal<S: StateMachine>(start: usize, choices: &[usize]) {
    let all = S::all();
    let mut state = all[start % all.len()];
    for &c in choices {
        let moves: Vec<S> = all
            .iter()
            .copied()
            .filter(|&to| S::can_transition(state, to))
            .collect();
        if moves.is_empty() {
            assert!(state.is_terminal(), "{state:?} is stuck but not terminal");
            return;
        }
        let next = moves[c % moves.len()];
        if state.is_terminal() {
            assert!(
                S::is_retry(state, next),
                "{state:?} -> {next:?} leaves a terminal state"
            );
        }
        state = next;
    }
}

fn terminal_reachable_from_all<S: StateMachine>() {
    for &s in S::all() {
        assert!(
            reachable(s, false).into_iter().any(|r| r.is_terminal()),
            "no terminal state reachable from {s:?}"
        );
    }
}

proptest! {
    #[test]
    fn run_walks_never_leave_terminal(start in 0usize..16, choices in prop::collection::vec(0usize..16, 0..40)) {
        walk_never_leaves_terminal::<RunState>(start, &choices);
    }

    #[test]
    fn job_walks_never_leave_terminal(start in 0usize..16, choices in prop::collection::vec(0usize..16, 0..40)) {
        walk_never_leaves_terminal::<JobState>(start, &choices);
    }

    #[test]
    fn item_walks_never_leave_terminal(start in 0usize..16, choices in prop::collection::vec(0usize..16, 0..40)) {
        walk_never_leaves_terminal::<ItemState>(start, &choices);
    }

    /// Wherever a walk ends, a terminal state is still reachable from it
    /// without retries: no sequence of moves can strand a job or item.
    #[test]
    fn terminal_reachable_after_any_walk(start in 0usize..16, choices in prop::collection::vec(0usize..16, 0..40)) {
        let all = JobState::ALL;
        let mut state = all[start % all.len()];
        for c in choices {
            let moves: Vec<JobState> = all.iter().copied().filter(|&to| JobState::can_transition(state, to)).collect();
            if moves.is_empty() { break; }
            state = moves[c % moves.len()];
        }
        prop_assert!(reachable(state, false).into_iter().any(|s| s.is_terminal()));
    }
}

#[test]
fn every_non_terminal_state_can_end() {
    terminal_reachable_from_all::<RunState>();
    terminal_reachable_from_all::<JobState>();
    terminal_reachable_from_all::<ItemState>();
}

#[test]
fn terminal_states_have_no_moves_but_retry() {
    fn check<S: StateMachine>() {
        for &from in S::all().iter().filter(|s| s.is_terminal()) {
            for &to in S::all() {
                if S::can_transition(from, to) {
                    assert!(S::is_retry(from, to), "{from:?} -> {to:?}");
                }
            }
        }
    }
    check::<RunState>();
    check::<JobState>();
    check::<ItemState>();
}

#[test]
fn retry_and_clear_reopen_ended_work_and_nothing_else_leaves_terminal() {
    assert!(ItemState::can_transition(
        ItemState::Failed,
        ItemState::Pending
    ));
    assert!(JobState::can_transition(
        JobState::Failed,
        JobState::Pending
    ));
    assert!(JobState::can_transition(
        JobState::UpstreamFailed,
        JobState::Pending
    ));
    // Clear re-runs succeeded work in the same run.
    assert!(ItemState::can_transition(
        ItemState::Succeeded,
        ItemState::Pending
    ));
    assert!(JobState::can_transition(
        JobState::Succeeded,
        JobState::Pending
    ));
    assert!(RunState::can_transition(
        RunState::Succeeded,
        RunState::Running
    ));
    assert!(RunState::is_retry(RunState::Failed, RunState::Running));
    // Mark-succeeded settles a failed job.
    assert!(JobState::is_retry(JobState::Failed, JobState::Succeeded));
    assert!(!JobState::can_transition(
        JobState::Cancelled,
        JobState::Succeeded
    ));
    // Only to pending / running: an ended run never jumps to another end.
    for &to in RunState::ALL {
        if to != RunState::Running {
            assert!(!RunState::can_transition(RunState::Failed, to), "{to:?}");
        }
    }
    assert!(!JobState::can_transition(
        JobState::Succeeded,
        JobState::Running
    ));
    assert!(!ItemState::can_transition(
        ItemState::Cancelled,
        ItemState::Succeeded
    ));
}

#[test]
fn failover_moves_a_running_item_back_to_pending() {
    assert!(ItemState::can_transition(
        ItemState::Running,
        ItemState::Pending
    ));
    assert!(!ItemState::is_retry(ItemState::Running, ItemState::Pending));
}

#[test]
fn self_transitions_are_not_moves() {
    for &s in JobState::ALL {
        assert!(!JobState::can_transition(s, s));
    }
    for &s in ItemState::ALL {
        assert!(!ItemState::can_transition(s, s));
    }
    for &s in RunState::ALL {
        assert!(!RunState::can_transition(s, s));
    }
}

/// `as_str`, serde and `FromStr` agree for every value of every enum.
fn round_trips<T>(all: &[T])
where
    T: Copy
        + fmt::Debug
        + PartialEq
        + Serialize
        + serde::de::DeserializeOwned
        + FromStr<Err = ParseStateError>
        + fmt::Display,
{
    for &v in all {
        let text = v.to_string();
        assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{text}\""));
        assert_eq!(text.parse::<T>().unwrap(), v);
        assert_eq!(
            serde_json::from_str::<T>(&format!("\"{text}\"")).unwrap(),
            v
        );
    }
}

#[test]
fn names_round_trip_through_str_and_serde() {
    round_trips(RunState::ALL);
    round_trips(JobState::ALL);
    round_trips(ItemState::ALL);
    round_trips(AttemptOutcome::ALL);
    round_trips(TriggerSource::ALL);
    round_trips(AlertState::ALL);
    round_trips(AlertSeverity::ALL);
    round_trips(AlertRule::ALL);
    assert_eq!(JobState::UpstreamFailed.as_str(), "upstream_failed");
    assert_eq!(TriggerSource::CatchUp.as_str(), "catch_up");
}

#[test]
fn unknown_names_get_an_error_listing_the_valid_ones() {
    let err = "done".parse::<RunState>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown run state `done` (expected one of: pending, running, succeeded, failed, cancelled)"
    );
    assert!(
        "Running".parse::<ItemState>().is_err(),
        "names are case-sensitive"
    );
}

#[test]
fn only_handler_failures_spend_a_retry() {
    let spending: Vec<_> = AttemptOutcome::ALL
        .iter()
        .filter(|o| o.is_item_failure())
        .collect();
    assert_eq!(
        spending,
        [&AttemptOutcome::Failed, &AttemptOutcome::TimedOut]
    );
}
