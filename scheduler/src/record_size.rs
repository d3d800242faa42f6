//! A pure size model of the values the leader writes for one big job: the
//! real records, built with the real sharding, failover and retry rules and
//! encoded with the real encoder, for a job of 1,000,000 items over 10,000
//! executors with 10 % of the items moved (10 % of the executors lost) and
//! 10 % retried.
//!
//! etcd refuses a request over 1.5 MiB (its default), so a value that grows
//! with the items moved or retried, or with the executors, can stop a run
//! for good. The model stores the run the way the leader does
//! (`record_values`: a head, job states, one value per item set and per
//! owner; item sets as ranges or a bitmap, whichever is smaller) and says,
//! per value kind and sharding strategy, how large the largest value is;
//! its test prints the table and holds every kind under [`BOUND`]. A mid-run
//! job is modelled: everything neither retried nor moved has succeeded.
//!
//! Two failure patterns: *clustered* (the retried items are the items of
//! 10 % of the executors — a bad host, a dependency gone for a while: what
//! fails together was dispatched together) and *scattered* (every tenth
//! item: failures independent of each other and of the layout, the worst
//! case for item ranges).

use crate::failover::{fail_over, Receiver};
use crate::record::{self, JobRecord, LastAssignment, Owner, RunRecord};
use crate::record_values;
use chrono::NaiveDate;
use nightshift_core::dag::{parse_dag, CalendarSet, DagSpec, Strategy};
use nightshift_core::ids::{ExecutorId, JobName, RunId};
use nightshift_core::keyspace::{self, AssignmentRecord, DagVersionRecord, ItemSet, RunValueKey};
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

/// The largest encoded value of each kind the leader writes, bytes, in
/// the stored layout (`record_values`: the run record split into a head,
/// job states, item sets and owners).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// `runs/{run}/state`, the run's head.
    pub head: usize,
    /// `runs/{run}/jobs/{job}/state`.
    pub job_state: usize,
    /// The largest `runs/{run}/jobs/{job}/items/{set}` (succeeded, ...).
    pub item_set: usize,
    /// The largest per-item detail value,
    /// `runs/{run}/jobs/{job}/items/{map}/{value}` (attempts, failures,
    /// retry due times, moved-from executors).
    pub item_detail: usize,
    /// The largest `runs/{run}/jobs/{job}/owners/{executor}`.
    pub owner: usize,
    /// How many values the run record is stored as.
    pub run_values: usize,
    /// Their total size (what a leader reads to load the run).
    pub run_bytes: usize,
    /// The largest `owners/{executor}/{run}/{job}` assignment.
    pub assignment: usize,
    /// The largest value of `assignments/{dag}/{job}` (the head, or a
    /// chunk of a sticky job's), the input of the next reshard.
    pub last_assignment: usize,
    /// `dag_versions/{dag}/{version}`.
    pub dag_version: usize,
}

