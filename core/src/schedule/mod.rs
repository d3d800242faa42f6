//! Schedules: cron expressions evaluated in a time zone, safe across DST.
//!
//! A [`Schedule`] answers one question — *when does this fire next, strictly
//! after instant `t`?* — and the catch-up variant *which fire instants fall in
//! `(from, to]`?*. Everything is a pure function of the expression, the zone
//! and the instant asked about; there is no clock in here.
//!
//! # Dialect
//!
//! Crontab as people write it (see [`validate_cron`]): 5 fields, or 6 with
//! seconds first; weekday numbers 0–7 with 0 and 7 = Sunday, names, ranges,
//! lists, steps; `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//! `@midnight`, `@hourly`. The 7-field form with a year is rejected. When both
//! day-of-month and day-of-week are restricted a day matches if either does
//! (Vixie cron). An expression that can never fire (`0 0 30 2 *`) is
//! rejected. Fire times are computed up to the end of 2100, the `cron`
//! crate's last year; after that there is no next fire time.
//!
//! # DST policy
//!
//! The expression is matched against **local wall-clock time** in the
//! schedule's zone, and each matching wall-clock time `w` fires at *the
//! earliest instant whose local time is at or after `w`*. Concretely:
//!
//! - **Spring-forward gap** (`02:30` does not exist on that day in New York):
//!   the job fires **once, at the first instant after the gap** (03:00 local),
//!   as cronie / Vixie cron do for jobs scheduled inside the gap. Several
//!   matching times inside one gap (an every-15-minutes schedule) collapse
//!   into that single fire; a nightly batch is never silently skipped.
//! - **Fall-back repeat** (`01:30` happens twice): the job fires **once, at the
//!   first occurrence**. The second pass through the repeated hour fires
//!   nothing that already fired.
//!
//! The rule is monotonic — a later wall-clock time never maps to an earlier
//! instant — so feeding each result back into [`Schedule::next_after`] yields
//! strictly increasing instants, each schedule instant at most once
//! (invariant 7 of the design). The `cron` crate evaluated directly in a
//! zone returns both occurrences of a repeated time and skips gap times, and
//! its iterator goes backwards at fall-back; that is why this module asks the
//! crate for wall-clock candidates only (evaluating it in UTC, which has no
//! DST) and maps them to instants itself.
//!
//! # Business dates and calendars
//!
//! A run's business date is the local date of its schedule instant
//! ([`business_date`]), or the day / business day before it under the DAG's
//! `business_date` policy ([`business_date_for`]). [`Schedule::next_business_after`] skips fire instants
//! whose business date is not a business day of a [`Calendar`], looking at
//! most ten years ahead.

mod local_time;
mod parse;
#[cfg(test)]
mod tests;

use crate::calendar::Calendar;
use crate::dag::BusinessDatePolicy;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use std::fmt;
use std::iter::Peekable;

/// How far [`Schedule::next_business_after`] looks for a business day before
/// giving up (a calendar with no business day at all must not loop forever).
const BUSINESS_HORIZON_DAYS: i64 = 3660;

/// The `cron` crate's last year; asking past it returns `None` early (and
/// keeps the crate's `+ 1 s` away from chrono's upper limit).
const LAST_YEAR: i32 = 2100;

