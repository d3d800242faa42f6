//! The assignment keys present in etcd, read once per pass.
//!
//! Assignments live under each executor (`{p}owners/{executor}/{run}/{job}`)
//! so that an executor's watch sees only its own; the leader, which needs
//! them by (run, job), lists `{p}owners/` once at the start of a pass. That
//! read comes before any result batch of the pass is read, which is what
//! failover relies on: an assignment found gone vanished with its lease, and
//! every batch its executor wrote while the lease lived is visible to the
//! later read of results.

use super::{Leader, LeaderError};
use nightshift_core::ids::{ExecutorId, JobName, RunId};
use nightshift_core::keyspace;
use std::collections::BTreeMap;

/// Assignment keys by (run, job): executor → the key's mod revision (the
/// owner's fencing token).
#[derive(Debug, Default)]
pub(super) struct Owned(
    BTreeMap<(RunId, JobName), BTreeMap<ExecutorId, i64>>,
    /// The etcd revision the listing was read at: the generation of job
    /// starts this pass (above every assignment staged before it).
    pub(super) i64,
);

impl Owned {
    /// The executors holding an assignment key of `(run, job)`, with its
    /// mod revision.
    pub(super) fn of(&self, run: &RunId, job: &JobName) -> BTreeMap<ExecutorId, i64> {
        self.0
            .get(&(run.clone(), job.clone()))
            .cloned()
            .unwrap_or_default()
    }

    /// Every assignment key of `run`.
    pub(super) fn keys_of_run(&self, prefix: &str, run: &RunId) -> Vec<String> {
        self.0
            .range((run.clone(), JobName::new(""))..)
            .take_while(|((r, _), _)| r == run)
            .flat_map(|((r, j), execs)| {
                execs
                    .keys()
                    .map(move |e| keyspace::assign_key(prefix, r, j, e))
            })
            .collect()
    }
}

impl Leader {
    /// Lists every assignment key.
    pub(super) async fn read_owned(&self) -> Result<Owned, LeaderError> {
        let prefix = &self.config.prefix;
        // Names and mod revisions only: every pass lists every executor's
        // assignments, whose values (item sets) it does not need here.
        let (kvs, revision) = self
            .coord
            .get_prefix_keys(&keyspace::owners_prefix(prefix))
            .await?;
        let mut owned = Owned(BTreeMap::new(), revision);
        for kv in kvs {
            if let Some((run, job, exec)) = keyspace::parse_assign_key(prefix, &kv.key) {
                owned
                    .0
                    .entry((run, job))
                    .or_default()
                    .insert(exec, kv.mod_revision);
            }
        }
        Ok(owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_run_are_only_that_runs() {
        let mut owned = Owned::default();
        for (run, job, exec) in [
            ("r1", "a", "e1"),
            ("r1", "b", "e2"),
            ("r10", "a", "e1"),
            ("r0", "a", "e3"),
        ] {
            owned
                .0
                .entry((RunId::new(run), JobName::new(job)))
                .or_default()
                .insert(ExecutorId::new(exec), 7);
        }
        assert_eq!(
            owned.keys_of_run("/n/", &RunId::new("r1")),
            vec![
                "/n/owners/e1/r1/a".to_owned(),
                "/n/owners/e2/r1/b".to_owned()
            ]
        );
        assert_eq!(
            owned.of(&RunId::new("r1"), &JobName::new("b")),
            BTreeMap::from([(ExecutorId::new("e2"), 7)])
        );
        assert!(owned.of(&RunId::new("r2"), &JobName::new("a")).is_empty());
    }
}
