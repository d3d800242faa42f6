//! One delivery attempt to one channel: a webhook POST with the
//! [`Notification`] as JSON, a Slack-style `{"text": ...}` POST, or an
//! email through SMTP. Errors are strings: they end up in an event and a
//! log line, never in a match.

use super::config::{EmailConfig, SmtpTls, WebhookConfig};
use super::Notification;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Where a notification goes.
pub(super) enum Channel<'a> {
    Webhook(&'a WebhookConfig),
    Slack(&'a WebhookConfig),
    Email(&'a EmailConfig),
}

/// The `host[:port]` of a URL: never the user-info (`user:secret@`), the
/// path or the query, which may all hold secrets.
pub(super) fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

impl Channel<'_> {
    /// A name safe to log and show: webhook and Slack URLs carry secrets
    /// in their paths, so only the host is named.
    pub(super) fn name(&self) -> String {
        match self {
            Channel::Webhook(w) => format!("webhook:{}", host(&w.url)),
            Channel::Slack(w) => format!("slack:{}", host(&w.url)),
            Channel::Email(_) => "email".to_owned(),
        }
    }
}

/// The Slack message text.
fn slack_text(n: &Notification) -> String {
    match &n.url {
        Some(url) => format!("{} <{url}|open in Nightshift>", n.summary),
        None => n.summary.clone(),
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &serde_json::Value) -> Result<(), String> {
    let res = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("request failed: {}", e.without_url()))?;
    if !res.status().is_success() {
        return Err(format!("answered HTTP {}", res.status().as_u16()));
    }
    Ok(())
}

async fn email(config: &EmailConfig, n: &Notification) -> Result<(), String> {
    let mut builder = Message::builder()
        .from(
            config
                .from
                .parse()
                .map_err(|e| format!("bad from address: {e}"))?,
        )
        .subject(n.summary.chars().take(200).collect::<String>());
    for to in &config.to {
        builder = builder.to(to
            .parse()
            .map_err(|e| format!("bad to address `{to}`: {e}"))?);
    }
    let mut body = n.summary.clone();
    if let Some(url) = &n.url {
        body.push_str("\n\n");
        body.push_str(url);
    }
    if let Some(alert) = &n.alert {
        body.push_str("\n\n");
        body.push_str(&serde_json::to_string_pretty(alert).unwrap_or_default());
    }
    let message = builder
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("building the email: {e}"))?;
    let host = config.smtp_host.as_str();
    let mut transport = match config.tls {
        SmtpTls::Starttls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(|e| e.to_string())?
        }
        SmtpTls::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|e| e.to_string())?
        }
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
    };
    if let Some(port) = config.smtp_port {
        transport = transport.port(port);
    }
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    transport
        .timeout(Some(std::time::Duration::from_secs(10)))
        .build()
        .send(message)
        .await
        .map_err(|e| format!("smtp: {e}"))?;
    Ok(())
}

/// One attempt.
pub(super) async fn deliver(
    client: &reqwest::Client,
    channel: &Channel<'_>,
    n: &Notification,
) -> Result<(), String> {
    match channel {
        Channel::Webhook(w) => {
            let body = serde_json::to_value(n).map_err(|e| e.to_string())?;
            post(client, &w.url, &body).await
        }
        Channel::Slack(w) => {
            post(
                client,
                &w.url,
                &serde_json::json!({ "text": slack_text(n) }),
            )
            .await
        }
        Channel::Email(e) => email(e, n).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_hide_url_paths() {
        let hook = WebhookConfig {
            url: "https://hooks.slack.com/services/T000/SECRET".into(),
        };
        assert_eq!(Channel::Slack(&hook).name(), "slack:hooks.slack.com");
        assert_eq!(host("http://127.0.0.1:9000/x?token=1"), "127.0.0.1:9000");
        let with_user = WebhookConfig {
            url: "http://user:secret@hooks.example:8443/path?password=p".into(),
        };
        assert_eq!(
            Channel::Webhook(&with_user).name(),
            "webhook:hooks.example:8443"
        );
        assert!(!format!("{with_user:?}").contains("secret"));
    }
}
