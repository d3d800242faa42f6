//! The DAG model: what a validated DAG file means.
//!
//! These are plain types with no positions and no parsing: [`super::parse_dag`]
//! builds them, the scheduler reads them, and they serialize to JSON (through
//! serde) to be published to the coordination store. Every value here has
//! been validated and every inherited default resolved, so readers never
//! have to fall back to a default themselves.

use crate::calendar::Calendar;
use crate::duration::serde_human;
use crate::ids::{DagName, HandlerName, ItemIndex, JobName};
use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use thiserror::Error;

/// A validated DAG: a schedule plus jobs linked by dependencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DagSpec {
    /// The DAG's name: the file stem unless the file sets `name`.
    pub name: DagName,
    /// Free text for people.
    pub description: Option<String>,
    /// The cron expression as written (5 or 6 fields); `None` means the DAG
    /// only runs when triggered.
    pub schedule: Option<String>,
    /// Time zone the schedule, the business date and the deadline are
    /// evaluated in (serialized as its IANA name).
    #[serde(with = "tz_serde")]
    pub timezone: Tz,
    /// The business-day calendar scheduled runs are restricted to, resolved
    /// from `dags/calendars/<name>.toml`.
    #[serde(with = "calendar_serde")]
    pub calendar: Option<Calendar>,
    /// What to do when a run is due while the previous one still runs.
    pub concurrency: ConcurrencyPolicy,
    /// What to do with schedule instants missed while no scheduler ran.
    pub misfire: MisfirePolicy,
    /// Local time (in `timezone`) by which a run must have finished, else an
    /// alert is raised.
    pub deadline: Option<NaiveTime>,
    /// Which date a run is for, from its fire instant.
    #[serde(default, skip_serializing_if = "BusinessDatePolicy::is_default")]
    pub business_date: BusinessDatePolicy,
    /// Fire only on the Nth business day of the month of `calendar` (1 =
    /// first, -1 = last), at the times of day of `schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_business_day: Option<i32>,
    /// The jobs, in the order the file lists them.
    pub jobs: Vec<JobSpec>,
}

/// One job of a DAG: a handler run over `shards` items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The job's name, unique in its DAG.
    pub name: JobName,
    /// Free text for people.
    pub description: Option<String>,
    /// The handler executors register for this job (defaults to the job name).
    pub handler: HandlerName,
    /// Number of shard items, `1..=1_000_000`.
    pub shards: u32,
    /// Per-item parameter: item `i` gets `shard_params[i]`. When present its
    /// length equals `shards`.
    pub shard_params: Option<Vec<String>>,
    /// Job parameters handed to every item (a JSON object; the DAG-level
    /// `[params]` merged under the job's own).
    pub params: serde_json::Value,
    /// Jobs that must reach a terminal state before this one starts.
    pub depends_on: Vec<JobName>,
    /// Which upstream outcomes let this job start.
    pub trigger_rule: TriggerRule,
    /// How many times a failed item is retried.
    pub retries: u32,
    /// Delay before the first retry; doubled at each further retry.
    #[serde(with = "serde_human")]
    pub retry_backoff: Duration,
    /// Cap on the retry delay.
    #[serde(with = "serde_human")]
    pub max_backoff: Duration,
    /// Limit on the whole job's running time.
    #[serde(with = "serde_human::option")]
    pub timeout: Option<Duration>,
    /// Limit on one item's running time.
    #[serde(with = "serde_human::option")]
    pub item_timeout: Option<Duration>,
    /// How items are spread over executors.
    pub strategy: Strategy,
    /// Whether a dead executor's unfinished items move to live executors
    /// within the same run.
    pub failover: bool,
    /// Labels an executor must carry (all of them, with these values) to be
    /// given this job's items; empty: any executor serving the handler.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub executor_labels: std::collections::BTreeMap<String, String>,
}

