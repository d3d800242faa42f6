//! `Store::command_outcome`: the leader's `command_{kind}` event for a
//! command id, found past a page of other commands' events, with or
//! without the kind.

use nightshift_core::ids::{DagName, RunId};
use nightshift_core::keyspace::commands::OutcomeReading;
use nightshift_core::keyspace::CommandId;
use nightshift_store::{NewEvent, Store};
use serde_json::json;

fn outcome_event(id: &CommandId, kind: &str, run: Option<&str>, outcome: &str) -> NewEvent {
    NewEvent {
        at_ms: id.issued_at_ms().unwrap() + 10,
        kind: format!("command_{kind}"),
        actor: "alice".into(),
        dag: Some(DagName::new("eod")),
        run_id: run.map(RunId::new),
        job: None,
        item: None,
        executor: None,
        detail: json!({"command_id": id.as_str(), "outcome": outcome}),
    }
}

pub async fn outcomes_are_found_by_command_id(store: &Store) {
    let t = 1_700_000_000_000;
    // More than a page of other triggers first (a backfill's).
    let others: Vec<NewEvent> = (0..700)
        .map(|n| outcome_event(&CommandId::new(t, n), "trigger", Some("r"), "triggered"))
        .collect();
    store.append_events(&others).await.unwrap();
    let refused = CommandId::new(t + 1, 0xdead);
    let cancel = CommandId::new(t + 2, 0xbeef);
    store
        .append_events(&[
            outcome_event(
                &refused,
                "trigger",
                None,
                "rejected: a run for 2026-03-05 already succeeded (use rerun)",
            ),
            outcome_event(&cancel, "cancel_run", Some("r9"), "cancelled"),
        ])
        .await
        .unwrap();

    for kind in [Some("trigger"), None] {
        let found = store
            .command_outcome(&refused, kind, None)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("kind {kind:?}: not found"));
        assert_eq!(
            found.outcome,
            OutcomeReading::Rejected("a run for 2026-03-05 already succeeded (use rerun)".into())
        );
        assert_eq!(found.event_kind, "command_trigger");
        assert_eq!(found.run_id, None);
    }
    let found = store
        .command_outcome(&cancel, Some("cancel_run"), Some(&DagName::new("eod")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.outcome, OutcomeReading::Applied("cancelled".into()));
    assert_eq!(found.run_id, Some(RunId::new("r9")));
    // The wrong kind, or a command nobody answered: nothing.
    assert_eq!(
        store
            .command_outcome(&cancel, Some("trigger"), None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .command_outcome(&CommandId::new(t + 3, 1), None, None)
            .await
            .unwrap(),
        None
    );
}
