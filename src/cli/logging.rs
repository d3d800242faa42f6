//! Log setup shared by every subcommand.
//!
//! Logs are `tracing` events on stderr; `NIGHTSHIFT_LOG_FORMAT=json` switches
//! to one JSON object per line for log shippers, `RUST_LOG` sets the filter.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call once per process.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let json = std::env::var("NIGHTSHIFT_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
