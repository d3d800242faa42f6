//! Which operator actions can apply to a run and its jobs now, and if not,
//! why — pure rules mirroring what the leader accepts (see the command
//! handling in `scheduler::leader::intake`). The pages disable a button
//! whose action would be refused and show the reason, rather than letting
//! an operator confirm something that then fails.
//!
//! `None` means the action can apply; `Some(reason)` is shown to the
//! operator as is.

use nightshift_core::state::{JobState, RunState};

/// Why "Cancel run" cannot apply.
pub fn cancel_run(run: RunState) -> Option<String> {
    run.is_terminal()
        .then(|| format!("the run is already {}", run.as_str()))
}

fn retryable(job: JobState) -> bool {
    matches!(job, JobState::Failed | JobState::UpstreamFailed)
}

/// Why "Retry failed items" (every failed job) cannot apply.
pub fn retry_run(run: RunState, jobs: &[JobState]) -> Option<String> {
    if jobs.iter().any(|j| retryable(*j)) {
        return None;
    }
    Some(if run.is_terminal() {
        format!("the run {} with no failed job", run.as_str())
    } else {
        "no job has failed".to_owned()
    })
}

/// Why "Retry" of one job cannot apply.
pub fn retry_job(job: JobState) -> Option<String> {
    (!retryable(job)).then(|| format!("the job is {}, not failed", job.as_str()))
}

/// Why "Skip" of one job cannot apply.
pub fn skip_job(run: RunState, job: JobState) -> Option<String> {
    if run.is_terminal() {
        return Some(format!("the run is already {}", run.as_str()));
    }
    job.is_terminal()
        .then(|| format!("the job is already {}", job.as_str()))
}

/// Why "Mark succeeded" of an item of a job cannot apply (the item's own
/// state is checked by the page: a succeeded item needs no marking).
pub fn mark_item_succeeded(run: RunState, job: JobState) -> Option<String> {
    if run.is_terminal() {
        return Some(format!("the run is already {}", run.as_str()));
    }
    job.is_terminal()
        .then(|| format!("the job is already {}", job.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_run_cannot_be_cancelled_skipped_or_marked() {
        for run in [RunState::Succeeded, RunState::Failed, RunState::Cancelled] {
            let why = format!("the run is already {}", run.as_str());
            assert_eq!(cancel_run(run).as_deref(), Some(why.as_str()));
            assert_eq!(
                skip_job(run, JobState::Running).as_deref(),
                Some(why.as_str())
            );
            assert_eq!(
                mark_item_succeeded(run, JobState::Running).as_deref(),
                Some(why.as_str())
            );
        }
        assert_eq!(cancel_run(RunState::Running), None);
        assert_eq!(cancel_run(RunState::Pending), None);
    }

    #[test]
    fn a_live_run_allows_what_its_jobs_allow() {
        let run = RunState::Running;
        assert_eq!(skip_job(run, JobState::Running), None);
        assert_eq!(skip_job(run, JobState::Pending), None);
        assert_eq!(
            skip_job(run, JobState::Succeeded).as_deref(),
            Some("the job is already succeeded")
        );
        assert_eq!(mark_item_succeeded(run, JobState::Running), None);
        assert!(mark_item_succeeded(run, JobState::Failed).is_some());
    }

    #[test]
    fn retry_needs_a_failed_job() {
        use JobState::*;
        assert_eq!(retry_run(RunState::Failed, &[Succeeded, Failed]), None);
        assert_eq!(retry_run(RunState::Running, &[UpstreamFailed]), None);
        assert_eq!(
            retry_run(RunState::Succeeded, &[Succeeded]).as_deref(),
            Some("the run succeeded with no failed job")
        );
        assert_eq!(
            retry_run(RunState::Running, &[Running]).as_deref(),
            Some("no job has failed")
        );
        assert_eq!(retry_job(Failed), None);
        assert_eq!(
            retry_job(Succeeded).as_deref(),
            Some("the job is succeeded, not failed")
        );
    }
}
