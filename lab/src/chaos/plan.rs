//! The fault plan: which fault happens when, decided up front from a seed so
//! a failing chaos run can be replayed with `--seed`.
//!
//! Faults run one after another (each is injected, held, healed, then a
//! short gap), cycling through every kind in a shuffled order so that even a
//! 30-second run injects each kind once (40 seconds with a 3-member etcd,
//! which has four more kinds).

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
    /// The etcd links of the leading scheduler (or of every Nightshift
    /// process) forward requests but swallow every response for the hold,
    /// then reset their connections: whatever was in flight committed or
    /// not, and the client only saw an error (an ambiguous commit).
    SwallowResponses,
    /// SIGKILL an etcd member that is not the raft leader; start it again
    /// on its data after the hold (3-member etcd only).
    KillEtcdFollower,
    /// SIGKILL the etcd member that is the raft leader; start it again on
    /// its data after the hold (3-member etcd only).
    KillEtcdLeader,
    /// Cut one etcd member's proxy: no Nightshift process reaches it for
    /// the hold, while it still talks to its peers (3-member etcd only).
    PartitionEtcdMember,
    /// SIGKILL an etcd member and start it again on its data at once
    /// (3-member etcd only).
    RestartEtcdMember,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 12] = [
        FaultKind::KillExecutor,
        FaultKind::StopExecutor,
        FaultKind::KillLeader,
        FaultKind::RestartEtcd,
        FaultKind::CutDatabase,
        FaultKind::DropDbConnections,
        FaultKind::PartitionExecutor,
        FaultKind::SwallowResponses,
        FaultKind::KillEtcdFollower,
        FaultKind::KillEtcdLeader,
        FaultKind::PartitionEtcdMember,
        FaultKind::RestartEtcdMember,
    ];

    /// The kinds a run on an etcd of `members` members injects: a single
    /// etcd is restarted whole (`restart-etcd`); a cluster loses one
    /// member at a time instead (the four member kinds).
    pub fn for_members(members: usize) -> Vec<FaultKind> {
        FaultKind::ALL
            .into_iter()
            .filter(|k| {
                if members > 1 {
                    *k != FaultKind::RestartEtcd
                } else {
                    !k.targets_etcd_member()
                }
            })
            .collect()
    }

    /// Whether the fault takes one member of a multi-member etcd away.
    pub fn targets_etcd_member(self) -> bool {
        matches!(
            self,
            FaultKind::KillEtcdFollower
                | FaultKind::KillEtcdLeader
                | FaultKind::PartitionEtcdMember
                | FaultKind::RestartEtcdMember
        )
    }

    /// Whether the fault is chosen among the members by the plan (the
    /// leader and a follower are found when the fault is injected).
    fn planned_member(self) -> bool {
        matches!(
            self,
            FaultKind::KillEtcdFollower
                | FaultKind::PartitionEtcdMember
                | FaultKind::RestartEtcdMember
        )
    }

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
            FaultKind::SwallowResponses => "swallow-responses",
            FaultKind::KillEtcdFollower => "kill-etcd-follower",
            FaultKind::KillEtcdLeader => "kill-etcd-leader",
            FaultKind::PartitionEtcdMember => "partition-etcd-member",
            FaultKind::RestartEtcdMember => "restart-etcd-member",
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
            // Half a TTL: the leader keeps its lease through it, so its
            // commits go unanswered instead of it simply stepping down.
            FaultKind::SwallowResponses => lease_ttl / 2,
            FaultKind::KillEtcdFollower
            | FaultKind::KillEtcdLeader
            | FaultKind::PartitionEtcdMember => Duration::from_millis(2500),
            FaultKind::RestartEtcdMember => Duration::from_millis(300),
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
    /// Which executor (index), for executor faults. A SIGSTOP or a
    /// partition prefers an executor running a stubborn item when the
    /// fault is injected (see `chaos::inject`).
    pub executor: Option<usize>,
    /// Which etcd member (index), for a member partition or restart, or
    /// which of the followers (index among them, modulo their number) for
    /// a follower kill.
    pub member: Option<usize>,
    /// For `swallow-responses`: every process's etcd links, rather than
    /// only the leading scheduler's.
    pub everyone: bool,
    /// How long until it is healed.
    pub hold: Duration,
}

/// What the plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Executor processes.
    pub executors: usize,
    /// etcd members.
    pub members: usize,
    /// Lease TTL of the Nightshift processes.
    pub lease_ttl: Duration,
}

