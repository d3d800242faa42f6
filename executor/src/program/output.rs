//! A program's stdout and stderr: read line by line (each line capped, so a
//! program printing without newlines cannot exhaust memory), logged with the
//! item's fields, `::progress DONE/TOTAL message` lines turned into progress
//! reports, and the last stderr line kept as the error of a failure.

use crate::context::ItemContext;
use crate::log_tail::LogLevel;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Longest line kept; the rest of a longer line is dropped.
pub(crate) const MAX_LINE: usize = 4096;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A progress report parsed from `::progress DONE/TOTAL message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Progress {
    pub done: u64,
    pub total: u64,
    pub message: String,
}

/// Parses a `::progress` line; `None` for anything else (including a
/// malformed progress line, which is then logged as ordinary output).
pub(crate) fn parse_progress(line: &str) -> Option<Progress> {
    let rest = line.strip_prefix("::progress ")?.trim_start();
    let (counts, message) = match rest.split_once(char::is_whitespace) {
        Some((counts, message)) => (counts, message.trim()),
        None => (rest, ""),
    };
    let (done, total) = counts.split_once('/')?;
    Some(Progress {
        done: done.parse().ok()?,
        total: total.parse().ok()?,
        message: message.to_owned(),
    })
}

/// Reads `reader` to its end; returns the last non-empty line.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    reader: R,
    stream: Stream,
    ctx: ItemContext,
) -> Option<String> {
    let mut reader = BufReader::new(reader);
    let mut line: Vec<u8> = Vec::new();
    let mut last = None;
    loop {
        let (consumed, complete) = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    take_capped(&mut line, &buf[..i]);
                    (i + 1, true)
                }
                None => {
                    take_capped(&mut line, buf);
                    (buf.len(), false)
                }
            },
        };
        reader.consume(consumed);
        if complete {
            handle(&line, stream, &ctx, &mut last);
            line.clear();
        }
    }
    if !line.is_empty() {
        handle(&line, stream, &ctx, &mut last);
    }
    last
}

fn take_capped(line: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_LINE.saturating_sub(line.len());
    line.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

fn handle(raw: &[u8], stream: Stream, ctx: &ItemContext, last: &mut Option<String>) {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches('\r');
    if stream == Stream::Stdout {
        if let Some(p) = parse_progress(text) {
            ctx.progress(p.done, p.total, p.message);
            return;
        }
    }
    // Into the attempt log directly (with or without an `ItemLogLayer`,
    // which skips this target), and to the process log.
    let level = match stream {
        Stream::Stdout => LogLevel::Info,
        Stream::Stderr => LogLevel::Warn,
    };
    ctx.item_log
        .write(level, &format!("[{}] {text}", stream.as_str()));
    tracing::info!(target: "nightshift::program", stream = stream.as_str(), "{text}");
    if !text.trim().is_empty() {
        *last = Some(text.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_progress_lines() {
        assert_eq!(
            parse_progress("::progress 3/10 posting accounts"),
            Some(Progress {
                done: 3,
                total: 10,
                message: "posting accounts".into()
            })
        );
        assert_eq!(
            parse_progress("::progress 0/0"),
            Some(Progress {
                done: 0,
                total: 0,
                message: String::new()
            })
        );
        for bad in [
            "::progress",
            "::progress x/1",
            "::progress 1-2 m",
            "progress 1/2",
            "::progress -1/2",
        ] {
            assert_eq!(parse_progress(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn keeps_the_last_line_caps_long_ones_and_reports_progress() {
        use crate::testing::{run_item, TestItem};
        use crate::{job_fn, ItemOutcome};
        let long = "x".repeat(MAX_LINE * 3);
        let stdout = format!("::progress 1/4 started\nfirst\n{long}\n\nlast words\r\n");
        let stderr = format!("a\n{long}");
        let lasts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = lasts.clone();
        let job = job_fn(move |ctx: ItemContext| {
            let (stdout, stderr, seen) = (stdout.clone(), stderr.clone(), seen.clone());
            async move {
                let a = pump(stdout.as_bytes(), Stream::Stdout, ctx.clone()).await;
                let b = pump(stderr.as_bytes(), Stream::Stderr, ctx).await;
                if let Ok(mut seen) = seen.lock() {
                    seen.extend([a, b]);
                }
                Ok(ItemOutcome::Succeeded)
            }
        });
        let run = run_item(&job, TestItem::new(0)).await;
        let lasts = lasts.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(lasts[0].as_deref(), Some("last words"));
        assert_eq!(lasts[1].as_ref().map(String::len), Some(MAX_LINE));
        assert_eq!(run.progress.len(), 1);
        assert_eq!((run.progress[0].done, run.progress[0].total), (1, 4));
        // Every line but the progress report is in the attempt log.
        let log = run.log.unwrap_or_default();
        assert!(log.contains("INFO  [stdout] first\n"), "{log}");
        assert!(log.contains("INFO  [stdout] last words\n"), "{log}");
        assert!(log.contains("WARN  [stderr] a\n"), "{log}");
        assert!(!log.contains("::progress"), "{log}");
    }
}
