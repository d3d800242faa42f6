//! Capturing an item attempt's log: [`ItemContext::log`] writes to it
//! directly, and [`ItemLogLayer`] copies the `tracing` events emitted inside
//! the item's span (the handler's own `tracing::info!` calls, the SDK's
//! "item failed" line, ...). The attempt's tail ([`crate::log_tail`]) is
//! shipped with its result when the attempt ends.
//!
//! The SDK does not install a global subscriber (that is the embedding
//! service's choice), so the layer is something the service adds to its
//! own: `tracing_subscriber::registry().with(fmt_layer).with(ItemLogLayer::new())`.
//! Without it, only [`ItemContext::log`] lines (and a program handler's
//! output) are captured.

use crate::context::ItemContext;
use crate::log_tail::{ItemLog, LogLevel};
use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Target of the process-log copy of a [`ItemContext::log`] line: the layer
/// skips it, the line being in the attempt log already.
pub(crate) const ECHO_TARGET: &str = "nightshift::item_log";
/// Target of a program handler's output lines, which it writes to the
/// attempt log itself (so that they are there without the layer too).
pub(crate) const PROGRAM_TARGET: &str = "nightshift::program";

impl ItemContext {
    /// Writes a line to this attempt's log, which is shipped with the
    /// item's result (the last 64 KiB of it, with a marker line when the
    /// beginning was dropped) and shown by the console, the API
    /// (`GET /api/v1/runs/{run}/jobs/{job}/items/{item}/attempts/{attempt}/log`)
    /// and `nightshift logs`. The log arrives when the attempt ends, not
    /// while it runs.
    ///
    /// The line is also emitted as a `tracing` event (target
    /// `nightshift::item_log`) so that it reaches the process log.
    /// `tracing` events inside the item (`tracing::info!(...)` in the
    /// handler) reach the attempt log too when the service's subscriber
    /// has an [`ItemLogLayer`].
    ///
    /// ```
    /// use nightshift_executor::{job_fn, ItemContext, ItemOutcome, LogLevel};
    /// let job = job_fn(|ctx: ItemContext| async move {
    ///     ctx.log(LogLevel::Info, format!("posting {} accounts", 12));
    ///     Ok(ItemOutcome::Succeeded)
    /// });
    /// # let _ = job;
    /// ```
    pub fn log(&self, level: LogLevel, message: impl AsRef<str>) {
        let message = message.as_ref();
        self.item_log.write(level, message);
        match level {
            LogLevel::Error => tracing::error!(target: "nightshift::item_log", "{message}"),
            LogLevel::Warn => tracing::warn!(target: "nightshift::item_log", "{message}"),
            LogLevel::Info => tracing::info!(target: "nightshift::item_log", "{message}"),
            LogLevel::Debug => tracing::debug!(target: "nightshift::item_log", "{message}"),
            LogLevel::Trace => tracing::trace!(target: "nightshift::item_log", "{message}"),
        }
    }

    /// [`log`](Self::log) at [`LogLevel::Info`].
    pub fn log_info(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Info, message);
    }

    /// The attempt's log so far (what would be shipped if it ended now);
    /// `None` when nothing was logged.
    pub fn log_tail(&self) -> Option<String> {
        self.item_log.render()
    }
}

/// Lets [`ItemLogLayer`] find the attempt log of events inside `span`
/// (an item's span): stored in the span's registry extensions. Does nothing
/// when the span is disabled or the global subscriber is not built on
/// `tracing_subscriber`'s registry.
pub(crate) fn attach(span: &tracing::Span, log: &ItemLog) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() {
            if let Some(data) = registry.span(id) {
                data.extensions_mut().replace(log.clone());
            }
        }
    });
}

/// A `tracing_subscriber` layer copying the events emitted inside an item's
/// span into that attempt's log. Add it to the subscriber your service
/// installs:
///
/// ```
/// use nightshift_executor::ItemLogLayer;
/// use tracing_subscriber::prelude::*;
/// let subscriber = tracing_subscriber::registry().with(ItemLogLayer::new());
/// # let _ = subscriber;
/// ```
///
/// It needs a subscriber built on `tracing_subscriber::Registry` (`fmt()`
/// and `registry()` both are). Events are captured at `INFO` and above by
/// default ([`with_max_level`](Self::with_max_level) changes it), and only
/// when the subscriber's own filter lets the item span (`INFO`, named
/// `item`) and the event through: with `RUST_LOG=warn` only
/// [`ItemContext::log`] lines are kept. Work a handler moves to a task
/// spawned without `.in_current_span()` is outside the span.
#[derive(Debug, Clone, Copy)]
pub struct ItemLogLayer {
    max_level: tracing::Level,
}

impl Default for ItemLogLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ItemLogLayer {
    /// Captures events at `INFO` and above.
    pub fn new() -> Self {
        Self {
            max_level: tracing::Level::INFO,
        }
    }

    /// Captures events at `level` and above (`DEBUG` adds debug events).
    pub fn with_max_level(mut self, level: tracing::Level) -> Self {
        self.max_level = level;
        self
    }
}

impl<S> Layer<S> for ItemLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        // tracing orders levels by verbosity: TRACE is the greatest.
        if *meta.level() > self.max_level
            || meta.target() == ECHO_TARGET
            || meta.target() == PROGRAM_TARGET
        {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let log = scope
            .into_iter()
            .find_map(|span| span.extensions().get::<ItemLog>().cloned());
        let Some(log) = log else {
            return;
        };
        let mut line = Line::default();
        event.record(&mut line);
        log.write(LogLevel::from(*meta.level()), &line.text);
    }
}

/// An event as one line: its message, then its other fields as `k=v`.
#[derive(Default)]
struct Line {
    text: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.insert_str(0, value);
        } else {
            let _ = write!(self.text, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.text.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.text, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run_item, TestItem};
    use crate::{job_fn, ItemOutcome};
    use tracing_subscriber::prelude::*;

    #[tokio::test]
    async fn events_in_the_item_span_and_ctx_log_lines_reach_the_tail_once() {
        let subscriber = tracing_subscriber::registry().with(ItemLogLayer::new());
        let _guard = tracing::subscriber::set_default(subscriber);
        let job = job_fn(|ctx: ItemContext| async move {
            tracing::info!(accounts = 12, "posting");
            tracing::debug!("too fine to keep");
            ctx.log(LogLevel::Warn, "explicit line");
            Ok(ItemOutcome::Succeeded)
        });
        tracing::info!("outside any item");
        let run = run_item(&job, TestItem::new(0)).await;
        let log = run.log.unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert!(lines[0].ends_with("INFO  posting accounts=12"), "{log}");
        assert!(lines[1].ends_with("WARN  explicit line"), "{log}");
    }

    #[tokio::test]
    async fn without_the_layer_ctx_log_lines_are_still_kept() {
        let job = job_fn(|ctx: ItemContext| async move {
            tracing::info!("not captured: no layer");
            ctx.log_info("kept");
            Ok(ItemOutcome::Succeeded)
        });
        let run = run_item(&job, TestItem::new(0)).await;
        let log = run.log.unwrap_or_default();
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains("INFO  kept"), "{log}");
    }
}
