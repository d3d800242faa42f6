//! `GET /api/v1/runs/{run}/jobs/{job}/items/{item}/attempts/{attempt}/log`
//! and the run page's hook for it, on the seeded console (in-process
//! coordinator, fresh SQLite file).

mod support;

use axum::http::{header, Method, StatusCode};
use nightshift_core::ids::{ItemIndex, JobName, RunId};
use nightshift_store::AttemptLog;
use support::{seed, Fixture, TOKEN, VIEWER_TOKEN};

const LOG: &str = "2024-03-01T02:00:05.000Z INFO  sleeping 5 ms\n\
                   2024-03-01T02:00:05.010Z ERROR <script>alert(1)</script> ledger refused\n";

async fn seeded() -> Fixture {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    f.store
        .record_attempt_logs(&[AttemptLog {
            run_id: RunId::new("r1"),
            job: JobName::new("settle"),
            item: ItemIndex(2),
            attempt: 1,
            log: LOG.to_owned(),
        }])
        .await
        .unwrap();
    f
}

#[tokio::test]
async fn the_log_is_plain_text_to_any_reader_and_absent_logs_are_json_404s() {
    let f = seeded().await;
    let path = "/api/v1/runs/r1/jobs/settle/items/2/attempts/1/log";
    for token in [TOKEN, VIEWER_TOKEN] {
        let (status, headers, body) = f.call(Method::GET, path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, LOG, "the text as stored, unescaped: it is not HTML");
        assert_eq!(
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(
            headers
                .get("x-content-type-options")
                .and_then(|v| v.to_str().ok()),
            Some("nosniff"),
            "a browser never sniffs it into HTML"
        );
    }
    let (status, _, _) = f.call(Method::GET, path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    for (missing, code) in [
        (
            "/api/v1/runs/r1/jobs/settle/items/2/attempts/2/log",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/runs/r1/jobs/settle/items/0/attempts/1/log",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/runs/r1/jobs/extract/items/2/attempts/1/log",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/runs/nope/jobs/settle/items/2/attempts/1/log",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/runs/r1/jobs/settle/items/x/attempts/1/log",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/runs/r1/jobs/settle/items/2/attempts/-1/log",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, headers, body) = f.call(Method::GET, missing, Some(TOKEN), None).await;
        assert_eq!(status, code, "{missing}: {body}");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{missing}: {e}: {body}"));
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert!(
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("application/json")),
            "{missing}"
        );
    }
}

#[tokio::test]
async fn the_run_page_points_each_ended_item_at_its_latest_attempt_log() {
    let f = seeded().await;
    let (status, _, html) = f
        .call(Method::GET, "/runs/r1?job=settle", Some(TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Item 2 ended (failed) at attempt 1; item 3 is still running.
    assert!(
        html.contains("data-item=\"2\" data-attempt=\"1\""),
        "{html}"
    );
    assert!(html.contains("data-item=\"3\" title="), "{html}");
    assert!(html.contains("data-mark-base=\"/api/v1/runs/r1/jobs/settle/items/\""));
    assert!(
        !html.contains("<script>alert(1)"),
        "the log is never inlined unescaped"
    );
}
