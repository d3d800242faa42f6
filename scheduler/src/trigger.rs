//! Cron triggering, pure: which schedule instants fire now, given the last
//! instant already handled, the clock and the DAG's misfire policy; and what
//! the concurrency policy does with a fire while runs are still going.
//!
//! An instant is **on time** when the leader sees it within `grace` of it;
//! older unhandled instants were **missed** (no leader was running):
//!
//! | misfire | missed instants | on-time instants |
//! |---|---|---|
//! | `skip` | dropped | fire |
//! | `fire_once` | one run, for the latest missed instant | fire |
//! | `catch_up` | one run each, oldest first, at most 100 (the latest ones) | fire |
//!
//! Every returned instant is after `last` and at most `now`, and the leader
//! stores the returned `handled` instant, so an instant fires at most once
//! (invariant 7) whatever happens between two calls.

use chrono::{DateTime, Utc};
use nightshift_core::calendar::Calendar;
use nightshift_core::dag::{ConcurrencyPolicy, MisfirePolicy, MAX_CATCH_UP_RUNS};
use nightshift_core::ids::RunId;
use nightshift_core::schedule::Schedule;
use nightshift_core::state::TriggerSource;
use std::collections::VecDeque;
use std::time::Duration;

/// Instants looked at per call at most: a schedule every second missed for
/// more than a day is still answered quickly (the oldest are dropped).
const MAX_SCAN: usize = 100_000;

/// One run to start for a schedule instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fire {
    /// The schedule instant.
    pub instant: DateTime<Utc>,
    /// `Schedule` when on time, `CatchUp` for a missed instant.
    pub source: TriggerSource,
}

/// What to fire now and the instant handled up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronDecision {
    /// Runs to start, oldest first.
    pub fires: Vec<Fire>,
    /// The latest instant considered (fired or dropped): the next call's
    /// `last`. `None` when no instant was due.
    pub handled: Option<DateTime<Utc>>,
}

/// The instants of `schedule` in `(last, now]` (business days of `calendar`
/// only) and which of them fire under `misfire`.
pub fn due_fires(
    schedule: &Schedule,
    calendar: Option<&Calendar>,
    misfire: MisfirePolicy,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: Duration,
) -> CronDecision {
    let cutoff = now - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::zero());
    let keep = usize::try_from(MAX_CATCH_UP_RUNS).unwrap_or(100);
    let mut missed: VecDeque<DateTime<Utc>> = VecDeque::new();
    let mut on_time = Vec::new();
    let mut cursor = last;
    let mut handled = None;
    for _ in 0..MAX_SCAN {
        let Some(instant) = schedule.next_business_after(cursor, calendar) else {
            break;
        };
        if instant > now {
            break;
        }
        handled = Some(instant);
        cursor = instant;
        if instant >= cutoff {
            on_time.push(instant);
        } else {
            missed.push_back(instant);
            if missed.len() > keep {
                missed.pop_front();
            }
        }
    }
    let catch_up: Vec<DateTime<Utc>> = match misfire {
        MisfirePolicy::Skip => Vec::new(),
        MisfirePolicy::FireOnce => missed.back().copied().into_iter().collect(),
        MisfirePolicy::CatchUp => missed.into_iter().collect(),
    };
    let fires = catch_up
        .into_iter()
        .map(|instant| Fire {
            instant,
            source: TriggerSource::CatchUp,
        })
        .chain(on_time.into_iter().map(|instant| Fire {
            instant,
            source: TriggerSource::Schedule,
        }))
        .collect();
    CronDecision { fires, handled }
}

/// What the concurrency policy does with a due run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Start it.
    Start,
    /// Do not start it (`forbid` while a run is live).
    Skip,
    /// Cancel these live runs, then start it (`replace`).
    Replace(Vec<RunId>),
}

/// Applies `policy` to a due run, given the DAG's live (non-terminal) runs.
pub fn admit(policy: ConcurrencyPolicy, live: &[RunId]) -> Admission {
    match policy {
        _ if live.is_empty() => Admission::Start,
        ConcurrencyPolicy::Allow => Admission::Start,
        ConcurrencyPolicy::Forbid => Admission::Skip,
        ConcurrencyPolicy::Replace => Admission::Replace(live.to_vec()),
    }
}

