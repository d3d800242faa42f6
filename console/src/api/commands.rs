//! `GET /commands/{id}`: what became of an operator command — still
//! `pending` (its key is still under `{p}commands/`, or the leader has
//! taken it and not yet recorded the outcome), `applied`, or `rejected` with
//! the leader's reason — and the run it concerned or created. The pages'
//! script follows every action through it, so a toast never says an action
//! worked when the leader refused it.
//!
//! The outcome is the leader's `command_{kind}` event
//! ([`nightshift_store::Store::command_outcome`], shared with the CLI).

use super::id_segment;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::time::now_ms;
use crate::AppState;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use nightshift_core::keyspace::commands::{trigger_run_id, OutcomeReading};
use nightshift_core::keyspace::{command_key, decode, Command, CommandId, CommandRecord};
use serde::{Deserialize, Serialize};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/commands/{id}", get(status))
}

/// A command with neither a key nor an outcome this long after it was
/// issued is unknown (404) rather than pending: the leader records an
/// outcome within seconds, even when SQL was away for a while.
pub const FORGOTTEN_AFTER_MS: i64 = 60 * 60_000;

/// `GET /commands/{id}` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandQuery {
    /// The command's kind (`trigger`, `cancel_run`, ...) as the action
    /// answered it; narrows the search for the outcome.
    pub kind: Option<String>,
}

/// Where a command stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandStatus {
    /// The command id.
    pub command_id: String,
    /// Its kind, when known.
    pub kind: Option<String>,
    /// `pending`, `applied` or `rejected`.
    pub state: String,
    /// Why the leader refused it (`rejected` only).
    pub reason: Option<String>,
    /// The leader's words about it (`triggered`, `cancelled`, ...).
    pub outcome: Option<String>,
    /// The run it concerned or created.
    pub run_id: Option<String>,
}

/// The run a command concerns, or will create (a trigger's run id follows
/// from its command id).
pub fn command_run(command: &Command, id: &CommandId) -> Option<String> {
    match command {
        Command::Trigger { dag, .. } => Some(trigger_run_id(dag, id).to_string()),
        Command::CancelRun { run }
        | Command::Retry { run, .. }
        | Command::MarkItemSucceeded { run, .. }
        | Command::SkipJob { run, .. } => Some(run.to_string()),
        _ => None,
    }
}

/// Where command `id` stands.
pub async fn command_status(
    state: &AppState,
    id: &str,
    kind: Option<&str>,
) -> Result<CommandStatus, ApiError> {
    id_segment("command id", id)?;
    let id =
        CommandId::parse(id).ok_or_else(|| ApiError::bad(format!("`{id}` is not a command id")))?;
    if let Some(kind) = kind {
        let well_formed = !kind.is_empty()
            && kind.len() <= 40
            && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !well_formed {
            return Err(ApiError::bad(format!("`{kind}` is not a command kind")));
        }
    }
    if let Some(kv) = state.coord.get(&command_key(&state.prefix, &id)).await? {
        let record = decode::<CommandRecord>(&kv.value).ok();
        return Ok(CommandStatus {
            command_id: id.to_string(),
            kind: record
                .as_ref()
                .map(|r| r.command.kind().to_owned())
                .or(kind.map(str::to_owned)),
            state: "pending".to_owned(),
            reason: None,
            outcome: None,
            run_id: record.as_ref().and_then(|r| command_run(&r.command, &id)),
        });
    }
    match state.store.command_outcome(&id, kind, None).await? {
        Some(recorded) => {
            let (state_name, reason) = match &recorded.outcome {
                OutcomeReading::Applied(_) => ("applied", None),
                OutcomeReading::Rejected(why) => ("rejected", Some(why.clone())),
            };
            Ok(CommandStatus {
                command_id: id.to_string(),
                kind: recorded
                    .event_kind
                    .strip_prefix("command_")
                    .map(str::to_owned),
                state: state_name.to_owned(),
                reason,
                outcome: Some(recorded.text),
                // A refused trigger created no run: its event names none.
                run_id: recorded.run_id.map(|r| r.to_string()),
            })
        }
        None => {
            let age = now_ms() - id.issued_at_ms().unwrap_or(0);
            if age > FORGOTTEN_AFTER_MS {
                return Err(ApiError::NotFound(format!(
                    "no command `{id}` is pending and none was recorded"
                )));
            }
            // Taken by the leader (the key is gone), outcome not yet in SQL.
            Ok(CommandStatus {
                command_id: id.to_string(),
                kind: kind.map(str::to_owned),
                state: "pending".to_owned(),
                reason: None,
                outcome: None,
                run_id: None,
            })
        }
    }
}

async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<CommandQuery>,
) -> Result<Json<CommandStatus>, ApiError> {
    Ok(Json(command_status(&state, &id, q.kind.as_deref()).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift_core::ids::{DagName, RunId};
    use nightshift_core::state::TriggerSource;

    #[test]
    fn a_trigger_names_the_run_it_creates_and_a_pause_none() {
        let id = CommandId::new(1_700_000_000_000, 7);
        let trigger = Command::Trigger {
            dag: DagName::new("eod"),
            business_date: None,
            params: None,
            rerun: false,
            source: TriggerSource::Manual,
        };
        assert_eq!(
            command_run(&trigger, &id),
            Some(format!("eod-{id}")),
            "the id the leader gives the run"
        );
        let cancel = Command::CancelRun {
            run: RunId::new("r1"),
        };
        assert_eq!(command_run(&cancel, &id).as_deref(), Some("r1"));
        let pause = Command::PauseDag {
            dag: DagName::new("eod"),
        };
        assert_eq!(command_run(&pause, &id), None);
    }
}
