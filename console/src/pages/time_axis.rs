//! The time axis shared by every chart of the pages (the overview's
//! timeline, the run's job Gantt, the per-job item attempt timeline): tick
//! instants on round steps (10 ms … 1 day), so labels read as times and not
//! as arbitrary offsets, and the SVG of the tick row.
//!
//! The first row of labels is written in UTC with each tick's instant in
//! `data-ms` and its format in `data-fmt` (`hm`, `hms`, `hmsf`), and the
//! row's name (`UTC`) has the class `tz-name`: `console.js` rewrites both
//! in the time zone the operator picked (UTC, the DAG's zone, the
//! browser's). A second row in one fixed zone (a DAG's) can be added; it is
//! written by the server only.

use super::html::esc;
use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use std::fmt::Write as _;

/// Round tick steps, ms: the smallest that gives at most [`MAX_TICKS`].
const STEPS: &[i64] = &[
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000,
    300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000,
    86_400_000,
];

/// Most ticks on an axis (one more when both ends fall on a step): labels
/// of `HH:MM:SS.mmm` stay apart on a 900 px axis.
pub const MAX_TICKS: i64 = 12;

/// Height of one row of tick labels, px.
pub const ROW_H: i64 = 14;

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

/// How a tick of `step` is written: `hm` (`02:30`), `hms` (`02:30:15`) or
/// `hmsf` (`02:30:15.250`). `console.js` writes the same formats.
pub fn tick_format(step: i64) -> &'static str {
    if step < 1_000 {
        "hmsf"
    } else if step < 60_000 {
        "hms"
    } else {
        "hm"
    }
}

/// The label of the tick at `ms` for a step of `step`, in `zone` (UTC when
/// `None`).
pub fn tick_label(ms: i64, step: i64, zone: Option<Tz>) -> String {
    let Some(t) = Utc.timestamp_millis_opt(ms).single() else {
        return "-".to_owned();
    };
    let format = match tick_format(step) {
        "hmsf" => "%H:%M:%S%.3f",
        "hms" => "%H:%M:%S",
        _ => "%H:%M",
    };
    match zone {
        Some(tz) => t.with_timezone(&tz).format(format).to_string(),
        None => t.format(format).to_string(),
    }
}

/// Where the tick rows of a chart go.
#[derive(Debug, Clone, Copy)]
pub struct TickRows {
    /// Left end of the axis, epoch ms.
    pub from_ms: i64,
    /// Right end, epoch ms (after `from_ms`).
    pub to_ms: i64,
    /// A second row of labels in this zone.
    pub zone: Option<Tz>,
    /// Where the grid lines start and end, px.
    pub grid: (i64, i64),
    /// Where the rows' names go, px from the left.
    pub name_x: i64,
}

impl TickRows {
    /// Number of label rows (1, or 2 with a zone).
    pub fn rows(&self) -> i64 {
        if self.zone.is_some() {
            2
        } else {
            1
        }
    }
}

/// Writes the rows' names, a grid line per tick and the tick labels into
/// `out`; `x_of` places an instant on the picture.
pub fn draw(out: &mut String, rows: &TickRows, x_of: impl Fn(i64) -> i64) {
    let _ = write!(
        out,
        "<text class=\"axis tz-name\" x=\"{}\" y=\"{ROW_H}\">UTC</text>",
        rows.name_x
    );
    if let Some(tz) = rows.zone {
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"{}\" y=\"{}\">{}</text>",
            rows.name_x,
            ROW_H * 2,
            esc(tz.name())
        );
    }
    let step = tick_step(rows.to_ms - rows.from_ms);
    let fmt = tick_format(step);
    for t in ticks(rows.from_ms, rows.to_ms) {
        let x = x_of(t);
        let _ = write!(
            out,
            "<line class=\"edge\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke-opacity=\"0.25\"/>\
             <text class=\"axis tick\" x=\"{x}\" y=\"{ROW_H}\" text-anchor=\"middle\" data-ms=\"{t}\" data-fmt=\"{fmt}\">{}</text>",
            rows.grid.0,
            rows.grid.1,
            esc(&tick_label(t, step, None))
        );
        if let Some(tz) = rows.zone {
            let _ = write!(
                out,
                "<text class=\"axis tick\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                ROW_H * 2,
                esc(&tick_label(t, step, Some(tz)))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Ticks lie inside the range on round steps, never too many, and
        /// at least two for any range of 20 ms or more.
        #[test]
        fn ticks_are_round_and_inside(from in 0i64..4_000_000_000_000, range in 1i64..200_000_000) {
            let t = ticks(from, from + range);
            let step = tick_step(range);
            prop_assert!(t.len() as i64 <= MAX_TICKS + 1);
            if range >= 20 {
                prop_assert!(t.len() >= 2, "{} ticks for {range} ms", t.len());
            }
            for x in &t {
                prop_assert!(*x >= from && *x <= from + range);
                prop_assert_eq!(x.rem_euclid(step), 0);
            }
            for w in t.windows(2) {
                prop_assert_eq!(w[1] - w[0], step);
            }
        }
    }

    #[test]
    fn labels_read_as_times_at_the_steps_precision() {
        // 2024-03-31 01:59:58.250Z
        let at = 1_711_850_398_250;
        assert_eq!(tick_label(at, 250, None), "01:59:58.250");
        assert_eq!(tick_label(at - 250, 2_000, None), "01:59:58");
        assert_eq!(tick_label(at - 58_250, 300_000, None), "01:59");
        // The same instant in Paris, after the DST jump (02:00Z is 04:00 CEST).
        assert_eq!(
            tick_label(at + 1_750, 60_000, Some(chrono_tz::Europe::Paris)),
            "04:00"
        );
        assert_eq!(tick_step(4_000), 500);
        assert_eq!(tick_step(60_000), 5_000);
        assert_eq!(tick_step(36 * 3_600_000), 10_800_000);
        assert_eq!(tick_label(i64::MAX, 1_000, None), "-");
    }

    #[test]
    fn the_first_row_carries_instants_for_the_page_script() {
        let rows = TickRows {
            from_ms: 0,
            to_ms: 10_000,
            zone: None,
            grid: (20, 80),
            name_x: 4,
        };
        let mut out = String::new();
        draw(&mut out, &rows, |ms| 100 + ms / 20);
        assert!(
            out.contains("<text class=\"axis tz-name\" x=\"4\" y=\"14\">UTC</text>"),
            "{out}"
        );
        // Eleven ticks, one a second from 0 to 10 s, each with its grid line.
        assert_eq!(out.matches("<line class=\"edge\"").count(), 11, "{out}");
        assert!(
            out.contains("x=\"200\" y=\"14\" text-anchor=\"middle\" data-ms=\"2000\" data-fmt=\"hms\">00:00:02</text>"),
            "{out}"
        );
        assert!(
            out.contains("x1=\"250\" y1=\"20\" x2=\"250\" y2=\"80\""),
            "{out}"
        );
    }
}
