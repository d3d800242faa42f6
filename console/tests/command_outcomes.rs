//! `GET /api/v1/commands/{id}` on a real etcd: a command is `pending` while
//! its key waits for the leader (and until the leader's outcome event is in
//! SQL), then `rejected` with the leader's reason or `applied` with the run
//! it concerned — read from the same `command_{kind}` events the CLI reads.
//! The leader is played by hand here (delete the key, append the event it
//! appends); `browser.rs` runs a real one.

mod support;

use nightshift_core::ids::{DagName, RunId};
use nightshift_core::keyspace::{command_key, CommandId};
use nightshift_store::NewEvent;
use serde_json::json;
use support::{seed, Fixture, PREFIX};

async fn leader_answers(f: &Fixture, id: &str, kind: &str, run: Option<&str>, outcome: &str) {
    let id = CommandId::parse(id).unwrap();
    assert_eq!(f.coord.delete(&command_key(PREFIX, &id)).await.unwrap(), 1);
    f.store
        .append_event(&NewEvent {
            at_ms: id.issued_at_ms().unwrap() + 5,
            kind: format!("command_{kind}"),
            actor: "alice".into(),
            dag: Some(DagName::new("settlement")),
            run_id: run.map(RunId::new),
            job: None,
            item: None,
            executor: None,
            detail: json!({"command_id": id.as_str(), "outcome": outcome}),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_command_reads_pending_then_rejected_or_applied() {
    let f = Fixture::etcd(support::operators()).await;
    seed(&f).await;

    // A trigger: pending while its key is there, naming the run to be.
    let (status, sent) = f
        .post_json(
            "/api/v1/dags/settlement/trigger",
            Some(r#"{"business_date":"2024-03-29"}"#),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let id = sent["command_id"].as_str().unwrap().to_owned();
    let (status, c) = f.get_json(&format!("/api/v1/commands/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(c["state"], "pending");
    assert_eq!(c["kind"], "trigger");
    assert_eq!(c["run_id"], format!("settlement-{id}"));

    // Taken by the leader, outcome not yet in SQL: still pending.
    let cid = CommandId::parse(&id).unwrap();
    let key = command_key(PREFIX, &cid);
    let value = f.coord.get(&key).await.unwrap().unwrap().value;
    f.coord.delete(&key).await.unwrap();
    let (_, c) = f
        .get_json(&format!("/api/v1/commands/{id}?kind=trigger"))
        .await;
    assert_eq!(c["state"], "pending");
    f.coord.put(&key, value, None).await.unwrap();

    // Refused: the reason comes through, and no run.
    leader_answers(
        &f,
        &id,
        "trigger",
        None,
        "rejected: a run for 2024-03-29 already succeeded (use rerun)",
    )
    .await;
    for query in ["?kind=trigger", ""] {
        let (status, c) = f.get_json(&format!("/api/v1/commands/{id}{query}")).await;
        assert_eq!(status, 200);
        assert_eq!(c["state"], "rejected", "{query}: {c}");
        assert_eq!(
            c["reason"],
            "a run for 2024-03-29 already succeeded (use rerun)"
        );
        assert_eq!(c["run_id"], serde_json::Value::Null);
        assert_eq!(c["kind"], "trigger");
    }

    // A cancel the leader carried out.
    let (status, sent) = f.post_json("/api/v1/runs/r1/cancel", None).await;
    assert_eq!(status, 202, "{sent}");
    let id = sent["command_id"].as_str().unwrap().to_owned();
    leader_answers(&f, &id, "cancel_run", Some("r1"), "cancelled").await;
    let (_, c) = f
        .get_json(&format!("/api/v1/commands/{id}?kind=cancel_run"))
        .await;
    assert_eq!(
        (&c["state"], &c["outcome"], &c["run_id"], &c["reason"]),
        (
            &json!("applied"),
            &json!("cancelled"),
            &json!("r1"),
            &serde_json::Value::Null
        )
    );
}

#[tokio::test]
async fn bad_and_unknown_command_ids_are_clear_errors() {
    let f = Fixture::etcd(support::operators()).await;
    let (status, body) = f.get_json("/api/v1/commands/not-an-id").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = f
        .get_json("/api/v1/commands/0000000001000-00000000000000ff?kind=Trig;ger")
        .await;
    assert_eq!(status, 400, "{body}");
    // Issued long ago, neither pending nor answered: unknown.
    let (status, body) = f
        .get_json("/api/v1/commands/0000000001000-00000000000000ff")
        .await;
    assert_eq!(status, 404, "{body}");
}
