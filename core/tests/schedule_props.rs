//! Property tests for `nightshift_core::schedule`: cron in a time zone across
//! DST changes, plus the DST examples the design names. (Dialect and calendar
//! unit tests live next to the code, in `core/src/schedule/tests.rs`.)
//!
//! The central property compares `Schedule::next_after` with a brute-force
//! oracle that scans instants on a 30-second grid and applies the documented
//! DST policy directly (fire at the first occurrence of a matching wall-clock
//! time; for matching times inside a spring-forward gap, fire at the first
//! instant after the gap). The oracle matches wall-clock times against the
//! field *sets* the generator chose, not against the cron string, so it checks
//! the parsing (weekday numbering, day-of-month OR day-of-week) too.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use nightshift_core::schedule::{business_date, Schedule};
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::OnceLock;

const ZONES: [Tz; 8] = [
    chrono_tz::America::New_York,
    chrono_tz::Europe::London,
    chrono_tz::Europe::Berlin,
    chrono_tz::Australia::Sydney,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::America::Santiago,
    chrono_tz::Asia::Tehran,
    chrono_tz::UTC,
];

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn offset_secs(tz: Tz, t: i64) -> i32 {
    let naive = DateTime::from_timestamp(t, 0).unwrap().naive_utc();
    tz.offset_from_utc_datetime(&naive).fix().local_minus_utc()
}

/// Every UTC-offset change of `tz` in 2020–2030, to the second.
fn find_transitions(tz: Tz) -> Vec<i64> {
    let start = utc(2020, 1, 1, 0, 0, 0).timestamp();
    let end = utc(2031, 1, 1, 0, 0, 0).timestamp();
    let step = 6 * 3600;
    let mut out = Vec::new();
    let mut t = start;
    while t < end {
        if offset_secs(tz, t) != offset_secs(tz, t + step) {
            let (mut lo, mut hi) = (t, t + step);
            while hi - lo > 1 {
                let mid = (lo + hi) / 2;
                if offset_secs(tz, mid) == offset_secs(tz, lo) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            out.push(hi);
        }
        t += step;
    }
    out
}

fn transitions() -> &'static Vec<Vec<i64>> {
    static CACHE: OnceLock<Vec<Vec<i64>>> = OnceLock::new();
    CACHE.get_or_init(|| ZONES.iter().map(|&tz| find_transitions(tz)).collect())
}

/// A zone and an instant within ±36 h of one of its DST transitions of
/// 2020–2030 (or anywhere in the decade for UTC), sometimes with nanoseconds.
fn zone_and_instant() -> impl Strategy<Value = (Tz, DateTime<Utc>)> {
    (
        0..ZONES.len(),
        any::<prop::sample::Index>(),
        -36 * 3600i64..36 * 3600,
        prop_oneof![Just(0u32), 0u32..1_000_000_000],
    )
        .prop_map(|(z, pick, delta, nanos)| {
            let ts = &transitions()[z];
            let base = if ts.is_empty() {
                utc(2020, 1, 1, 0, 0, 0).timestamp() + pick.index(11 * 365) as i64 * 86_400
            } else {
                ts[pick.index(ts.len())]
            };
            (
                ZONES[z],
                DateTime::from_timestamp(base + delta, nanos).unwrap(),
            )
        })
}

/// A generated schedule: its text and the sets the oracle matches against.
#[derive(Debug, Clone)]
struct Spec {
    text: String,
    secs: Vec<u32>,
    mins: Vec<u32>,
    hours: Vec<u32>,
    doms: Vec<u32>,
    dom_star: bool,
    /// Crontab weekdays, 0 = Sunday … 6 = Saturday.
    dows: Vec<u32>,
    dow_star: bool,
}

