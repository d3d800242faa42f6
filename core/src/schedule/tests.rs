//! Unit tests of the schedule dialect and calendars: weekday numbering,
//! day-of-month OR day-of-week, macros, rejected expressions, business days.
//! (DST behaviour is property-tested in `core/tests/schedule_props.rs`.)

use super::{business_date, validate_cron, Schedule, ScheduleError};
use crate::calendar::Calendar;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use std::collections::HashSet;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn ny() -> Tz {
    chrono_tz::America::New_York
}

fn weekdays_fired(expr: &str) -> HashSet<Weekday> {
    let s = Schedule::new(expr, chrono_tz::UTC).unwrap();
    let from = utc(2026, 6, 1, 0, 0, 0);
    s.fires_between(from, from + Duration::days(14), 100)
        .into_iter()
        .map(|t| t.weekday())
        .collect()
}

#[test]
fn weekday_zero_and_seven_are_sunday() {
    let sunday: HashSet<_> = [Weekday::Sun].into();
    assert_eq!(weekdays_fired("0 12 * * 0"), sunday);
    assert_eq!(weekdays_fired("0 12 * * 7"), sunday);
    assert_eq!(weekdays_fired("0 0 12 * * SUN"), sunday);
}

#[test]
fn weekday_ranges_lists_and_steps_use_crontab_numbering() {
    use Weekday::*;
    assert_eq!(
        weekdays_fired("0 12 * * 1-5"),
        [Mon, Tue, Wed, Thu, Fri].into()
    );
    assert_eq!(weekdays_fired("0 12 * * 5-7"), [Fri, Sat, Sun].into());
    assert_eq!(weekdays_fired("0 12 * * */2"), [Sun, Tue, Thu, Sat].into());
    assert_eq!(weekdays_fired("0 12 * * 1,3"), [Mon, Wed].into());
    assert_eq!(
        weekdays_fired("0 12 * * Mon-Fri"),
        [Mon, Tue, Wed, Thu, Fri].into()
    );
    assert_eq!(weekdays_fired("@weekly"), [Sun].into());
}

#[test]
fn day_of_month_or_day_of_week_when_both_are_restricted() {
    let s = Schedule::new("0 0 13 * 5", chrono_tz::UTC).unwrap();
    let fires = s.fires_between(utc(2026, 2, 1, 0, 0, 0), utc(2026, 3, 1, 0, 0, 0), 100);
    let days: Vec<u32> = fires.iter().map(|t| t.day()).collect();
    // Fridays of February 2026 (6, 13, 20, 27) plus the 13th, once.
    assert_eq!(days, vec![6, 13, 20, 27]);
    let s = Schedule::new("0 0 1 * 1", chrono_tz::UTC).unwrap();
    let fires = s.fires_between(utc(2026, 1, 31, 12, 0, 0), utc(2026, 2, 28, 12, 0, 0), 100);
    let days: Vec<u32> = fires.iter().map(|t| t.day()).collect();
    assert_eq!(days, vec![1, 2, 9, 16, 23]);
}

#[test]
fn macros_expand_to_their_crontab_meaning() {
    let from = utc(2026, 5, 17, 10, 20, 0);
    let next = |m: &str| {
        Schedule::new(m, chrono_tz::UTC)
            .unwrap()
            .next_after(from)
            .unwrap()
    };
    assert_eq!(next("@hourly"), utc(2026, 5, 17, 11, 0, 0));
    assert_eq!(next("@daily"), utc(2026, 5, 18, 0, 0, 0));
    assert_eq!(next("@midnight"), utc(2026, 5, 18, 0, 0, 0));
    assert_eq!(next("@monthly"), utc(2026, 6, 1, 0, 0, 0));
    assert_eq!(next("@yearly"), utc(2027, 1, 1, 0, 0, 0));
    assert_eq!(next("@annually"), utc(2027, 1, 1, 0, 0, 0));
}

