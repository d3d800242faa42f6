//! `{p}commands/{id}`: operator commands for the scheduler leader.
//!
//! The CLI and the console never change run state themselves (only the
//! leader does, invariant 6): they put a [`CommandRecord`] under
//! `{p}commands/`, and the leader watches that prefix, carries each command
//! out, records the outcome as an SQL event carrying the command id, and
//! deletes the key. Command ids start with the issue time in zero-padded
//! milliseconds, so listing the prefix yields commands in the order they
//! were issued; a random suffix keeps two commands of the same millisecond
//! apart.

use super::records::Record;
use super::validate_segment;
use crate::ids::{DagName, ItemIndex, JobName, RunId};
use crate::state::TriggerSource;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Identity of one operator command: `{ms:013}-{nonce:016x}`, time-ordered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommandId(String);

impl CommandId {
    /// The id of a command issued at `issued_at_ms` (Unix epoch
    /// milliseconds), made unique by `nonce` (a random number).
    pub fn new(issued_at_ms: i64, nonce: u64) -> Self {
        Self(format!("{:013}-{nonce:016x}", issued_at_ms.max(0)))
    }

    /// Reads an id from its text; `None` unless it has the shape [`Self::new`] builds.
    pub fn parse(text: &str) -> Option<Self> {
        let (ms, nonce) = text.split_once('-')?;
        let well_formed = ms.len() >= 13
            && ms.bytes().all(|b| b.is_ascii_digit())
            && nonce.len() == 16
            && nonce.bytes().all(|b| b.is_ascii_hexdigit());
        well_formed.then(|| Self(text.to_owned()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// When the command was issued, from the id itself.
    pub fn issued_at_ms(&self) -> Option<i64> {
        self.0.split_once('-')?.0.parse().ok()
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `{p}commands/{id}`: a command and who issued it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// The command's id (also the last key segment).
    pub id: CommandId,
    /// When it was issued, Unix epoch milliseconds.
    pub issued_at_ms: i64,
    /// Who issued it (user name).
    pub issued_by: String,
    /// What to do.
    pub command: Command,
}

impl Record for CommandRecord {
    const KIND: &'static str = "command";
}

/// What an operator asks the leader to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Command {
    /// Start a run of `dag`.
    Trigger {
        /// The DAG to run.
        dag: DagName,
        /// The run's business date; `None`: the DAG's business date of now.
        #[serde(default)]
        business_date: Option<NaiveDate>,
        /// Run parameters (a JSON object) merged over the jobs' params.
        #[serde(default)]
        params: Option<serde_json::Value>,
        /// Run even if a run of this business date already succeeded.
        #[serde(default)]
        rerun: bool,
        /// Why: [`TriggerSource::Manual`] or [`TriggerSource::Backfill`].
        source: TriggerSource,
    },
    /// Start a run of `dag` for `business_date` that applies the work's
    /// effects again: it gets the next redo generation of that date (one
    /// more than any run of it so far), which changes every item's work key
    /// (`ctx.idempotency_key()`) and starts without checkpoints. The one
    /// deliberate way to redo work already done; named apart from
    /// [`Command::Trigger`] so that it stands out in the event log.
    Redo {
        /// The DAG to run.
        dag: DagName,
        /// The business date whose work is redone.
        business_date: NaiveDate,
        /// Run parameters (a JSON object) merged over the jobs' params.
        #[serde(default)]
        params: Option<serde_json::Value>,
    },
    /// Cancel a run: running items are cancelled, pending jobs never start.
    CancelRun {
        /// The run.
        run: RunId,
    },
    /// Retry the failed items of one job of a run, or of every job when
    /// `job` is `None` (re-opening jobs that were `upstream_failed`).
    Retry {
        /// The run.
        run: RunId,
        /// The job, or all failed jobs.
        #[serde(default)]
        job: Option<JobName>,
    },
    /// Record an item as succeeded without running it again. Works on a
    /// running job and on a failed one (then its downstream jobs that the
    /// failure had resolved are re-evaluated, re-opening the run if it had
    /// ended).
    MarkItemSucceeded {
        /// The run.
        run: RunId,
        /// The job.
        job: JobName,
        /// The item.
        item: ItemIndex,
    },
    /// Skip a job that has not finished: its downstream jobs see it skipped.
    SkipJob {
        /// The run.
        run: RunId,
        /// The job.
        job: JobName,
    },
    /// Re-run chosen work of a run in the same run (Airflow's "clear"): the
    /// items get new attempts, even if the run had ended (it becomes
    /// running again). Jobs whose trigger rule had resolved them because of
    /// the cleared work are re-evaluated; with `downstream`, every job
    /// downstream of a cleared job runs again after it.
    Clear {
        /// The run.
        run: RunId,
        /// Jobs cleared whole.
        #[serde(default)]
        jobs: Vec<JobName>,
        /// Items cleared one by one, by job.
        #[serde(default)]
        items: std::collections::BTreeMap<JobName, Vec<ItemIndex>>,
        /// Also clear every job downstream of a cleared job.
        #[serde(default)]
        downstream: bool,
    },
    /// Stop scheduled runs of a DAG (manual triggers still run).
    PauseDag {
        /// The DAG.
        dag: DagName,
    },
    /// Resume scheduled runs of a paused DAG.
    ResumeDag {
        /// The DAG.
        dag: DagName,
    },
}

impl Command {
    /// The command's `kind` tag as written in the record ("trigger", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Trigger { .. } => "trigger",
            Self::Redo { .. } => "redo",
            Self::CancelRun { .. } => "cancel_run",
            Self::Retry { .. } => "retry",
            Self::MarkItemSucceeded { .. } => "mark_item_succeeded",
            Self::SkipJob { .. } => "skip_job",
            Self::Clear { .. } => "clear",
            Self::PauseDag { .. } => "pause_dag",
            Self::ResumeDag { .. } => "resume_dag",
        }
    }
}

/// What the leader did with a command: recorded (as `result`, next to its
/// text as `outcome`) in the command's `command_{kind}` event, so the CLI
/// and the console follow it without parsing text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CommandOutcome {
    /// Carried out.
    Applied {
        /// What it did.
        effect: Effect,
    },
    /// Refused; nothing changed.
    Rejected {
        /// Why.
        reason: Rejection,
    },
}