/// The faults of a run of `duration`: each starts after the previous one is
/// healed plus a gap of 0.4–1.2 s, and is healed before `duration` ends.
pub fn plan(seed: u64, duration: Duration, target: Target) -> Vec<Step> {
    let Target {
        executors,
        members,
        lease_ttl,
    } = target;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let mut at = Duration::from_millis(rng.gen_range(400..1200));
    let mut cycle: Vec<FaultKind> = Vec::new();
    loop {
        if cycle.is_empty() {
            cycle = FaultKind::for_members(members);
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
        let member = kind
            .planned_member()
            .then(|| rng.gen_range(0..members.max(1)));
        let everyone = kind == FaultKind::SwallowResponses && rng.gen_bool(1.0 / 3.0);
        steps.push(Step {
            at,
            kind,
            executor,
            member,
            everyone,
            hold,
        });
        at += hold + Duration::from_millis(rng.gen_range(400..1200));
    }
}

/// Round `round` of faults of a run whose fault phase is extended past its
/// `duration` (`nightshift chaos --min-runs`): a plan of its own
/// (`round` 0 is [`plan`] itself; later rounds draw from a seed derived
/// from `seed`, so a replay with the same seed injects the same faults),
/// shifted to start `round × duration` after the fault phase began, so
/// each round injects every kind again and ends within its own `duration`.
pub fn round(seed: u64, round: u32, duration: Duration, target: Target) -> Vec<Step> {
    let offset = duration * round;
    let seed = seed.wrapping_add(u64::from(round).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    plan(seed, duration, target)
        .into_iter()
        .map(|step| Step {
            at: step.at + offset,
            ..step
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const TTL: Duration = Duration::from_secs(2);

    fn target(executors: usize, members: usize) -> Target {
        Target {
            executors,
            members,
            lease_ttl: TTL,
        }
    }

    #[test]
    fn thirty_seconds_inject_every_kind_of_a_single_etcd() {
        let kinds = FaultKind::for_members(1);
        assert_eq!(kinds.len(), 8);
        assert!(kinds.contains(&FaultKind::RestartEtcd));
        assert!(kinds.contains(&FaultKind::SwallowResponses));
        for seed in 0..50 {
            let steps = plan(seed, Duration::from_secs(30), target(4, 1));
            let injected: BTreeSet<FaultKind> = steps.iter().map(|s| s.kind).collect();
            assert_eq!(injected.len(), kinds.len(), "seed {seed}: {steps:?}");
        }
    }

    #[test]
    fn forty_seconds_inject_every_kind_of_a_three_member_etcd() {
        let kinds = FaultKind::for_members(3);
        assert_eq!(kinds.len(), 11);
        assert!(!kinds.contains(&FaultKind::RestartEtcd));
        for seed in 0..50 {
            let steps = plan(seed, Duration::from_secs(40), target(4, 3));
            let injected: BTreeSet<FaultKind> = steps.iter().map(|s| s.kind).collect();
            assert_eq!(injected.len(), kinds.len(), "seed {seed}: {steps:?}");
        }
    }

    #[test]
    fn a_later_round_is_a_whole_plan_of_its_own_after_the_previous_rounds() {
        let d = Duration::from_secs(30);
        assert_eq!(round(7, 0, d, target(4, 1)), plan(7, d, target(4, 1)));
        let kinds = FaultKind::for_members(1);
        let first = round(7, 1, d, target(4, 1));
        assert_eq!(first, round(7, 1, d, target(4, 1)), "replayable");
        for r in 1..4u32 {
            let steps = round(7, r, d, target(4, 1));
            let injected: BTreeSet<FaultKind> = steps.iter().map(|s| s.kind).collect();
            assert_eq!(injected.len(), kinds.len(), "round {r}: {steps:?}");
            assert!(steps
                .iter()
                .all(|s| s.at >= d * r && s.at + s.hold <= d * (r + 1)));
            let unshifted: Vec<Duration> = steps.iter().map(|s| s.at - d * r).collect();
            let round0: Vec<Duration> = plan(7, d, target(4, 1)).iter().map(|s| s.at).collect();
            assert_ne!(unshifted, round0, "round {r} repeats round 0");
        }
    }

    #[test]
    fn every_kind_has_a_distinct_name() {
        let names: BTreeSet<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), FaultKind::ALL.len());
    }

    #[test]
    fn same_seed_same_plan() {
        let a = plan(7, Duration::from_secs(120), target(4, 3));
        assert_eq!(a, plan(7, Duration::from_secs(120), target(4, 3)));
        assert_ne!(a, plan(8, Duration::from_secs(120), target(4, 3)));
    }

    proptest! {
        #[test]
        fn faults_never_overlap_and_end_in_time(
            seed: u64,
            secs in 0u64..600,
            executors in 0usize..6,
            members in prop::sample::select(vec![1usize, 3, 5]),
        ) {
            let duration = Duration::from_secs(secs);
            let steps = plan(seed, duration, target(executors, members));
            let mut free_from = Duration::ZERO;
            for s in &steps {
                prop_assert!(s.at >= free_from, "{s:?} starts before the previous fault is healed");
                prop_assert!(s.at + s.hold <= duration);
                prop_assert_eq!(s.executor.is_some(), s.kind.targets_executor());
                prop_assert!(s.executor.is_none_or(|e| e < executors));
                prop_assert!(FaultKind::for_members(members).contains(&s.kind));
                prop_assert!(s.member.is_none_or(|m| m < members));
                prop_assert!(!s.everyone || s.kind == FaultKind::SwallowResponses);
                free_from = s.at + s.hold;
            }
        }
    }
}