/// When a run must be done by, as epoch milliseconds, or `None` when the
/// DAG's `deadline` does not apply to it.
///
/// The deadline is the SLA of a night's batch for *its own* business date:
/// scheduled and caught-up runs, and manual triggers or retries of the
/// current (or a future) business date. Backfills, and manual runs or
/// retries of a past date, are catch-up work whose deadline passed long ago:
/// raising `run_deadline_missed` for them pages someone the moment they
/// start, for nothing. `created` is when the run is created (its schedule
/// instant for scheduled runs); a deadline earlier than that on the business
/// date is taken on the next day (a 23:00 batch with a 05:00 deadline).
pub fn deadline_ms(
    deadline: Option<chrono::NaiveTime>,
    tz: chrono_tz::Tz,
    source: TriggerSource,
    business_date: chrono::NaiveDate,
    created: DateTime<Utc>,
) -> Option<i64> {
    use chrono::TimeZone as _;
    let own_date = nightshift_core::schedule::business_date(created, tz);
    let applies = match source {
        TriggerSource::Schedule | TriggerSource::CatchUp => true,
        TriggerSource::Manual | TriggerSource::Retry => business_date >= own_date,
        TriggerSource::Backfill => false,
    };
    if !applies {
        return None;
    }
    let local = tz
        .from_local_datetime(&business_date.and_time(deadline?))
        .earliest()?;
    let mut ms = local.timestamp_millis();
    if ms < created.timestamp_millis() {
        ms += 86_400_000;
    }
    Some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn every_2s() -> Schedule {
        Schedule::new("*/2 * * * * *", chrono_tz::UTC).unwrap()
    }

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn misfire_policies_treat_missed_instants_as_documented() {
        let grace = Duration::from_secs(1);
        // Last handled t(0); now t(10): t(2)..t(8) missed, t(10) on time.
        let skip = due_fires(&every_2s(), None, MisfirePolicy::Skip, t(0), t(10), grace);
        assert_eq!(
            skip.fires,
            vec![Fire {
                instant: t(10),
                source: TriggerSource::Schedule
            }]
        );
        assert_eq!(skip.handled, Some(t(10)));
        let once = due_fires(
            &every_2s(),
            None,
            MisfirePolicy::FireOnce,
            t(0),
            t(10),
            grace,
        );
        assert_eq!(
            once.fires,
            vec![
                Fire {
                    instant: t(8),
                    source: TriggerSource::CatchUp
                },
                Fire {
                    instant: t(10),
                    source: TriggerSource::Schedule
                }
            ]
        );
        let all = due_fires(
            &every_2s(),
            None,
            MisfirePolicy::CatchUp,
            t(0),
            t(11),
            grace,
        );
        let catch_up: Vec<_> = all
            .fires
            .iter()
            .filter(|f| f.source == TriggerSource::CatchUp)
            .map(|f| f.instant)
            .collect();
        assert_eq!(catch_up, vec![t(2), t(4), t(6), t(8)]);
        assert_eq!(
            all.fires.last(),
            Some(&Fire {
                instant: t(10),
                source: TriggerSource::Schedule
            })
        );
        assert_eq!(all.handled, Some(t(10)));
        let none = due_fires(
            &every_2s(),
            None,
            MisfirePolicy::CatchUp,
            t(10),
            t(11),
            grace,
        );
        assert_eq!(
            none,
            CronDecision {
                fires: vec![],
                handled: None
            }
        );
    }

    #[test]
    fn catch_up_keeps_the_latest_hundred() {
        let d = due_fires(
            &every_2s(),
            None,
            MisfirePolicy::CatchUp,
            t(0),
            t(1000),
            Duration::ZERO,
        );
        assert_eq!(d.fires.len(), 101);
        assert_eq!(d.fires[99].instant, t(998));
        assert_eq!(
            d.fires[100],
            Fire {
                instant: t(1000),
                source: TriggerSource::Schedule
            }
        );
        assert_eq!(d.fires.first().map(|f| f.instant), Some(t(800)));
    }

    #[test]
    fn concurrency_policies() {
        let live = vec![RunId::new("r1")];
        assert_eq!(admit(ConcurrencyPolicy::Forbid, &[]), Admission::Start);
        assert_eq!(admit(ConcurrencyPolicy::Forbid, &live), Admission::Skip);
        assert_eq!(admit(ConcurrencyPolicy::Allow, &live), Admission::Start);
        assert_eq!(
            admit(ConcurrencyPolicy::Replace, &live),
            Admission::Replace(live.clone())
        );
    }

    proptest! {
        /// Polled at arbitrary instants, each schedule instant fires at most
        /// once, fires strictly increase, and with `catch_up` (and a grace
        /// longer than the polling gaps) every instant fires exactly once.
        #[test]
        fn each_instant_fires_at_most_once(gaps in proptest::collection::vec(0i64..7, 1..40), policy in 0usize..3) {
            let misfire = MisfirePolicy::VARIANTS[policy];
            let mut last = t(0);
            let mut now = t(0);
            let mut fired = Vec::new();
            for gap in gaps {
                now += chrono::Duration::seconds(gap);
                let d = due_fires(&every_2s(), None, misfire, last, now, Duration::from_secs(3));
                for f in &d.fires {
                    prop_assert!(f.instant > last && f.instant <= now);
                    fired.push(f.instant);
                }
                if let Some(h) = d.handled { prop_assert!(h > last); last = h; }
            }
            prop_assert!(fired.windows(2).all(|w| w[0] < w[1]), "{:?}", fired);
            if misfire == MisfirePolicy::CatchUp {
                let expected: Vec<_> = (1..).map(|k| t(2 * k)).take_while(|&i| i <= now).collect();
                prop_assert_eq!(fired, expected);
            }
        }
    }

    fn date(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_deadline_is_for_a_nights_own_business_date() {
        let tz: chrono_tz::Tz = "Asia/Shanghai".parse().unwrap();
        let five = chrono::NaiveTime::from_hms_opt(5, 0, 0);
        // 2026-03-05 01:30 in Shanghai
        let created = Utc.with_ymd_and_hms(2026, 3, 4, 17, 30, 0).unwrap();
        let due = Utc
            .with_ymd_and_hms(2026, 3, 4, 21, 0, 0)
            .unwrap()
            .timestamp_millis();
        let today = date(2026, 3, 5);
        for source in [
            TriggerSource::Schedule,
            TriggerSource::CatchUp,
            TriggerSource::Manual,
            TriggerSource::Retry,
        ] {
            assert_eq!(
                deadline_ms(five, tz, source, today, created),
                Some(due),
                "{source}"
            );
        }
        // a backfill of any date, or a manual run / retry of a past one, never pages
        for (source, day) in [
            (TriggerSource::Backfill, today),
            (TriggerSource::Backfill, date(2026, 1, 2)),
            (TriggerSource::Manual, date(2026, 3, 4)),
            (TriggerSource::Retry, date(2025, 12, 31)),
        ] {
            assert_eq!(
                deadline_ms(five, tz, source, day, created),
                None,
                "{source} {day}"
            );
        }
        assert_eq!(
            deadline_ms(None, tz, TriggerSource::Schedule, today, created),
            None
        );
        // a 23:00 batch with a 05:00 deadline is due the next morning
        let late = Utc.with_ymd_and_hms(2026, 3, 5, 15, 0, 0).unwrap();
        assert_eq!(
            deadline_ms(five, tz, TriggerSource::Schedule, today, late),
            Some(due + 86_400_000)
        );
    }

    proptest! {
        #[test]
        fn no_run_of_a_past_date_gets_a_deadline(
            days_back in 1i64..4000,
            hour in 0u32..24,
            secs in 0i64..(400 * 86_400),
            source in prop::sample::select(vec![
                TriggerSource::Schedule, TriggerSource::CatchUp, TriggerSource::Manual,
                TriggerSource::Retry, TriggerSource::Backfill,
            ]),
        ) {
            let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
            let created = t(0) + chrono::Duration::seconds(secs);
            let own = nightshift_core::schedule::business_date(created, tz);
            let past = own - chrono::Duration::days(days_back);
            let at = chrono::NaiveTime::from_hms_opt(hour, 0, 0);
            let got = deadline_ms(at, tz, source, past, created);
            // (scheduled runs keep theirs: their date is their instant's)
            if !matches!(source, TriggerSource::Schedule | TriggerSource::CatchUp) {
                prop_assert_eq!(got, None);
            }
        }
    }
}
