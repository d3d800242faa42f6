//! The run page zoomed into one job: its items' attempts on a time axis,
//! one row per item that has started, each attempt a bar coloured by its
//! outcome with the executor, times and error in its tooltip.
//!
//! A job can have 100,000 items, so at most [`MAX_ROWS`] rows are drawn
//! per page (`?job=NAME&offset=N` pages on); the axis spans the attempts of
//! the rows shown, so a page stays readable however long the job ran.

use super::html::{esc, url};
use super::timeline::{chart, Axis, Bar, Lane};
use crate::api::items::{AttemptView, ItemView};
use crate::time::{duration, utc};
use std::fmt::Write as _;

/// Most item rows drawn on one page.
pub const MAX_ROWS: usize = 200;

/// Longest error text shown in a tooltip; longer ones are cut (the item
/// detail panel and the API have them whole).
const MAX_ERROR_CHARS: usize = 200;

/// The colour class of an attempt: the stylesheet's item states, with the
/// attempts that ended without an outcome of their own (the executor was
/// lost, or a newer owner fenced it) in the warning colour.
pub fn outcome_class(outcome: Option<&str>) -> &'static str {
    match outcome {
        None => "running",
        Some("succeeded") => "succeeded",
        Some("failed" | "timed_out") => "failed",
        Some("cancelled") => "cancelled",
        Some(_) => "warning",
    }
}

fn tooltip(item: u32, a: &AttemptView, now_ms: i64) -> String {
    let outcome = a.outcome.as_deref().unwrap_or("running");
    let took = duration(a.ended_at_ms.unwrap_or(now_ms) - a.started_at_ms);
    let mut t = format!(
        "item {item} · attempt {} on {} · {outcome} · {took} · started {}",
        a.attempt,
        a.executor,
        utc(a.started_at_ms)
    );
    if let Some(from) = &a.moved_from {
        let _ = write!(t, " · moved from {from}");
    }
    if let Some(err) = &a.error {
        let cut: String = err.chars().take(MAX_ERROR_CHARS).collect();
        let more = if cut.len() < err.len() { "…" } else { "" };
        let _ = write!(t, " — {cut}{more}");
    }
    t
}

fn page_link(job: &str, offset: usize, text: &str) -> String {
    format!(
        "<a href=\"?job={}&amp;offset={offset}\">{text}</a>",
        url(job)
    )
}

