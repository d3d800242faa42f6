//! What the leader did with an operator command, from the event it records
//! for it (`command_{kind}`, `detail.command_id`, `detail.outcome` and the
//! typed `detail.result`). The
//! CLI (`trigger --wait`, `runs`, `backfill`) and the console (which
//! follows each action to its outcome) read it through this one function.

use crate::{EventFilter, Result, Store};
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::keyspace::commands::{outcome_event_kind, CommandOutcome, OutcomeReading};
use nightshift_core::keyspace::CommandId;

/// Clocks of the issuer and the leader may disagree; the outcome event is
/// looked for from this long before the command's own issue time.
pub const CLOCK_SLACK_MS: i64 = 60_000;

/// How long after its issue time a command of unknown kind is looked for.
pub const UNKNOWN_KIND_WINDOW_MS: i64 = 10 * 60_000;

/// What every outcome event's kind starts with.
const COMMAND_EVENT_PREFIX: &str = "command_";

/// Events read per page while looking for an outcome.
const PAGE: u32 = 500;

/// Pages read at most: a command's outcome follows it within seconds, so
/// thousands of later events of the same kind mean it has none.
const MAX_PAGES: u32 = 20;

/// The outcome the leader recorded for a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedOutcome {
    /// The event kind (`command_trigger`, ...).
    pub event_kind: String,
    /// Applied or rejected, with the leader's words.
    pub outcome: OutcomeReading,
    /// The typed outcome (`result` of the event), from leaders that record it.
    pub result: Option<CommandOutcome>,
    /// The outcome text as recorded.
    pub text: String,
    /// The run it concerned or created, if any.
    pub run_id: Option<RunId>,
    /// The DAG it concerned, if any.
    pub dag: Option<DagName>,
    /// When the leader recorded it (epoch ms).
    pub at_ms: i64,
}

impl RecordedOutcome {
    /// Whether the leader refused the command.
    pub fn rejected(&self) -> bool {
        self.outcome.is_rejection()
    }
}

impl std::fmt::Display for RecordedOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Store {
    /// The outcome the leader recorded for command `id` of `kind`
    /// ([`nightshift_core::keyspace::Command::kind`]), if it has recorded
    /// one yet. `dag` narrows the search when known. Without `kind`, every
    /// `command_*` event of the [`UNKNOWN_KIND_WINDOW_MS`] after the
    /// command's issue time is searched.
    pub async fn command_outcome(
        &self,
        id: &CommandId,
        kind: Option<&str>,
        dag: Option<&DagName>,
    ) -> Result<Option<RecordedOutcome>> {
        let since = id
            .issued_at_ms()
            .unwrap_or(0)
            .saturating_sub(CLOCK_SLACK_MS);
        let mut filter = EventFilter {
            dag: dag.cloned(),
            kind: kind.map(outcome_event_kind),
            from_ms: Some(since),
            to_ms: kind
                .is_none()
                .then(|| since + CLOCK_SLACK_MS + UNKNOWN_KIND_WINDOW_MS),
            limit: Some(PAGE),
            ..EventFilter::default()
        };
        for _ in 0..MAX_PAGES {
            let events = self.events(&filter).await?;
            if let Some(e) = events.iter().find(|e| {
                e.event.kind.starts_with(COMMAND_EVENT_PREFIX)
                    && e.event.detail["command_id"] == id.as_str()
            }) {
                let text = e.event.detail["outcome"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let result: Option<CommandOutcome> =
                    serde_json::from_value(e.event.detail["result"].clone()).ok();
                return Ok(Some(RecordedOutcome {
                    event_kind: e.event.kind.clone(),
                    outcome: OutcomeReading::of_event(&text, result.as_ref()),
                    result,
                    text,
                    run_id: e.event.run_id.clone(),
                    dag: e.event.dag.clone(),
                    at_ms: e.event.at_ms,
                }));
            }
            match events.last() {
                Some(last) if events.len() == PAGE as usize => filter.after_seq = Some(last.seq),
                _ => break,
            }
        }
        Ok(None)
    }
}
