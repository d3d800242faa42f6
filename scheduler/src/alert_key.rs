//! The identity of every alert the scheduler opens: its dedupe key, typed.
//!
//! An alert stays one row in SQL while its condition lasts because every
//! open of the same condition carries the same key. The keys are built and
//! matched as [`AlertKey`] values; their text (`job_failed:{run}:{job}`, …)
//! exists only at the storage edge: the `dedupe_key` column and the run
//! record's `open_alerts`. [`Display`](std::fmt::Display) writes it,
//! [`FromStr`](std::str::FromStr) reads it back, and the text format is
//! unchanged from when keys were strings, so alerts opened by an earlier
//! version still resolve.

use nightshift_core::ids::{ExecutorId, JobName, RunId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// One alert's dedupe key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKey {
    /// A job ended failed (`job_failed:{run}:{job}`).
    JobFailed {
        /// The run.
        run: RunId,
        /// The job.
        job: JobName,
    },
    /// An item ran past its item timeout without progress
    /// (`item_stalled:{run}:{job}:{item}`); resolves when the item ends.
    ItemStalled {
        /// The run.
        run: RunId,
        /// The job.
        job: JobName,
        /// The item.
        item: u32,
    },
    /// An executor's lease ended while it held items of a run
    /// (`executor_lost:{executor}:{run}`); resolves when the run ends.
    ExecutorLost {
        /// The executor.
        executor: ExecutorId,
        /// The run.
        run: RunId,
    },
    /// A ready job found no live executor for it (`no_executor:{run}:{job}`).
    NoExecutor {
        /// The run.
        run: RunId,
        /// The job.
        job: JobName,
    },
    /// A run missed its deadline (`deadline:{run}`).
    DeadlineMissed {
        /// The run.
        run: RunId,
    },
    /// A run is slower than usual (`run_slow:{run}`).
    RunSlow {
        /// The run.
        run: RunId,
    },
    /// The SQL store refused writes since this instant
    /// (`store_unavailable:{ms}`): one alert per outage.
    StoreUnavailable {
        /// When the outage began, ms.
        since_ms: i64,
    },
    /// etcd's database is full since this instant (`coordination_full:{ms}`).
    CoordinationFull {
        /// When the first refusal was seen, ms.
        since_ms: i64,
    },
    /// A stored key this version cannot read (written by another version):
    /// kept as it is so that it is still resolved when its run ends.
    Other(String),
}

impl fmt::Display for AlertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlertKey::JobFailed { run, job } => write!(f, "job_failed:{run}:{job}"),
            AlertKey::ItemStalled { run, job, item } => {
                write!(f, "item_stalled:{run}:{job}:{item}")
            }
            AlertKey::ExecutorLost { executor, run } => write!(f, "executor_lost:{executor}:{run}"),
            AlertKey::NoExecutor { run, job } => write!(f, "no_executor:{run}:{job}"),
            AlertKey::DeadlineMissed { run } => write!(f, "deadline:{run}"),
            AlertKey::RunSlow { run } => write!(f, "run_slow:{run}"),
            AlertKey::StoreUnavailable { since_ms } => write!(f, "store_unavailable:{since_ms}"),
            AlertKey::CoordinationFull { since_ms } => write!(f, "coordination_full:{since_ms}"),
            AlertKey::Other(text) => f.write_str(text),
        }
    }
}

/// A dedupe key that is not one of [`AlertKey`]'s forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an alert key of this version: {0:?}")]
pub struct UnknownAlertKey(pub String);

/// `run:job`, split at the last `:`: job names never contain one (they are
/// ASCII letters, digits, `-` and `_`), run ids may.
fn run_and_job(rest: &str) -> Option<(RunId, JobName)> {
    let (run, job) = rest.rsplit_once(':')?;
    (!run.is_empty() && !job.is_empty()).then(|| (RunId::new(run), JobName::new(job)))
}

impl FromStr for AlertKey {
    type Err = UnknownAlertKey;

    /// Reads the text [`Display`](fmt::Display) wrote. An executor id may
    /// contain `:`, a run id of a DAG never does (DAG names cannot), so
    /// `executor_lost` splits at its last `:`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownAlertKey(s.to_owned());
        let (kind, rest) = s.split_once(':').ok_or_else(unknown)?;
        let nonempty = |r: &str| (!r.is_empty()).then(|| r.to_owned());
        let key = match kind {
            "job_failed" => run_and_job(rest).map(|(run, job)| AlertKey::JobFailed { run, job }),
            "no_executor" => run_and_job(rest).map(|(run, job)| AlertKey::NoExecutor { run, job }),
            "item_stalled" => rest.rsplit_once(':').and_then(|(head, item)| {
                let item = item.parse().ok()?;
                let (run, job) = run_and_job(head)?;
                Some(AlertKey::ItemStalled { run, job, item })
            }),
            "executor_lost" => rest.rsplit_once(':').and_then(|(exec, run)| {
                (!exec.is_empty() && !run.is_empty()).then(|| AlertKey::ExecutorLost {
                    executor: ExecutorId::new(exec),
                    run: RunId::new(run),
                })
            }),
            "deadline" => nonempty(rest).map(|run| AlertKey::DeadlineMissed {
                run: RunId::new(run),
            }),
            "run_slow" => nonempty(rest).map(|run| AlertKey::RunSlow {
                run: RunId::new(run),
            }),
            "store_unavailable" => rest
                .parse()
                .ok()
                .map(|since_ms| AlertKey::StoreUnavailable { since_ms }),
            "coordination_full" => rest
                .parse()
                .ok()
                .map(|since_ms| AlertKey::CoordinationFull { since_ms }),
            _ => None,
        };
        key.ok_or_else(unknown)
    }
}

