//! Keys only the scheduler reads and writes: the leader election, each live
//! run's state, the last assignment of each job (the input of the next
//! reshard) and cron bookkeeping. Executors never read or watch any of
//! them; the CLI and console read some. Their records are defined in the
//! scheduler crate (`nightshift_scheduler::record`); the keys are here so
//! that this module stays the one definition of the keyspace.

use super::validate_segment;
use crate::ids::{DagName, JobName, RunId};

/// `{p}leader/`: the election's candidates (lowest create revision leads).
pub fn leader_prefix(prefix: &str) -> String {
    format!("{prefix}leader/")
}

/// `{p}runs/{run}/state`: the leader's record of one live run.
pub fn run_state_key(prefix: &str, run: &RunId) -> String {
    format!("{prefix}runs/{run}/state")
}

/// The run id of a `{p}runs/{run}/state` key.
pub fn parse_run_state_key(prefix: &str, key: &str) -> Option<RunId> {
    let rest = key.strip_prefix(prefix)?.strip_prefix("runs/")?;
    let run = rest.strip_suffix("/state")?;
    validate_segment("run id", run).ok()?;
    Some(RunId::new(run))
}

/// `{p}assignments/`
pub fn last_assignments_prefix(prefix: &str) -> String {
    format!("{prefix}assignments/")
}

/// `{p}assignments/{dag}/{job}`: the job's last assignment.
pub fn last_assignment_key(prefix: &str, dag: &DagName, job: &JobName) -> String {
    format!("{prefix}assignments/{dag}/{job}")
}

/// `{p}cron/`
pub fn cron_prefix(prefix: &str) -> String {
    format!("{prefix}cron/")
}

/// `{p}cron/{dag}`: the last schedule instant handled.
pub fn cron_key(prefix: &str, dag: &DagName) -> String {
    format!("{prefix}cron/{dag}")
}

/// The DAG name of a `{p}cron/{dag}` key.
pub fn parse_cron_key(prefix: &str, key: &str) -> Option<DagName> {
    let name = key.strip_prefix(prefix)?.strip_prefix("cron/")?;
    validate_segment("dag name", name).ok()?;
    Some(DagName::new(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::{parse_job_key, spec_key};

    #[test]
    fn leader_keys_parse_back_and_do_not_clash_with_job_keys() {
        let run = RunId::new("r1");
        let key = run_state_key("/n/", &run);
        assert_eq!(parse_run_state_key("/n/", &key), Some(run.clone()));
        assert_eq!(parse_job_key("/n/", &key), None);
        let spec = spec_key("/n/", &run, &JobName::new("a"));
        assert_eq!(parse_run_state_key("/n/", &spec), None);
        let dag = DagName::new("daily");
        assert_eq!(
            parse_cron_key("/n/", &cron_key("/n/", &dag)),
            Some(dag.clone())
        );
        assert_eq!(parse_cron_key("/n/", "/n/cron/a/b"), None);
        assert!(last_assignment_key("/n/", &dag, &JobName::new("a"))
            .starts_with(&last_assignments_prefix("/n/")));
        assert_eq!(leader_prefix("/n/"), "/n/leader/");
    }
}
