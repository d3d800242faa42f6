//! A pure size model of the values the leader writes for one big job: the
//! real records, built with the real sharding, failover and retry rules and
//! encoded with the real encoder, for a job of 1,000,000 items over 10,000
//! executors with 10 % of the items moved (10 % of the executors lost) and
//! 10 % retried.
//!
//! etcd refuses a request over 1.5 MiB (its default), so a value that grows
//! with the items moved or retried, or with the executors, can stop a run
//! for good. The model says, per value kind and sharding strategy, how large
//! the largest value is; its test prints the table and holds the bounded
//! kinds under [`BOUND`].
//!
//! Two failure patterns: *clustered* (the retried items are the items of
//! 10 % of the executors — a bad host, a dependency gone for a while: what
//! fails together was dispatched together) and *scattered* (every tenth
//! item: failures independent of each other and of the layout, the worst
//! case for item ranges).

use crate::failover::{fail_over, Receiver};
use crate::record::{JobRecord, LastAssignment, Owner, RunRecord};
use chrono::NaiveDate;
use nightshift_core::dag::{parse_dag, CalendarSet, DagSpec, Strategy};
use nightshift_core::ids::{ExecutorId, JobName, RunId};
use nightshift_core::keyspace::{self, AssignmentRecord, DagVersionRecord, ItemSet};
use nightshift_core::sharding::{assign, ExecutorSlot};
use nightshift_core::state::{JobState, RunState, TriggerSource};
use std::collections::BTreeMap;
use std::path::Path;

/// The largest value the model holds a bounded kind under.
pub const BOUND: usize = 256 * 1024;

/// What the model builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// Items of the job.
    pub items: u32,
    /// Live executors when the job starts.
    pub executors: u32,
    /// Every `moved_every`-th executor is lost with its unfinished items.
    pub moved_every: u32,
    /// Every `retried_every`-th item (or executor, clustered) failed once.
    pub retried_every: u32,
    /// Whether the retried items are whole executors' items.
    pub clustered: bool,
    /// The job's sharding strategy.
    pub strategy: Strategy,
}

impl Scenario {
    /// The issue's figure: 1,000,000 items × 10,000 executors, 10 % moved,
    /// 10 % retried.
    pub fn issue(strategy: Strategy, clustered: bool) -> Self {
        Scenario {
            items: 1_000_000,
            executors: 10_000,
            moved_every: 10,
            retried_every: 10,
            clustered,
            strategy,
        }
    }
}

/// The largest encoded value of each kind, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// `runs/{run}/state`, the whole run record.
    pub run_record: usize,
    /// Of it: the job's `owners` map (JSON text of the field).
    pub owners: usize,
    /// Of it: the per-item detail (`attempts`, `failures`, `retry_at`,
    /// `moved_from`, JSON text of the fields).
    pub item_detail: usize,
    /// The run record without the job's owners.
    pub run_record_without_owners: usize,
    /// The largest `owners/{executor}/{run}/{job}` assignment.
    pub assignment: usize,
    /// `assignments/{dag}/{job}`, the input of the next reshard.
    pub last_assignment: usize,
    /// `dag_versions/{dag}/{version}`.
    pub dag_version: usize,
}

fn exec(i: u32) -> ExecutorId {
    ExecutorId::new(format!("executor-{i:05}"))
}

fn encoded_len<T: keyspace::Record>(value: &T) -> usize {
    keyspace::encode(value).map_or(usize::MAX, |v| v.len())
}

fn json_len<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

/// The DAG of the model: one job of `items` items with `strategy`.
pub fn dag(items: u32, strategy: Strategy) -> Result<DagSpec, String> {
    let source = format!(
        "[jobs.accrue]\nhandler = \"accrue\"\nshards = {items}\nstrategy = \"{}\"\nretries = 3\n",
        strategy.as_str()
    );
    parse_dag(Path::new("nightly.toml"), &source, &CalendarSet::new()).map_err(|e| format!("{e:?}"))
}

