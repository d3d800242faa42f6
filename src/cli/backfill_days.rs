//! Which business days of a date range a backfill runs: pure, so it is
//! property-tested without etcd or SQL.
//!
//! A day is selected when the DAG's schedule fires on it (its business date,
//! in the DAG's time zone) and the calendar counts it as a business day. A
//! DAG without a schedule selects every business day of its calendar, or
//! every day without one. The DAG's `business_date` policy maps each fire
//! to the day it is for (under `previous_business_day`, Monday's fire runs
//! Friday), and `schedule_business_day` keeps one fire a month.

use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Utc};
use chrono_tz::Tz;
use nightshift_core::dag::DagSpec;
use nightshift_core::schedule::{business_date, business_date_for, ScheduleError};

/// The selected days in `[from, to]`, oldest first, each once.
pub fn business_days(
    spec: &DagSpec,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<NaiveDate>, ScheduleError> {
    let calendar = spec.calendar.as_ref();
    let Some(schedule) = spec.cron_schedule() else {
        return Ok(from
            .iter_days()
            .take_while(|d| *d <= to)
            .filter(|d| calendar.is_none_or(|c| c.is_business_day(*d)))
            .collect());
    };
    let schedule = schedule?;
    let mut days: Vec<NaiveDate> = Vec::new();
    let mut cursor = start_of_day(spec.timezone, from) - Duration::nanoseconds(1);
    while let Some(fire) = schedule.next_business_after(cursor, calendar) {
        let fire_day = business_date(fire, spec.timezone);
        let day = business_date_for(fire, spec.timezone, spec.business_date, calendar);
        if day > to {
            break;
        }
        if day >= from && days.last().is_none_or(|last| *last < day) {
            days.push(day);
        }
        // Jump to the next local day: only one run per fire date.
        let Some(next) = fire_day.succ_opt() else {
            break;
        };
        cursor = fire.max(start_of_day(spec.timezone, next) - Duration::nanoseconds(1));
    }
    Ok(days)
}

/// The first instant of `date` in `tz` (a DST gap at midnight moves it to
/// the first hour that exists).
fn start_of_day(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    for hour in 0..4 {
        if let Some(t) = date
            .and_hms_opt(hour, 0, 0)
            .and_then(|naive| tz.from_local_datetime(&naive).earliest())
        {
            return t.with_timezone(&Utc);
        }
    }
    date.and_hms_opt(0, 0, 0)
        .map_or(DateTime::<Utc>::MIN_UTC, |n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike as _;
    use nightshift_core::dag::{parse_dag, CalendarSet};
    use proptest::prelude::*;
    use std::path::Path;

    fn dag(header: &str) -> DagSpec {
        parse_dag(
            Path::new("d.toml"),
            &format!("{header}\n[jobs.a]\n"),
            &CalendarSet::new(),
        )
        .unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_business_date_policy_maps_fires_to_the_days_they_are_for() {
        let spec = dag("schedule = \"0 30 1 * * *\"\nbusiness_date = \"previous_day\"");
        // Each day is run by the next day's fire, including the range's
        // last day (its fire is after the range).
        let days = business_days(&spec, day(2024, 3, 28), day(2024, 4, 1)).unwrap();
        assert_eq!(
            days,
            (28..=31)
                .map(|d| day(2024, 3, d))
                .chain([day(2024, 4, 1)])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn weekday_schedule_selects_weekdays_oldest_first() {
        let spec = dag("schedule = \"30 1 * * 1-5\"\ntimezone = \"Europe/Paris\"");
        // 2024-03-29 is a Friday; 2024-03-31 is the DST change in Paris.
        let days = business_days(&spec, day(2024, 3, 28), day(2024, 4, 2)).unwrap();
        assert_eq!(
            days,
            vec![
                day(2024, 3, 28),
                day(2024, 3, 29),
                day(2024, 4, 1),
                day(2024, 4, 2)
            ]
        );
    }

    #[test]
    fn unscheduled_dag_selects_every_day() {
        let days = business_days(&dag(""), day(2024, 2, 27), day(2024, 3, 1)).unwrap();
        assert_eq!(days.len(), 4);
        assert_eq!(days[2], day(2024, 2, 29));
    }

    #[test]
    fn hourly_schedule_gives_one_entry_per_day() {
        let spec = dag("schedule = \"0 * * * *\"\ntimezone = \"America/New_York\"");
        let days = business_days(&spec, day(2024, 11, 1), day(2024, 11, 5)).unwrap();
        assert_eq!(
            days,
            day(2024, 11, 1).iter_days().take(5).collect::<Vec<_>>()
        );
    }

    proptest! {
        #[test]
        fn selected_days_are_in_range_increasing_and_match_the_weekdays(start in 0u32..3000, len in 0u32..40, tz in prop::sample::select(vec!["UTC", "Europe/London", "Asia/Tokyo", "America/Los_Angeles"])) {
            let spec = dag(&format!("schedule = \"15 3 * * 1,3,5\"\ntimezone = \"{tz}\""));
            let from = day(2020, 1, 1) + Duration::days(i64::from(start));
            let to = from + Duration::days(i64::from(len));
            let days = business_days(&spec, from, to).unwrap();
            let expected: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to)
                .filter(|d| matches!(d.weekday().number_from_monday(), 1 | 3 | 5)).collect();
            prop_assert_eq!(days, expected);
        }
    }
}
