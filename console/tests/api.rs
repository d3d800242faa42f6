//! The JSON API against the in-process coordinator and a fresh SQLite file:
//! every endpoint's happy path, bad input, auth failures and not-found.

mod support;

use axum::http::{Method, StatusCode};
use support::{seed, suite, Fixture, TOKEN};

async fn seeded() -> (Fixture, i64) {
    let f = Fixture::memory(support::operators()).await;
    let alert = seed(&f).await;
    (f, alert)
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    v["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_read_endpoint_returns_the_seeded_state() {
    let (f, alert) = seeded().await;
    suite::reads(&f, alert).await;
}

#[tokio::test]
async fn every_action_writes_exactly_one_command_and_no_run_state() {
    let (f, alert) = seeded().await;
    suite::actions(&f, alert).await;
}

#[tokio::test]
async fn metrics_are_in_prometheus_text_format() {
    let (f, _) = seeded().await;
    suite::metrics(&f).await;
}

#[tokio::test]
async fn bad_input_is_a_400_in_the_api_error_format() {
    let (f, _) = seeded().await;
    let post = |path: &'static str, body: &'static str| {
        let f = &f;
        async move { f.call(Method::POST, path, Some(TOKEN), Some(body)).await }
    };
    let cases = [
        ("/api/v1/dags/settlement/trigger", "{not json"),
        (
            "/api/v1/dags/settlement/trigger",
            r#"{"business_date":"2024-03-29","color":"red"}"#,
        ),
        (
            "/api/v1/dags/settlement/trigger",
            r#"{"business_date":"2024-02-30"}"#,
        ),
        (
            "/api/v1/dags/settlement/trigger",
            r#"{"business_date":"1900-01-01"}"#,
        ),
        ("/api/v1/dags/settlement/trigger", r#"{"params":[1,2]}"#),
        ("/api/v1/runs/r1/retry", r#"{"job":"a/b"}"#),
        (
            "/api/v1/alerts/silence",
            r#"{"rule":"item_failed","minutes":0}"#,
        ),
        (
            "/api/v1/alerts/silence",
            r#"{"rule":"item_failed","minutes":100000}"#,
        ),
        (
            "/api/v1/alerts/silence",
            r#"{"rule":"meteor_strike","minutes":5}"#,
        ),
        ("/api/v1/alerts/silence", r#"{"rule":"item_failed"}"#),
    ];
    for (path, body) in cases {
        let before = f.keys().await;
        let (status, _, text) = post(path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {text}");
        assert_eq!(error_code(&text), "bad_request");
        assert_eq!(f.keys().await, before, "{path} {body} wrote something");
    }
    let (_, _, text) = post("/api/v1/dags/settlement/trigger", r#"{"colour":1}"#).await;
    assert!(text.contains("unknown field"), "{text}");
    for path in [
        "/api/v1/runs?limit=0",
        "/api/v1/runs?limit=5000",
        "/api/v1/runs?state=exploded",
        "/api/v1/runs?bogus=1",
        "/api/v1/events?from=yesterday",
        "/api/v1/events?run=a%20b",
        "/api/v1/alerts?state=sleepy",
    ] {
        let (status, _, text) = f.call(Method::GET, path, Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {text}");
        assert_eq!(error_code(&text), "bad_request");
    }
    let (status, _, _) = f
        .call(
            Method::POST,
            "/api/v1/runs/r1/jobs/settle/items/x/mark-succeeded",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let (f, _) = seeded().await;
    let big = format!(
        r#"{{"params":{{"pad":"{}"}}}}"#,
        "x".repeat(nightshift_console::MAX_BODY_BYTES)
    );
    let before = f.keys().await;
    let (status, _, text) = f
        .call(
            Method::POST,
            "/api/v1/dags/settlement/trigger",
            Some(TOKEN),
            Some(&big),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert_eq!(error_code(&text), "payload_too_large");
    let (status, _, _) = f
        .call(
            Method::POST,
            "/api/v1/alerts/silence",
            Some(TOKEN),
            Some(&big),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(f.keys().await, before);
}

#[tokio::test]
async fn actions_need_a_valid_token() {
    let (f, alert) = seeded().await;
    let before = f.keys().await;
    let ack = format!("/api/v1/alerts/{alert}/ack");
    for path in [
        "/api/v1/runs/r1/cancel",
        "/api/v1/dags/settlement/trigger",
        ack.as_str(),
    ] {
        for token in [None, Some("alice-token-0123456789abcdefghijkX"), Some("")] {
            let (status, headers, text) = f.call(Method::POST, path, token, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {token:?}: {text}");
            assert_eq!(headers["www-authenticate"], "Bearer");
            assert_eq!(error_code(&text), "unauthorized");
            assert!(!text.contains(TOKEN));
        }
    }
    assert_eq!(f.keys().await, before);
    let (_, alerts) = f.get_json("/api/v1/alerts?state=open").await;
    assert_eq!(
        alerts.as_array().unwrap().len(),
        1,
        "the alert was acknowledged without a token"
    );
}

#[tokio::test]
async fn a_read_only_console_refuses_every_action_with_403_but_serves_reads() {
    let f = Fixture::memory(support::read_only()).await;
    let alert = seed(&f).await;
    let before = f.keys().await;
    let ack = format!("/api/v1/alerts/{alert}/ack");
    for path in [
        "/api/v1/dags/settlement/trigger",
        "/api/v1/dags/settlement/pause",
        "/api/v1/runs/r1/cancel",
        "/api/v1/runs/r1/retry",
        "/api/v1/runs/r1/jobs/settle/skip",
        "/api/v1/runs/r1/jobs/settle/items/1/mark-succeeded",
        ack.as_str(),
    ] {
        let (status, _, text) = f.call(Method::POST, path, Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {text}");
        assert_eq!(error_code(&text), "forbidden");
    }
    assert_eq!(f.keys().await, before);
    let (status, _) = f.get_json("/api/v1/runs/r1").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_things_are_404_and_finished_runs_are_409() {
    let (f, _) = seeded().await;
    for path in [
        "/api/v1/runs/nope",
        "/api/v1/dags/nope",
        "/api/v1/dags/nope/runs",
        "/api/v1/runs/nope/jobs/settle/items",
        "/api/v1/runs/r1/jobs/nope/items",
        "/api/v1/nothing",
    ] {
        let (status, _, text) = f.call(Method::GET, path, Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {text}");
        assert_eq!(error_code(&text), "not_found");
    }
    let before = f.keys().await;
    for path in [
        "/api/v1/runs/nope/cancel",
        "/api/v1/dags/nope/trigger",
        "/api/v1/runs/r1/jobs/nope/skip",
        "/api/v1/runs/r1/jobs/settle/items/8/mark-succeeded",
        "/api/v1/alerts/999999/ack",
    ] {
        let (status, _, text) = f.call(Method::POST, path, Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {text}");
    }
    for path in [
        "/api/v1/runs/r0/cancel",
        "/api/v1/runs/r1/jobs/extract/skip",
    ] {
        let (status, _, text) = f.call(Method::POST, path, Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {text}");
        assert_eq!(error_code(&text), "conflict");
    }
    assert_eq!(f.keys().await, before);
}

/// `POST /runs/{run}/clear`: nothing named is a 400, an unknown run, job
/// or item a 404 naming it; nothing is written for any of them.
#[tokio::test]
async fn clear_names_what_it_cannot_find() {
    let (f, _) = seeded().await;
    let before = f.keys().await;
    let cases = [
        (
            "/api/v1/runs/r1/clear",
            "{}",
            StatusCode::BAD_REQUEST,
            "nothing to clear",
        ),
        (
            "/api/v1/runs/r1/clear",
            r#"{"items":{"settle":[]}}"#,
            StatusCode::BAD_REQUEST,
            "nothing to clear",
        ),
        (
            "/api/v1/runs/r1/clear",
            r#"{"jobs":["extract"],"colour":1}"#,
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "/api/v1/runs/r1/clear",
            r#"{"jobs":["nope"]}"#,
            StatusCode::NOT_FOUND,
            "no job `nope`",
        ),
        (
            "/api/v1/runs/r1/clear",
            r#"{"items":{"settle":[2,8]}}"#,
            StatusCode::NOT_FOUND,
            "no item 8",
        ),
        (
            "/api/v1/runs/nope/clear",
            r#"{"jobs":["settle"]}"#,
            StatusCode::NOT_FOUND,
            "nope",
        ),
    ];
    for (path, body, want, says) in cases {
        let (status, _, text) = f.call(Method::POST, path, Some(TOKEN), Some(body)).await;
        assert_eq!(status, want, "{body}: {text}");
        assert!(text.contains(says), "{body}: {text}");
    }
    assert_eq!(f.keys().await, before);
}

#[tokio::test]
async fn a_json_body_needs_the_json_content_type() {
    let (f, _) = seeded().await;
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/alerts/silence")
        .header("authorization", support::suite::bearer())
        .header("content-type", "text/plain")
        .body(axum::body::Body::from(
            r#"{"rule":"item_failed","minutes":5}"#,
        ))
        .unwrap();
    let res = tower::ServiceExt::oneshot(nightshift_console::router(f.state.clone()), req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn readiness_and_the_query_form_of_items() {
    let (f, _) = seeded().await;
    let (status, ready) = f.get_json("/readyz").await;
    assert_eq!(
        (status, ready["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
    // Ages are measured at each call: compare everything else.
    let without_ages = |mut items: serde_json::Value| {
        for item in items.as_array_mut().unwrap() {
            item.as_object_mut().unwrap().remove("last_progress_age_ms");
        }
        items
    };
    let (status, by_query) = f.get_json("/api/v1/runs/r1/items?job=settle").await;
    assert_eq!(status, StatusCode::OK);
    let (_, by_path) = f.get_json("/api/v1/runs/r1/jobs/settle/items").await;
    assert_eq!(without_ages(by_query), without_ages(by_path));
    let (status, _, _) = f
        .call(Method::GET, "/api/v1/runs/r1/items", Some(TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "job is required");
}

#[tokio::test]
async fn readiness_fails_with_503_when_the_database_is_gone() {
    let (f, _) = seeded().await;
    f.store.close().await;
    let (status, _, body) = f.call(Method::GET, "/readyz", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        !body.contains("sqlite") && !body.contains(".db"),
        "internal detail leaked: {body}"
    );
}

#[tokio::test]
async fn triggering_through_runs_answers_the_run_id_and_a_paused_dag_still_takes_a_manual_run() {
    use nightshift_core::keyspace::commands::trigger_run_id;
    use nightshift_core::keyspace::{dag_key, decode, encode, AppliedDag, CommandId};
    let (f, _) = seeded().await;
    let before = f.keys().await;
    let (status, answer) = f
        .post_json(
            "/api/v1/dags/settlement/runs",
            Some(r#"{"business_date":"2024-03-30"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let record = suite::one_command(&f, &before).await;
    assert_eq!(answer["command_id"], record.id.as_str());
    let expected = trigger_run_id(
        &nightshift_core::ids::DagName::new("settlement"),
        &CommandId::parse(record.id.as_str()).unwrap(),
    );
    assert_eq!(answer["run_id"], expected.as_str());

    let key = dag_key(
        support::PREFIX,
        &nightshift_core::ids::DagName::new("settlement"),
    );
    let mut applied: AppliedDag = decode(&f.coord.get(&key).await.unwrap().unwrap().value).unwrap();
    applied.paused = true;
    f.coord
        .put(&key, encode(&applied).unwrap(), None)
        .await
        .unwrap();
    // Pausing stops scheduled runs only (the leader's and the CLI's rule):
    // a manual trigger of a paused DAG is written like any other.
    for path in [
        "/api/v1/dags/settlement/runs",
        "/api/v1/dags/settlement/trigger",
    ] {
        let before = f.keys().await;
        let (status, _, text) = f.call(Method::POST, path, Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{path}: {text}");
        let record = suite::one_command(&f, &before).await;
        assert!(
            matches!(
                record.command,
                nightshift_core::keyspace::Command::Trigger { .. }
            ),
            "{path}: {:?}",
            record.command
        );
    }
}

#[tokio::test]
async fn the_openapi_document_lists_the_api() {
    let (f, _) = seeded().await;
    let (status, doc) = f.get_json("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/dags/{dag}/runs"]["post"].is_object());
    assert!(doc["components"]["schemas"]["Error"].is_object());
}

#[tokio::test]
async fn sql_errors_are_counted_and_metrics_still_answer() {
    let (f, _) = seeded().await;
    let count = |text: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with("nightshift_console_sql_errors_total "))
            .unwrap_or_else(|| panic!("{text}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    };
    let (_, _, healthy) = f.call(Method::GET, "/metrics", Some(TOKEN), None).await;
    assert_eq!(count(&healthy), 0, "{healthy}");
    f.store.close().await;
    let (status, _, first) = f.call(Method::GET, "/metrics", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK, "the scrape failed with SQL down");
    let a = count(&first);
    assert!(a >= 1, "{first}");
    assert!(
        first.contains("nightshift_executors_live 1"),
        "etcd sections still there: {first}"
    );
    let (status, _, _) = f.call(Method::GET, "/api/v1/runs", Some(TOKEN), None).await;
    assert!(status.is_server_error());
    let (_, _, second) = f.call(Method::GET, "/metrics", Some(TOKEN), None).await;
    assert!(
        count(&second) > a + 1,
        "the failed API call was not counted: {a} then {second}"
    );
}
