//! The DAG page's duration trend chart (issue 14 item 6): how long each of
//! the DAG's recent ended runs took, as bars on a time axis with labelled
//! ticks, with the median of the last succeeded runs and the "slower than
//! usual" threshold (1.5 × that median, `nightshift_core::slow`, the rule
//! the scheduler's `run_slow` warning uses) drawn across. A night that
//! keeps growing shows as bars creeping towards the threshold line before
//! any warning fires. Pure: runs in, SVG out.

use super::html::{esc, url};
use crate::time::duration;
use std::fmt::Write as _;

/// How many ended runs the chart shows.
pub const TREND_RUNS: u32 = 30;

/// One ended run on the chart.
#[derive(Debug, Clone)]
pub struct TrendRun {
    /// Run id (the bar links to its page).
    pub run_id: String,
    /// `succeeded`, `failed`, `cancelled` (the bar's colour).
    pub state: String,
    /// Business date, for the tooltip and the axis.
    pub business_date: String,
    /// End minus start, ms.
    pub duration_ms: i64,
}

const WIDTH: f64 = 840.0;
const HEIGHT: f64 = 220.0;
/// Room for the y-axis labels.
const LEFT: f64 = 58.0;
/// Room for the median and threshold labels.
const RIGHT: f64 = 120.0;
const TOP: f64 = 14.0;
/// Room for the x-axis labels.
const BOTTOM: f64 = 26.0;
/// Fewest bar slots: a handful of runs does not make fat bars.
const MIN_SLOTS: usize = 10;

/// Tick steps (ms) people read easily; past the last, whole days.
const STEPS: [i64; 18] = [
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
    1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
];
/// Most ticks above zero.
const MAX_TICKS: i64 = 5;

/// The tick step and the axis top (a multiple of the step, at least one
/// step) for values up to `max_ms`.
pub fn axis(max_ms: i64) -> (i64, i64) {
    let max_ms = max_ms.max(1);
    let step = STEPS
        .iter()
        .copied()
        .find(|s| (max_ms + s - 1) / s <= MAX_TICKS)
        .unwrap_or_else(|| {
            let day = 86_400_000;
            let days = (max_ms + MAX_TICKS * day - 1) / (MAX_TICKS * day);
            days * day
        });
    let ticks = ((max_ms + step - 1) / step).max(1);
    (step, ticks * step)
}