impl CommandOutcome {
    /// Whether the leader refused the command.
    pub fn is_rejected(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }
}

impl From<Effect> for CommandOutcome {
    fn from(effect: Effect) -> Self {
        Self::Applied { effect }
    }
}

impl From<Rejection> for CommandOutcome {
    fn from(reason: Rejection) -> Self {
        Self::Rejected { reason }
    }
}

/// What an applied command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    /// A run was created (or already existed for this command).
    Triggered {
        /// The run.
        run: RunId,
    },
    /// A redo run was created: the day's effects apply again under new keys.
    Redone {
        /// The run.
        run: RunId,
        /// Its redo generation.
        redo: u32,
        /// The business date redone.
        business_date: NaiveDate,
    },
    /// The run is cancelled.
    Cancelled,
    /// Failed jobs of a live run were re-opened.
    Reopened {
        /// How many.
        jobs: u32,
    },
    /// A finished run's unfinished work runs again in a new run.
    RetriedAs {
        /// The new run.
        run: RunId,
    },
    /// The item counts as succeeded.
    MarkedSucceeded,
    /// The job is skipped.
    Skipped,
    /// Work of the run runs again.
    Cleared {
        /// Items re-opened.
        items: u64,
        /// Jobs re-opened (cleared ones and their re-evaluated downstream).
        jobs: Vec<JobName>,
    },
    /// The DAG is paused.
    Paused,
    /// The DAG is resumed.
    Resumed,
}