impl Sizes {
    /// Each bounded kind with its name.
    pub fn kinds(&self) -> [(&'static str, usize); 8] {
        [
            ("head", self.head),
            ("job state", self.job_state),
            ("item set", self.item_set),
            ("item detail", self.item_detail),
            ("owner", self.owner),
            ("assignment", self.assignment),
            ("last assignment", self.last_assignment),
            ("dag version", self.dag_version),
        ]
    }

    /// The largest value of any kind.
    pub fn largest(&self) -> usize {
        self.kinds().iter().map(|(_, n)| *n).max().unwrap_or(0)
    }
}

fn exec(i: u32) -> ExecutorId {
    ExecutorId::new(format!("executor-{i:05}"))
}

fn encoded_len<T: keyspace::Record>(value: &T) -> usize {
    keyspace::encode(value).map_or(usize::MAX, |v| v.len())
}

/// The DAG of the model: one job of `items` items with `strategy`.
pub fn dag(items: u32, strategy: Strategy) -> Result<DagSpec, String> {
    let source = format!(
        "[jobs.accrue]\nhandler = \"accrue\"\nshards = {items}\nstrategy = \"{}\"\nretries = 3\n",
        strategy.as_str()
    );
    parse_dag(Path::new("nightly.toml"), &source, &CalendarSet::new()).map_err(|e| format!("{e:?}"))
}

/// The model's run as the leader holds it mid-run, and what a further
/// pass needs.
struct Built {
    rec: RunRecord,
    last: LastAssignment,
    job_name: JobName,
    /// The largest assignment, bytes.
    assignment: usize,
    /// The live executors, as failover sees them.
    receivers: Vec<Receiver>,
}

/// Builds the run of `s` mid-run: dispatched, 10 % moved, 10 % retried,
/// the rest succeeded.
fn build(s: &Scenario) -> Result<Built, String> {
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
        generation: Some(1_234_567),
        chunks: 0,
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
    let index: BTreeMap<ExecutorId, usize> = receivers
        .iter()
        .enumerate()
        .map(|(n, r)| (r.id.clone(), n))
        .collect();
    for i in (0..s.executors).step_by(s.moved_every as usize) {
        let moved = fail_over(&mut job, Some(&exec(i)), &receivers, 1_700_000_100_000);
        for (id, got) in &moved.to {
            if let Some(&n) = index.get(id) {
                receivers[n].load += got.len();
            }
        }
    }

    // Mid-run: everything neither retried nor moved has succeeded
    // (scattered retries make this the most fragmented set).
    job.succeeded = ItemSet::range(0, s.items)
        .difference(&retried)
        .difference(&job.moved_from.items());

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
    let rec = RunRecord {
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
    Ok(Built {
        rec,
        last,
        job_name,
        assignment,
        receivers,
    })
}

/// Builds the records of `s` and measures them.
pub fn measure(s: &Scenario) -> Result<Sizes, String> {
    let Built {
        rec,
        last,
        job_name,
        assignment,
        ..
    } = build(s)?;
    let spec = rec.spec.clone();
    let prefix = keyspace::DEFAULT_PREFIX;
    let values = record_values::encode_run(prefix, &rec).map_err(|e| e.to_string())?;
    let mut sizes = Sizes {
        head: 0,
        job_state: 0,
        item_set: 0,
        item_detail: 0,
        owner: 0,
        run_values: values.len(),
        run_bytes: values.values().map(Vec::len).sum(),
        assignment,
        last_assignment: 0,
        dag_version: encoded_len(&DagVersionRecord { spec }),
    };
    for (key, value) in &values {
        let slot = match keyspace::parse_run_value_key(prefix, key) {
            Some(RunValueKey::Head(_)) => &mut sizes.head,
            Some(RunValueKey::Job(..)) => &mut sizes.job_state,
            Some(RunValueKey::Owner(..)) => &mut sizes.owner,
            Some(RunValueKey::Items(_, _, _, None)) => &mut sizes.item_set,
            Some(RunValueKey::Items(_, _, _, Some(_))) => &mut sizes.item_detail,
            Some(RunValueKey::Wal(_) | RunValueKey::WalChunk(..)) => continue,
            None => return Err(format!("{key} is no run value key")),
        };
        *slot = (*slot).max(value.len());
    }
    let (puts, _) =
        record::last_assignment_values(prefix, &rec.dag, &job_name, &last, s.strategy, 0)
            .map_err(|e| e.to_string())?;
    sizes.last_assignment = puts.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    Ok(sizes)
}

/// What one commit of a pass writes to etcd for the model's run, and what
/// the leader encodes to find it (every value of the run, compared with
/// what it last wrote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassCost {
    /// Values put (the head always among them).
    pub puts: usize,
    /// Their bytes.
    pub put_bytes: usize,
    /// Values deleted.
    pub deletes: usize,
    /// Txns at `max_txn_ops` ops each.
    pub txns: usize,
    /// Bytes encoded to find the changes.
    pub encoded_bytes: usize,
}

/// The cost of the two passes that matter at scale on the model's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassCosts {
    /// One result batch (250 outcomes of one executor) applied.
    pub results: PassCost,
    /// One more executor lost, its unfinished items failed over.
    pub failover: PassCost,
}

/// Outcomes in one result batch, as the SDK cuts them.
const BATCH: usize = 250;

