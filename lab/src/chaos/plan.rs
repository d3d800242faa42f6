//! The fault plan: which fault happens when, decided up front from a seed so
//! a failing chaos run can be replayed with `--seed`.
//!
//! Faults run one after another (each is injected, held, healed, then a
//! short gap), cycling through every kind in a shuffled order so that even a
//! 30-second run injects each kind once.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::fmt;
use std::time::Duration;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL an executor; start it again after the hold.
    KillExecutor,
    /// SIGSTOP an executor for longer than its lease, then SIGCONT.
    StopExecutor,
    /// SIGKILL the leading scheduler; start it again after the hold.
    KillLeader,
    /// SIGKILL etcd; start it again (same data) after the hold.
    RestartEtcd,
    /// Cut every Nightshift connection to PostgreSQL and refuse new ones for
    /// the hold, as a database restart looks to its clients.
    CutDatabase,
    /// Terminate every server-side connection of the database
    /// (`pg_terminate_backend`): pools must reconnect.
    DropDbConnections,
    /// Cut one executor off etcd (its proxy) for longer than its lease.
    PartitionExecutor,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::KillExecutor,
        FaultKind::StopExecutor,
        FaultKind::KillLeader,
        FaultKind::RestartEtcd,
        FaultKind::CutDatabase,
        FaultKind::DropDbConnections,
        FaultKind::PartitionExecutor,
    ];

    /// Name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::KillExecutor => "kill-executor",
            FaultKind::StopExecutor => "stop-executor",
            FaultKind::KillLeader => "kill-leader",
            FaultKind::RestartEtcd => "restart-etcd",
            FaultKind::CutDatabase => "cut-database",
            FaultKind::DropDbConnections => "drop-db-connections",
            FaultKind::PartitionExecutor => "partition-executor",
        }
    }

    /// Whether the fault targets one executor.
    pub fn targets_executor(self) -> bool {
        matches!(
            self,
            FaultKind::KillExecutor | FaultKind::StopExecutor | FaultKind::PartitionExecutor
        )
    }

    /// How long the fault lasts before it is healed. Faults meant to outlive
    /// a lease hold for twice the TTL.
    fn hold(self, lease_ttl: Duration) -> Duration {
        match self {
            FaultKind::KillExecutor => Duration::from_millis(1500),
            FaultKind::StopExecutor | FaultKind::PartitionExecutor => lease_ttl * 2,
            FaultKind::KillLeader => Duration::from_millis(1000),
            FaultKind::RestartEtcd => Duration::from_millis(1500),
            FaultKind::CutDatabase => Duration::from_secs(3),
            FaultKind::DropDbConnections => Duration::ZERO,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One planned fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Offset from the start of the fault phase.
    pub at: Duration,
    /// What.
    pub kind: FaultKind,
    /// Which executor (index), for executor faults.
    pub executor: Option<usize>,
    /// How long until it is healed.
    pub hold: Duration,
}

/// The faults of a run of `duration`: each starts after the previous one is
/// healed plus a gap of 0.5–1.5 s, and is healed before `duration` ends.
pub fn plan(seed: u64, duration: Duration, executors: usize, lease_ttl: Duration) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let mut at = Duration::from_millis(rng.gen_range(500..1500));
    let mut cycle: Vec<FaultKind> = Vec::new();
    loop {
        if cycle.is_empty() {
            cycle = FaultKind::ALL.to_vec();
            cycle.shuffle(&mut rng);
        }
        let kind = cycle[cycle.len() - 1];
        if kind.targets_executor() && executors == 0 {
            cycle.pop();
            continue;
        }
        let hold = kind.hold(lease_ttl);
        if at + hold > duration {
            // The next kind in the cycle may be shorter and still fit.
            if cycle.iter().all(|k| at + k.hold(lease_ttl) > duration) {
                return steps;
            }
            cycle.rotate_right(1);
            continue;
        }
        cycle.pop();
        let executor = kind.targets_executor().then(|| rng.gen_range(0..executors));
        steps.push(Step {
            at,
            kind,
            executor,
            hold,
        });
        at += hold + Duration::from_millis(rng.gen_range(500..1500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const TTL: Duration = Duration::from_secs(2);

    #[test]
    fn thirty_seconds_inject_every_kind() {
        for seed in 0..50 {
            let steps = plan(seed, Duration::from_secs(30), 4, TTL);
            let kinds: BTreeSet<FaultKind> = steps.iter().map(|s| s.kind).collect();
            assert_eq!(kinds.len(), FaultKind::ALL.len(), "seed {seed}: {steps:?}");
        }
    }

    #[test]
    fn same_seed_same_plan() {
        let a = plan(7, Duration::from_secs(120), 4, TTL);
        assert_eq!(a, plan(7, Duration::from_secs(120), 4, TTL));
        assert_ne!(a, plan(8, Duration::from_secs(120), 4, TTL));
    }

    proptest! {
        #[test]
        fn faults_never_overlap_and_end_in_time(seed: u64, secs in 0u64..600, executors in 0usize..6) {
            let duration = Duration::from_secs(secs);
            let steps = plan(seed, duration, executors, TTL);
            let mut free_from = Duration::ZERO;
            for s in &steps {
                prop_assert!(s.at >= free_from, "{s:?} starts before the previous fault is healed");
                prop_assert!(s.at + s.hold <= duration);
                prop_assert_eq!(s.executor.is_some(), s.kind.targets_executor());
                prop_assert!(s.executor.is_none_or(|e| e < executors));
                free_from = s.at + s.hold;
            }
        }
    }
}
