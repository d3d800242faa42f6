//! Sharding benchmark: each strategy at the scale target (10,000 executors ×
//! 1,000,000 items), cold (no previous assignment) and reshard (the previous
//! assignment, with 1 % of the executors replaced).
//!
//! A plain `harness = false` binary: prints a Markdown table (median and best
//! of several runs, items moved, smallest and largest share) to paste into
//! BENCHMARKS.md. Run with
//! `cargo bench -p nightshift-core --bench sharding`.

use nightshift_core::ids::ExecutorId;
use nightshift_core::sharding::{assign, moved_items, Assignment, ExecutorSlot, Strategy};
use std::hint::black_box;
use std::time::{Duration, Instant};

const EXECUTORS: u32 = 10_000;
const ITEMS: u32 = 1_000_000;
/// Every 100th executor leaves and as many new ones join: 1 % replaced.
const REPLACE_EVERY: u32 = 100;
const RUNS: usize = 5;

fn slot(k: u32, weighted: bool) -> ExecutorSlot {
    let weight = if weighted { k % 4 + 1 } else { 1 };
    ExecutorSlot::new(ExecutorId::new(format!("executor-{k:05}")), weight)
}

fn fleet(weighted: bool) -> Vec<ExecutorSlot> {
    (0..EXECUTORS).map(|k| slot(k, weighted)).collect()
}

fn replaced_fleet(weighted: bool) -> Vec<ExecutorSlot> {
    (0..EXECUTORS)
        .map(|k| {
            if k % REPLACE_EVERY == 0 {
                slot(EXECUTORS + k, weighted)
            } else {
                slot(k, weighted)
            }
        })
        .collect()
}

/// Median and best wall time of `RUNS` solves (after one warm-up), and the
/// last result.
fn time(mut solve: impl FnMut() -> Assignment) -> (Duration, Duration, Assignment) {
    let mut result = black_box(solve());
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        result = black_box(solve());
        times.push(start.elapsed());
    }
    times.sort();
    (times[RUNS / 2], times[0], result)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn share_range(a: &Assignment) -> (usize, usize) {
    let sizes: Vec<usize> = a.iter().map(|(_, items)| items.len()).collect();
    let min = sizes.iter().copied().min().unwrap_or(0);
    (min, sizes.iter().copied().max().unwrap_or(0))
}

fn main() {
    println!("{EXECUTORS} executors × {ITEMS} items, {RUNS} runs after a warm-up\n");
    println!("| strategy | weights | case | median ms | best ms | items moved | min..max share |");
    println!("|---|---|---|---:|---:|---:|---|");
    for weighted in [false, true] {
        let before = fleet(weighted);
        let after = replaced_fleet(weighted);
        let weights = if weighted { "1–4" } else { "all 1" };
        for &kind in Strategy::VARIANTS {
            let job = "nightly/accrue-interest";
            let (median, best, cold) = time(|| assign(kind, job, ITEMS, &before, None).unwrap());
            let (lo, hi) = share_range(&cold);
            println!(
                "| {kind} | {weights} | cold | {} | {} | – | {lo}..{hi} |",
                ms(median),
                ms(best)
            );
            let (median, best, next) =
                time(|| assign(kind, job, ITEMS, &after, Some(&cold)).unwrap());
            let (lo, hi) = share_range(&next);
            let moved = moved_items(&cold, &next);
            println!(
                "| {kind} | {weights} | reshard 1 % | {} | {} | {moved} | {lo}..{hi} |",
                ms(median),
                ms(best)
            );
        }
    }
}
