//! Decoding stored values back into typed ones. A value that does not decode
//! is reported as [`StoreError::Corrupt`] with its column, never a panic.

use crate::error::StoreError;
use crate::Result;
use chrono::NaiveDate;
use std::fmt::Display;
use std::str::FromStr;

/// Parses a stored name (a state, a rule) back into its enum.
pub(crate) fn parse<T>(column: &'static str, value: &str) -> Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    value.parse().map_err(|e: T::Err| StoreError::Corrupt {
        column,
        detail: e.to_string(),
    })
}

/// Like [`parse`], for a nullable column.
pub(crate) fn parse_opt<T>(column: &'static str, value: Option<&str>) -> Result<Option<T>>
where
    T: FromStr,
    T::Err: Display,
{
    value.map(|v| parse(column, v)).transpose()
}

/// A stored integer that must fit a `u32` (versions, items, counts).
pub(crate) fn to_u32(column: &'static str, value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt {
        column,
        detail: format!("{value} is not a u32"),
    })
}

/// Stored JSON text.
pub(crate) fn json(column: &'static str, value: &str) -> Result<serde_json::Value> {
    serde_json::from_str(value).map_err(|e| StoreError::Corrupt {
        column,
        detail: e.to_string(),
    })
}

/// A `YYYY-MM-DD` date.
pub(crate) fn date(column: &'static str, value: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|e| StoreError::Corrupt {
        column,
        detail: format!("`{value}`: {e}"),
    })
}

/// How a date is stored: ISO `YYYY-MM-DD`, which also sorts correctly as text.
pub(crate) fn date_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}
