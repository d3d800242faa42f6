//! Authentication and authorisation: anonymous callers get 401 everywhere
//! but `/healthz`, viewers read but cannot act, the login form sets a
//! `HttpOnly`, `SameSite=Strict` session cookie, and cookie-authenticated
//! changes need the CSRF header.

mod support;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use support::{seed, Fixture, TOKEN, VIEWER_TOKEN};
use tower::ServiceExt;

async fn seeded() -> (Fixture, i64) {
    let f = Fixture::memory(support::operators()).await;
    let alert = seed(&f).await;
    (f, alert)
}

async fn send(f: &Fixture, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let res = nightshift_console::router(f.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// Logs in through the form; returns `(session id, csrf token)` and the
/// `Set-Cookie` headers.
async fn login(f: &Fixture, token: &str) -> (String, String, Vec<String>) {
    let req = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={token}&next=%2Fruns%2Fr1")))
        .unwrap();
    let (status, headers, body) = send(f, req).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(headers["location"], "/runs/r1");
    let cookies: Vec<String> = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let value = |name: &str| {
        cookies
            .iter()
            .find_map(|c| {
                c.strip_prefix(&format!("{name}="))
                    .map(|rest| rest.split(';').next().unwrap().to_owned())
            })
            .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"))
    };
    (
        value("nightshift_session"),
        value("nightshift_csrf"),
        cookies,
    )
}

const READS: &[&str] = &[
    "/",
    "/dags/settlement",
    "/runs/r1",
    "/executors",
    "/alerts",
    "/events",
    "/readyz",
    "/metrics",
    "/api/v1/dags",
    "/api/v1/dags/settlement",
    "/api/v1/runs",
    "/api/v1/runs/r1",
    "/api/v1/runs/r1/items?job=settle",
    "/api/v1/executors",
    "/api/v1/alerts",
    "/api/v1/events",
    "/api/v1/openapi.json",
    "/api/v1/no-such-thing",
];

#[tokio::test]
async fn anonymous_callers_get_401_everywhere_but_healthz() {
    let (f, alert) = seeded().await;
    let before = f.keys().await;
    for path in READS {
        let (status, _, body) = f.call(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "GET {path}: {body}");
        for secret in [
            "Europe/Paris",
            "ledger refused",
            "host-a",
            "nightshift_runs",
        ] {
            assert!(!body.contains(secret), "GET {path} leaked data: {body}");
        }
    }
    // A page answers with the login form; the API with a JSON error.
    let (_, _, page) = f.call(Method::GET, "/runs/r1", None, None).await;
    assert!(
        page.contains("action=\"/login\"") && page.contains("value=\"/runs/r1\""),
        "{page}"
    );
    let (_, headers, api) = f.call(Method::GET, "/api/v1/dags", None, None).await;
    assert!(api.contains("\"unauthorized\""), "{api}");
    assert_eq!(headers["www-authenticate"], "Bearer");
    let ack = format!("/api/v1/alerts/{alert}/ack");
    for path in [
        "/api/v1/dags/settlement/runs",
        "/api/v1/runs/r1/cancel",
        ack.as_str(),
        "/logout",
    ] {
        let (status, _, body) = f.call(Method::POST, path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "POST {path}: {body}");
    }
    let (status, _, _) = f
        .call(
            Method::GET,
            "/api/v1/dags",
            Some("not-a-token-at-all-xx-0123456789abcdef"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = f.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    // The static stylesheet and script are public: the login page needs
    // the stylesheet, and neither holds data.
    for asset in ["/assets/console.css", "/assets/console.js"] {
        let (status, _, _) = f.call(Method::GET, asset, None, None).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
    }
    assert_eq!(f.keys().await, before);
}

#[tokio::test]
async fn a_viewer_reads_everything_but_cannot_act() {
    let (f, alert) = seeded().await;
    for path in READS.iter().filter(|p| !p.contains("no-such")) {
        let (status, _, body) = f.call(Method::GET, path, Some(VIEWER_TOKEN), None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    }
    // Pages show a viewer the actions disabled; an operator enabled.
    let (_, _, page) = f
        .call(Method::GET, "/runs/r1", Some(VIEWER_TOKEN), None)
        .await;
    assert!(
        page.contains("data-confirm=\"Cancel run r1?\" disabled"),
        "{page}"
    );
    let (_, _, page) = f.call(Method::GET, "/runs/r1", Some(TOKEN), None).await;
    assert!(page.contains("data-confirm=\"Cancel run r1?\">"), "{page}");
    let before = f.keys().await;
    let ack = format!("/api/v1/alerts/{alert}/ack");
    for path in [
        "/api/v1/dags/settlement/runs",
        "/api/v1/dags/settlement/trigger",
        "/api/v1/dags/settlement/pause",
        "/api/v1/runs/r1/cancel",
        "/api/v1/runs/r1/retry",
        "/api/v1/runs/r1/jobs/settle/skip",
        "/api/v1/runs/r1/jobs/settle/items/1/mark-succeeded",
        ack.as_str(),
    ] {
        let (status, _, body) = f.call(Method::POST, path, Some(VIEWER_TOKEN), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "POST {path}: {body}");
        assert!(body.contains("operator role"), "{body}");
    }
    let (status, _, _) = f
        .call(
            Method::POST,
            "/api/v1/alerts/silence",
            Some(VIEWER_TOKEN),
            Some(r#"{"rule":"item_failed","minutes":5}"#),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(f.keys().await, before, "a viewer's action wrote a command");
    let (_, open) = f.get_json("/api/v1/alerts?state=open").await;
    assert_eq!(
        open.as_array().unwrap().len(),
        1,
        "a viewer acknowledged an alert"
    );
}

#[tokio::test]
async fn login_sets_a_strict_httponly_session_cookie_that_reads_pages() {
    let (f, _) = seeded().await;
    let (session, csrf, cookies) = login(&f, TOKEN).await;
    assert_eq!(session.len(), 64, "32 random bytes in hex");
    assert_ne!(session, csrf);
    let session_cookie = cookies
        .iter()
        .find(|c| c.starts_with("nightshift_session="))
        .unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(
            session_cookie.contains(attr),
            "{session_cookie} lacks {attr}"
        );
    }
    let csrf_cookie = cookies
        .iter()
        .find(|c| c.starts_with("nightshift_csrf="))
        .unwrap();
    assert!(
        csrf_cookie.contains("SameSite=Strict") && !csrf_cookie.contains("HttpOnly"),
        "{csrf_cookie}"
    );

    assert!(
        !session_cookie.contains("Secure"),
        "plain HTTP: no Secure flag"
    );
    let behind_tls = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-proto", "https")
        .body(Body::from(format!("token={TOKEN}")))
        .unwrap();
    let (_, headers, _) = send(&f, behind_tls).await;
    assert!(headers
        .get_all("set-cookie")
        .iter()
        .all(|c| c.to_str().unwrap().ends_with("; Secure")));

    let page = Request::get("/runs/r1")
        .header("cookie", format!("nightshift_session={session}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&f, page).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Items of settle"));

    // A wrong token: 401 and the form again, no cookie.
    let req = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(
            "token=wrong-token-0123456789abcdef0123456789&next=https%3A%2F%2Fevil.example",
        ))
        .unwrap();
    let (status, headers, body) = send(&f, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get("set-cookie").is_none());
    assert!(
        body.contains("Unknown token") && !body.contains("evil.example"),
        "{body}"
    );

    // Logging out ends the session.
    let out = Request::post("/logout")
        .header("cookie", format!("nightshift_session={session}"))
        .header("x-nightshift-csrf", &csrf)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&f, out).await.0, StatusCode::NO_CONTENT);
    let again = Request::get("/api/v1/dags")
        .header("cookie", format!("nightshift_session={session}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&f, again).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_cookie_authenticated_post_needs_the_csrf_header() {
    let (f, _) = seeded().await;
    let (session, csrf, _) = login(&f, TOKEN).await;
    let before = f.keys().await;
    let post = |csrf: Option<&str>| {
        let mut req = Request::post("/api/v1/dags/settlement/runs")
            .header("cookie", format!("nightshift_session={session}"));
        if let Some(c) = csrf {
            req = req.header("x-nightshift-csrf", c);
        }
        req.body(Body::empty()).unwrap()
    };
    for bad in [
        None,
        Some("0".repeat(64)).as_deref(),
        Some(session.as_str()),
    ] {
        let (status, _, body) = send(&f, post(bad)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{bad:?}: {body}");
        assert!(body.contains("X-Nightshift-CSRF"), "{body}");
    }
    assert_eq!(
        f.keys().await,
        before,
        "a CSRF-less request wrote a command"
    );
    let (status, _, body) = send(&f, post(Some(&csrf))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Bearer requests are exempt (browsers never send them on their own).
    let (status, _, body) = f
        .call(Method::POST, "/api/v1/runs/r1/retry", Some(TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}