/// Builds the records of `s` and measures them.
pub fn measure(s: &Scenario) -> Result<Sizes, String> {
    let spec = dag(s.items, s.strategy)?;
    let job_name = JobName::new("accrue");
    let slots: Vec<ExecutorSlot> = (0..s.executors)
        .map(|i| ExecutorSlot::new(exec(i), 4))
        .collect();
    let layout =
        assign(s.strategy, "nightly/accrue", s.items, &slots, None).map_err(|e| e.to_string())?;

    // The job as dispatched: one owner per executor, tokens as etcd gives.
    let mut job = JobRecord::pending(s.items);
    job.state = JobState::Running;
    job.started_at_ms = Some(1_700_000_000_000);
    job.generation = Some(1_234_567);
    let mut last = LastAssignment {
        shards: s.items,
        executors: BTreeMap::new(),
        run: Some(RunId::new("nightly-s1700000000000")),
    };
    for (n, (id, _)) in layout.iter().enumerate() {
        let items: ItemSet = layout
            .ranges_of(id)
            .into_iter()
            .fold(ItemSet::new(), |mut set, r| {
                set.insert_range(r.start, r.end);
                set
            });
        last.executors.insert(id.clone(), items.clone());
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        job.owners.insert(
            id.clone(),
            Owner {
                lease: 7_587_000_000_000_000 + n,
                items,
                cancel: ItemSet::new(),
                token: 1_234_567 + n,
                assigned_at_ms: 1_700_000_000_000,
            },
        );
    }

    // Retried: failed once, waiting for their retry, due over 100 passes.
    let retried: ItemSet = if s.clustered {
        let mut set = ItemSet::new();
        for i in (s.retried_every / 2..s.executors).step_by(s.retried_every as usize) {
            if let Some(owner) = job.owners.get(&exec(i)) {
                set = set.union(&owner.items);
            }
        }
        set
    } else {
        (s.retried_every / 2..s.items)
            .step_by(s.retried_every as usize)
            .collect()
    };
    job.failures.insert_all(&retried, 1);
    job.next_attempts(&retried);
    let passes: Vec<u32> = retried.iter().collect();
    for (pass, chunk) in passes.chunks(passes.len().div_ceil(100).max(1)).enumerate() {
        let due = 1_700_000_060_000 + i64::try_from(pass).unwrap_or(0) * 1_000;
        job.retry_at
            .insert_all(&chunk.iter().copied().collect(), due);
    }

    // Moved: every `moved_every`-th executor is lost; its unfinished items
    // go to the live ones (the real failover rule, one executor at a time).
    let mut receivers: Vec<Receiver> = (0..s.executors)
        .filter(|i| i % s.moved_every != 0)
        .map(|i| Receiver {
            id: exec(i),
            lease: 7_587_000_000_000_000 + i64::from(i),
            weight: 4,
            load: job.owners.get(&exec(i)).map_or(0, |o| o.items.len()),
        })
        .collect();
    for i in (0..s.executors).step_by(s.moved_every as usize) {
        let moved = fail_over(&mut job, Some(&exec(i)), &receivers, 1_700_000_100_000);
        for r in &mut receivers {
            if let Some(got) = moved.to.get(&r.id) {
                r.load += got.len();
            }
        }
    }

    let item_detail = json_len(&job.attempts)
        + json_len(&job.failures)
        + json_len(&job.retry_at)
        + json_len(&job.moved_from);
    let owners = json_len(&job.owners);
    let assignment = job
        .owners
        .values()
        .map(|owner| {
            let attempts = job
                .attempts
                .by_value()
                .flat_map(|(&a, with)| {
                    with.intersection(&owner.items)
                        .iter()
                        .map(move |i| (i, a))
                        .collect::<Vec<_>>()
                })
                .collect();
            encoded_len(&AssignmentRecord {
                items: owner.items.clone(),
                attempts,
                cancel: owner.cancel.clone(),
                generation: job.generation,
            })
        })
        .max()
        .unwrap_or(0);
    let mut rec = RunRecord {
        run: RunId::new("nightly-s1700000000000"),
        dag: spec.name.clone(),
        spec: spec.clone(),
        dag_version: 12,
        business_date: NaiveDate::from_ymd_opt(2026, 12, 3).unwrap_or_default(),
        params: serde_json::json!({}),
        source: TriggerSource::Schedule,
        scheduled_for_ms: Some(1_700_000_000_000),
        created_at_ms: 1_700_000_000_000,
        state: RunState::Running,
        deadline_ms: Some(1_700_020_000_000),
        jobs: BTreeMap::from([(job_name.clone(), job)]),
        lost_executors: (0..s.executors)
            .step_by(s.moved_every as usize)
            .map(exec)
            .collect(),
        open_alerts: Default::default(),
        redo: 0,
        retry_of: None,
        slow_after_ms: None,
    };
    let run_record = encoded_len(&rec);
    if let Some(job) = rec.jobs.get_mut(&job_name) {
        job.owners.clear();
    }
    let run_record_without_owners = encoded_len(&rec);
    Ok(Sizes {
        run_record,
        owners,
        item_detail,
        run_record_without_owners,
        assignment,
        last_assignment: encoded_len(&last),
        dag_version: encoded_len(&DagVersionRecord { spec }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kib(bytes: usize) -> String {
        format!("{:.1}", bytes as f64 / 1024.0)
    }

    fn row(strategy: Strategy, clustered: bool, s: &Sizes) -> String {
        format!(
            "{:<12} {:<10} {:>10} {:>8} {:>11} {:>13} {:>10} {:>11} {:>11}",
            strategy.as_str(),
            if clustered { "clustered" } else { "scattered" },
            kib(s.run_record),
            kib(s.owners),
            kib(s.item_detail),
            kib(s.run_record_without_owners),
            kib(s.assignment),
            kib(s.last_assignment),
            kib(s.dag_version),
        )
    }

    const HEADER: &str = "strategy     retried       run rec   owners item detail  rec - owners assignment last assign dag version";

    /// The bounded kinds at the issue's figure, block layout (`average`),
    /// clustered failures: the run record without its owners map (the DAG
    /// by reference, per-item detail as value → ranges), one executor's
    /// assignment and the DAG version stay under [`BOUND`]. The owners map
    /// and the last assignment do not (see the full table below).
    #[test]
    fn bounded_values_for_a_million_items_on_ten_thousand_executors() {
        let s = measure(&Scenario::issue(Strategy::Average, true)).expect("the model builds");
        println!("{HEADER}\n{}", row(Strategy::Average, true, &s));
        assert!(s.item_detail < BOUND, "item detail {s:?}");
        assert!(
            s.run_record_without_owners < BOUND,
            "run record without owners {s:?}"
        );
        assert!(s.assignment < BOUND, "assignment {s:?}");
        assert!(s.dag_version < BOUND, "dag version {s:?}");
    }

    /// The whole table: every strategy, both failure patterns, KiB. Slow in
    /// a debug build (about a minute a row), hence ignored; run it with
    /// `cargo test -p nightshift-scheduler --lib record_size -- --ignored
    /// --nocapture` (not under nextest, which stops a test after 5 min). One executor's assignment and the DAG version are
    /// bounded for every row; the rest is reported, not bounded yet.
    #[test]
    #[ignore = "slow: the full size table, run by hand"]
    fn largest_values_table_for_every_strategy() {
        println!(
            "1,000,000 items x 10,000 executors, 10 % moved, 10 % retried; KiB (bound {})",
            kib(BOUND)
        );
        println!("{HEADER}");
        for strategy in [
            Strategy::Sticky,
            Strategy::Average,
            Strategy::RoundRobin,
            Strategy::Hash,
        ] {
            for clustered in [true, false] {
                let s = measure(&Scenario::issue(strategy, clustered)).expect("the model builds");
                println!("{}", row(strategy, clustered, &s));
                assert!(s.assignment < BOUND, "{strategy:?}: assignment {s:?}");
                assert!(s.dag_version < BOUND, "{strategy:?}: dag version {s:?}");
            }
        }
    }

    #[test]
    fn a_small_job_fits_with_its_owners_and_detail() {
        let s = Scenario {
            items: 10_000,
            executors: 100,
            ..Scenario::issue(Strategy::Average, false)
        };
        let sizes = measure(&s).expect("builds");
        // A small job: everything is small, and the run record holds its
        // owners and details.
        assert!(sizes.run_record > sizes.owners + sizes.item_detail);
        assert!(sizes.run_record < BOUND);
    }
}
