//! Mapping a local wall-clock time to the instant a schedule fires at it.
//!
//! This is where the DST policy lives (see the [`crate::schedule`] module doc):
//! a local time that occurs twice (fall-back) maps to its first occurrence, and
//! a local time that does not occur (spring-forward gap) maps to the first
//! instant after the gap. Both are the same rule — *the earliest instant whose
//! local time is at or after the wanted local time* — which is what makes the
//! mapping monotonic: a later wall-clock time never maps to an earlier instant.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// The earliest instant whose wall-clock time in `tz` is at or after `local`.
///
/// `None` only if `local` is outside chrono's representable range.
pub(crate) fn earliest_at_or_after(tz: &Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => end_of_gap(tz, local),
    }
}

/// The local wall-clock time of `instant` in `tz`; `None` only at the edges
/// of chrono's range (±262,000 years), where `naive_local` would panic.
pub(crate) fn wall_clock(tz: &Tz, instant: DateTime<Utc>) -> Option<NaiveDateTime> {
    let utc = instant.naive_utc();
    utc.checked_add_offset(tz.offset_from_utc_datetime(&utc).fix())
}

/// The first instant whose local time is at or after `local`, which falls in
/// a gap: the instant the clocks jump.
///
/// UTC offsets lie within -12 h … +14 h, so that instant is within
/// `[local - 15 h, local + 13 h]` read as UTC; zone rules never put a second
/// transition that close to a gap, so "local time ≥ `local`" is monotonic over
/// the window and bisection (to the second: zone transitions fall on whole
/// seconds) finds the jump.
fn end_of_gap(tz: &Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let as_utc = local.and_utc();
    let mut lo = as_utc.checked_sub_signed(Duration::hours(15))?.timestamp();
    let mut hi = as_utc.checked_add_signed(Duration::hours(13))?.timestamp();
    let reaches = |secs: i64| {
        DateTime::<Utc>::from_timestamp(secs, 0)
            .and_then(|t| wall_clock(tz, t))
            .map(|w| w >= local)
    };
    // Invariant: wall clock at `lo` is before `local`, at `hi` it is not.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if reaches(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::<Utc>::from_timestamp(hi, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    #[test]
    fn gap_maps_to_the_jump() {
        let tz = chrono_tz::America::New_York;
        // 2026-03-08 02:30 does not exist in New York; clocks jump at 07:00 UTC.
        let t = earliest_at_or_after(&tz, local(2026, 3, 8, 2, 30)).unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 3, 8, 7, 0, 0).unwrap());
    }

    #[test]
    fn repeated_time_maps_to_first_occurrence() {
        let tz = chrono_tz::America::New_York;
        // 2026-11-01 01:30 occurs at 05:30 UTC (EDT) and 06:30 UTC (EST).
        let t = earliest_at_or_after(&tz, local(2026, 11, 1, 1, 30)).unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 11, 1, 5, 30, 0).unwrap());
    }

    #[test]
    fn half_hour_gap_in_lord_howe() {
        let tz = chrono_tz::Australia::Lord_Howe;
        // 2026-10-04 02:00 local (+10:30) jumps to 02:30 (+11:00).
        let t = earliest_at_or_after(&tz, local(2026, 10, 4, 2, 15)).unwrap();
        assert_eq!(wall_clock(&tz, t), Some(local(2026, 10, 4, 2, 30)));
    }
}
