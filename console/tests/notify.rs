//! Alert notifications against local receivers: a webhook and a Slack
//! endpoint (axum on 127.0.0.1:0) get their payloads once per repeat
//! interval, a failing endpoint is retried and its failure is visible (an
//! event and a counter), the test button's endpoint reaches every channel,
//! and email goes through a tiny in-process SMTP server.

mod support;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use nightshift_console::notify::{EmailConfig, Notifier, NotifyConfig, SmtpTls, WebhookConfig};
use std::sync::{Arc, Mutex};
use support::{seed, Fixture, TOKEN};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Clone, Default)]
struct Received {
    hook: Arc<Mutex<Vec<serde_json::Value>>>,
    slack: Arc<Mutex<Vec<serde_json::Value>>>,
    failures: Arc<Mutex<u32>>,
}

/// A receiver with `/hook`, `/slack` (200) and `/fail` (500); its base URL.
async fn receiver() -> (String, Received) {
    let got = Received::default();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(r): State<Received>, Json(v): Json<serde_json::Value>| async move {
                    r.hook.lock().unwrap().push(v)
                },
            ),
        )
        .route(
            "/slack",
            post(
                |State(r): State<Received>, Json(v): Json<serde_json::Value>| async move {
                    r.slack.lock().unwrap().push(v)
                },
            ),
        )
        .route(
            "/fail",
            post(|State(r): State<Received>| async move {
                *r.failures.lock().unwrap() += 1;
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, got)
}

fn config(base: &str, hooks: &[&str], slack: &[&str]) -> NotifyConfig {
    NotifyConfig {
        retry_backoff_ms: 10,
        console_url: Some("https://console.bank".into()),
        webhook: hooks
            .iter()
            .map(|p| WebhookConfig {
                url: format!("{base}{p}"),
            })
            .collect(),
        slack: slack
            .iter()
            .map(|p| WebhookConfig {
                url: format!("{base}{p}"),
            })
            .collect(),
        ..NotifyConfig::default()
    }
}

async fn fixture(config: NotifyConfig) -> (Fixture, i64, Arc<Notifier>) {
    let mut f = Fixture::memory(support::operators()).await;
    let alert = seed(&f).await;
    let notifier = Arc::new(Notifier::new(config).unwrap());
    f.state.notifier = Some(notifier.clone());
    (f, alert, notifier)
}

#[tokio::test]
async fn open_alerts_reach_the_webhook_and_slack_once_per_repeat_interval() {
    let (base, got) = receiver().await;
    let (f, alert, notifier) = fixture(config(&base, &["/hook"], &["/slack"])).await;
    assert_eq!(notifier.tick(&f.state).await.unwrap(), 1);
    let hook = got.hook.lock().unwrap().clone();
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0]["kind"], "alert");
    assert_eq!(hook[0]["alert"]["id"], alert);
    assert_eq!(hook[0]["alert"]["rule"], "item_failed");
    assert_eq!(hook[0]["alert"]["run_id"], "r1");
    assert_eq!(hook[0]["url"], "https://console.bank/runs/r1");
    assert!(hook[0]["summary"].as_str().unwrap().contains("item failed"));
    let slack = got.slack.lock().unwrap().clone();
    assert_eq!(slack.len(), 1);
    let text = slack[0]["text"].as_str().unwrap();
    assert!(
        text.contains("[critical] item_failed on settlement")
            && text.contains("<https://console.bank/runs/r1|"),
        "{text}"
    );

    // Dedupe: within the repeat interval nothing is sent again.
    assert_eq!(notifier.tick(&f.state).await.unwrap(), 0);
    assert_eq!(got.hook.lock().unwrap().len(), 1);
    assert_eq!(notifier.counts(), (2, 0));

    // An acknowledged alert is not notified.
    let (status, _) = f
        .post_json(&format!("/api/v1/alerts/{alert}/ack"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let fresh = Notifier::new(config(&base, &["/hook"], &[])).unwrap();
    assert_eq!(fresh.tick(&f.state).await.unwrap(), 0);
}

#[tokio::test]
async fn a_repeat_interval_elapsed_sends_again_and_silences_suppress() {
    let (base, got) = receiver().await;
    let mut c = config(&base, &["/hook"], &[]);
    c.repeat_interval_secs = 1;
    let (f, _, notifier) = fixture(c).await;
    assert_eq!(notifier.tick(&f.state).await.unwrap(), 1);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while notifier.tick(&f.state).await.unwrap() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never repeated");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(got.hook.lock().unwrap().len(), 2);
    let (status, _) = f
        .post_json(
            "/api/v1/alerts/silence",
            Some(r#"{"rule":"item_failed","minutes":5}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let fresh = Notifier::new(config(&base, &["/hook"], &[])).unwrap();
    assert_eq!(
        fresh.tick(&f.state).await.unwrap(),
        0,
        "a silenced rule was notified"
    );
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_and_the_failure_is_visible() {
    let (base, got) = receiver().await;
    let mut c = config(&base, &["/fail", "/hook"], &[]);
    c.attempts = 3;
    let (f, _, notifier) = fixture(c).await;
    assert_eq!(notifier.tick(&f.state).await.unwrap(), 1);
    assert_eq!(*got.failures.lock().unwrap(), 3, "three tries");
    assert_eq!(
        got.hook.lock().unwrap().len(),
        1,
        "the other channel still got it"
    );
    assert_eq!(notifier.counts(), (1, 1));
    let (_, events) = f.get_json("/api/v1/events?kind=notification_failed").await;
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    let detail = &events[0]["detail"];
    assert_eq!(detail["attempts"], 3);
    assert!(
        detail["error"].as_str().unwrap().contains("HTTP 500"),
        "{detail}"
    );
    assert!(detail["channel"]
        .as_str()
        .unwrap()
        .starts_with("webhook:127.0.0.1:"));
    let (_, _, metrics) = f.call(Method::GET, "/metrics", Some(TOKEN), None).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "nightshift_notification_failures_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_test_endpoint_reaches_every_channel_and_needs_an_operator() {
    let (base, got) = receiver().await;
    let (f, _, _) = fixture(config(&base, &["/hook", "/fail"], &["/slack"])).await;
    let (status, _, _) = f
        .call(
            Method::POST,
            "/api/v1/notifications/test",
            Some(support::VIEWER_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, deliveries) = f.post_json("/api/v1/notifications/test", None).await;
    assert_eq!(status, StatusCode::OK, "{deliveries}");
    let ok: Vec<bool> = deliveries
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(ok, [true, false, true]);
    assert_eq!(got.hook.lock().unwrap()[0]["kind"], "test");
    assert!(got.slack.lock().unwrap()[0]["text"]
        .as_str()
        .unwrap()
        .contains("test notification"));
    let (_, _, page) = f.call(Method::GET, "/alerts", Some(TOKEN), None).await;
    assert!(page.contains("data-path=\"/api/v1/notifications/test\""));

    let plain = Fixture::memory(support::operators()).await;
    let (status, _) = plain.post_json("/api/v1/notifications/test", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "no channel configured");
}

/// A minimal SMTP server: accepts one message and returns its DATA.
async fn smtp_server() -> (u16, tokio::sync::oneshot::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
        let mut data = String::new();
        let mut in_data = false;
        while let Ok(Some(line)) = lines.next_line().await {
            if in_data {
                if line == "." {
                    in_data = false;
                    write.write_all(b"250 queued\r\n").await.unwrap();
                } else {
                    data.push_str(&line);
                    data.push('\n');
                }
                continue;
            }
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let answer: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" => b"250 fake\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                }
                _ => b"250 ok\r\n",
            };
            write.write_all(answer).await.unwrap();
        }
        let _ = tx.send(data);
    });
    (port, rx)
}

#[tokio::test]
async fn email_goes_out_over_smtp() {
    let (port, received) = smtp_server().await;
    let c = NotifyConfig {
        email: Some(EmailConfig {
            smtp_host: "127.0.0.1".into(),
            smtp_port: Some(port),
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "nightshift@bank.example".into(),
            to: vec!["ops@bank.example".into()],
        }),
        retry_backoff_ms: 10,
        ..NotifyConfig::default()
    };
    let (f, _, notifier) = fixture(c).await;
    assert_eq!(notifier.tick(&f.state).await.unwrap(), 1);
    assert_eq!(notifier.counts(), (1, 0));
    let data = tokio::time::timeout(std::time::Duration::from_secs(10), received)
        .await
        .unwrap()
        .unwrap();
    assert!(data.contains("To: ops@bank.example"), "{data}");
    assert!(data.contains("item_failed"), "{data}");
}
