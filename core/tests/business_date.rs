//! Issue 16, business time: the DAG's `business_date` policy. For every fire
//! of a nightly schedule over a year, in two zones with DST (the 02:30 fire
//! falls in the spring-forward gap once a year), under random holiday and
//! make-up-day calendars: the business date is a business day, and every
//! business day is settled exactly once. Bad combinations are explained by
//! validation at `file:line:col`.

use chrono::{Datelike, NaiveDate, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use nightshift_core::calendar::Calendar;
use nightshift_core::dag::{parse_dag, BusinessDatePolicy, CalendarSet, Severity};
use nightshift_core::schedule::{business_date, business_date_for, Schedule};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;

const ZONES: [Tz; 2] = [chrono_tz::America::New_York, chrono_tz::Europe::Berlin];

fn calendar(holidays: &BTreeSet<u32>, working: &BTreeSet<u32>) -> Calendar {
    let day = |n: u32| NaiveDate::from_yo_opt(2026, 1 + n % 365).unwrap_or(NaiveDate::MIN);
    Calendar {
        name: "test".into(),
        weekends: [Weekday::Sat, Weekday::Sun].into(),
        holidays: holidays.iter().map(|&n| day(n)).collect(),
        working_days: working
            .iter()
            .map(|&n| day(n))
            .filter(|d| matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
            .collect(),
    }
}

/// The fires of `schedule` in 2026 (local dates), kept to business days.
fn fires(schedule: &Schedule, tz: Tz, calendar: Option<&Calendar>) -> Vec<chrono::DateTime<Utc>> {
    let start = tz
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap()
        .with_timezone(&Utc);
    let mut out = Vec::new();
    let mut cursor = start;
    while let Some(fire) = schedule.next_business_after(cursor, calendar) {
        if business_date(fire, tz).year() != 2026 {
            break;
        }
        out.push(fire);
        cursor = fire;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_business_day_is_settled_exactly_once(
        holidays in proptest::collection::btree_set(0u32..365, 0..20),
        working in proptest::collection::btree_set(0u32..365, 0..10),
        zone in 0usize..2,
    ) {
        let tz = ZONES[zone];
        let cal = calendar(&holidays, &working);
        let schedule = Schedule::new("0 30 2 * * *", tz).unwrap();
        let fires = fires(&schedule, tz, Some(&cal));
        prop_assert!(!fires.is_empty());
        let mut settled = Vec::new();
        for &fire in &fires {
            let fire_date = business_date(fire, tz);
            prop_assert!(cal.is_business_day(fire_date), "fired on {fire_date}");
            let same = business_date_for(fire, tz, BusinessDatePolicy::FireDate, Some(&cal));
            prop_assert_eq!(same, fire_date);
            let prev = business_date_for(fire, tz, BusinessDatePolicy::PreviousBusinessDay, Some(&cal));
            prop_assert!(cal.is_business_day(prev), "{prev} is not a business day");
            prop_assert!(prev < fire_date);
            let mut between = prev.succ_opt().unwrap();
            while between < fire_date {
                prop_assert!(!cal.is_business_day(between), "{between} skipped by the fire of {fire_date}");
                between = between.succ_opt().unwrap();
            }
            settled.push(prev);
        }
        // Consecutive runs settle consecutive business days: none twice,
        // none missed between the first and the last.
        let all: BTreeSet<NaiveDate> = settled.iter().copied().collect();
        prop_assert_eq!(all.len(), settled.len(), "a business day settled twice");
        let (first, last) = (settled[0], *settled.last().unwrap());
        let mut day = first;
        while day <= last {
            prop_assert_eq!(cal.is_business_day(day), all.contains(&day), "{}", day);
            day = day.succ_opt().unwrap();
        }
    }
}

#[test]
fn previous_day_without_a_calendar_settles_every_day_once() {
    for tz in ZONES {
        let schedule = Schedule::new("0 30 2 * * *", tz).unwrap();
        let fires = fires(&schedule, tz, None);
        assert_eq!(fires.len(), 365, "{tz}");
        let settled: Vec<NaiveDate> = fires
            .iter()
            .map(|&f| business_date_for(f, tz, BusinessDatePolicy::PreviousDay, None))
            .collect();
        assert_eq!(settled[0], NaiveDate::from_ymd_opt(2025, 12, 31).unwrap());
        for pair in settled.windows(2) {
            assert_eq!(pair[0].succ_opt(), Some(pair[1]), "{tz}: {pair:?}");
        }
    }
}

fn errors(source: &str) -> Vec<(usize, usize, String)> {
    let mut calendars = CalendarSet::new();
    calendars.insert(Calendar {
        name: "cn".into(),
        weekends: [Weekday::Sat, Weekday::Sun].into(),
        ..Calendar::default()
    });
    match parse_dag(Path::new("dags/test.toml"), source, &calendars) {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| (d.line, d.col, d.message.clone()))
            .collect(),
    }
}

#[test]
fn validation_explains_bad_combinations() {
    let found = errors("business_date = \"previous_business_day\"\n[jobs.a]\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!((found[0].0, found[0].1), (1, 17));
    assert!(found[0].2.contains("needs a `calendar`"), "{found:#?}");
    let found = errors("calendar = \"cn\"\nbusiness_date = \"previous_day\"\n[jobs.a]\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!((found[0].0, found[0].1), (2, 17));
    assert!(
        found[0].2.contains("use \"previous_business_day\""),
        "{found:#?}"
    );
    let found = errors("business_date = \"yesterday\"\n[jobs.a]\n");
    assert!(
        found[0]
            .2
            .contains("unknown business date policy `yesterday`"),
        "{found:#?}"
    );
    assert!(
        errors("calendar = \"cn\"\nbusiness_date = \"previous_business_day\"\n[jobs.a]\n")
            .is_empty()
    );
    assert!(errors("business_date = \"previous_day\"\n[jobs.a]\n").is_empty());
}

/// The brute-force Nth business day of a month (1-based; negative from the end).
fn nth_business_day(cal: &Calendar, year: i32, month: u32, n: i32) -> Option<NaiveDate> {
    let days: Vec<NaiveDate> = NaiveDate::from_ymd_opt(year, month, 1)?
        .iter_days()
        .take_while(|d| d.month() == month)
        .filter(|&d| cal.is_business_day(d))
        .collect();
    if n > 0 {
        days.get(usize::try_from(n - 1).ok()?).copied()
    } else {
        days.len()
            .checked_sub(usize::try_from(-n).ok()?)
            .and_then(|i| days.get(i).copied())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// `schedule_business_day = N`: over a year, exactly one fire a month, on
    /// the Nth (or, negative, Nth-from-last) business day, at the cron's time.
    #[test]
    fn a_business_day_of_month_schedule_fires_once_a_month_on_that_day(
        holidays in proptest::collection::btree_set(0u32..365, 0..20),
        working in proptest::collection::btree_set(0u32..365, 0..10),
        zone in 0usize..2,
        n in prop_oneof![Just(1i32), Just(-1), Just(2), Just(-3), Just(5)],
    ) {
        let tz = ZONES[zone];
        let cal = calendar(&holidays, &working);
        let schedule = Schedule::new("0 30 2 * * *", tz).unwrap().on_business_day_of_month(n);
        let fires = fires(&schedule, tz, Some(&cal));
        prop_assert_eq!(fires.len(), 12, "{:?}", fires);
        for (i, fire) in fires.iter().enumerate() {
            let date = business_date(*fire, tz);
            let month = u32::try_from(i).unwrap() + 1;
            prop_assert_eq!(date.month(), month);
            prop_assert_eq!(Some(date), nth_business_day(&cal, 2026, month, n));
            let local = fire.with_timezone(&tz);
            // 02:30, or 03:00 when 02:30 falls in the spring-forward gap.
            prop_assert!(matches!((local.hour(), local.minute()), (2, 30) | (3, 0)), "{local}");
        }
    }
}

#[test]
fn schedule_business_day_needs_a_calendar_and_counts_from_one() {
    let found = errors("schedule = \"0 30 1 * * *\"\nschedule_business_day = -1\n[jobs.a]\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!((found[0].0, found[0].1), (2, 25));
    assert!(found[0].2.contains("needs a `calendar`"), "{found:#?}");
    let found = errors(
        "schedule = \"0 30 1 * * *\"\ncalendar = \"cn\"\nschedule_business_day = 0\n[jobs.a]\n",
    );
    assert!(found[0].2.contains("counts from 1"), "{found:#?}");
    let found = errors("calendar = \"cn\"\nschedule_business_day = 1\n[jobs.a]\n");
    assert!(found[0].2.contains("needs a `schedule`"), "{found:#?}");
    assert!(errors(
        "schedule = \"0 30 1 * * *\"\ncalendar = \"cn\"\nschedule_business_day = -1\n[jobs.a]\n"
    )
    .is_empty());
}