/// Why the leader refused a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rejection {
    /// The DAG is not applied.
    DagNotApplied {
        /// The DAG.
        dag: DagName,
    },
    /// A run of this business date already succeeded and `rerun` was not set.
    AlreadySucceeded {
        /// The business date.
        business_date: NaiveDate,
    },
    /// No such run.
    NoRun,
    /// The run is not live (for commands that need a live run).
    RunNotLive,
    /// The run is ending (terminal, not yet persisted): try again.
    RunEnding,
    /// The run is in a state the command does not apply to.
    RunState {
        /// Its state.
        state: crate::state::RunState,
    },
    /// The run's DAG version is no longer stored.
    DagVersionGone {
        /// The DAG.
        dag: DagName,
        /// The version.
        version: u32,
    },
    /// The stored DAG version cannot be read.
    SpecUnreadable,
    /// The run (for a retry: the new run) already exists.
    RunExists {
        /// The run.
        run: RunId,
    },
    /// The run has no such job.
    NoJob {
        /// The job.
        job: JobName,
    },
    /// The job has no such item.
    NoItem {
        /// The job.
        job: JobName,
        /// The item.
        item: ItemIndex,
        /// The job's item count.
        shards: u32,
    },
    /// The job is in a state the command does not apply to.
    JobState {
        /// The job.
        job: JobName,
        /// Its state.
        state: crate::state::JobState,
    },
    /// The item already succeeded.
    ItemSucceeded {
        /// The job.
        job: JobName,
        /// The item.
        item: ItemIndex,
    },
    /// A clear that names no job and no item.
    NothingToClear,
    /// The run params do not fit a job's handler's declared params type.
    ParamsMismatch {
        /// Which job, handler and what does not fit.
        message: String,
    },
}

impl fmt::Display for CommandOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Applied { effect } => match effect {
                Effect::Triggered { .. } => f.write_str("triggered"),
                Effect::Redone {
                    redo,
                    business_date,
                    ..
                } => write!(f, "triggered as redo {redo} of {business_date}"),
                Effect::Cancelled => f.write_str("cancelled"),
                Effect::Reopened { jobs } => write!(f, "reopened {jobs} job(s)"),
                Effect::RetriedAs { run } => write!(f, "retried as run {run}"),
                Effect::MarkedSucceeded => f.write_str("marked succeeded"),
                Effect::Skipped => f.write_str("skipped"),
                Effect::Cleared { items, jobs } => {
                    let names: Vec<&str> = jobs.iter().map(|j| j.as_str()).collect();
                    write!(
                        f,
                        "cleared {items} item(s); jobs re-opened: {}",
                        names.join(", ")
                    )
                }
                Effect::Paused => f.write_str("paused"),
                Effect::Resumed => f.write_str("resumed"),
            },
            Self::Rejected { reason } => write!(f, "rejected: {reason}"),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DagNotApplied { dag } => write!(f, "dag {dag} is not applied"),
            Self::AlreadySucceeded { business_date } => {
                write!(f, "a run for {business_date} already succeeded (use rerun)")
            }
            Self::NoRun => f.write_str("no such run"),
            Self::RunNotLive => f.write_str("run is not live"),
            Self::RunEnding => f.write_str("run is ending; try again"),
            Self::RunState { state } => write!(f, "run is {state}"),
            Self::DagVersionGone { dag, version } => {
                write!(f, "dag version {version} of {dag} is gone")
            }
            Self::SpecUnreadable => f.write_str("stored dag spec unreadable"),
            Self::RunExists { run } => write!(f, "run {run} already exists"),
            Self::NoJob { job } => write!(f, "run has no job {job}"),
            Self::NoItem { job, item, shards } => {
                write!(f, "job {job} has no item {item} (it has {shards})")
            }
            Self::JobState { job, state } => write!(f, "job {job} is {state}"),
            Self::ItemSucceeded { job, item } => {
                write!(f, "item {item} of job {job} already succeeded")
            }
            Self::NothingToClear => f.write_str("nothing to clear: name jobs or items"),
            Self::ParamsMismatch { message } => f.write_str(message),
        }
    }
}

/// The id of the run a [`Command::Trigger`] (or [`Command::Redo`]) with command id `id` creates:
/// `{dag}-{id}`. One definition shared by the leader (which names the run)
/// and the console (which answers a trigger with the run id at once);
/// command ids are unique, so this run id is too.
pub fn trigger_run_id(dag: &DagName, id: &CommandId) -> RunId {
    RunId::new(format!("{dag}-{id}"))
}

/// `{p}commands/`
pub fn commands_prefix(prefix: &str) -> String {
    format!("{prefix}commands/")
}

/// `{p}commands/{id}`
pub fn command_key(prefix: &str, id: &CommandId) -> String {
    format!("{prefix}commands/{id}")
}

/// The command id of a `{p}commands/{id}` key; `None` for any other key.
pub fn parse_command_key(prefix: &str, key: &str) -> Option<CommandId> {
    let id = key.strip_prefix(prefix)?.strip_prefix("commands/")?;
    validate_segment("command id", id).ok()?;
    CommandId::parse(id)
}