/// An invalid schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression cannot be parsed.
    #[error("invalid cron expression {expr:?}: {reason}")]
    InvalidCron {
        /// The expression as given.
        expr: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Checks a cron expression without building a schedule.
///
/// On error, returns the reason (e.g. `minute field "61" is invalid`), without
/// the expression itself: callers add their own context (file, job).
///
/// ```
/// use nightshift_core::schedule::validate_cron;
/// assert!(validate_cron("30 2 * * 1-5").is_ok());
/// assert!(validate_cron("0 30 2 * * 1-5").is_ok());
/// assert!(validate_cron("@daily").is_ok());
/// assert!(validate_cron("* * *").unwrap_err().contains("found 3"));
/// ```
pub fn validate_cron(expr: &str) -> Result<(), String> {
    parse::normalise(expr).map(|_| ())
}

/// The business date of a schedule instant: its local date in `tz`.
///
/// (At the very edges of chrono's range, ±262,000 years, where the local date
/// is not representable, this falls back to the UTC date rather than panic.)
pub fn business_date(instant: DateTime<Utc>, tz: Tz) -> NaiveDate {
    local_time::wall_clock(&tz, instant)
        .unwrap_or(instant.naive_utc())
        .date()
}

/// The business date of a run fired at `instant` under `policy`: the local
/// fire date (`fire_date`), the day before (`previous_day`), or the last
/// business day of `calendar` before the fire date (`previous_business_day`;
/// without a calendar every day is a business day). Scheduled fires are kept
/// to business days of the calendar, so under `previous_business_day` every
/// business day is settled exactly once, by the next business day's run.
pub fn business_date_for(
    instant: DateTime<Utc>,
    tz: Tz,
    policy: BusinessDatePolicy,
    calendar: Option<&Calendar>,
) -> NaiveDate {
    let fire = business_date(instant, tz);
    match policy {
        BusinessDatePolicy::FireDate => fire,
        BusinessDatePolicy::PreviousDay => fire.pred_opt().unwrap_or(fire),
        BusinessDatePolicy::PreviousBusinessDay => {
            let mut day = fire;
            for _ in 0..BUSINESS_HORIZON_DAYS {
                let Some(before) = day.pred_opt() else { break };
                day = before;
                if calendar.is_none_or(|c| c.is_business_day(day)) {
                    return day;
                }
            }
            fire.pred_opt().unwrap_or(fire)
        }
    }
}

/// A cron expression bound to a time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    expr: String,
    tz: Tz,
    /// One crate schedule, or two whose fire times are merged (day-of-month
    /// OR day-of-week); evaluated in UTC to get wall-clock candidates.
    arms: Vec<cron::Schedule>,
    /// Only on the Nth business day of the month (negative: from the end).
    business_day_of_month: Option<i32>,
}

impl Schedule {
    /// Parses `expr` (see the module doc for the dialect) in zone `tz`.
    pub fn new(expr: &str, tz: Tz) -> Result<Schedule, ScheduleError> {
        let invalid = |reason: String| ScheduleError::InvalidCron {
            expr: expr.to_owned(),
            reason,
        };
        let normalised = parse::normalise(expr).map_err(invalid)?;
        let arms = normalised
            .arms
            .iter()
            .map(|arm| arm.parse::<cron::Schedule>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Schedule {
            expr: expr.trim().to_owned(),
            tz,
            arms,
            business_day_of_month: None,
        })
    }

    /// Restricts the schedule to the `n`-th business day of each month
    /// (1 = first, -1 = last; business days of the calendar passed to
    /// [`Schedule::next_business_after`]), at the cron's times of day. A
    /// month with fewer business days has no fire.
    pub fn on_business_day_of_month(mut self, n: i32) -> Self {
        self.business_day_of_month = (n != 0).then_some(n);
        self
    }

    /// Whether fires on local date `date` are kept: a business day of
    /// `calendar` (every day without one) and, with a business day of the
    /// month set, that very business day.
    fn keeps(&self, date: NaiveDate, calendar: Option<&Calendar>) -> bool {
        let business = |d: NaiveDate| calendar.is_none_or(|c| c.is_business_day(d));
        if !business(date) {
            return false;
        }
        let Some(n) = self.business_day_of_month else {
            return true;
        };
        let month: Vec<NaiveDate> = date
            .with_day(1)
            .into_iter()
            .flat_map(|first| first.iter_days())
            .take_while(|d| d.month() == date.month())
            .filter(|&d| business(d))
            .collect();
        let index = if n > 0 {
            usize::try_from(n - 1).ok()
        } else {
            usize::try_from(-n)
                .ok()
                .and_then(|back| month.len().checked_sub(back))
        };
        index.and_then(|i| month.get(i)) == Some(&date)
    }

