//! Calendar files (`dags/calendars/<name>.toml`) and the set a DAG's
//! `calendar = "<name>"` is resolved against.
//!
//! ```toml
//! description  = "mainland china business days"
//! weekends     = ["sat", "sun"]
//! holidays     = [2026-10-01, "2026-10-02"]   # TOML dates or "YYYY-MM-DD"
//! working_days = [2026-10-10]                  # weekend days that are worked
//! ```

use super::diagnostic::{Diagnostic, SourceText};
use super::values::{
    in_file_order, is_valid_name, prune_recovered, report_syntax_errors, type_name, Reader, Value,
};
use crate::calendar::Calendar;
use chrono::{NaiveDate, Weekday};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use toml::de::{DeTable, DeValue};

const CALENDAR_KEYS: &[&str] = &["description", "weekends", "holidays", "working_days"];

/// The calendars a DAG may name, by name; calendars whose file has errors
/// are remembered so that a DAG naming one is not told it is missing.
#[derive(Debug, Clone, Default)]
pub struct CalendarSet {
    valid: BTreeMap<String, Calendar>,
    invalid: BTreeSet<String>,
}

/// What [`CalendarSet::lookup`] found.
#[derive(Debug, Clone, Copy)]
pub enum CalendarLookup<'c> {
    /// A valid calendar by that name.
    Found(&'c Calendar),
    /// A calendar file by that name exists but has errors.
    Invalid,
    /// No calendar by that name.
    Missing,
}

impl CalendarSet {
    /// An empty set: every calendar is missing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a valid calendar under its name.
    pub fn insert(&mut self, calendar: Calendar) {
        self.invalid.remove(&calendar.name);
        self.valid.insert(calendar.name.clone(), calendar);
    }

    /// Records that the calendar file for `name` exists but has errors.
    pub fn insert_invalid(&mut self, name: impl Into<String>) {
        let name = name.into();
        self.valid.remove(&name);
        self.invalid.insert(name);
    }

    /// Looks a calendar up by name.
    pub fn lookup(&self, name: &str) -> CalendarLookup<'_> {
        match self.valid.get(name) {
            Some(c) => CalendarLookup::Found(c),
            None if self.invalid.contains(name) => CalendarLookup::Invalid,
            None => CalendarLookup::Missing,
        }
    }

    /// Names of every known calendar, valid or not.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.valid
            .keys()
            .chain(self.invalid.iter())
            .map(String::as_str)
    }

    /// Number of calendars, valid or not.
    pub fn len(&self) -> usize {
        self.valid.len() + self.invalid.len()
    }

    /// Whether the set holds no calendar at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parses a calendar file; see [`super::parse_calendar`].
pub(crate) fn parse(path: &Path, text: &str) -> Result<Calendar, Vec<Diagnostic>> {
    let mut reader = Reader::new(SourceText::new(path, text));
    let (mut root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        prune_recovered(root.get_mut());
    }
    report_syntax_errors(&mut reader, syntax_errors);
    let root: &DeTable<'_> = root.get_ref();
    reader.reject_unknown_keys(root, CALENDAR_KEYS);

    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !is_valid_name(&name) {
        reader.error(0..0, format!("invalid calendar name `{name}` (from the file name): use letters, digits, `-` and `_`"));
    }
    let mut calendar = Calendar {
        name,
        ..Calendar::default()
    };
    let mut working_spans = Vec::new();
    for (key, value) in in_file_order(root) {
        let key: &str = key.get_ref();
        match key {
            "description" => {
                reader.expect_str(key, value);
            }
            "weekends" => {
                for (day, _) in read_list(&mut reader, key, value, parse_weekday) {
                    calendar.weekends.insert(day);
                }
            }
            "holidays" => {
                for (date, _) in read_list(&mut reader, key, value, parse_date) {
                    calendar.holidays.insert(date);
                }
            }
            "working_days" => {
                working_spans = read_list(&mut reader, key, value, parse_date);
                calendar.working_days = working_spans.iter().map(|(d, _)| *d).collect();
            }
            _ => {}
        }
    }
    for (date, span) in working_spans {
        if calendar.holidays.contains(&date) {
            reader.error(
                span,
                format!("{date} is listed both in `holidays` and in `working_days`"),
            );
        }
    }
    if reader.has_errors() {
        Err(reader.into_diagnostics())
    } else {
        Ok(calendar)
    }
}

/// Reads an array, parsing each element with `item`, which returns the
/// parsed value or the message for a bad element.
fn read_list<T>(
    reader: &mut Reader<'_>,
    key: &str,
    value: &Value<'_>,
    item: fn(&DeValue<'_>) -> Result<T, String>,
) -> Vec<(T, std::ops::Range<usize>)> {
    let Some(items) = reader.expect_array(key, value) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for element in items {
        match item(element.get_ref()) {
            Ok(v) => out.push((v, element.span())),
            Err(message) => reader.error(element.span(), format!("`{key}`: {message}")),
        }
    }
    out
}

fn parse_weekday(value: &DeValue<'_>) -> Result<Weekday, String> {
    let DeValue::String(text) = value else {
        return Err(format!(
            "expected a weekday such as \"sat\", found {}",
            type_name(value)
        ));
    };
    text.parse::<Weekday>()
        .map_err(|_| format!("unknown weekday `{text}` (use mon, tue, wed, thu, fri, sat, sun)"))
}

fn parse_date(value: &DeValue<'_>) -> Result<NaiveDate, String> {
    match value {
        DeValue::Datetime(dt) => match (dt.date, dt.time) {
            (Some(d), None) => {
                NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
                    .ok_or_else(|| format!("{d} is not a real date"))
            }
            _ => Err(format!(
                "expected a date such as 2026-10-01, found {}",
                type_name(value)
            )),
        },
        DeValue::String(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| format!("invalid date \"{text}\": expected YYYY-MM-DD")),
        other => Err(format!(
            "expected a date such as 2026-10-01, found {}",
            type_name(other)
        )),
    }
}
