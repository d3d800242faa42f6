//! "Running now": every item in flight across runs, stalest first, so that
//! a stuck item heads the list instead of hiding among queued ones. From
//! the live assignments ([`crate::live_items::running_items`]).

use super::html::{esc, url};
use crate::error::ApiError;
use crate::live_items::{running_items, RunningItem};
use crate::time::{duration, now_ms};
use crate::AppState;
use std::fmt::Write as _;

/// Items listed; the rest are counted.
pub const MAX_LISTED: usize = 25;

/// An item quiet (no progress report, no hand-out) for longer than this is
/// marked `stale`. Generous: handlers that never report progress are quiet
/// for their whole run.
pub const STALE_AFTER_MS: i64 = 5 * 60_000;

/// `quiet 12s` (and whether it is stale), or `-` when nothing is known.
pub fn quiet_for(last_seen_ms: Option<i64>, now_ms: i64) -> (String, bool) {
    match last_seen_ms {
        Some(at) => {
            let age = (now_ms - at).max(0);
            (format!("{} ago", duration(age)), age > STALE_AFTER_MS)
        }
        None => ("-".to_owned(), false),
    }
}

fn row(r: &RunningItem, now: i64) -> String {
    let (quiet, stale) = quiet_for(r.last_seen_ms, now);
    let progress = r.progress.as_ref().map_or_else(String::new, |p| {
        let mut t = format!("{}/{}", p.done, p.total);
        if let Some(m) = &p.message {
            let _ = write!(t, " {m}");
        }
        t
    });
    format!(
        "<tr class=\"running-item{}\"><td><a href=\"/runs/{}?job={}\">{}</a></td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        if stale { " stale" } else { "" },
        url(r.run.as_str()),
        url(r.job.as_str()),
        esc(r.run.as_str()),
        esc(r.job.as_str()),
        r.item,
        esc(r.executor.as_str()),
        r.attempt,
        esc(&quiet),
        esc(&progress)
    )
}

/// The section's HTML.
pub async fn section(state: &AppState) -> Result<String, ApiError> {
    let items = running_items(state).await?;
    if items.is_empty() {
        return Ok("<p class=\"sub\">No item is running.</p>".to_owned());
    }
    let now = now_ms();
    let mut rows = String::new();
    for r in items.iter().take(MAX_LISTED) {
        rows.push_str(&row(r, now));
    }
    let more = if items.len() > MAX_LISTED {
        format!(
            "<p class=\"sub\">and {} more (the {MAX_LISTED} quiet the longest are listed)</p>",
            items.len() - MAX_LISTED
        )
    } else {
        String::new()
    };
    Ok(format!(
        "<p class=\"sub\">{} item(s) in flight, quiet the longest first.</p><div class=\"scroll\"><table id=\"running-items\">\
         <thead><tr><th>Run</th><th>Job</th><th>Item</th><th>Executor</th><th>Attempt</th>\
         <th>Last progress</th><th>Progress</th></tr></thead><tbody>{rows}</tbody></table></div>{more}",
        items.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_quiet_item_is_stale() {
        assert_eq!(quiet_for(None, 10), ("-".to_owned(), false));
        assert!(!quiet_for(Some(0), STALE_AFTER_MS).1);
        assert!(quiet_for(Some(0), STALE_AFTER_MS + 1).1);
        assert!(!quiet_for(Some(20), 10).1, "a clock ahead is not stale");
    }
}
