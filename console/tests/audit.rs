//! Who did it (issue 15): console logins and logouts are audit events,
//! and a command sent through the console names the token's user — a body
//! cannot claim another.

mod support;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use support::{seed, Fixture, TOKEN};
use tower::ServiceExt;

async fn send(f: &Fixture, req: Request<Body>) -> (StatusCode, HeaderMap) {
    let res = nightshift_console::router(f.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    res.into_body().collect().await.unwrap();
    (status, headers)
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all("set-cookie").iter().find_map(|c| {
        c.to_str()
            .unwrap()
            .strip_prefix(&format!("{name}="))
            .map(|rest| rest.split(';').next().unwrap().to_owned())
    })
}

fn login_request(token: &str, next: &str) -> Request<Body> {
    Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={token}&next={next}")))
        .unwrap()
}

#[tokio::test]
async fn logins_and_logouts_are_audit_events() {
    let f = Fixture::memory(support::operators()).await;
    let (_, headers) = send(&f, login_request(TOKEN, "/")).await;
    let session = cookie_value(&headers, "nightshift_session").unwrap();
    let csrf = cookie_value(&headers, "nightshift_csrf").unwrap();
    let out = Request::post("/logout")
        .header("cookie", format!("nightshift_session={session}"))
        .header("x-nightshift-csrf", csrf)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&f, out).await.0, StatusCode::NO_CONTENT);
    let (_, events) = f.get_json("/api/v1/events").await;
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "alice")
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"console_login") && kinds.contains(&"console_logout"),
        "{events}"
    );
}

#[tokio::test]
async fn a_command_names_the_authenticated_user_and_cannot_claim_another() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let before = f.keys().await;
    let (status, answer) = f
        .post_json(
            "/api/v1/dags/settlement/trigger",
            Some(r#"{"issued_by":"mallory"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(f.keys().await, before, "nothing written");
    let (status, answer) = f.post_json("/api/v1/dags/settlement/trigger", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let (kvs, _) = f
        .coord
        .get_prefix(&nightshift_core::keyspace::commands_prefix(support::PREFIX))
        .await
        .unwrap();
    let record: nightshift_core::keyspace::CommandRecord =
        nightshift_core::keyspace::decode(&kvs[0].value).unwrap();
    assert_eq!(record.issued_by, "alice", "the token's user, not a claim");
}
