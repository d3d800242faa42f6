//! Calendar files: both date spellings, and every error reported at once.

use chrono::{NaiveDate, Weekday};
use nightshift_core::dag::parse_calendar;
use std::path::Path;

#[test]
fn calendar_files_parse_dates_in_both_spellings() {
    let source = "weekends = [\"sat\", \"Sunday\"]\nholidays = [2026-10-01, \"2026-10-02\"]\nworking_days = [2026-10-10]\n";
    let cal = parse_calendar(Path::new("dags/calendars/cn-business-days.toml"), source).unwrap();
    assert_eq!(cal.name, "cn-business-days");
    assert_eq!(cal.weekends, [Weekday::Sat, Weekday::Sun].into());
    let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
    assert_eq!(cal.holidays, [d(10, 1), d(10, 2)].into());
    assert!(cal.is_business_day(d(10, 10)), "a worked saturday");
    assert!(!cal.is_business_day(d(10, 1)));
}

#[test]
fn calendar_files_report_every_error() {
    let source = "weekends = [\"sat\", \"funday\"]\nholidays = [\"2026-13-01\", 2026-10-01T10:00:00, 5]\nworkdays = []\nworking_days = [2026-10-01]\nholidays2 = 1\n";
    let errs = parse_calendar(Path::new("c/calendars/x.toml"), source).unwrap_err();
    let got: Vec<(usize, usize)> = errs.iter().map(|d| (d.line, d.col)).collect();
    assert_eq!(
        got,
        [(1, 20), (2, 13), (2, 27), (2, 48), (3, 1), (5, 1)],
        "{errs:#?}"
    );
    assert!(errs[1].message.contains("invalid date \"2026-13-01\""));
    assert!(errs[2].message.contains("found a date-time"));
    assert!(errs[4].message.contains(
        "unknown key `workdays` (expected one of: description, weekends, holidays, working_days)"
    ));
    let conflict = parse_calendar(
        Path::new("x.toml"),
        "working_days = [2026-10-01]\nholidays = [2026-10-01]\n",
    )
    .unwrap_err();
    assert_eq!((conflict[0].line, conflict[0].col), (1, 17));
    assert!(conflict[0]
        .message
        .contains("both in `holidays` and in `working_days`"));
}