/// The kind of the SQL event in which the leader records what it did with
/// a command of `kind` ([`Command::kind`]): `command_{kind}`. Its `detail`
/// holds `command_id` and `outcome` (`rejected: {reason}` when refused).
pub fn outcome_event_kind(kind: &str) -> String {
    format!("command_{kind}")
}

/// A command's outcome as operators read it: carried out (with the
/// leader's words) or refused (with the reason). From the typed
/// [`CommandOutcome`] an event carries as `result`; events of leaders that
/// recorded only the text are read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeReading {
    /// Carried out; the leader's words (`triggered`, `cancelled`, ...).
    Applied(String),
    /// Refused, and why.
    Rejected(String),
}

impl OutcomeReading {
    /// Reads an event's `outcome` text and, when recorded, its typed `result`.
    pub fn of_event(text: &str, result: Option<&CommandOutcome>) -> Self {
        match result {
            Some(CommandOutcome::Rejected { reason }) => Self::Rejected(reason.to_string()),
            Some(CommandOutcome::Applied { .. }) => Self::Applied(text.to_owned()),
            None => Self::read(text),
        }
    }

    /// Reads an event's `outcome` text alone: `rejected: why` is a refusal.
    pub fn read(outcome: &str) -> Self {
        match outcome.strip_prefix("rejected") {
            Some(rest) => {
                let why = rest.trim_start_matches(':').trim();
                Self::Rejected(if why.is_empty() {
                    "rejected".to_owned()
                } else {
                    why.to_owned()
                })
            }
            None => Self::Applied(outcome.to_owned()),
        }
    }

    /// Whether the leader refused the command.
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::Rejected(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::{decode, encode, normalize_prefix};
    use proptest::prelude::*;

    #[test]
    fn a_trigger_names_its_run_after_the_dag_and_command() {
        let id = CommandId::new(1_700_000_000_123, 0xabc);
        let run = trigger_run_id(&DagName::new("eod"), &id);
        assert_eq!(run.as_str(), format!("eod-{id}"));
        assert_ne!(
            run,
            trigger_run_id(
                &DagName::new("eod"),
                &CommandId::new(1_700_000_000_123, 0xabd)
            )
        );
    }

    fn record(command: Command) -> CommandRecord {
        CommandRecord {
            id: CommandId::new(1_700_000_000_123, 0xabc),
            issued_at_ms: 1_700_000_000_123,
            issued_by: "ops".into(),
            command,
        }
    }

    fn every_command() -> Vec<Command> {
        let (run, job, dag) = (
            RunId::new("r1"),
            JobName::new("accrue"),
            DagName::new("daily"),
        );
        vec![
            Command::Trigger {
                dag: dag.clone(),
                business_date: NaiveDate::from_ymd_opt(2024, 3, 29),
                params: Some(serde_json::json!({"region": "eu"})),
                rerun: true,
                source: TriggerSource::Backfill,
            },
            Command::Redo {
                dag: dag.clone(),
                business_date: NaiveDate::from_ymd_opt(2024, 3, 29).unwrap_or_default(),
                params: None,
            },
            Command::CancelRun { run: run.clone() },
            Command::Retry {
                run: run.clone(),
                job: Some(job.clone()),
            },
            Command::Retry {
                run: run.clone(),
                job: None,
            },
            Command::MarkItemSucceeded {
                run: run.clone(),
                job: job.clone(),
                item: ItemIndex(7),
            },
            Command::SkipJob {
                run: run.clone(),
                job: job.clone(),
            },
            Command::Clear {
                run,
                jobs: vec![job.clone()],
                items: [(job, vec![ItemIndex(1), ItemIndex(5)])].into(),
                downstream: true,
            },
            Command::PauseDag { dag: dag.clone() },
            Command::ResumeDag { dag },
        ]
    }

    #[test]
    fn every_command_round_trips_with_its_kind_tag() {
        for command in every_command() {
            let rec = record(command);
            let bytes = encode(&rec).unwrap();
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(json["v"], 1);
            assert_eq!(json["command"]["kind"], rec.command.kind());
            assert_eq!(decode::<CommandRecord>(&bytes).unwrap(), rec);
        }
    }

    #[test]
    fn outcomes_round_trip_and_read_as_before() {
        let outcomes: Vec<CommandOutcome> = vec![
            Effect::Reopened { jobs: 2 }.into(),
            Effect::Cleared {
                items: 3,
                jobs: vec![JobName::new("a")],
            }
            .into(),
            Rejection::RunNotLive.into(),
            Rejection::NoItem {
                job: JobName::new("a"),
                item: ItemIndex(9),
                shards: 4,
            }
            .into(),
        ];
        for o in outcomes {
            let json = serde_json::to_value(&o).unwrap();
            assert_eq!(serde_json::from_value::<CommandOutcome>(json).unwrap(), o);
            assert_eq!(o.to_string().starts_with("rejected"), o.is_rejected());
        }
        assert_eq!(
            CommandOutcome::from(Rejection::RunNotLive).to_string(),
            "rejected: run is not live"
        );
        assert_eq!(
            serde_json::to_value(CommandOutcome::from(Effect::Cancelled)).unwrap(),
            serde_json::json!({"status": "applied", "effect": {"kind": "cancelled"}})
        );
    }

    #[test]
    fn trigger_wire_format_is_documented_shape() {
        let bytes = br#"{"v":1,"id":"1700000000123-0000000000000abc","issued_at_ms":1700000000123,
            "issued_by":"ops","command":{"kind":"trigger","dag":"daily","source":"manual"}}"#;
        let rec: CommandRecord = decode(bytes).unwrap();
        assert_eq!(
            rec.command,
            Command::Trigger {
                dag: DagName::new("daily"),
                business_date: None,
                params: None,
                rerun: false,
                source: TriggerSource::Manual,
            }
        );
        let bad =
            br#"{"v":1,"id":"x","issued_at_ms":1,"issued_by":"o","command":{"kind":"explode"}}"#;
        assert!(decode::<CommandRecord>(bad).is_err());
    }