#[test]
fn invalid_expressions_are_rejected_with_a_reason() {
    let cases = [
        ("", "empty"),
        ("* * *", "found 3"),
        ("* * * * * * * *", "found 8"),
        ("0 0 0 1 1 * 2030", "7 fields"),
        ("61 * * * *", "minute field"),
        ("0 25 * * *", "hour field"),
        ("0 0 32 * *", "day-of-month field"),
        ("0 0 * 13 *", "month field"),
        ("0 0 * * 8", "day-of-week"),
        ("0 0 * * 5-1", "backwards"),
        ("0 0 * * funday", "not a weekday"),
        ("@reboot", "unknown macro"),
        ("hello world", "found 2"),
    ];
    for (expr, needle) in cases {
        let reason = validate_cron(expr).unwrap_err();
        assert!(
            reason.contains(needle),
            "{expr:?}: {reason:?} lacks {needle:?}"
        );
        let err = Schedule::new(expr, ny()).unwrap_err();
        let ScheduleError::InvalidCron { expr: e, reason: r } = &err;
        assert_eq!((e.as_str(), r), (expr, &reason));
        assert!(err.to_string().starts_with("invalid cron expression"));
    }
}

fn weekend_calendar() -> Calendar {
    Calendar {
        name: "test".into(),
        weekends: [Weekday::Sat, Weekday::Sun].into(),
        ..Default::default()
    }
}

#[test]
fn calendar_skips_a_holiday() {
    let mut cal = weekend_calendar();
    // Friday 2026-12-25 is a holiday; the next business day is Monday the 28th.
    cal.holidays
        .insert(NaiveDate::from_ymd_opt(2026, 12, 25).unwrap());
    let s = Schedule::new("0 2 * * *", ny()).unwrap();
    let after = utc(2026, 12, 24, 12, 0, 0);
    let next = s.next_business_after(after, Some(&cal)).unwrap();
    assert_eq!(next, utc(2026, 12, 28, 7, 0, 0));
    assert_eq!(
        s.next_business_after(after, None),
        Some(utc(2026, 12, 25, 7, 0, 0))
    );
}

#[test]
fn calendar_fires_on_a_weekend_working_day() {
    let mut cal = weekend_calendar();
    cal.working_days
        .insert(NaiveDate::from_ymd_opt(2026, 12, 26).unwrap()); // a Saturday
    let s = Schedule::new("0 2 * * *", ny()).unwrap();
    let next = s
        .next_business_after(utc(2026, 12, 25, 12, 0, 0), Some(&cal))
        .unwrap();
    assert_eq!(
        business_date(next, ny()),
        NaiveDate::from_ymd_opt(2026, 12, 26).unwrap()
    );
}

#[test]
fn calendar_without_business_days_gives_up() {
    let cal = Calendar {
        weekends: [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]
        .into(),
        ..Default::default()
    };
    let s = Schedule::new("* * * * * *", ny()).unwrap();
    assert_eq!(
        s.next_business_after(utc(2026, 1, 1, 0, 0, 0), Some(&cal)),
        None
    );
}

#[test]
fn business_dates_of_catch_up_fires_skip_non_business_days() {
    let cal = weekend_calendar();
    let s = Schedule::new("0 2 * * *", ny()).unwrap();
    // Friday 2026-06-05 12:00 UTC to Tuesday 2026-06-09 12:00 UTC.
    let fires = s.business_fires_between(
        utc(2026, 6, 5, 12, 0, 0),
        utc(2026, 6, 9, 12, 0, 0),
        Some(&cal),
        10,
    );
    let dates: Vec<_> = fires
        .iter()
        .map(|&t| business_date(t, ny()).day())
        .collect();
    assert_eq!(dates, vec![8, 9]);
}

#[test]
fn business_date_is_the_local_date() {
    // 04:30 UTC on 8 March is 23:30 on 7 March in New York.
    assert_eq!(
        business_date(utc(2026, 3, 8, 4, 30, 0), ny()),
        NaiveDate::from_ymd_opt(2026, 3, 7).unwrap()
    );
    assert_eq!(
        business_date(utc(2026, 3, 8, 4, 30, 0), chrono_tz::Asia::Tokyo),
        NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()
    );
}

#[test]
fn extreme_instants_give_none_not_a_panic() {
    let s = Schedule::new("* * * * * *", chrono_tz::Asia::Tokyo).unwrap();
    assert_eq!(s.next_after(DateTime::<Utc>::MAX_UTC), None);
    assert_eq!(s.next_after(utc(2101, 1, 1, 0, 0, 0)), None);
    let _ = business_date(DateTime::<Utc>::MAX_UTC, chrono_tz::Asia::Tokyo);
    let _ = business_date(DateTime::<Utc>::MIN_UTC, chrono_tz::America::New_York);
}
