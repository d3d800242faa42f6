//! A lane chart in inline SVG: one row per lane (a DAG, an item), any
//! number of bars per row (runs, attempts) on a shared time axis, and
//! point markers (next fire times). The overview's "tonight" timeline and
//! the run page's per-job item Gantt are both drawn with it.
//!
//! The axis is labelled in UTC and, when given, in one more time zone (a
//! DAG's). Ticks fall on round steps (1 s … 1 day) so labels read as
//! times, not as arbitrary offsets. Colours come from the stylesheet's
//! `st-*` classes, like every other state on the pages; every label, title
//! and link is escaped here, so callers pass plain text.

use super::html::esc;
use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use std::fmt::Write as _;

/// Width of the lane label column.
const LABEL_W: i64 = 170;
/// Width of the time axis.
const CHART_W: i64 = 900;
/// Height of one axis label row.
const AXIS_ROW_H: i64 = 14;
/// Round tick steps, ms: the smallest that gives at most `MAX_TICKS`.
const STEPS: &[i64] = &[
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
    1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
];
const MAX_TICKS: i64 = 12;

/// The time axis and look of a chart.
#[derive(Debug, Clone)]
pub struct Axis {
    /// `aria-label` of the picture.
    pub label: String,
    /// Left end, epoch ms.
    pub from_ms: i64,
    /// Right end, epoch ms (raised to `from_ms + 1` when not after it).
    pub to_ms: i64,
    /// A second row of tick labels in this zone (UTC is always shown).
    pub zone: Option<Tz>,
    /// Draws a dashed "now" line when it falls on the axis.
    pub now_ms: Option<i64>,
    /// Height of one lane, px.
    pub row_h: i64,
}

/// One row.
#[derive(Debug, Clone, Default)]
pub struct Lane {
    /// Row label.
    pub label: String,
    /// Where the label links to (a path of this console), if anywhere.
    pub href: Option<String>,
    /// Bars on this row.
    pub bars: Vec<Bar>,
    /// Point markers on this row.
    pub markers: Vec<Marker>,
}

/// One bar: a run, an attempt.
#[derive(Debug, Clone)]
pub struct Bar {
    /// State class suffix (`succeeded` → `st-succeeded`).
    pub state: String,
    /// Start, epoch ms.
    pub start_ms: i64,
    /// End, epoch ms; open bars end at the axis' `now_ms` (else its end).
    pub end_ms: Option<i64>,
    /// Tooltip.
    pub title: String,
    /// Where a click goes, if anywhere.
    pub href: Option<String>,
}

/// A point in time on a lane (an upcoming fire time).
#[derive(Debug, Clone)]
pub struct Marker {
    /// When, epoch ms. A marker past the axis' end is drawn at the end,
    /// pointing right.
    pub at_ms: i64,
    /// Tooltip.
    pub title: String,
}

/// The tick step for a range: the smallest round step giving at most
/// [`MAX_TICKS`] ticks (a day for anything longer).
pub fn tick_step(range_ms: i64) -> i64 {
    STEPS
        .iter()
        .copied()
        .find(|s| range_ms / s <= MAX_TICKS)
        .unwrap_or(86_400_000)
}

/// Tick instants: multiples of the step inside `[from, to]`.
pub fn ticks(from_ms: i64, to_ms: i64) -> Vec<i64> {
    let step = tick_step(to_ms - from_ms);
    let first = from_ms.div_euclid(step) * step
        + if from_ms.rem_euclid(step) == 0 {
            0
        } else {
            step
        };
    (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= to_ms)
        .collect()
}

fn tick_label(ms: i64, step: i64, zone: Option<Tz>) -> String {
    let Some(t) = Utc.timestamp_millis_opt(ms).single() else {
        return "-".to_owned();
    };
    let format = if step < 60_000 { "%H:%M:%S" } else { "%H:%M" };
    match zone {
        Some(tz) => t.with_timezone(&tz).format(format).to_string(),
        None => t.format(format).to_string(),
    }
}