    /// The expression as given (trimmed).
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// The zone the expression is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The next fire instant strictly after `after`, or `None` past 2100.
    ///
    /// Repeatedly feeding the result back in yields strictly increasing
    /// instants, across DST changes too (see the module doc for the policy).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Every wall-clock time whose fire instant is after `after` is later
        // than the wall clock at `after`, so candidates start there. In the
        // second pass through a repeated hour the first few candidates map to
        // instants that already passed (their first occurrence); they are
        // skipped. The loop ends: candidates strictly increase, and once past
        // the repeated hour every candidate maps after `after`.
        let start = local_time::wall_clock(&self.tz, after)?;
        if start.year() > LAST_YEAR {
            return None;
        }
        self.wall_clock_candidates(start)
            .filter_map(|wall| local_time::earliest_at_or_after(&self.tz, wall))
            .find(|&instant| instant > after)
    }

    /// The next fire instant strictly after `after` whose business date is a
    /// business day of `calendar` (every day, without one).
    ///
    /// Returns `None` if there is none within about ten years.
    pub fn next_business_after(
        &self,
        after: DateTime<Utc>,
        calendar: Option<&Calendar>,
    ) -> Option<DateTime<Utc>> {
        if calendar.is_none() && self.business_day_of_month.is_none() {
            return self.next_after(after);
        }
        let horizon = after.checked_add_signed(Duration::days(BUSINESS_HORIZON_DAYS))?;
        let mut cursor = after;
        // Each round either returns or moves past a whole non-business local
        // day, so the horizon bounds the number of rounds; the count is a
        // second fence in case a zone's rules make a "day" very short.
        for _ in 0..2 * BUSINESS_HORIZON_DAYS {
            let fire = self.next_after(cursor)?;
            if fire > horizon {
                return None;
            }
            let date = business_date(fire, self.tz);
            if self.keeps(date, calendar) {
                return Some(fire);
            }
            let next_day = date.succ_opt()?.and_hms_opt(0, 0, 0)?;
            let next_day_start = local_time::earliest_at_or_after(&self.tz, next_day)?;
            cursor = fire.max(next_day_start - Duration::nanoseconds(1));
        }
        None
    }

    /// Fire instants in `(from, to]`, oldest first, at most `limit` of them
    /// (misfire catch-up: callers pass a small limit, at most 100).
    pub fn fires_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        self.business_fires_between(from, to, None, limit)
    }

    /// Like [`Schedule::fires_between`], skipping fire instants whose business
    /// date is not a business day of `calendar`.
    pub fn business_fires_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        calendar: Option<&Calendar>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::new();
        let mut cursor = from;
        while fires.len() < limit {
            match self.next_business_after(cursor, calendar) {
                Some(fire) if fire <= to => {
                    fires.push(fire);
                    cursor = fire;
                }
                _ => break,
            }
        }
        fires
    }

    /// Matching wall-clock times strictly after `start`, ascending, merged
    /// over the arms without duplicates.
    fn wall_clock_candidates(&self, start: NaiveDateTime) -> WallClockCandidates<'_> {
        let start = start.and_utc();
        WallClockCandidates {
            arms: self
                .arms
                .iter()
                .map(|a| a.after(&start).peekable())
                .collect(),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expr, self.tz)
    }
}

/// Ascending merge of the arms' fire times, read as wall-clock times.
struct WallClockCandidates<'a> {
    arms: Vec<Peekable<cron::ScheduleIterator<'a, Utc>>>,
}

impl Iterator for WallClockCandidates<'_> {
    type Item = NaiveDateTime;

    fn next(&mut self) -> Option<NaiveDateTime> {
        let earliest = self
            .arms
            .iter_mut()
            .filter_map(|a| a.peek().copied())
            .min()?;
        for arm in &mut self.arms {
            if arm.peek() == Some(&earliest) {
                arm.next();
            }
        }
        Some(earliest.naive_utc())
    }
}