    proptest! {
        #[test]
        fn ids_sort_in_issue_order(a in 0i64..9_999_999_999_999, b in 0i64..9_999_999_999_999, na in any::<u64>(), nb in any::<u64>()) {
            let (ia, ib) = (CommandId::new(a, na), CommandId::new(b, nb));
            if a != b {
                prop_assert_eq!(ia.cmp(&ib), a.cmp(&b));
            }
            prop_assert_eq!(ia.issued_at_ms(), Some(a));
        }

        #[test]
        fn command_keys_parse_back(ms in 0i64..9_999_999_999_999, nonce in any::<u64>(), prefix in "/[a-z]{0,5}/?") {
            let p = normalize_prefix(&prefix).unwrap();
            let id = CommandId::new(ms, nonce);
            let key = command_key(&p, &id);
            prop_assert!(key.starts_with(&commands_prefix(&p)));
            prop_assert_eq!(parse_command_key(&p, &key), Some(id));
        }
    }

    #[test]
    fn malformed_command_keys_are_rejected() {
        for key in [
            "/n/commands/",
            "/n/commands/abc",
            "/n/commands/1-2",
            "/n/commands/1700000000123-xyz0000000000000",
            "/n/dags/1700000000123-0000000000000abc",
        ] {
            assert_eq!(parse_command_key("/n/", key), None, "{key}");
        }
    }

    #[test]
    fn outcomes_read_as_applied_or_rejected_with_the_reason() {
        assert_eq!(
            OutcomeReading::read("rejected: a run for 2026-03-05 already succeeded (use rerun)"),
            OutcomeReading::Rejected("a run for 2026-03-05 already succeeded (use rerun)".into())
        );
        assert_eq!(
            OutcomeReading::read("rejected"),
            OutcomeReading::Rejected("rejected".into())
        );
        assert_eq!(
            OutcomeReading::read("triggered"),
            OutcomeReading::Applied("triggered".into())
        );
        assert!(!OutcomeReading::read("reopened 1 job(s)").is_rejection());
        // A typed result wins over the text.
        let typed = CommandOutcome::from(Rejection::NoRun);
        assert_eq!(
            OutcomeReading::of_event("whatever", Some(&typed)),
            OutcomeReading::Rejected("no such run".into())
        );
        assert_eq!(
            OutcomeReading::of_event(&typed.to_string(), None),
            OutcomeReading::Rejected("no such run".into())
        );
        assert_eq!(outcome_event_kind("cancel_run"), "command_cancel_run");
    }
}