/// The item timeline of `job` from its `items` (in item order), rows from
/// `offset` on; open attempts end at `now_ms`.
pub fn item_timeline(job: &str, items: &[ItemView], offset: usize, now_ms: i64) -> String {
    let started: Vec<&ItemView> = items.iter().filter(|i| !i.attempts.is_empty()).collect();
    let total = started.len();
    if total == 0 {
        // Attempts reach SQL when they end; items in flight are known from
        // their live assignment only.
        let running = items.iter().filter(|i| i.state == "running").count();
        if running > 0 {
            return format!(
                "<p class=\"sub\">{running} item(s) of {} running; attempts are drawn here once they end.</p>",
                esc(job)
            );
        }
        return format!(
            "<p class=\"sub\">No item of {} has started yet.</p>",
            esc(job)
        );
    }
    if offset >= total {
        return format!(
            "<p class=\"sub\">Only {total} items of {} have started. {}</p>",
            esc(job),
            page_link(job, 0, "First page")
        );
    }
    let rows = &started[offset..(offset + MAX_ROWS).min(total)];
    let attempts = || rows.iter().flat_map(|i| i.attempts.iter());
    let from = attempts().map(|a| a.started_at_ms).min().unwrap_or(now_ms);
    let to = attempts()
        .map(|a| a.ended_at_ms.unwrap_or(now_ms))
        .max()
        .unwrap_or(now_ms);
    let lanes: Vec<Lane> = rows
        .iter()
        .map(|i| Lane {
            label: format!("item {}", i.item),
            bars: i
                .attempts
                .iter()
                .map(|a| Bar {
                    state: outcome_class(a.outcome.as_deref()).to_owned(),
                    start_ms: a.started_at_ms,
                    end_ms: a.ended_at_ms,
                    title: tooltip(i.item, a, now_ms),
                    href: None,
                })
                .collect(),
            ..Lane::default()
        })
        .collect();
    let axis = Axis {
        label: format!("attempts of the items of {job}"),
        from_ms: from,
        to_ms: to,
        zone: None,
        now_ms: Some(now_ms),
        row_h: 14,
    };
    let mut note = format!(
        "<p class=\"sub\">showing {} of {total} started items (rows {} to {})",
        rows.len(),
        offset + 1,
        offset + rows.len()
    );
    if offset > 0 {
        let _ = write!(
            note,
            " · {}",
            page_link(job, offset.saturating_sub(MAX_ROWS), "← previous")
        );
    }
    if offset + rows.len() < total {
        let _ = write!(note, " · {}", page_link(job, offset + MAX_ROWS, "next →"));
    }
    note.push_str("</p>");
    let legend = [
        ("succeeded", "succeeded"),
        ("failed", "failed / timed out"),
        ("cancelled", "cancelled"),
        ("warning", "lost / fenced"),
        ("running", "running"),
    ]
    .iter()
    .map(|(class, text)| format!("<span class=\"badge st-{class}\">{text}</span>"))
    .collect::<Vec<_>>()
    .join(" ");
    format!("{note}<p>{legend}</p>{}", chart(&axis, &lanes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u32, attempts: Vec<AttemptView>) -> ItemView {
        ItemView {
            job: "j".into(),
            item: n,
            state: "running",
            executor: None,
            attempt: None,
            cancelling: false,
            last_progress_at_ms: None,
            last_progress_age_ms: None,
            attempts,
            progress: None,
            checkpoint: None,
        }
    }

    fn attempt(
        n: u32,
        executor: &str,
        start: i64,
        end: Option<i64>,
        outcome: Option<&str>,
    ) -> AttemptView {
        AttemptView {
            attempt: n,
            executor: executor.into(),
            fencing_token: 1,
            started_at_ms: start,
            ended_at_ms: end,
            outcome: outcome.map(str::to_owned),
            error: None,
            moved_from: None,
        }
    }

    #[test]
    fn attempts_are_bars_coloured_by_outcome_with_their_executor() {
        let mut lost = attempt(1, "e2", 0, Some(1_000), Some("lost"));
        lost.error = Some(format!("<b>{}", "x".repeat(500)));
        let items = vec![
            item(0, vec![attempt(1, "e1", 0, Some(2_000), Some("succeeded"))]),
            item(1, vec![]),
            item(2, vec![lost, attempt(2, "e1", 1_000, None, None)]),
        ];
        let html = item_timeline("j", &items, 0, 4_000);
        assert!(html.contains("showing 2 of 2 started items"), "{html}");
        // A time axis over the 4 s of attempts: a tick every half second.
        assert!(
            html.contains("data-ms=\"1000\" data-fmt=\"hmsf\">00:00:01.000</text>"),
            "{html}"
        );
        assert_eq!(html.matches("class=\"axis tick\"").count(), 9, "{html}");
        assert!(
            html.contains(">item 0</text>")
                && html.contains(">item 2</text>")
                && !html.contains(">item 1</text>"),
            "{html}"
        );
        assert!(
            html.contains("<title>item 0 · attempt 1 on e1 · succeeded · 2.0s"),
            "{html}"
        );
        assert!(
            html.contains("class=\"st-warning\""),
            "a lost attempt: {html}"
        );
        assert!(
            html.contains("<title>item 2 · attempt 2 on e1 · running · 3.0s"),
            "{html}"
        );
        assert!(
            html.contains("&lt;b&gt;") && !html.contains("<b>"),
            "errors are escaped: {html}"
        );
        assert!(
            !html.contains(&"x".repeat(201)) && html.contains("…"),
            "long errors are cut"
        );
    }

    #[test]
    fn rows_are_capped_and_paged() {
        let items: Vec<ItemView> = (0..450)
            .map(|n| item(n, vec![attempt(1, "e1", 0, Some(10), Some("failed"))]))
            .collect();
        let first = item_timeline("a&b", &items, 0, 100);
        assert_eq!(first.matches("class=\"st-failed\"").count(), MAX_ROWS);
        assert!(
            first.contains("showing 200 of 450 started items (rows 1 to 200)"),
            "{first}"
        );
        assert!(
            first.contains("href=\"?job=a%26b&amp;offset=200\">next →"),
            "{first}"
        );
        assert!(!first.contains("previous"));
        let last = item_timeline("a&b", &items, 400, 100);
        assert_eq!(last.matches("class=\"st-failed\"").count(), 50);
        assert!(
            last.contains(">item 400</text>")
                && last.contains(">item 449</text>")
                && !last.contains(">item 399</text>")
        );
        assert!(
            last.contains("offset=200\">← previous") && !last.contains("next →"),
            "{last}"
        );
        assert!(item_timeline("j", &items, 450, 100).contains("Only 450 items of j have started"));
        let mut in_flight = item(1, vec![]);
        in_flight.state = "running";
        assert!(item_timeline("j", &[in_flight], 0, 100)
            .contains("1 item(s) of j running; attempts are drawn here once they end"));
        let mut waiting = item(0, vec![]);
        waiting.state = "pending";
        assert!(item_timeline("j", &[waiting], 0, 100).contains("No item of j has started yet"));
    }
}