fn cost(
    prefix: &str,
    before: &std::collections::BTreeMap<String, Vec<u8>>,
    after: &RunRecord,
    max_txn_ops: usize,
) -> Result<PassCost, String> {
    let wanted = record_values::encode_run(prefix, after).map_err(|e| e.to_string())?;
    let (mut puts, deletes) = record_values::diff(before, &wanted);
    let head = keyspace::run_state_key(prefix, &after.run);
    if !puts.iter().any(|(k, _)| *k == head) {
        let value = wanted.get(&head).cloned().unwrap_or_default();
        puts.push((head, value));
    }
    Ok(PassCost {
        puts: puts.len(),
        put_bytes: puts.iter().map(|(_, v)| v.len()).sum(),
        deletes: deletes.len(),
        txns: (puts.len() + deletes.len()).div_ceil(max_txn_ops.max(1)),
        encoded_bytes: wanted.values().map(Vec::len).sum(),
    })
}

/// What a result pass and a failover pass cost on the run of `s`,
/// computed by the leader's own encoder and diff.
pub fn pass_costs(s: &Scenario, max_txn_ops: usize) -> Result<PassCosts, String> {
    let Built {
        rec,
        job_name,
        receivers,
        ..
    } = build(s)?;
    let prefix = keyspace::DEFAULT_PREFIX;
    let before = record_values::encode_run(prefix, &rec).map_err(|e| e.to_string())?;

    let mut after = rec.clone();
    let job = after
        .jobs
        .get_mut(&job_name)
        .ok_or("the model has no job")?;
    let waiting = job.retry_at.items();
    let batch: ItemSet = job
        .owners
        .values()
        .map(|o| o.items.difference(&job.succeeded).difference(&waiting))
        .find(|open| !open.is_empty())
        .map(|open| open.iter().take(BATCH).collect())
        .unwrap_or_default();
    job.succeeded = job.succeeded.union(&batch);
    let results = cost(prefix, &before, &after, max_txn_ops)?;

    let mut after = rec;
    let job = after
        .jobs
        .get_mut(&job_name)
        .ok_or("the model has no job")?;
    let departed = receivers
        .first()
        .map(|r| r.id.clone())
        .ok_or("the model has no live executor")?;
    let rest: Vec<Receiver> = receivers.into_iter().skip(1).collect();
    fail_over(job, Some(&departed), &rest, 1_700_000_200_000);
    after.lost_executors.insert(departed);
    let failover = cost(prefix, &before, &after, max_txn_ops)?;
    Ok(PassCosts { results, failover })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kib(bytes: usize) -> String {
        format!("{:.1}", bytes as f64 / 1024.0)
    }

    fn row(strategy: Strategy, clustered: bool, s: &Sizes) -> String {
        format!(
            "{:<12} {:<10} {:>6} {:>9} {:>8} {:>11} {:>6} {:>10} {:>11} {:>7} {:>8} {:>8}",
            strategy.as_str(),
            if clustered { "clustered" } else { "scattered" },
            kib(s.head),
            kib(s.job_state),
            kib(s.item_set),
            kib(s.item_detail),
            kib(s.owner),
            kib(s.assignment),
            kib(s.last_assignment),
            kib(s.dag_version),
            s.run_values,
            kib(s.run_bytes),
        )
    }

    const HEADER: &str = "strategy     retried      head job state item set item detail  owner assignment last assign dag ver   values  run KiB";

    /// Every value the leader writes stays under [`BOUND`] at the issue's
    /// figure — 1,000,000 items × 10,000 executors, 10 % moved, 10 %
    /// retried — for every strategy and both failure patterns. Prints the
    /// table ARCHITECTURE "etcd limits" shows (`cargo test -p
    /// nightshift-scheduler --lib record_size -- --nocapture`). The rows
    /// are built on both cores: most of the time goes to failing over
    /// 1,000 executors one at a time (the real rule) and encoding 9,000
    /// owners.
    #[test]
    fn every_value_is_bounded_for_a_million_items_on_ten_thousand_executors() {
        let scenarios: Vec<(Strategy, bool)> = [
            Strategy::Sticky,
            Strategy::Average,
            Strategy::RoundRobin,
            Strategy::Hash,
        ]
        .into_iter()
        .flat_map(|s| [(s, true), (s, false)])
        .collect();
        let started = std::time::Instant::now();
        // Every other row on each thread: round_robin and hash take longest.
        let rows: Vec<(Strategy, bool, Sizes)> = std::thread::scope(|scope| {
            let halves: Vec<_> = (0..2)
                .map(|half| {
                    let scenarios = &scenarios;
                    scope.spawn(move || {
                        scenarios
                            .iter()
                            .skip(half)
                            .step_by(2)
                            .map(|&(strategy, clustered)| {
                                let s = measure(&Scenario::issue(strategy, clustered))
                                    .expect("the model builds");
                                (strategy, clustered, s)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            halves
                .into_iter()
                .flat_map(|h| h.join().expect("a row"))
                .collect()
        });
        println!(
            "1,000,000 items x 10,000 executors, 10 % moved, 10 % retried; KiB (bound {}); {:?}",
            kib(BOUND),
            started.elapsed()
        );
        println!("{HEADER}");
        for (strategy, clustered, s) in &rows {
            println!("{}", row(*strategy, *clustered, s));
        }
        for (strategy, clustered, s) in &rows {
            for (kind, size) in s.kinds() {
                assert!(
                    size < BOUND,
                    "{strategy:?} clustered={clustered}: {kind} is {size} bytes"
                );
            }
        }
    }

    /// A result pass writes the head and the one item set it changed; a
    /// failover pass the head, the lost owner's and the receivers' values
    /// and the per-item detail it touched — never the whole run.
    #[test]
    fn a_pass_writes_what_it_changed_not_the_run() {
        let s = Scenario {
            items: 100_000,
            executors: 1_000,
            ..Scenario::issue(Strategy::Average, false)
        };
        let c = pass_costs(&s, 128).expect("builds");
        assert_eq!(c.results.puts, 2, "{c:?}");
        assert_eq!(c.results.deletes, 0, "{c:?}");
        assert!(c.results.put_bytes < BOUND, "{c:?}");
        assert!(c.failover.puts >= 3 && c.failover.puts < 100, "{c:?}");
        assert!(c.failover.put_bytes < 4 * BOUND, "{c:?}");
        assert!(c.results.encoded_bytes > 10 * c.results.put_bytes, "{c:?}");
    }

    /// The pass-cost table of BENCHMARKS.md "10,000 executors": by hand
    /// (`cargo test --release -p nightshift-scheduler --lib pass_cost_table
    /// -- --ignored --nocapture`).
    #[test]
    #[ignore = "a table for BENCHMARKS.md, run by hand"]
    fn pass_cost_table() {
        println!("strategy     retried    | encode ms | results: puts KiB txns | failover: puts KiB dels txns | run values KiB");
        for strategy in [
            Strategy::Sticky,
            Strategy::Average,
            Strategy::RoundRobin,
            Strategy::Hash,
        ] {
            for clustered in [true, false] {
                let s = Scenario::issue(strategy, clustered);
                let Built { rec, .. } = build(&s).expect("builds");
                let started = std::time::Instant::now();
                let values =
                    record_values::encode_run(keyspace::DEFAULT_PREFIX, &rec).expect("encodes");
                let encode_ms = started.elapsed().as_millis();
                let c = pass_costs(&s, 128).expect("builds");
                println!(
                    "{:<12} {:<10} | {:>9} | {:>4} {:>7} {:>4} | {:>4} {:>7} {:>4} {:>4} | {:>6} {:>8}",
                    strategy.as_str(),
                    if clustered { "clustered" } else { "scattered" },
                    encode_ms,
                    c.results.puts,
                    kib(c.results.put_bytes),
                    c.results.txns,
                    c.failover.puts,
                    kib(c.failover.put_bytes),
                    c.failover.deletes,
                    c.failover.txns,
                    values.len(),
                    kib(values.values().map(Vec::len).sum()),
                );
            }
        }
    }

    #[test]
    fn a_small_job_is_a_few_small_values() {
        let s = Scenario {
            items: 10_000,
            executors: 100,
            ..Scenario::issue(Strategy::Average, false)
        };
        let sizes = measure(&s).expect("builds");
        assert!(sizes.largest() < 16 * 1024, "{sizes:?}");
        // Head, job state, succeeded, unowned-free: 90 owners (10 lost),
        // attempts/failures, 100 retry times, 10 moved-from executors.
        assert!(sizes.run_values > 90 && sizes.run_values < 300, "{sizes:?}");
    }
}