/// A tick label: `30s`, `2m`, `1m30s`, `1h`, `2h30m`.
pub fn tick_label(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// The chart: `runs` oldest first; `median_ms` and `slow_after_ms` from
/// the last succeeded runs (`None` without a baseline yet).
pub fn duration_trend(
    runs: &[TrendRun],
    median_ms: Option<i64>,
    slow_after_ms: Option<i64>,
) -> String {
    if runs.is_empty() {
        return "<p class=\"sub\">No ended run yet.</p>".to_owned();
    }
    let max = runs
        .iter()
        .map(|r| r.duration_ms)
        .chain(slow_after_ms)
        .chain(median_ms)
        .max()
        .unwrap_or(0);
    let (step, top) = axis(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let base = TOP + plot_h;
    let y_of = |ms: i64| base - (ms.clamp(0, top) as f64) * plot_h / top as f64;
    let mut out = format!(
        "<svg class=\"trend\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"run duration trend\">"
    );
    // Y axis: a labelled line per tick.
    let mut t = 0;
    while t <= top {
        let y = y_of(t);
        let _ = write!(
            out,
            "<line class=\"tick-line\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis end ytick\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            esc(&tick_label(t))
        );
        t += step;
    }
    // Bars, oldest at the left.
    let slots = runs.len().max(MIN_SLOTS) as f64;
    let slot = plot_w / slots;
    let bar_w = (slot * 0.7).max(1.0);
    for (i, r) in runs.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        // At least 2 units high, so that a run of no time still shows.
        let y = y_of(r.duration_ms).min(base - 2.0);
        let slow = slow_after_ms.is_some_and(|limit| r.duration_ms > limit);
        let failed = r.state == "failed";
        let state = esc(&r.state);
        let _ = write!(
            out,
            "<a href=\"/runs/{}\"><rect class=\"trend-bar st-{state}{}\" data-run=\"{}\" x=\"{x:.1}\" y=\"{y:.1}\" \
             width=\"{bar_w:.1}\" height=\"{:.1}\"><title>{} · {state} · business date {} · {}{}</title></rect>",
            url(&r.run_id),
            if slow { " slow" } else { "" },
            esc(&r.run_id),
            base - y,
            esc(&r.run_id),
            esc(&r.business_date),
            esc(&duration(r.duration_ms)),
            if slow { " · slower than usual" } else { "" }
        );
        if failed {
            // A mark above a failed run's bar: red alone is not enough
            // (colour blindness, and the light theme's reds are close).
            let _ = write!(
                out,
                "<text class=\"fail-mark\" x=\"{:.1}\" y=\"{:.1}\">✕</text>",
                x + bar_w / 2.0,
                (y - 3.0).max(TOP)
            );
        }
        out.push_str("</a>");
    }
    // The baseline and the threshold, labelled in the right margin (not
    // over the bars); the two labels move apart when the lines are close.
    let close = match (median_ms, slow_after_ms) {
        (Some(m), Some(t)) => (y_of(m) - y_of(t)).abs() < 14.0,
        _ => false,
    };
    for (class, value, label, title, shift) in [
        (
            "median",
            median_ms,
            "median",
            "the median of the last succeeded runs",
            8.0,
        ),
        (
            "slow-line",
            slow_after_ms,
            "slow >",
            "slower than usual: 1.5 × the median",
            -4.0,
        ),
    ] {
        if let Some(ms) = value {
            let y = y_of(ms);
            let label_y = if close { y + shift } else { y + 4.0 };
            let _ = write!(
                out,
                "<line class=\"{class}\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
                 <text class=\"axis {class}-label\" x=\"{:.1}\" y=\"{label_y:.1}\"><title>{title}</title>{} {}</text>",
                LEFT + plot_w,
                LEFT + plot_w + 6.0,
                esc(label),
                esc(&duration(ms))
            );
        }
    }
    // X axis: the oldest and newest business dates.
    let (first, last) = (&runs[0], &runs[runs.len() - 1]);
    let _ = write!(
        out,
        "<text class=\"axis\" x=\"{LEFT}\" y=\"{:.1}\">{}</text>",
        HEIGHT - 8.0,
        esc(&first.business_date)
    );
    if runs.len() > 1 {
        let _ = write!(
            out,
            "<text class=\"axis end\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LEFT + slot * runs.len() as f64,
            HEIGHT - 8.0,
            esc(&last.business_date)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, state: &str, ms: i64) -> TrendRun {
        TrendRun {
            run_id: id.to_owned(),
            state: state.to_owned(),
            business_date: "2024-03-28".to_owned(),
            duration_ms: ms,
        }
    }

    #[test]
    fn axes_have_round_steps_and_labels() {
        assert_eq!(axis(0), (1_000, 1_000));
        assert_eq!(axis(4_200), (1_000, 5_000));
        assert_eq!(axis(50_000), (10_000, 50_000));
        assert_eq!(axis(61_000), (15_000, 75_000));
        assert_eq!(axis(100 * 60_000), (1_800_000, 7_200_000));
        assert_eq!(axis(20 * 86_400_000).1 % 86_400_000, 0);
        for max in [1, 999, 59_999, 3_600_001, 7 * 86_400_000] {
            let (step, top) = axis(max);
            assert!(top >= max && top / step <= MAX_TICKS, "{max}: {step} {top}");
        }
        assert_eq!(tick_label(0), "0s");
        assert_eq!(tick_label(30_000), "30s");
        assert_eq!(tick_label(120_000), "2m");
        assert_eq!(tick_label(90_000), "1m30s");
        assert_eq!(tick_label(3_600_000), "1h");
        assert_eq!(tick_label(9_000_000), "2h30m");
    }

    #[test]
    fn the_chart_has_a_linked_bar_per_run_ticks_and_the_threshold() {
        let runs = vec![
            run("r1", "succeeded", 60_000),
            run("r2", "failed", 30_000),
            run("<r3>", "succeeded", 150_000),
            run("r4", "cancelled", 0),
        ];
        let svg = duration_trend(&runs, Some(60_000), Some(90_000));
        assert_eq!(svg.matches("class=\"trend-bar").count(), 4, "{svg}");
        assert_eq!(svg.matches("<a href=\"/runs/").count(), 4, "{svg}");
        assert!(svg.contains("<a href=\"/runs/%3Cr3%3E\">"), "{svg}");
        assert!(svg.contains("data-run=\"&lt;r3&gt;\""), "{svg}");
        assert!(!svg.contains("<r3>"), "{svg}");
        // Only the failed run is marked; only the run past 1.5 × median is slow.
        assert_eq!(svg.matches("class=\"fail-mark\"").count(), 1, "{svg}");
        assert_eq!(svg.matches(" slow\"").count(), 1, "{svg}");
        assert!(
            svg.contains("trend-bar st-succeeded slow\" data-run=\"&lt;r3&gt;\""),
            "{svg}"
        );
        // Ticks every 30 s up to 2m30s, labelled.
        for label in ["0s", "30s", "1m", "1m30s", "2m", "2m30s"] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}: {svg}");
        }
        assert!(svg.contains("class=\"median\""), "{svg}");
        assert!(svg.contains("</title>median 1m 0s</text>"), "{svg}");
        assert!(svg.contains("</title>slow &gt; 1m 30s</text>"), "{svg}");
        // Bar heights are proportional: the 1-minute bar is twice the 30 s one.
        let height = |id: &str| -> f64 {
            let at = svg.find(&format!("data-run=\"{id}\"")).unwrap();
            let rest = &svg[at..];
            let h = rest.find("height=\"").unwrap() + 8;
            rest[h..h + rest[h..].find('"').unwrap()].parse().unwrap()
        };
        assert!((height("r1") - 2.0 * height("r2")).abs() < 0.2);
        assert!(height("r4") >= 2.0, "a run of no time still shows");
        assert!(!svg.contains("style="), "{svg}");
    }

    #[test]
    fn no_baseline_no_lines_and_no_runs_a_sentence() {
        let svg = duration_trend(&[run("r1", "succeeded", 5_000)], None, None);
        assert!(
            !svg.contains("class=\"median\"") && !svg.contains("slow-line"),
            "{svg}"
        );
        assert_eq!(svg.matches("class=\"trend-bar").count(), 1);
        assert!(duration_trend(&[], None, None).contains("No ended run yet"));
    }
}
