//! The bounded tail of one item attempt's log: the last
//! [`MAX_TAIL_BYTES`] of its lines, with a marker line at the top saying
//! how much was dropped before them.
//!
//! The tail travels in the attempt's result batch, and a batch holds many
//! items under etcd's request limit, so the bound is hard: whatever a
//! handler logs, [`LogTail::render`] is at most `MAX_TAIL_BYTES` plus the
//! marker line. Cuts happen only at UTF-8 character boundaries.
//!
//! This module is pure bookkeeping (no clock, no I/O): [`ItemLog`] adds the
//! timestamp and level, [`crate::item_log`] feeds it.

use crate::clock::now_ms;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Most bytes of log lines kept per attempt (newlines included).
pub const MAX_TAIL_BYTES: usize = 64 * 1024;
/// Longest single line kept; the rest of a longer line is cut, so that one
/// huge message cannot push out every line before it.
pub(crate) const MAX_LINE_BYTES: usize = 8 * 1024;
/// Appended to a line that was cut at [`MAX_LINE_BYTES`].
const LINE_CUT: &str = " … (line truncated)";

/// Severity of an item log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// Normal progress.
    Info,
    /// Detail for debugging.
    Debug,
    /// Very fine detail.
    Trace,
}

impl LogLevel {
    /// The level as written in a log line (`INFO`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARN",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
            LogLevel::Trace => "TRACE",
        }
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<tracing::Level> for LogLevel {
    fn from(level: tracing::Level) -> Self {
        match level {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            _ => LogLevel::Trace,
        }
    }
}

/// The last lines of a log, at most `cap` bytes of them.
#[derive(Debug)]
pub(crate) struct LogTail {
    cap: usize,
    lines: VecDeque<String>,
    /// Bytes of `lines`, one newline each included.
    bytes: usize,
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl Default for LogTail {
    fn default() -> Self {
        Self::new(MAX_TAIL_BYTES)
    }
}

impl LogTail {
    /// An empty tail keeping at most `cap` bytes (at least 2).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(2),
            lines: VecDeque::new(),
            bytes: 0,
            dropped_lines: 0,
            dropped_bytes: 0,
        }
    }

    /// Appends one line (a newline inside it is kept as part of the line),
    /// dropping the oldest lines to stay within the bound.
    pub(crate) fn push(&mut self, line: &str) {
        let limit = MAX_LINE_BYTES.min(self.cap - 1);
        let line = if line.len() > limit {
            let keep = floor_char_boundary(line, limit.saturating_sub(LINE_CUT.len()));
            let mut cut = line[..keep].to_owned();
            if cut.len() + LINE_CUT.len() <= limit {
                cut.push_str(LINE_CUT);
            }
            cut
        } else {
            line.to_owned()
        };
        let size = line.len() + 1;
        while self.bytes + size > self.cap {
            let Some(old) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= old.len() + 1;
            self.dropped_lines += 1;
            self.dropped_bytes += (old.len() + 1) as u64;
        }
        self.bytes += size;
        self.lines.push_back(line);
    }

    /// The tail as text, one line per line, with the truncation marker
    /// first when lines were dropped; `None` when nothing was logged.
    pub(crate) fn render(&self) -> Option<String> {
        if self.lines.is_empty() && self.dropped_lines == 0 {
            return None;
        }
        let mut out = String::with_capacity(self.bytes + 120);
        if self.dropped_lines > 0 {
            out.push_str(&truncation_marker(
                self.dropped_lines,
                self.dropped_bytes,
                self.cap,
            ));
            out.push('\n');
        }
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        Some(out)
    }
}

/// The first line of a tail that lost its beginning.
pub(crate) fn truncation_marker(lines: u64, bytes: u64, cap: usize) -> String {
    format!(
        "[… {lines} earlier line(s), {bytes} bytes, dropped: the attempt log keeps its last {} KiB]",
        cap / 1024
    )
}

/// The largest index `<= at` that is a char boundary of `s`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    let mut i = at;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One attempt's log, shared by its context, the tracing layer and the
/// item task that ships it. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct ItemLog(Arc<Mutex<LogTail>>);

