//! Alert notifications: open alerts are sent to webhooks (a documented
//! JSON body), Slack-compatible incoming webhooks and email (SMTP), once
//! per alert per repeat interval (dedupe). Failed deliveries are retried
//! with exponential backoff; a delivery that still fails is visible as a
//! `notification_failed` event in the event log and in
//! `nightshift_notification_failures_total`.
//!
//! The console only *reads* alerts (the leader opens and resolves them);
//! run notifications on one console replica, or each replica notifies.
//! Silenced rules are not notified.

pub mod config;
mod send;

use crate::api::alerts::AlertView;
use crate::error::ApiError;
use crate::time::now_ms;
use crate::AppState;
pub use config::{ConfigError, EmailConfig, NotifyConfig, SmtpTls, WebhookConfig};
use nightshift_core::state::AlertState;
use nightshift_store::{AlertFilter, NewEvent};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Body of a webhook notification (`kind` is `alert` or `test`).
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// `alert` or `test`.
    pub kind: &'static str,
    /// One line for people.
    pub summary: String,
    /// The alert (absent for a test).
    pub alert: Option<AlertView>,
    /// Link to the alert in the console, when `console_url` is set.
    pub url: Option<String>,
    /// When this was sent (epoch ms).
    pub sent_at_ms: i64,
}

/// The outcome of sending to one channel.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// `webhook:<host[:port]>`, `slack:<host[:port]>` or `email`.
    pub channel: String,
    /// Whether it was delivered.
    pub ok: bool,
    /// Tries made.
    pub attempts: u32,
    /// The last error.
    pub error: Option<String>,
}

