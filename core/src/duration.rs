//! Human-written durations: `"30s"`, `"5m"`, `"1h30m"`, `"250ms"`, `"2d"`.
//!
//! DAG files spell timeouts and backoffs this way, and the DAG model
//! serializes them back the same way (see [`serde_human`]) so that a spec
//! published to the coordination store stays readable. The grammar is strict
//! on purpose: a bare number (`"10"`) is rejected because nobody can tell
//! whether it meant seconds or milliseconds, and units must go from largest to
//! smallest (`"1h30m"`, not `"30m1h"`) so that a typo cannot hide in a sum.
//!
//! Units: `d` (24 h), `h`, `m`, `s`, `ms`, `us`, `ns`.

use std::fmt::Write as _;
use std::time::Duration;
use thiserror::Error;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// The string was empty (or only whitespace).
    #[error("empty duration")]
    Empty,
    /// The string starts with a minus sign.
    #[error("durations cannot be negative")]
    Negative(String),
    /// A number is not followed by a unit (for example `"10"`).
    #[error("missing unit after `{0}` (use one of d, h, m, s, ms, us, ns, e.g. `30s`)")]
    MissingUnit(String),
    /// A unit is not one of the known ones.
    #[error("unknown unit `{0}` (use one of d, h, m, s, ms, us, ns)")]
    UnknownUnit(String),
    /// Something other than a number appears where a number is expected.
    #[error("expected a number at `{0}`")]
    ExpectedNumber(String),
    /// Units repeat or go from smaller to larger (`"30m1h"`, `"1s1s"`).
    #[error("unit `{0}` is out of order: write units from largest to smallest, each once (e.g. `1h30m`)")]
    OutOfOrder(String),
    /// The duration does not fit in a `std::time::Duration`.
    #[error("duration is too large")]
    Overflow,
}

/// Units from largest to smallest, with their length in nanoseconds.
const UNITS: [(&str, u128); 7] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Parses a duration such as `"1h30m"`.
///
/// ```
/// use std::time::Duration;
/// use nightshift_core::duration::parse_duration;
/// assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
/// assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
/// assert!(parse_duration("10").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.trim().is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative(text.to_owned()));
    }
    let mut rest = text;
    let mut total: u128 = 0;
    // Index into UNITS of the last unit seen: each next unit must be smaller.
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::ExpectedNumber(rest.to_owned()));
        }
        let (number, after) = rest.split_at(digits);
        let letters = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        if letters == 0 {
            return match after.chars().next() {
                None => Err(DurationError::MissingUnit(number.to_owned())),
                Some(_) => Err(DurationError::UnknownUnit(after.to_owned())),
            };
        }
        let (unit, after_unit) = after.split_at(letters);
        let index = UNITS
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(|| DurationError::UnknownUnit(unit.to_owned()))?;
        if last_unit.is_some_and(|last| index <= last) {
            return Err(DurationError::OutOfOrder(unit.to_owned()));
        }
        last_unit = Some(index);
        // More than 39 digits cannot fit in u128 anyway; the checked maths
        // below catches everything else.
        let value: u128 = number.parse().map_err(|_| DurationError::Overflow)?;
        let nanos = value
            .checked_mul(UNITS[index].1)
            .ok_or(DurationError::Overflow)?;
        total = total.checked_add(nanos).ok_or(DurationError::Overflow)?;
        rest = after_unit;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::Overflow)?;
    // The remainder is below 10^9, so it always fits in u32.
    let subsec = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, subsec))
}

/// Formats a duration in the form [`parse_duration`] reads, exactly
/// (`parse_duration(&format_duration(d)) == Ok(d)` for every `d`).
///
/// ```
/// use std::time::Duration;
/// use nightshift_core::duration::format_duration;
/// assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
/// assert_eq!(format_duration(Duration::ZERO), "0s");
/// ```
pub fn format_duration(duration: Duration) -> String {
    let mut rest = duration.as_nanos();
    if rest == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (name, nanos) in UNITS {
        let count = rest / nanos;
        if count > 0 {
            // Writing to a String cannot fail.
            let _ = write!(out, "{count}{name}");
            rest %= nanos;
        }
    }
    out
}

/// Serde adapters that write a `Duration` as its [`format_duration`] text
/// and read it back with [`parse_duration`].
///
/// Use with `#[serde(with = "nightshift_core::duration::serde_human")]`.
pub mod serde_human {
    use super::{format_duration, parse_duration};
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes the duration as text, e.g. `"1h30m"`.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(*value))
    }

    /// Reads a duration written as text.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map_err(D::Error::custom)
    }

    /// The same adapters for `Option<Duration>` (`null` when absent).
    pub mod option {
        use super::{format_duration, parse_duration};
        use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
        use std::time::Duration;

        /// Writes the duration as text, or `null`.
        pub fn serialize<S: Serializer>(
            value: &Option<Duration>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(d) => serializer.serialize_some(&format_duration(*d)),
                None => serializer.serialize_none(),
            }
        }

        /// Reads an optional duration written as text.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Duration>, D::Error> {
            let text = Option::<String>::deserialize(deserializer)?;
            text.map(|t| parse_duration(&t).map_err(D::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_documented_forms() {
        let cases = [
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("1h30m", Duration::from_secs(5400)),
            ("250ms", Duration::from_millis(250)),
            ("2d", Duration::from_secs(172_800)),
            ("0s", Duration::ZERO),
            ("1s500ms", Duration::from_millis(1500)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_bad_forms_with_the_right_reason() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("  "), Err(DurationError::Empty));
        assert_eq!(
            parse_duration("10"),
            Err(DurationError::MissingUnit("10".into()))
        );
        assert_eq!(
            parse_duration("-1s"),
            Err(DurationError::Negative("-1s".into()))
        );
        assert_eq!(
            parse_duration("1x"),
            Err(DurationError::UnknownUnit("x".into()))
        );
        assert_eq!(
            parse_duration("1 s"),
            Err(DurationError::UnknownUnit(" s".into()))
        );
        assert_eq!(
            parse_duration("s"),
            Err(DurationError::ExpectedNumber("s".into()))
        );
        assert_eq!(
            parse_duration("30m1h"),
            Err(DurationError::OutOfOrder("h".into()))
        );
        assert_eq!(
            parse_duration("1s1s"),
            Err(DurationError::OutOfOrder("s".into()))
        );
        assert_eq!(
            parse_duration("99999999999999999999999d"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            parse_duration(&format!("{}s", u128::MAX)),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            parse_duration(&format!("{}0s", u128::MAX)),
            Err(DurationError::Overflow)
        );
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(secs in 0u64..(u64::MAX / 2), nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn never_panics_on_any_text(text in "\\PC{0,20}") {
            let _ = parse_duration(&text);
        }
    }
}