impl ItemLog {
    /// Appends `text` as `TIMESTAMP LEVEL text`; the lines of a
    /// multi-line text after the first are indented under it.
    pub(crate) fn write(&self, level: LogLevel, text: &str) {
        let at = chrono::DateTime::from_timestamp_millis(now_ms())
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default();
        let Ok(mut tail) = self.0.lock() else {
            return;
        };
        let mut lines = text.trim_end().lines();
        let first = lines.next().unwrap_or("");
        tail.push(&format!("{at} {:<5} {first}", level.as_str()));
        for more in lines {
            tail.push(&format!("    {more}"));
        }
    }

    /// The tail as text; `None` when nothing was logged.
    pub(crate) fn render(&self) -> Option<String> {
        self.0.lock().ok().and_then(|tail| tail.render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_every_line_while_under_the_bound() {
        let mut tail = LogTail::new(100);
        tail.push("one");
        tail.push("two");
        assert_eq!(tail.render().as_deref(), Some("one\ntwo\n"));
        assert_eq!(LogTail::new(100).render(), None);
    }

    #[test]
    fn drops_the_oldest_lines_and_says_so_at_the_top() {
        let mut tail = LogTail::new(1024);
        for i in 0..1000 {
            tail.push(&format!("line {i:04}"));
        }
        let text = tail.render().unwrap();
        let mut lines = text.lines();
        let marker = lines.next().unwrap();
        assert!(marker.starts_with("[… "), "{marker}");
        assert!(marker.contains("earlier line(s)"), "{marker}");
        let kept: Vec<&str> = lines.collect();
        assert_eq!(kept.last(), Some(&"line 0999"));
        // Each kept line is 10 bytes: 102 of them fit in 1024.
        assert_eq!(kept.len(), 102);
        assert!(
            marker.contains(&format!("{} earlier", 1000 - 102)),
            "{marker}"
        );
        assert!(text.len() <= 1024 + marker.len() + 1);
    }

    #[test]
    fn the_real_bound_is_64_kib_plus_the_marker() {
        let mut tail = LogTail::default();
        let line = "x".repeat(999);
        for _ in 0..200 {
            tail.push(&line);
        }
        let text = tail.render().unwrap();
        let marker_len = text.find('\n').unwrap() + 1;
        assert_eq!(
            text.len() - marker_len,
            65 * 1000,
            "65 lines of 1000 bytes fit"
        );
        assert!(text.len() - marker_len <= MAX_TAIL_BYTES);
    }

    #[test]
    fn a_huge_line_is_cut_at_a_char_boundary_not_evicting_everything() {
        let mut tail = LogTail::default();
        tail.push("before");
        // 3-byte characters: MAX_LINE_BYTES is unlikely to fall on a boundary.
        tail.push(&"€".repeat(MAX_LINE_BYTES));
        let text = tail.render().unwrap();
        assert!(text.starts_with("before\n"), "the earlier line stays");
        let cut = text.lines().nth(1).unwrap();
        assert!(cut.ends_with(LINE_CUT), "the cut is visible");
        assert!(cut.len() <= MAX_LINE_BYTES);
    }

    #[test]
    fn item_log_lines_have_time_and_level_and_indent_continuations() {
        let log = ItemLog::default();
        assert_eq!(log.render(), None);
        log.write(LogLevel::Warn, "disk nearly full\nsecond line\n");
        let text = log.render().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with(" WARN  disk nearly full"), "{text}");
        assert!(lines[0].starts_with("20"), "timestamp first: {text}");
        assert_eq!(lines[1], "    second line");
    }

    proptest! {
        // Whatever is logged (any Unicode, any sizes), the tail is valid
        // UTF-8 by construction, stays within its bound, and ends with the
        // last line pushed (cut or not).
        #[test]
        fn the_bound_holds_for_any_lines(
            lines in proptest::collection::vec("\\PC{0,300}", 1..200),
            cap in 64usize..4096,
        ) {
            let mut tail = LogTail::new(cap);
            for l in &lines {
                tail.push(l);
            }
            let text = tail.render().unwrap();
            let body = if text.starts_with("[… ") {
                &text[text.find('\n').unwrap() + 1..]
            } else {
                &text[..]
            };
            prop_assert!(body.len() <= cap, "{} > {cap}", body.len());
            let last = lines.last().unwrap();
            if last.len() < cap.min(MAX_LINE_BYTES) {
                let want = format!("{}\n", last);
                prop_assert!(body.ends_with(&want));
            }
        }
    }
}
