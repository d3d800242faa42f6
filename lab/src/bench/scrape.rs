//! Figures read from a Prometheus text page (the scheduler's
//! `--metrics-listen`): a gauge's value and a quantile estimated from a
//! histogram's cumulative buckets. Pure parsing, unit-tested; the page is
//! fetched with [`super::egress::get_metrics`].

/// The value of the unlabelled sample `name`, if the page has it.
pub fn gauge(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.trim().parse().ok()
    })
}

/// The cumulative buckets `(le, count)` of histogram `name`, by bound.
fn buckets(page: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut out: Vec<(f64, f64)> = page
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (labels, value) = rest.rsplit_once("} ")?;
            let le = labels
                .split(',')
                .find_map(|l| l.trim().strip_prefix("le=\""))?
                .trim_end_matches('"');
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, value.trim().parse().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The `q` quantile (0..=1) of histogram `name`, interpolated linearly
/// within the bucket that holds it, as Prometheus' `histogram_quantile`
/// does; `None` without samples. A quantile in the `+Inf` bucket is
/// reported as the largest finite bound (a lower bound of the truth).
pub fn histogram_quantile(page: &str, name: &str, q: f64) -> Option<f64> {
    let buckets = buckets(page, name);
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, count) in &buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let inside = count - below;
            let frac = if inside > 0.0 {
                (rank - below) / inside
            } else {
                1.0
            };
            return Some(lower + (le - lower) * frac);
        }
        lower = le;
        below = count;
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# TYPE nightshift_scheduler_pass_seconds histogram\n\
nightshift_scheduler_pass_seconds_bucket{le=\"0.001\"} 0\n\
nightshift_scheduler_pass_seconds_bucket{le=\"0.01\"} 50\n\
nightshift_scheduler_pass_seconds_bucket{le=\"0.1\"} 90\n\
nightshift_scheduler_pass_seconds_bucket{le=\"1\"} 100\n\
nightshift_scheduler_pass_seconds_bucket{le=\"+Inf\"} 100\n\
nightshift_scheduler_pass_seconds_sum 3.2\n\
nightshift_scheduler_pass_seconds_count 100\n\
nightshift_scheduler_largest_value_bytes 1234\n\
nightshift_scheduler_largest_value_bytes_other 9\n";

    #[test]
    fn quantiles_interpolate_within_the_bucket_that_holds_them() {
        let p50 = histogram_quantile(PAGE, "nightshift_scheduler_pass_seconds", 0.5).unwrap();
        assert!((p50 - 0.01).abs() < 1e-9, "{p50}");
        let p25 = histogram_quantile(PAGE, "nightshift_scheduler_pass_seconds", 0.25).unwrap();
        assert!((p25 - 0.0055).abs() < 1e-9, "{p25}");
        let p99 = histogram_quantile(PAGE, "nightshift_scheduler_pass_seconds", 0.99).unwrap();
        assert!((p99 - 0.91).abs() < 1e-9, "{p99}");
        assert_eq!(histogram_quantile(PAGE, "absent_seconds", 0.5), None);
    }

    #[test]
    fn a_quantile_past_every_finite_bound_is_the_largest_bound() {
        let page = "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 10\n";
        assert_eq!(histogram_quantile(page, "h", 0.99), Some(1.0));
    }

    #[test]
    fn a_gauge_is_read_by_its_exact_name() {
        assert_eq!(
            gauge(PAGE, "nightshift_scheduler_largest_value_bytes"),
            Some(1234.0)
        );
        assert_eq!(gauge(PAGE, "nightshift_scheduler_largest"), None);
    }
}
