//! Business-day calendars: which dates a schedule may fire on.
//!
//! A calendar is a set of weekend days plus explicit holiday dates (and,
//! optionally, extra working days that override a weekend, as bank calendars
//! have). Calendars live in `dags/calendars/<name>.toml`; loading and
//! validating that file is [`crate::dag`]'s job, this module is the pure type.

use chrono::{Datelike, NaiveDate, Weekday};
use std::collections::{BTreeSet, HashSet};

/// A business-day calendar.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Calendar {
    /// Calendar name (the file stem).
    pub name: String,
    /// Days of the week that are never business days (unless in `working_days`).
    /// (A `HashSet`: chrono's `Weekday` is not `Ord`.)
    pub weekends: HashSet<Weekday>,
    /// Dates that are not business days.
    pub holidays: BTreeSet<NaiveDate>,
    /// Dates that are business days even though they fall on a weekend.
    pub working_days: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// Whether `date` is a business day in this calendar.
    ///
    /// ```
    /// use chrono::{NaiveDate, Weekday};
    /// use nightshift_core::calendar::Calendar;
    /// let cal = Calendar {
    ///     weekends: [Weekday::Sat, Weekday::Sun].into(),
    ///     ..Default::default()
    /// };
    /// let saturday = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    /// assert!(!cal.is_business_day(saturday));
    /// ```
    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        if self.working_days.contains(&date) {
            return true;
        }
        !self.weekends.contains(&date.weekday()) && !self.holidays.contains(&date)
    }
}
