//! The console against a hostile network (issue 15): the login form
//! redirects only to paths of this site, webhook credentials never reach a
//! channel name, an event or a log line, slow connections are closed,
//! every answer carries the security headers, wrong tokens are throttled
//! per client address, event streams are capped per user, and sessions
//! per token. Who did what: `audit.rs`.

mod support;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::Redirect;
use axum::routing::post;
use axum::Router;
use http_body_util::BodyExt;
use nightshift_console::notify::{Notifier, NotifyConfig, WebhookConfig};
use nightshift_console::session::{MAX_SESSIONS_PER_TOKEN, SECURE_SESSION_COOKIE};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{seed, Fixture, TOKEN, VIEWER_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tower::ServiceExt;

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

/// Percent-encodes every byte but letters and digits (a form value).
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn login_request(token: &str, next: &str) -> Request<Body> {
    Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "token={}&next={}",
            form_encode(token),
            form_encode(next)
        )))
        .unwrap()
}

/// Log lines written while the guard lives (this thread: the tests run on
/// tokio's current-thread runtime, so spawned tasks log here too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The console on 127.0.0.1:0; stops when the sender is dropped.
async fn served(f: &Fixture) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(nightshift_console::serve(
        listener,
        f.state.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// One `Connection: close` request from local address `from`; the whole
/// answer.
async fn http(from: &str, addr: SocketAddr, request: &str) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn form_login(token: &str) -> String {
    let body = format!("token={}", form_encode(token));
    format!(
        "POST /login HTTP/1.1\r\nHost: console\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn bearer_get(token: &str) -> String {
    format!(
        "GET /api/v1/dags HTTP/1.1\r\nHost: console\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
}

#[tokio::test]
async fn login_redirects_only_to_paths_of_this_site() {
    let f = Fixture::memory(support::operators()).await;
    for next in [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        " /runs/r1",
        "/runs r1",
        "/runs/\u{7f}",
        "/runs/é",
        "",
    ] {
        let (status, headers, body) = send(&f, login_request(TOKEN, next)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{next:?}: {body}");
        assert_eq!(headers["location"], "/", "next={next:?}");
    }
    // Nor is it carried into the form of a failed login.
    let (status, _, page) = send(&f, login_request("wrong", "/\t/evil.example")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!page.contains("evil"), "{page}");
    let (_, headers, _) = send(&f, login_request(TOKEN, "/runs/r1?job=settle&page=2")).await;
    assert_eq!(headers["location"], "/runs/r1?job=settle&page=2");
    let (_, _, form) = send(
        &f,
        Request::get("/login?next=%2F%09%2Fevil.example")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(
        form.contains("name=\"next\" value=\"/\"") && !form.contains("evil"),
        "{form}"
    );
}

#[tokio::test]
async fn webhook_credentials_never_reach_channel_names_events_or_logs() {
    let (logs, _guard) = Logs::capture();
    // A receiver whose /redirect sends the client on to /hook.
    let hits = Arc::new(AtomicU32::new(0));
    let counted = hits.clone();
    let app = Router::new()
        .route("/redirect", post(|| async { Redirect::temporary("/hook") }))
        .route(
            "/hook",
            post(move || async move {
                counted.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let url = format!("http://user:hooksecret@{host}/redirect?password=querysecret");
    let config = NotifyConfig {
        retry_backoff_ms: 10,
        attempts: 1,
        webhook: vec![WebhookConfig { url: url.clone() }],
        ..NotifyConfig::default()
    };
    assert!(!format!("{config:?}").contains("secret"));
    let mut f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    f.state.notifier = Some(Arc::new(Notifier::new(config).unwrap()));
    let (status, deliveries) = f.post_json("/api/v1/notifications/test", None).await;
    assert_eq!(status, StatusCode::OK, "{deliveries}");
    let d = &deliveries[0];
    assert_eq!(d["channel"], format!("webhook:{host}"), "{d}");
    assert_eq!(d["ok"], false, "a redirect is not a delivery: {d}");
    assert!(
        d["error"].as_str().unwrap().contains("307"),
        "the redirect is reported, not followed: {d}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");

    let (_, events) = f.get_json("/api/v1/events?kind=notification_failed").await;
    let events = events.to_string();
    assert!(events.contains(&format!("webhook:{host}")), "{events}");
    assert!(!events.contains("secret"), "{events}");
    let logged = logs.text();
    assert!(logged.contains("notification delivery failed"), "{logged}");
    assert!(!logged.contains("secret"), "{logged}");
}

#[tokio::test]
async fn slow_connections_are_closed_within_15_s() {
    let f = Fixture::memory(support::operators()).await;
    let (addr, _stop) = served(&f).await;
    let start = Instant::now();
    // Reads until the server closes; what it said.
    async fn until_closed(mut s: TcpStream) -> String {
        let mut out = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut out)).await;
        assert!(closed.is_ok(), "still open after 15 s");
        String::from_utf8_lossy(&out).into_owned()
    }
    let silent = TcpStream::connect(addr).await.unwrap();
    let mut slow_headers = TcpStream::connect(addr).await.unwrap();
    slow_headers
        .write_all(b"GET /api/v1/dags HTTP/1.1\r\nHost: console\r\n")
        .await
        .unwrap();
    let mut slow_body = TcpStream::connect(addr).await.unwrap();
    slow_body
        .write_all(
            b"POST /login HTTP/1.1\r\nHost: console\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\ntoken=",
        )
        .await
        .unwrap();
    let (a, b, c) = tokio::join!(
        until_closed(silent),
        until_closed(slow_headers),
        until_closed(slow_body)
    );
    assert!(a.is_empty() || a.contains(" 408 "), "{a}");
    assert!(b.is_empty() || b.contains(" 408 "), "{b}");
    assert!(c.starts_with("HTTP/1.1 408"), "the slow body gets 408: {c}");
    assert!(start.elapsed() < Duration::from_secs(15));
    // The server is still fine.
    let ok = http("127.0.0.1", addr, &bearer_get(TOKEN)).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

fn assert_security_headers(what: &str, headers: &HeaderMap) {
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{what}: {csp}");
    }
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
}

#[tokio::test]
async fn pages_and_api_answers_carry_the_security_headers() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    for path in [
        "/",
        "/runs/r1",
        "/dags/settlement",
        "/api/v1/dags",
        "/api/v1/runs?colour=red",
    ] {
        let (status, headers, body) = f.call(Method::GET, path, Some(TOKEN), None).await;
        assert!(
            status.is_success() || status == StatusCode::BAD_REQUEST,
            "{path}: {body}"
        );
        assert_security_headers(path, &headers);
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        if !path.starts_with("/api/") {
            // Nothing inline: the policy would block it.
            assert!(
                !body.contains("<style") && !body.contains("style=\""),
                "{path}"
            );
            assert_eq!(
                body.matches("<script").count(),
                body.matches("<script src=\"/assets/console.js\"></script>")
                    .count(),
                "{path}"
            );
        }
    }
    // The unknown query key echoed in a 400 cannot be sniffed as HTML.
    let (status, headers, _) = f
        .call(
            Method::GET,
            "/api/v1/runs?%3Cb%3Ex%3C/b%3E=1",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // The login page and 401s too.
    let (status, headers, page) = f.call(Method::GET, "/runs/r1", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_security_headers("login page", &headers);
    assert!(
        !page.contains("<style") && !page.contains("style=\""),
        "{page}"
    );
    assert!(page.contains("href=\"/assets/console.css\""), "{page}");
    // The static assets may be cached a little.
    let (_, headers, _) = f.call(Method::GET, "/assets/console.css", None, None).await;
    assert_security_headers("css", &headers);
    assert_eq!(headers["cache-control"], "max-age=300");
}

#[tokio::test]
async fn wrong_tokens_are_answered_429_per_client_address_and_logged() {
    let (logs, _guard) = Logs::capture();
    let f = Fixture::memory(support::operators()).await;
    let (addr, _stop) = served(&f).await;
    let limit = nightshift_console::limits::MAX_FAILURES;
    for i in 0..limit {
        let wrong = format!("wrong-token-{i:02}-0123456789abcdef0123456789");
        let answer = if i % 2 == 0 {
            http("127.0.0.2", addr, &form_login(&wrong)).await
        } else {
            http("127.0.0.2", addr, &bearer_get(&wrong)).await
        };
        assert!(answer.starts_with("HTTP/1.1 401"), "attempt {i}: {answer}");
    }
    for request in [form_login("wrong"), bearer_get("wrong"), bearer_get(TOKEN)] {
        let answer = http("127.0.0.2", addr, &request).await;
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("retry-after: "),
            "{answer}"
        );
    }
    // Another address is not affected.
    let ok = http("127.0.0.1", addr, &bearer_get(TOKEN)).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let logged = logs.text();
    assert!(
        logged.contains("failed console login") && logged.contains("client=127.0.0.2"),
        "{logged}"
    );
    assert!(logged.contains("too many failed logins"), "{logged}");
    assert!(
        !logged.contains("wrong-token-"),
        "tokens are never logged: {logged}"
    );
}

#[tokio::test]
async fn event_streams_are_capped_per_user() {
    let f = Fixture::memory(support::operators()).await;
    let stream = |token: &str| {
        Request::get("/api/v1/stream")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let mut open = Vec::new();
    for _ in 0..nightshift_console::limits::MAX_STREAMS_PER_USER {
        let res = nightshift_console::router(f.state.clone())
            .oneshot(stream(TOKEN))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        open.push(res);
    }
    let refused = nightshift_console::router(f.state.clone())
        .oneshot(stream(TOKEN))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let other = nightshift_console::router(f.state.clone())
        .oneshot(stream(VIEWER_TOKEN))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK, "another user has own slots");
    // A client going away gives its slot back.
    drop(open.pop());
    let again = nightshift_console::router(f.state.clone())
        .oneshot(stream(TOKEN))
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all("set-cookie").iter().find_map(|c| {
        c.to_str()
            .unwrap()
            .strip_prefix(&format!("{name}="))
            .map(|rest| rest.split(';').next().unwrap().to_owned())
    })
}

#[tokio::test]
async fn secure_cookies_have_host_names_and_sessions_are_capped_per_token() {
    let mut f = Fixture::memory(support::operators()).await;
    f.state.secure_cookies = true;
    let (status, headers, _) = send(&f, login_request(TOKEN, "/")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    for c in headers.get_all("set-cookie") {
        let c = c.to_str().unwrap();
        assert!(c.starts_with("__Host-nightshift_"), "{c}");
        assert!(
            c.contains("; Secure") && c.contains("Path=/") && !c.contains("Domain"),
            "{c}"
        );
    }
    let first = cookie_value(&headers, SECURE_SESSION_COOKIE).unwrap();
    let page = |cookie: String| {
        Request::get("/api/v1/dags")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, _) = send(&f, page(format!("{SECURE_SESSION_COOKIE}={first}"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&f, page(format!("nightshift_session={first}"))).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "only the __Host- name counts"
    );

    // A viewer's session survives any number of logins with alice's token.
    let (_, headers, _) = send(&f, login_request(VIEWER_TOKEN, "/")).await;
    let viewer = cookie_value(&headers, SECURE_SESSION_COOKIE).unwrap();
    for _ in 0..MAX_SESSIONS_PER_TOKEN + 5 {
        send(&f, login_request(TOKEN, "/")).await;
    }
    assert_eq!(f.state.sessions.len(), MAX_SESSIONS_PER_TOKEN + 1);
    let (status, _, _) = send(&f, page(format!("{SECURE_SESSION_COOKIE}={viewer}"))).await;
    assert_eq!(status, StatusCode::OK, "the viewer's session was evicted");
    let (status, _, _) = send(&f, page(format!("{SECURE_SESSION_COOKIE}={first}"))).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "alice's oldest session went first"
    );
}