impl JobSpec {
    /// The delay before retry number `retry` (1 = the first retry):
    /// `retry_backoff × 2^(retry−1)`, capped at `max_backoff`.
    ///
    /// ```
    /// # use nightshift_core::dag::{JobSpec};
    /// # use std::time::Duration;
    /// # let mut job = JobSpec::new("j");
    /// job.retry_backoff = Duration::from_secs(30);
    /// job.max_backoff = Duration::from_secs(100);
    /// assert_eq!(job.retry_delay(1), Duration::from_secs(30));
    /// assert_eq!(job.retry_delay(2), Duration::from_secs(60));
    /// assert_eq!(job.retry_delay(3), Duration::from_secs(100));
    /// ```
    pub fn retry_delay(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(63);
        self.retry_backoff
            .checked_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX))
            .unwrap_or(Duration::MAX)
            .min(self.max_backoff)
    }

    /// The parameter of item `item`, when the job has `shard_params`.
    pub fn shard_param(&self, item: ItemIndex) -> Option<&str> {
        let params = self.shard_params.as_ref()?;
        params
            .get(usize::try_from(item.0).ok()?)
            .map(String::as_str)
    }

    /// A job with every setting at its documented default: one shard, the
    /// handler named after the job, no dependencies.
    pub fn new(name: impl Into<JobName>) -> Self {
        let name = name.into();
        Self {
            handler: HandlerName::new(name.as_str()),
            name,
            description: None,
            shards: 1,
            shard_params: None,
            params: serde_json::Value::Object(serde_json::Map::new()),
            depends_on: Vec::new(),
            trigger_rule: TriggerRule::default(),
            retries: DEFAULT_RETRIES,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            timeout: None,
            item_timeout: None,
            strategy: Strategy::default(),
            failover: DEFAULT_FAILOVER,
            executor_labels: std::collections::BTreeMap::new(),
        }
    }

    /// Whether an executor with `labels` may run this job's items: it carries
    /// every label of [`JobSpec::executor_labels`] with the same value.
    pub fn accepts_labels(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.executor_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }

    /// The label selector as `k=v,k=v` (empty when there is none).
    pub fn label_selector(&self) -> String {
        self.executor_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Retries when neither the job nor `[defaults]` sets `retries`.
pub const DEFAULT_RETRIES: u32 = 0;
/// Largest `retries` accepted.
pub const MAX_RETRIES: u32 = 100;
/// `retry_backoff` when not set.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(10);
/// `max_backoff` when not set.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(600);
/// `failover` when not set.
pub const DEFAULT_FAILOVER: bool = true;
/// Largest `shards` accepted.
pub const MAX_SHARDS: u32 = 1_000_000;
/// The most missed runs `misfire = "catch_up"` starts.
pub const MAX_CATCH_UP_RUNS: u32 = 100;

/// A string that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {kind} `{value}` (expected one of: {})", expected.join(", "))]
pub struct UnknownVariant {
    /// What was being parsed, e.g. `"strategy"`.
    pub kind: &'static str,
    /// The rejected text.
    pub value: String,
    /// Every accepted spelling.
    pub expected: &'static [&'static str],
}

