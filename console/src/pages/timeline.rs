//! A lane chart in inline SVG: one row per lane (a DAG, an item), any
//! number of bars per row (runs, attempts) on a shared time axis, and
//! point markers (next fire times). The overview's "tonight" timeline, the
//! run page's job Gantt and its per-job item attempt timeline are all drawn
//! with it.
//!
//! The axis ([`super::time_axis`]) is labelled in UTC (rewritten by the
//! page script in the zone the operator picked) and, when given, in one
//! more time zone (a DAG's). Bars are at least [`MIN_BAR_W`] wide, and
//! failures and newer bars are drawn over the rest ([`draw_order`]), so
//! that a short failed run on a long axis is seen. Colours come from the stylesheet's
//! `st-*` classes, like every other state on the pages; every label, title
//! and link is escaped here, so callers pass plain text.

use super::html::esc;
use super::time_axis::{self, TickRows};
use chrono_tz::Tz;
use std::fmt::Write as _;

/// Width of the lane label column.
const LABEL_W: i64 = 170;
/// Width of the time axis.
const CHART_W: i64 = 900;
/// Narrowest bar, px: a five-second run on a 36-hour axis is still seen
/// (and clicked).
pub const MIN_BAR_W: i64 = 6;

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

/// Puts the lanes holding a failed bar first, keeping the order within
/// each group: what went wrong tonight is the first row an operator reads.
pub fn failing_lanes_first(lanes: &mut [Lane]) {
    lanes.sort_by_key(|lane| !lane.bars.iter().any(|b| b.state == "failed"));
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

/// Whether a bar shows a failure (drawn over the others).
fn is_failure(state: &str) -> bool {
    matches!(state, "failed" | "upstream_failed" | "timed_out")
}

/// The order bars are drawn in, later ones on top: failures over the
/// rest, and within each, newer (later start) over older; so where bars
/// overlap — a short failed run inside a long one, bars widened to
/// [`MIN_BAR_W`] — the failure and the newest run are the ones seen.
pub fn draw_order(bars: &[Bar]) -> Vec<&Bar> {
    let mut out: Vec<&Bar> = bars.iter().collect();
    out.sort_by_key(|b| (is_failure(&b.state), b.start_ms));
    out
}

/// Draws `lanes` on `axis`.
pub fn chart(axis: &Axis, lanes: &[Lane]) -> String {
    let (from, to) = (axis.from_ms, axis.to_ms.max(axis.from_ms + 1));
    let range = to - from;
    let x_of = |ms: i64| {
        LABEL_W + ((ms.clamp(from, to) - from) as i128 * CHART_W as i128 / range as i128) as i64
    };
    let mut rows = TickRows {
        from_ms: from,
        to_ms: to,
        zone: axis.zone,
        grid: (0, 0),
        name_x: 4,
    };
    let top = 6 + time_axis::ROW_H * rows.rows();
    let row_h = axis.row_h.max(8);
    let height = top + row_h * lanes.len() as i64 + 6;
    // Room right of the axis for half a tick label and an arrow marker.
    let width = LABEL_W + CHART_W + 30;
    let mut out = format!(
        "<svg class=\"gantt timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\">",
        esc(&axis.label)
    );
    // Axis: a name per label row at the left, then the ticks with grid lines.
    rows.grid = (top - 2, height - 4);
    time_axis::draw(&mut out, &rows, x_of);
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
        for bar in draw_order(&lane.bars) {
            let end = bar.end_ms.unwrap_or(open_end).max(bar.start_ms);
            if end < from || bar.start_ms > to {
                continue;
            }
            let x = x_of(bar.start_ms);
            // Widened bars near the right end grow leftwards.
            let w = (x_of(end) - x).max(MIN_BAR_W);
            let x = x.min(LABEL_W + CHART_W - w);
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
    use super::time_axis::{tick_step, ROW_H};
    use super::*;

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

    fn bar(state: &str, start_ms: i64, end_ms: i64) -> Bar {
        Bar {
            state: state.into(),
            start_ms,
            end_ms: Some(end_ms),
            title: format!("{state} {start_ms}"),
            href: None,
        }
    }

    #[test]
    fn failures_and_newer_bars_are_drawn_on_top() {
        let bars = vec![
            bar("failed", 100, 200),
            bar("succeeded", 300, 400),
            bar("succeeded", 0, 1_000),
            bar("upstream_failed", 50, 60),
            bar("running", 500, 600),
        ];
        let order: Vec<String> = draw_order(&bars).iter().map(|b| b.title.clone()).collect();
        assert_eq!(
            order,
            [
                "succeeded 0",
                "succeeded 300",
                "running 500",
                "upstream_failed 50",
                "failed 100"
            ]
        );
        // In the SVG too: later in the document is on top.
        let lane = Lane {
            label: "d".into(),
            bars,
            ..Lane::default()
        };
        let svg = chart(&axis(0, 1_000), &[lane]);
        let at = |t: &str| svg.find(&format!("<title>{t}</title>")).unwrap();
        assert!(at("succeeded 0") < at("succeeded 300"));
        assert!(at("running 500") < at("failed 100"));
    }

    #[test]
    fn a_five_second_run_on_a_36_hour_axis_is_still_seen() {
        let hour = 3_600_000;
        let lane = Lane {
            label: "d".into(),
            bars: vec![
                bar("failed", 10 * hour, 10 * hour + 5_000),
                // Ends at the axis' right end: widened leftwards.
                bar("succeeded", 36 * hour - 1_000, 36 * hour),
            ],
            ..Lane::default()
        };
        let svg = chart(&axis(0, 36 * hour), &[lane]);
        let x = LABEL_W + CHART_W * 10 / 36;
        assert!(
            svg.contains(&format!(
                "class=\"st-failed\" x=\"{x}\" y=\"22\" width=\"{MIN_BAR_W}\""
            )),
            "{svg}"
        );
        assert!(
            svg.contains(&format!(
                "class=\"st-succeeded\" x=\"{}\" y=\"22\" width=\"{MIN_BAR_W}\"",
                LABEL_W + CHART_W - MIN_BAR_W
            )),
            "{svg}"
        );
    }

    #[test]
    fn the_axis_reads_in_utc_and_the_zone() {
        // 2024-03-30 22:00Z .. 2024-03-31 04:00Z crosses the Paris DST change.
        let from = 1_711_836_000_000;
        let mut a = axis(from, from + 6 * 3_600_000);
        a.zone = Some(chrono_tz::Europe::Paris);
        let svg = chart(&a, &[]);
        let row = |y: i64| -> Vec<String> {
            let marker = format!("y=\"{y}\" text-anchor=\"middle\"");
            svg.split(&marker)
                .skip(1)
                .filter_map(|s| s.split_once('>').and_then(|(_, s)| s.split('<').next()))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            row(ROW_H)[..7],
            ["22:00", "22:30", "23:00", "23:30", "00:00", "00:30", "01:00"]
        );
        // 01:00Z is 03:00 CEST: the clocks jumped from 02:00 to 03:00.
        assert_eq!(
            row(ROW_H * 2)[..8],
            ["23:00", "23:30", "00:00", "00:30", "01:00", "01:30", "03:00", "03:30"]
        );
        assert!(svg.contains(">Europe/Paris</text>"), "{svg}");
        assert_eq!(tick_step(6 * 3_600_000), 1_800_000);
    }

    #[test]
    fn lanes_with_a_failure_come_first_in_their_order() {
        let lane = |label: &str, states: &[&str]| Lane {
            label: label.to_owned(),
            bars: states
                .iter()
                .map(|st| Bar {
                    state: (*st).to_owned(),
                    start_ms: 0,
                    end_ms: Some(1),
                    title: String::new(),
                    href: None,
                })
                .collect(),
            ..Lane::default()
        };
        let mut lanes = vec![
            lane("a", &["succeeded"]),
            lane("b", &["succeeded", "failed"]),
            lane("c", &[]),
            lane("d", &["failed"]),
        ];
        failing_lanes_first(&mut lanes);
        let order: Vec<&str> = lanes.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(order, ["b", "d", "a", "c"]);
    }
}