fn field(choices: Vec<(&'static str, Vec<u32>)>) -> impl Strategy<Value = (String, Vec<u32>)> {
    prop::sample::select(choices).prop_map(|(t, s)| (t.to_owned(), s))
}

fn spec() -> impl Strategy<Value = Spec> {
    let all = |n: u32| (0..n).collect::<Vec<_>>();
    let secs = field(vec![
        ("0", vec![0]),
        ("30", vec![30]),
        ("0,30", vec![0, 30]),
        ("*/30", vec![0, 30]),
    ]);
    let mins = prop_oneof![
        field(vec![
            ("*", all(60)),
            ("*/15", vec![0, 15, 30, 45]),
            ("0", vec![0]),
            ("30", vec![30]),
            ("0,30", vec![0, 30]),
            ("10-20/5", vec![10, 15, 20]),
        ]),
        (0u32..60).prop_map(|m| (m.to_string(), vec![m])),
    ];
    let hours = prop_oneof![
        field(vec![
            ("*", all(24)),
            ("1", vec![1]),
            ("2", vec![2]),
            ("3", vec![3]),
            ("0", vec![0]),
            ("1-3", vec![1, 2, 3]),
            ("2,3", vec![2, 3]),
            ("0-4/2", vec![0, 2, 4]),
            ("*/6", vec![0, 6, 12, 18]),
        ]),
        (0u32..24).prop_map(|h| (h.to_string(), vec![h])),
    ];
    let doms = prop_oneof![
        4 => field(vec![("*", (1..=31).collect()), ("?", (1..=31).collect())]),
        1 => field(vec![("1,15", vec![1, 15]), ("1-7", (1..=7).collect()), ("*/2", (1..=31).step_by(2).collect())]),
    ];
    let dows = prop_oneof![
        3 => field(vec![("*", all(7))]),
        2 => field(vec![
            ("1-5", vec![1, 2, 3, 4, 5]),
            ("MON-FRI", vec![1, 2, 3, 4, 5]),
            ("0", vec![0]),
            ("7", vec![0]),
            ("5-7", vec![0, 5, 6]),
            ("*/2", vec![0, 2, 4, 6]),
            ("sat,sun", vec![0, 6]),
            ("1,3,5", vec![1, 3, 5]),
            ("fri-sun", vec![0, 5, 6]),
        ]),
    ];
    (secs, mins, hours, doms, dows, any::<bool>()).prop_map(|(s, m, h, dom, dow, five)| {
        let five = five && s.0 == "0";
        let tail = format!("{} {} {} * {}", m.0, h.0, dom.0, dow.0);
        let text = if five {
            tail
        } else {
            format!("{} {tail}", s.0)
        };
        Spec {
            text,
            secs: s.1,
            mins: m.1,
            hours: h.1,
            dom_star: dom.0.starts_with(['*', '?']),
            doms: dom.1,
            dow_star: dow.0.starts_with('*'),
            dows: dow.1,
        }
    })
}

impl Spec {
    fn matches(&self, w: NaiveDateTime) -> bool {
        let dom_ok = self.doms.contains(&w.day());
        let dow_ok = self.dows.contains(&w.weekday().num_days_from_sunday());
        // Vixie cron: both restricted → either may match; otherwise both must.
        let day_ok = if !self.dom_star && !self.dow_star {
            dom_ok || dow_ok
        } else {
            dom_ok && dow_ok
        };
        day_ok
            && self.secs.contains(&w.second())
            && self.mins.contains(&w.minute())
            && self.hours.contains(&w.hour())
    }
}

fn wall(tz: Tz, t: i64) -> NaiveDateTime {
    DateTime::from_timestamp(t, 0)
        .unwrap()
        .with_timezone(&tz)
        .naive_local()
}

/// Whether the documented policy fires at grid instant `t` (seconds).
fn oracle_fires(spec: &Spec, tz: Tz, t: i64) -> bool {
    let now = wall(tz, t);
    let first_occurrence = tz
        .from_local_datetime(&now)
        .earliest()
        .map(|e| e.timestamp())
        == Some(t);
    if first_occurrence && spec.matches(now) {
        return true;
    }
    // Wall-clock times skipped by a jump just before `t` fire at `t`.
    let mut w = wall(tz, t - 30) + Duration::seconds(30);
    while w < now {
        if spec.matches(w) {
            return true;
        }
        w += Duration::seconds(30);
    }
    false
}

/// First fire in `(after, after + horizon]` by brute force, if any.
fn oracle_next(
    spec: &Spec,
    tz: Tz,
    after: DateTime<Utc>,
    horizon: Duration,
) -> Option<DateTime<Utc>> {
    let s = after.timestamp();
    let end = (after + horizon).timestamp();
    let mut t = s - s.rem_euclid(30) + 30;
    while t <= end {
        if oracle_fires(spec, tz, t) {
            return DateTime::from_timestamp(t, 0);
        }
        t += 30;
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn next_after_agrees_with_the_brute_force_policy((tz, start) in zone_and_instant(), spec in spec()) {
        let sched = Schedule::new(&spec.text, tz).unwrap();
        let horizon = Duration::days(8);
        let mut after = start;
        for _ in 0..3 {
            let got = sched.next_after(after);
            match oracle_next(&spec, tz, after, horizon) {
                Some(expected) => prop_assert_eq!(got, Some(expected), "{} in {} after {}", spec.text, tz, after),
                None => prop_assert!(got.is_none_or(|g| g > after + horizon)),
            }
            match got {
                Some(g) => after = g,
                None => break,
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn successive_fires_strictly_increase_with_distinct_wall_clock_times(
        (tz, start) in zone_and_instant(), spec in spec()
    ) {
        let sched = Schedule::new(&spec.text, tz).unwrap();
        let mut after = start;
        let mut seen_wall = HashSet::new();
        for _ in 0..60 {
            let Some(next) = sched.next_after(after) else { break };
            prop_assert!(next > after, "{} in {}: {} after {}", spec.text, tz, next, after);
            let w = next.with_timezone(&tz).naive_local();
            prop_assert!(seen_wall.insert(w), "{} in {}: wall clock {} fired twice", spec.text, tz, w);
            after = next;
        }
    }

    #[test]
    fn fires_between_is_the_chain_of_next_after((tz, start) in zone_and_instant(), spec in spec(), hours in 1i64..72, limit in 0usize..40) {
        let sched = Schedule::new(&spec.text, tz).unwrap();
        let to = start + Duration::hours(hours);
        let fires = sched.fires_between(start, to, limit);
        prop_assert!(fires.len() <= limit);
        let mut after = start;
        for &f in &fires {
            prop_assert_eq!(Some(f), sched.next_after(after));
            prop_assert!(f > start && f <= to);
            after = f;
        }
        if fires.len() < limit {
            prop_assert!(sched.next_after(after).is_none_or(|n| n > to));
        }
    }

    #[test]
    fn five_fields_mean_seconds_zero((tz, start) in zone_and_instant(), spec in spec()) {
        let five: Vec<&str> = spec.text.split_whitespace().collect();
        let five = if five.len() == 6 { five[1..].join(" ") } else { five.join(" ") };
        let a = Schedule::new(&five, tz).unwrap();
        let b = Schedule::new(&format!("0 {five}"), tz).unwrap();
        prop_assert_eq!(a.fires_between(start, start + Duration::days(3), 20), b.fires_between(start, start + Duration::days(3), 20));
    }
}

fn ny() -> Tz {
    chrono_tz::America::New_York
}

#[test]
fn new_york_spring_forward_fires_once_right_after_the_gap() {
    let s = Schedule::new("0 30 2 * * *", ny()).unwrap();
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT at 07:00 UTC; 02:30 never happens.
    let day_before = utc(2026, 3, 7, 12, 0, 0);
    let fires = s.fires_between(day_before, day_before + Duration::days(3), 10);
    assert_eq!(
        fires,
        vec![
            utc(2026, 3, 8, 7, 0, 0),  // 03:00 EDT, first instant after the gap
            utc(2026, 3, 9, 6, 30, 0), // 02:30 EDT
            utc(2026, 3, 10, 6, 30, 0),
        ]
    );
}

#[test]
fn every_quarter_hour_in_the_gap_collapses_into_one_fire() {
    let s = Schedule::new("*/15 2 * * *", ny()).unwrap();
    let fires = s.fires_between(utc(2026, 3, 8, 0, 0, 0), utc(2026, 3, 8, 12, 0, 0), 10);
    assert_eq!(fires, vec![utc(2026, 3, 8, 7, 0, 0)]);
}

#[test]
fn new_york_fall_back_fires_repeated_time_once_at_first_occurrence() {
    // 2026-11-01: 01:00–02:00 happens twice (EDT until 06:00 UTC, then EST).
    let from = utc(2026, 11, 1, 0, 0, 0);
    let to = utc(2026, 11, 2, 0, 0, 0);
    let s = Schedule::new("0 30 1 * * *", ny()).unwrap();
    assert_eq!(
        s.fires_between(from, to, 10),
        vec![utc(2026, 11, 1, 5, 30, 0)]
    );
    let s = Schedule::new("0 30 2 * * *", ny()).unwrap();
    assert_eq!(
        s.fires_between(from, to, 10),
        vec![utc(2026, 11, 1, 7, 30, 0)]
    );
    let s = Schedule::new("*/15 1 * * *", ny()).unwrap();
    let fires = s.fires_between(from, to, 10);
    assert_eq!(fires.len(), 4, "{fires:?}");
    assert_eq!(fires[0], utc(2026, 11, 1, 5, 0, 0));
    // Asked from inside the second pass of the repeated hour, nothing in it fires again.
    assert_eq!(
        s.next_after(utc(2026, 11, 1, 6, 5, 0)),
        Some(utc(2026, 11, 2, 6, 0, 0))
    );
}

#[test]
fn santiago_midnight_gap_fires_at_one_am_on_the_same_date() {
    // Chile springs forward at 24:00 → 01:00 (2026-09-06 local): a midnight
    // job fires at 01:00 local, and its business date is still the 6th.
    let tz = chrono_tz::America::Santiago;
    let s = Schedule::new("@daily", tz).unwrap();
    let fire = s.next_after(utc(2026, 9, 5, 12, 0, 0)).unwrap();
    let local = fire.with_timezone(&tz);
    assert_eq!((local.day(), local.hour(), local.minute()), (6, 1, 0));
    assert_eq!(
        business_date(fire, tz),
        NaiveDate::from_ymd_opt(2026, 9, 6).unwrap()
    );
}

#[test]
fn no_fire_after_the_last_supported_year() {
    let s = Schedule::new("@yearly", chrono_tz::UTC).unwrap();
    assert_eq!(s.next_after(utc(2100, 1, 1, 0, 0, 0)), None);
}
