//! Formatting instants and durations for people (pages) and parsing the
//! instants of query strings.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Now, Unix epoch milliseconds.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2024-03-31 02:00:00Z`, or `-` for an instant out of range.
pub fn utc(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        None => "-".to_owned(),
    }
}

/// RFC 3339 in UTC, for JSON.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `2024-03-31 04:00 CEST` in the zone `tz`.
pub fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// `1h 2m 3s`, `4.2s`; negative durations read as zero.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 10_000 {
        return format!("{:.1}s", ms as f64 / 1000.0);
    }
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

/// An instant from a query string: epoch milliseconds or RFC 3339.
pub fn parse_instant(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(4_200), "4.2s");
        assert_eq!(duration(-5), "0.0s");
        assert_eq!(duration(59_000), "59s");
        assert_eq!(duration(61_000), "1m 1s");
        assert_eq!(duration(3_723_000), "1h 2m 3s");
    }

    #[test]
    fn instants_parse_from_ms_or_rfc3339() {
        assert_eq!(parse_instant("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(
            parse_instant("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13:20Z");
    }
}