/// Sends notifications and remembers what it sent.
pub struct Notifier {
    config: NotifyConfig,
    client: reqwest::Client,
    sent: Mutex<HashMap<i64, Instant>>,
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("webhooks", &self.config.webhook.len())
            .field("slack", &self.config.slack.len())
            .field("email", &self.config.email.is_some())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier for `config`.
    pub fn new(config: NotifyConfig) -> Result<Self, ConfigError> {
        // Redirects are not followed: a webhook that answers 3xx could send
        // the alert (and its URL's credentials) anywhere.
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some(proxy) = &config.proxy {
            let proxy = reqwest::Proxy::all(proxy).map_err(|e| {
                ConfigError::Invalid(format!(
                    "proxy `{}`: {}",
                    nightshift_store::redact_url(proxy),
                    e.without_url()
                ))
            })?;
            builder = builder.proxy(proxy);
        }
        let client = builder
            .build()
            .map_err(|e| ConfigError::Invalid(format!("http client: {e}")))?;
        Ok(Notifier {
            config,
            client,
            sent: Mutex::default(),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// `(delivered, failed)` deliveries so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.delivered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    fn channels(&self) -> Vec<send::Channel<'_>> {
        let mut out: Vec<send::Channel<'_>> = self
            .config
            .webhook
            .iter()
            .map(send::Channel::Webhook)
            .collect();
        out.extend(self.config.slack.iter().map(send::Channel::Slack));
        out.extend(self.config.email.iter().map(send::Channel::Email));
        out
    }

    /// Sends `n` to every channel, each with retries; failures are
    /// recorded as events (best effort) and counted.
    pub async fn send_all(&self, state: &AppState, n: &Notification) -> Vec<Delivery> {
        let mut out = Vec::new();
        for channel in self.channels() {
            let mut delivery = Delivery {
                channel: channel.name(),
                ok: false,
                attempts: 0,
                error: None,
            };
            let mut backoff = Duration::from_millis(self.config.retry_backoff_ms);
            for attempt in 1..=self.config.attempts {
                delivery.attempts = attempt;
                match send::deliver(&self.client, &channel, n).await {
                    Ok(()) => {
                        delivery.ok = true;
                        delivery.error = None;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(channel = %delivery.channel, attempt, error = %e, "notification delivery failed");
                        delivery.error = Some(e);
                        if attempt < self.config.attempts {
                            tokio::time::sleep(backoff).await;
                            backoff = backoff.saturating_mul(2);
                        }
                    }
                }
            }
            if delivery.ok {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            } else {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let event = NewEvent {
                    at_ms: now_ms(),
                    kind: "notification_failed".to_owned(),
                    actor: "console".to_owned(),
                    dag: n
                        .alert
                        .as_ref()
                        .and_then(|a| a.dag.clone())
                        .map(nightshift_core::ids::DagName::new),
                    run_id: None,
                    job: None,
                    item: None,
                    executor: None,
                    detail: serde_json::json!({
                        "channel": delivery.channel,
                        "attempts": delivery.attempts,
                        "error": delivery.error,
                        "alert_id": n.alert.as_ref().map(|a| a.id),
                    }),
                };
                if let Err(e) = state.store.append_event(&event).await {
                    state.errors.count(crate::Backend::Sql);
                    tracing::warn!(error = %e, "could not record a failed notification");
                }
            }
            out.push(delivery);
        }
        out
    }

    fn notification(&self, kind: &'static str, alert: Option<AlertView>) -> Notification {
        let summary = match &alert {
            Some(a) => format!(
                "[{}] {}{}: {}",
                a.severity,
                a.rule,
                a.dag
                    .as_deref()
                    .map(|d| format!(" on {d}"))
                    .unwrap_or_default(),
                a.message
            ),
            None => "Nightshift test notification: this channel works.".to_owned(),
        };
        let url = self.config.console_url.as_deref().map(|base| {
            let base = base.trim_end_matches('/');
            match alert.as_ref().and_then(|a| a.run_id.as_deref()) {
                Some(run) => format!("{base}/runs/{}", crate::pages::url(run)),
                None => format!("{base}/alerts"),
            }
        });
        Notification {
            kind,
            summary,
            alert,
            url,
            sent_at_ms: now_ms(),
        }
    }

    /// A test notification to every channel, now.
    pub async fn test(&self, state: &AppState) -> Vec<Delivery> {
        let n = self.notification("test", None);
        self.send_all(state, &n).await
    }

    /// One pass: notifies every open, unsilenced alert not notified within
    /// the repeat interval. Returns how many alerts were notified.
    pub async fn tick(&self, state: &AppState) -> Result<usize, ApiError> {
        let filter = AlertFilter {
            states: vec![AlertState::Open],
            dag: None,
            limit: Some(1000),
        };
        let open = state.store.list_alerts(&filter).await?;
        let silences = state.store.active_silences(now_ms()).await?;
        let now = Instant::now();
        let due: Vec<_> = {
            let mut sent = self
                .sent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let open_ids: Vec<i64> = open.iter().map(|a| a.id.0).collect();
            sent.retain(|id, _| open_ids.contains(id));
            open.into_iter()
                .filter(|a| {
                    !silences
                        .iter()
                        .any(|s| s.rule == a.rule && (s.dag.is_none() || s.dag == a.dag))
                })
                .filter(|a| {
                    sent.get(&a.id.0)
                        .is_none_or(|at| now.duration_since(*at) >= self.config.repeat_interval())
                })
                .collect()
        };
        for alert in &due {
            // Marked before sending: a failing channel is retried within
            // this pass, not again at every poll.
            self.sent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(alert.id.0, now);
            let n = self.notification("alert", Some(AlertView::from(alert.clone())));
            self.send_all(state, &n).await;
        }
        Ok(due.len())
    }

    /// Runs [`Notifier::tick`] every poll interval until the console
    /// closes.
    pub async fn run(self: std::sync::Arc<Self>, state: AppState) {
        let period = Duration::from_secs(self.config.poll_interval_secs);
        loop {
            if let Err(e) = self.tick(&state).await {
                if let Some(b) = e.backend() {
                    state.errors.count(b);
                }
                tracing::warn!(error = %e, "notification pass failed");
            }
            tokio::select! {
                _ = state.closing.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
    }
}
