//! Log setup shared by every subcommand.
//!
//! Logs are `tracing` events; `NIGHTSHIFT_LOG_FORMAT=json` switches to one
//! JSON object per line for log shippers, `RUST_LOG` sets the filter. Services
//! and one-shot commands log to stderr. `nightshift dev` logs to a file in its
//! state directory instead, so that its terminal shows only what a newcomer
//! needs (the banner and the run's progress), unless `RUST_LOG` or
//! `--log-level` asks for the log on the terminal too. Every subscriber has
//! the SDK's `ItemLogLayer`, so an item's `tracing` events also reach the
//! attempt log its executor ships with the result.

use std::path::Path;
use std::sync::Arc;
use tracing_subscriber::fmt::writer::MakeWriterExt as _;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// Installs the global subscriber writing to stderr. Call once per process.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    install(filter, std::io::stderr);
}

/// Where `nightshift dev` sends its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevLog {
    /// Only to the file (the default: a calm terminal).
    FileOnly,
    /// To the file and the terminal, with this filter (`--log-level` or
    /// `RUST_LOG`).
    FileAndTerminal(String),
}

impl DevLog {
    /// `--log-level` wins over `RUST_LOG`; neither keeps the terminal calm.
    pub fn choose(log_level: Option<&str>, rust_log: Option<&str>) -> Self {
        match log_level.or(rust_log) {
            Some(filter) if !filter.trim().is_empty() => Self::FileAndTerminal(filter.to_owned()),
            _ => Self::FileOnly,
        }
    }
}

/// Installs the subscriber of `nightshift dev`: every event goes to `file`
/// (appended), and to stderr as well for [`DevLog::FileAndTerminal`].
pub fn init_dev(file: &Path, mode: &DevLog) -> std::io::Result<()> {
    let log = Arc::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)?,
    );
    let filter = match mode {
        DevLog::FileOnly => EnvFilter::new(DEFAULT_FILTER),
        DevLog::FileAndTerminal(filter) => EnvFilter::try_new(filter).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("invalid log filter `{filter}`: {e}"),
            )
        })?,
    };
    match mode {
        DevLog::FileOnly => install(filter, log),
        DevLog::FileAndTerminal(_) => install(filter, log.and(std::io::stderr)),
    }
    Ok(())
}

fn install<W>(filter: EnvFilter, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let json = std::env::var("NIGHTSHIFT_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // Every process gets the item log layer: in those that run items
    // (`executor`, `demo executor`, `dev`) it copies each item's events into
    // the attempt log shipped with its result; elsewhere no span has one.
    let items = nightshift_executor::ItemLogLayer::new();
    if json {
        builder.json().finish().with(items).init();
    } else {
        builder.finish().with(items).init();
    }
}

#[cfg(test)]
mod tests {
    use super::DevLog;

    #[test]
    fn the_dev_terminal_stays_calm_unless_asked() {
        assert_eq!(DevLog::choose(None, None), DevLog::FileOnly);
        assert_eq!(DevLog::choose(None, Some(" ")), DevLog::FileOnly);
        assert_eq!(
            DevLog::choose(None, Some("debug")),
            DevLog::FileAndTerminal("debug".into())
        );
        assert_eq!(
            DevLog::choose(Some("warn"), Some("debug")),
            DevLog::FileAndTerminal("warn".into())
        );
    }
}