/// Draws `lanes` on `axis`.
pub fn chart(axis: &Axis, lanes: &[Lane]) -> String {
    let (from, to) = (axis.from_ms, axis.to_ms.max(axis.from_ms + 1));
    let range = to - from;
    let x_of = |ms: i64| {
        LABEL_W + ((ms.clamp(from, to) - from) as i128 * CHART_W as i128 / range as i128) as i64
    };
    let axis_rows = if axis.zone.is_some() { 2 } else { 1 };
    let top = 6 + AXIS_ROW_H * axis_rows;
    let row_h = axis.row_h.max(8);
    let height = top + row_h * lanes.len() as i64 + 6;
    let width = LABEL_W + CHART_W + 12;
    let mut out = format!(
        "<svg class=\"gantt timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\">",
        esc(&axis.label)
    );
    // Axis: a label per row at the left, then the ticks with grid lines.
    let _ = write!(
        out,
        "<text class=\"axis\" x=\"4\" y=\"{AXIS_ROW_H}\">UTC</text>"
    );
    if let Some(tz) = axis.zone {
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"4\" y=\"{}\">{}</text>",
            AXIS_ROW_H * 2,
            esc(tz.name())
        );
    }
    let step = tick_step(range);
    for t in ticks(from, to) {
        let x = x_of(t);
        let _ = write!(
            out,
            "<line class=\"edge\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke-opacity=\"0.25\"/>\
             <text class=\"axis tick\" x=\"{x}\" y=\"{AXIS_ROW_H}\" text-anchor=\"middle\">{}</text>",
            top - 2,
            height - 4,
            esc(&tick_label(t, step, None))
        );
        if let Some(tz) = axis.zone {
            let _ = write!(
                out,
                "<text class=\"axis tick\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                AXIS_ROW_H * 2,
                esc(&tick_label(t, step, Some(tz)))
            );
        }
    }
    let open_end = axis.now_ms.unwrap_or(to);
    for (i, lane) in lanes.iter().enumerate() {
        let y = top + row_h * i as i64;
        let label = esc(&lane.label);
        let text = format!(
            "<text class=\"lane\" x=\"4\" y=\"{}\">{label}</text>",
            y + row_h - row_h / 4 - 1
        );
        match &lane.href {
            Some(href) => {
                let _ = write!(out, "<a href=\"{}\">{text}</a>", esc(href));
            }
            None => out.push_str(&text),
        }
        for bar in &lane.bars {
            let end = bar.end_ms.unwrap_or(open_end).max(bar.start_ms);
            if end < from || bar.start_ms > to {
                continue;
            }
            let x = x_of(bar.start_ms);
            let w = (x_of(end) - x).max(2);
            let rect = format!(
                "<rect class=\"st-{}\" x=\"{x}\" y=\"{}\" width=\"{w}\" height=\"{}\" rx=\"2\"><title>{}</title></rect>",
                esc(&bar.state),
                y + 2,
                row_h - 4,
                esc(&bar.title)
            );
            match &bar.href {
                Some(href) => {
                    let _ = write!(out, "<a href=\"{}\">{rect}</a>", esc(href));
                }
                None => out.push_str(&rect),
            }
        }
        for m in &lane.markers {
            if m.at_ms < from {
                continue;
            }
            let cy = y + row_h / 2;
            let shape = if m.at_ms > to {
                // Past the axis: an arrow at the right end.
                let x = LABEL_W + CHART_W;
                format!("M{},{} l8,5 l-8,5 z", x, cy - 5)
            } else {
                format!("M{},{} l-5,-7 h10 z", x_of(m.at_ms), cy + 3)
            };
            let _ = write!(
                out,
                "<path class=\"edge marker\" d=\"{shape}\" stroke-width=\"1.6\"><title>{}</title></path>",
                esc(&m.title)
            );
        }
    }
    if let Some(now) = axis.now_ms.filter(|n| (from..=to).contains(n)) {
        let x = x_of(now);
        let _ = write!(
            out,
            "<line class=\"edge now\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke-dasharray=\"4 3\"><title>now</title></line>",
            top - 2,
            height - 4
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn axis(from_ms: i64, to_ms: i64) -> Axis {
        Axis {
            label: "t".into(),
            from_ms,
            to_ms,
            zone: None,
            now_ms: None,
            row_h: 20,
        }
    }

    proptest! {
        /// Ticks lie inside the range on round steps, never too many.
        #[test]
        fn ticks_are_round_and_inside(from in 0i64..4_000_000_000_000, range in 1i64..200_000_000) {
            let t = ticks(from, from + range);
            let step = tick_step(range);
            prop_assert!(t.len() as i64 <= MAX_TICKS + 1);
            for x in &t {
                prop_assert!(*x >= from && *x <= from + range);
                prop_assert_eq!(x.rem_euclid(step), 0);
            }
        }
    }

    #[test]
    fn bars_sit_where_their_times_are_and_are_clipped() {
        let lane = Lane {
            label: "<dag>".into(),
            href: Some("/dags/%3Cdag%3E?a=1&b=2".into()),
            bars: vec![
                Bar {
                    state: "succeeded".into(),
                    start_ms: 0,
                    end_ms: Some(500),
                    title: "<r1>".into(),
                    href: Some("/runs/r1".into()),
                },
                Bar {
                    state: "running".into(),
                    start_ms: -500,
                    end_ms: None,
                    title: "r2".into(),
                    href: None,
                },
                Bar {
                    state: "failed".into(),
                    start_ms: 2_000,
                    end_ms: Some(3_000),
                    title: "after".into(),
                    href: None,
                },
            ],
            markers: vec![Marker {
                at_ms: 5_000,
                title: "next fire".into(),
            }],
        };
        let mut a = axis(0, 1_000);
        a.now_ms = Some(750);
        let svg = chart(&a, &[lane]);
        // First half of the axis; the open bar runs from the left edge to now.
        assert!(
            svg.contains(&format!(
                "class=\"st-succeeded\" x=\"{LABEL_W}\" y=\"22\" width=\"{}\"",
                CHART_W / 2
            )),
            "{svg}"
        );
        assert!(
            svg.contains(&format!(
                "class=\"st-running\" x=\"{LABEL_W}\" y=\"22\" width=\"{}\"",
                CHART_W * 3 / 4
            )),
            "{svg}"
        );
        assert!(
            !svg.contains("st-failed"),
            "a bar after the axis is not drawn: {svg}"
        );
        assert!(svg.contains("<a href=\"/runs/r1\"><rect"), "{svg}");
        assert!(
            svg.contains("&lt;dag&gt;") && svg.contains("&lt;r1&gt;") && !svg.contains("<dag>"),
            "{svg}"
        );
        assert!(
            svg.contains("href=\"/dags/%3Cdag%3E?a=1&amp;b=2\""),
            "{svg}"
        );
        assert!(
            svg.contains("<title>next fire</title>"),
            "a marker past the end is still drawn: {svg}"
        );
        assert!(svg.contains("class=\"edge now\""), "{svg}");
    }

    #[test]
    fn the_axis_reads_in_utc_and_the_zone() {
        // 2024-03-30 22:00Z .. 2024-03-31 04:00Z crosses the Paris DST change.
        let from = 1_711_836_000_000;
        let mut a = axis(from, from + 6 * 3_600_000);
        a.zone = Some(chrono_tz::Europe::Paris);
        let svg = chart(&a, &[]);
        let row = |y: i64| -> Vec<String> {
            let marker = format!("y=\"{y}\" text-anchor=\"middle\">");
            svg.split(&marker)
                .skip(1)
                .filter_map(|s| s.split('<').next())
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            row(AXIS_ROW_H)[..7],
            ["22:00", "22:30", "23:00", "23:30", "00:00", "00:30", "01:00"]
        );
        // 01:00Z is 03:00 CEST: the clocks jumped from 02:00 to 03:00.
        assert_eq!(
            row(AXIS_ROW_H * 2)[..8],
            ["23:00", "23:30", "00:00", "00:30", "01:00", "01:30", "03:00", "03:30"]
        );
        assert!(svg.contains(">Europe/Paris</text>"), "{svg}");
        assert_eq!(tick_step(6 * 3_600_000), 1_800_000);
    }
}
