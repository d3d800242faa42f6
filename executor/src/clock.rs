//! Wall-clock timestamps for records (Unix epoch milliseconds). Durations
//! and deadlines use tokio's clock instead, so tests can control them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix epoch milliseconds (0 if the clock is before 1970).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