/// Declares a config enum with its snake_case spellings, `as_str`, `FromStr`,
/// `Display`, and serde using the same spellings.
macro_rules! config_enum {
    (
        $(#[$meta:meta])* $name:ident, $kind:literal,
        { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every accepted spelling, in declaration order.
            pub const ALL: &'static [&'static str] = &[$($text),+];

            /// Every variant, in declaration order.
            pub const VARIANTS: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used in DAG files and JSON.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownVariant { kind: $kind, value: s.to_owned(), expected: Self::ALL }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

    };
}

config_enum!(
    /// What happens when a run is due while the previous run still runs.
    ConcurrencyPolicy, "concurrency policy", {
        /// Skip the new run (the default).
        #[default]
        Forbid => "forbid",
        /// Start the new run alongside the old one.
        Allow => "allow",
        /// Cancel the running run, then start the new one.
        Replace => "replace",
    }
);

config_enum!(
    /// Which date a scheduled run is for. A nightly batch that starts at
    /// 01:30 on the 4th usually settles the 3rd.
    BusinessDatePolicy, "business date policy", {
        /// The local date of the fire instant (the default).
        #[default]
        FireDate => "fire_date",
        /// The last business day of the DAG's calendar before the fire date
        /// (needs a `calendar`).
        PreviousBusinessDay => "previous_business_day",
        /// The calendar day before the fire date.
        PreviousDay => "previous_day",
    }
);

impl BusinessDatePolicy {
    /// Whether this is the default (`fire_date`), left out of JSON.
    pub fn is_default(&self) -> bool {
        *self == BusinessDatePolicy::FireDate
    }
}

config_enum!(
    /// What happens to schedule instants missed while no scheduler was up.
    MisfirePolicy, "misfire policy", {
        /// Drop missed instants; wait for the next one.
        Skip => "skip",
        /// Start one run for the latest missed instant (the default).
        #[default]
        FireOnce => "fire_once",
        /// Start one run per missed instant, oldest first, at most
        /// [`MAX_CATCH_UP_RUNS`].
        CatchUp => "catch_up",
    }
);

config_enum!(
    /// Which upstream outcomes let a job start.
    TriggerRule, "trigger rule", {
        /// Every upstream job succeeded (the default).
        #[default]
        AllSuccess => "all_success",
        /// Every upstream job is terminal, whatever its outcome.
        AllDone => "all_done",
        /// At least one upstream job failed (cleanup / alert jobs); the job
        /// starts once all upstream jobs are terminal.
        OneFailed => "one_failed",
        /// No upstream job failed (succeeded or skipped).
        NoneFailed => "none_failed",
    }
);

config_enum!(
    /// How a job's items are spread over the executors that serve its handler.
    Strategy, "strategy", {
        /// Capacity-weighted shares that move the fewest items when
        /// executors come and go (the default).
        #[default]
        Sticky => "sticky",
        /// Contiguous, equal blocks of items per executor (ElasticJob's
        /// average allocation).
        Average => "average",
        /// Items dealt out in turn over the executors, the list rotated per
        /// job so that small jobs do not all land on the first executor.
        RoundRobin => "round_robin",
        /// Consistent hashing of (job, item): an item moves only when its
        /// executor leaves or a newcomer takes it over.
        Hash => "hash",
    }
);

/// Serde for `Option<Calendar>`: the calendar crate type stays free of serde
/// derives, so the DAG model spells out its wire form here.
mod calendar_serde {
    use crate::calendar::Calendar;
    use chrono::{NaiveDate, Weekday};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeSet;

    #[derive(Serialize, Deserialize)]
    struct Wire {
        name: String,
        weekends: Vec<Weekday>,
        holidays: BTreeSet<NaiveDate>,
        working_days: BTreeSet<NaiveDate>,
    }

    pub fn serialize<S: Serializer>(value: &Option<Calendar>, s: S) -> Result<S::Ok, S::Error> {
        value
            .as_ref()
            .map(|c| Wire {
                name: c.name.clone(),
                // Weekday is not Ord; keep Monday-first order for readability.
                weekends: sorted_weekdays(&c.weekends),
                holidays: c.holidays.clone(),
                working_days: c.working_days.clone(),
            })
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Calendar>, D::Error> {
        Ok(Option::<Wire>::deserialize(d)?.map(|w| Calendar {
            name: w.name,
            weekends: w.weekends.into_iter().collect(),
            holidays: w.holidays,
            working_days: w.working_days,
        }))
    }

    fn sorted_weekdays(days: &std::collections::HashSet<Weekday>) -> Vec<Weekday> {
        let mut v: Vec<Weekday> = days.iter().copied().collect();
        v.sort_by_key(|d| d.num_days_from_monday());
        v
    }
}

/// Serde for `Tz` as its IANA name (`"Asia/Shanghai"`).
mod tz_serde {
    use chrono_tz::Tz;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(d)?;
        name.parse::<Tz>()
            .map_err(|_| D::Error::custom(format!("unknown time zone `{name}`")))
    }
}
