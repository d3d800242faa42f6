//! Keys only the scheduler reads and writes: the leader election, each live
//! run's state, the last assignment of each job (the input of the next
//! reshard) and cron bookkeeping. Executors never read or watch any of
//! them; the CLI and console read some. Their records are defined in the
//! scheduler crate (`nightshift_scheduler::record`); the keys are here so
//! that this module stays the one definition of the keyspace.

use super::validate_segment;
use crate::ids::{DagName, ExecutorId, JobName, RunId};

/// `{p}leader/`: the election's candidates (lowest create revision leads).
pub fn leader_prefix(prefix: &str) -> String {
    format!("{prefix}leader/")
}

/// `{p}runs/{run}/state`: the head of the leader's record of one live run
/// (its run-level fields). The rest of the record is stored under
/// [`job_state_key`], [`job_owner_key`] and [`job_items_key`], so that no
/// value grows with the items or executors of the run; every txn of the
/// run compares this key's mod revision and every commit rewrites it.
pub fn run_state_key(prefix: &str, run: &RunId) -> String {
    format!("{prefix}runs/{run}/state")
}

/// `{p}runs/{run}/jobs/{job}/state`: one job of a live run, without its
/// item sets, per-item detail and owners.
pub fn job_state_key(prefix: &str, run: &RunId, job: &JobName) -> String {
    format!("{prefix}runs/{run}/jobs/{job}/state")
}

/// `{p}runs/{run}/jobs/{job}/owners/{executor}`: one executor's share of a
/// running job, as the leader records it (not the executor's assignment,
/// which lives under `{p}owners/`).
pub fn job_owner_key(prefix: &str, run: &RunId, job: &JobName, executor: &ExecutorId) -> String {
    format!("{prefix}runs/{run}/jobs/{job}/owners/{executor}")
}

/// `{p}runs/{run}/jobs/{job}/items/{kind}` (an item set of the job:
/// `succeeded`, `failed`, ...) or `{p}runs/{run}/jobs/{job}/items/{kind}/{value}`
/// (the items holding one value of a per-item map: `attempts/2`,
/// `moved_from/{executor}`, ...). One item set per value, so each is at
/// most a bitmap of the job's items.
pub fn job_items_key(
    prefix: &str,
    run: &RunId,
    job: &JobName,
    kind: &str,
    value: Option<&str>,
) -> String {
    match value {
        Some(value) => format!("{prefix}runs/{run}/jobs/{job}/items/{kind}/{value}"),
        None => format!("{prefix}runs/{run}/jobs/{job}/items/{kind}"),
    }
}

/// A key of a live run's record, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunValueKey {
    /// [`run_state_key`]
    Head(RunId),
    /// [`run_wal_key`]: the marker of a commit too large for one txn.
    Wal(RunId),
    /// [`run_wal_chunk_key`]: one chunk of such a commit's ops (tag, n).
    WalChunk(RunId, i64, u32),
    /// [`job_state_key`]
    Job(RunId, JobName),
    /// [`job_owner_key`]
    Owner(RunId, JobName, ExecutorId),
    /// [`job_items_key`]: kind, and the map's value if any.
    Items(RunId, JobName, String, Option<String>),
}

impl RunValueKey {
    /// The run the key belongs to.
    pub fn run(&self) -> &RunId {
        match self {
            RunValueKey::Head(run)
            | RunValueKey::Wal(run)
            | RunValueKey::WalChunk(run, _, _)
            | RunValueKey::Job(run, _)
            | RunValueKey::Owner(run, _, _)
            | RunValueKey::Items(run, _, _, _) => run,
        }
    }
}

