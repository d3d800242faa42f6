//! "Slower than usual" (issue 14 item 6): a run that takes more than 1.5 ×
//! the median duration of its DAG's last 10 succeeded runs raises a warning
//! (`run_slow`), the early sign of a night that grows longer (the seeds
//! name growing clearing time as a hidden risk). Pure, and shared: the
//! scheduler leader fixes the threshold when a run is created and checks it
//! every pass; the console draws the same median and threshold on the DAG
//! page's duration trend chart, so the two never disagree.

/// How many recent succeeded runs make the baseline.
pub const BASELINE_RUNS: u32 = 10;

/// Fewest succeeded runs for a baseline: one or two are no "usual".
pub const MIN_BASELINE_RUNS: usize = 3;

/// Twice the median of `durations` (negative ones read as zero): the median
/// of an even count is the mean of the middle two, and doubling keeps it an
/// integer. `None` for no durations.
fn doubled_median(durations: &[i64]) -> Option<i64> {
    if durations.is_empty() {
        return None;
    }
    let mut d: Vec<i64> = durations.iter().map(|&x| x.max(0)).collect();
    d.sort_unstable();
    let n = d.len();
    Some(if n % 2 == 1 {
        d[n / 2].saturating_mul(2)
    } else {
        d[n / 2 - 1].saturating_add(d[n / 2])
    })
}

/// The median of `durations` (ms, rounded down), the "usual" run time;
/// `None` with fewer than [`MIN_BASELINE_RUNS`] of them, like
/// [`slow_after_ms`].
pub fn median_ms(durations: &[i64]) -> Option<i64> {
    if durations.len() < MIN_BASELINE_RUNS {
        return None;
    }
    doubled_median(durations).map(|d| d / 2)
}

/// The run time (ms) past which a run is slower than usual: 1.5 × the
/// median of `durations` (ms); `None` with fewer than
/// [`MIN_BASELINE_RUNS`] of them.
pub fn slow_after_ms(durations: &[i64]) -> Option<i64> {
    if durations.len() < MIN_BASELINE_RUNS {
        return None;
    }
    // 1.5 × median = 3 × doubled median / 4, in integers.
    doubled_median(durations).map(|doubled| doubled.saturating_mul(3) / 4)
}

/// Whether a run created at `created_at_ms` and still going at `now_ms`
/// is slower than usual.
pub fn is_slow(created_at_ms: i64, now_ms: i64, slow_after_ms: Option<i64>) -> bool {
    slow_after_ms.is_some_and(|limit| now_ms.saturating_sub(created_at_ms) > limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_threshold_is_one_and_a_half_medians() {
        assert_eq!(slow_after_ms(&[]), None);
        assert_eq!(slow_after_ms(&[100, 200]), None);
        assert_eq!(slow_after_ms(&[100, 300, 200]), Some(300));
        assert_eq!(slow_after_ms(&[100, 200, 300, 400]), Some(375));
        assert_eq!(median_ms(&[100, 200]), None);
        assert_eq!(median_ms(&[100, 300, 200]), Some(200));
        assert_eq!(median_ms(&[100, 200, 300, 400]), Some(250));
        assert!(!is_slow(0, 300, Some(300)));
        assert!(is_slow(0, 301, Some(300)));
        assert!(!is_slow(0, i64::MAX, None));
    }

    proptest! {
        /// Between 1.5 × the smallest and 1.5 × the largest duration, and
        /// independent of their order; the median is between the extremes
        /// and the threshold is (within rounding) 1.5 × the median.
        #[test]
        fn the_threshold_is_bounded_and_order_free(mut d in proptest::collection::vec(0i64..1_000_000_000, 3..12)) {
            let t = slow_after_ms(&d).unwrap();
            let m = median_ms(&d).unwrap();
            let (lo, hi) = (*d.iter().min().unwrap(), *d.iter().max().unwrap());
            prop_assert!(t >= lo * 3 / 2 - 1 && t <= hi * 3 / 2);
            prop_assert!(m >= lo && m <= hi);
            prop_assert!((t - m * 3 / 2).abs() <= 1);
            d.reverse();
            prop_assert_eq!(slow_after_ms(&d), Some(t));
        }
    }
}