impl AlertKey {
    /// The key a stored text stands for; text of no known form is kept as
    /// [`AlertKey::Other`] (never an error: a record must stay readable).
    pub fn from_stored(text: &str) -> AlertKey {
        text.parse()
            .unwrap_or_else(|UnknownAlertKey(text)| AlertKey::Other(text))
    }
}

// Stored as its text, so a run record's `open_alerts` reads as before.
impl Serialize for AlertKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AlertKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(AlertKey::from_stored(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Run ids as the leader makes them (DAG names cannot hold `:`, the
    /// keyspace allows it in other ids).
    fn run() -> impl Strategy<Value = RunId> {
        "[A-Za-z0-9_-]{1,12}(-s[0-9]{1,13})?".prop_map(RunId::new)
    }
    fn job() -> impl Strategy<Value = JobName> {
        "[A-Za-z0-9_-]{1,12}".prop_map(JobName::new)
    }

    fn key() -> impl Strategy<Value = AlertKey> {
        prop_oneof![
            (run(), job()).prop_map(|(run, job)| AlertKey::JobFailed { run, job }),
            (run(), job(), any::<u32>()).prop_map(|(run, job, item)| AlertKey::ItemStalled {
                run,
                job,
                item
            }),
            ("[A-Za-z0-9_.:-]{1,20}", run()).prop_map(|(e, run)| AlertKey::ExecutorLost {
                executor: ExecutorId::new(e),
                run
            }),
            (run(), job()).prop_map(|(run, job)| AlertKey::NoExecutor { run, job }),
            run().prop_map(|run| AlertKey::DeadlineMissed { run }),
            run().prop_map(|run| AlertKey::RunSlow { run }),
            any::<i64>().prop_map(|since_ms| AlertKey::StoreUnavailable { since_ms }),
            any::<i64>().prop_map(|since_ms| AlertKey::CoordinationFull { since_ms }),
        ]
    }

    proptest! {
        #[test]
        fn every_key_reads_back_from_its_text(k in key()) {
            let text = k.to_string();
            prop_assert_eq!(text.parse::<AlertKey>(), Ok(k.clone()));
            let json = serde_json::to_string(&k).unwrap();
            prop_assert_eq!(json, serde_json::to_string(&text).unwrap());
        }
    }

    #[test]
    fn the_text_is_the_one_earlier_versions_stored() {
        let run = RunId::new("daily-s1700000000000");
        let job = JobName::new("settle");
        let cases = [
            (
                AlertKey::JobFailed {
                    run: run.clone(),
                    job: job.clone(),
                },
                "job_failed:daily-s1700000000000:settle",
            ),
            (
                AlertKey::ItemStalled {
                    run: run.clone(),
                    job: job.clone(),
                    item: 7,
                },
                "item_stalled:daily-s1700000000000:settle:7",
            ),
            (
                AlertKey::ExecutorLost {
                    executor: ExecutorId::new("host:1"),
                    run: run.clone(),
                },
                "executor_lost:host:1:daily-s1700000000000",
            ),
            (
                AlertKey::NoExecutor {
                    run: run.clone(),
                    job,
                },
                "no_executor:daily-s1700000000000:settle",
            ),
            (
                AlertKey::DeadlineMissed { run: run.clone() },
                "deadline:daily-s1700000000000",
            ),
            (AlertKey::RunSlow { run }, "run_slow:daily-s1700000000000"),
            (
                AlertKey::StoreUnavailable { since_ms: 5 },
                "store_unavailable:5",
            ),
            (
                AlertKey::CoordinationFull { since_ms: 6 },
                "coordination_full:6",
            ),
        ];
        for (key, text) in cases {
            assert_eq!(key.to_string(), text);
            assert_eq!(AlertKey::from_stored(text), key);
        }
    }

    #[test]
    fn unknown_text_is_kept_as_it_is() {
        for text in ["", "what", "item_stalled:r:j:x", "job_failed:nojob"] {
            assert_eq!(
                AlertKey::from_stored(text),
                AlertKey::Other(text.to_owned())
            );
            assert_eq!(AlertKey::from_stored(text).to_string(), text);
        }
        let stored: std::collections::BTreeSet<AlertKey> =
            serde_json::from_str(r#"["run_slow:r1","later_kind:x"]"#).unwrap();
        assert!(stored.contains(&AlertKey::RunSlow {
            run: RunId::new("r1")
        }));
        assert!(stored.contains(&AlertKey::Other("later_kind:x".into())));
    }
}