/// Splits a key of a run's record; `None` for any other key (job specs,
/// progress keys) and for keys whose segments are not valid.
pub fn parse_run_value_key(prefix: &str, key: &str) -> Option<RunValueKey> {
    let rest = key.strip_prefix(prefix)?.strip_prefix("runs/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    if !parts.iter().all(|s| validate_segment("segment", s).is_ok()) {
        return None;
    }
    let ids = |r: &str, j: &str| (RunId::new(r), JobName::new(j));
    match parts.as_slice() {
        [r, "state"] => Some(RunValueKey::Head(RunId::new(*r))),
        [r, "wal"] => Some(RunValueKey::Wal(RunId::new(*r))),
        [r, "wal", tag, n] => Some(RunValueKey::WalChunk(
            RunId::new(*r),
            tag.parse().ok()?,
            n.parse().ok()?,
        )),
        [r, "jobs", j, "state"] => Some(RunValueKey::Job(RunId::new(*r), JobName::new(*j))),
        [r, "jobs", j, "owners", e] => Some(RunValueKey::Owner(
            RunId::new(*r),
            JobName::new(*j),
            ExecutorId::new(*e),
        )),
        [r, "jobs", j, "items", kind] => {
            let (run, job) = ids(r, j);
            Some(RunValueKey::Items(run, job, (*kind).to_owned(), None))
        }
        [r, "jobs", j, "items", kind, value] => {
            let (run, job) = ids(r, j);
            Some(RunValueKey::Items(
                run,
                job,
                (*kind).to_owned(),
                Some((*value).to_owned()),
            ))
        }
        _ => None,
    }
}

/// `{p}runs/{run}/wal`: written in the txn that commits a run's head
/// when the commit's other values did not fit in it; names the chunks
/// (under [`run_wal_chunk_key`]) holding those values, written before it.
/// A reader applies them over what it read until the leader has written
/// them in place and deleted the marker, so a commit of any size is seen
/// whole or not at all.
pub fn run_wal_key(prefix: &str, run: &RunId) -> String {
    format!("{prefix}runs/{run}/wal")
}

/// `{p}runs/{run}/wal/{tag}/{n}`: chunk `n` of the commit tagged `tag`.
pub fn run_wal_chunk_key(prefix: &str, run: &RunId, tag: i64, n: u32) -> String {
    format!("{prefix}runs/{run}/wal/{tag}/{n}")
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

/// `{p}assignments/{dag}/{job}/`: the chunks of the job's last assignment.
pub fn last_assignment_chunks_prefix(prefix: &str, dag: &DagName, job: &JobName) -> String {
    format!("{prefix}assignments/{dag}/{job}/")
}

/// `{p}assignments/{dag}/{job}/{chunk}`: part `chunk` of the job's last
/// assignment (sticky jobs only; see the scheduler's `LastAssignment`).
pub fn last_assignment_chunk_key(prefix: &str, dag: &DagName, job: &JobName, chunk: u32) -> String {
    format!("{prefix}assignments/{dag}/{job}/{chunk}")
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

    #[test]
    fn run_value_keys_parse_back_and_are_no_job_keys() {
        let (run, job, exec) = (RunId::new("r1"), JobName::new("a"), ExecutorId::new("e-1"));
        let cases = [
            (run_state_key("/n/", &run), RunValueKey::Head(run.clone())),
            (run_wal_key("/n/", &run), RunValueKey::Wal(run.clone())),
            (
                run_wal_chunk_key("/n/", &run, 1234, 2),
                RunValueKey::WalChunk(run.clone(), 1234, 2),
            ),
            (
                job_state_key("/n/", &run, &job),
                RunValueKey::Job(run.clone(), job.clone()),
            ),
            (
                job_owner_key("/n/", &run, &job, &exec),
                RunValueKey::Owner(run.clone(), job.clone(), exec.clone()),
            ),
            (
                job_items_key("/n/", &run, &job, "succeeded", None),
                RunValueKey::Items(run.clone(), job.clone(), "succeeded".into(), None),
            ),
            (
                job_items_key("/n/", &run, &job, "attempts", Some("2")),
                RunValueKey::Items(
                    run.clone(),
                    job.clone(),
                    "attempts".into(),
                    Some("2".into()),
                ),
            ),
        ];
        for (key, parsed) in cases {
            assert!(
                key.starts_with(&crate::keyspace::run_prefix("/n/", &run)),
                "{key}"
            );
            assert_eq!(parse_run_value_key("/n/", &key), Some(parsed), "{key}");
            assert_eq!(parse_job_key("/n/", &key), None, "{key}");
        }
        assert_eq!(
            parse_run_value_key("/n/", &spec_key("/n/", &run, &job)),
            None
        );
        assert_eq!(
            parse_run_value_key(
                "/n/",
                &crate::keyspace::progress_key("/n/", &run, &job, &exec)
            ),
            None
        );
        assert_eq!(
            parse_run_state_key("/n/", &job_state_key("/n/", &run, &job)),
            None
        );
    }
}
