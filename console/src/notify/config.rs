//! Notification settings: a TOML file (`--notify-config`) or environment
//! variables (see README "Alert notifications").

use serde::Deserialize;
use std::time::Duration;

/// Why the notification settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML does not parse or has unknown keys.
    #[error("notification config: {0}")]
    Toml(#[from] toml::de::Error),
    /// A value is out of range or missing.
    #[error("notification config: {0}")]
    Invalid(String),
}

/// One webhook (JSON body, see README "Alert notifications") or Slack-compatible
/// incoming webhook. Its `Debug` shows only the host: webhook URLs carry
/// secrets in their user-info, path and query.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST.
    pub url: String,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("host", &super::send::host(&self.url))
            .finish_non_exhaustive()
    }
}

/// How to talk to the SMTP server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a local relay only).
    None,
}

/// Email over SMTP. Its `Debug` never shows the password.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server host.
    pub smtp_host: String,
    /// SMTP port; default by `tls`: 587, 465 or 25.
    #[serde(default)]
    pub smtp_port: Option<u16>,
    /// Encryption.
    #[serde(default)]
    pub tls: SmtpTls,
    /// Login user, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Login password.
    #[serde(default)]
    pub password: Option<String>,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("from", &self.from)
            .field("to", &self.to)
            .finish()
    }
}

/// All notification settings (`Debug` redacts secrets: see the channel
/// types and `proxy`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// An open alert is notified again after this many seconds (dedupe).
    #[serde(default = "default_repeat")]
    pub repeat_interval_secs: u64,
    /// How often open alerts are checked.
    #[serde(default = "default_poll")]
    pub poll_interval_secs: u64,
    /// Deliveries tried per notification and channel.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Wait before the first retry; doubled for each next one.
    #[serde(default = "default_backoff")]
    pub retry_backoff_ms: u64,
    /// Link to this console, put into messages (`https://console.example`).
    #[serde(default)]
    pub console_url: Option<String>,
    /// HTTP(S) proxy for webhooks (`http://proxy:3128`). Without it no
    /// proxy is used, whatever `HTTP_PROXY` says: where notifications go
    /// must not depend on the environment by accident.
    #[serde(default)]
    pub proxy: Option<String>,
    /// Generic JSON webhooks.
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
    /// Slack-compatible incoming webhooks.
    #[serde(default)]
    pub slack: Vec<WebhookConfig>,
    /// Email.
    #[serde(default)]
    pub email: Option<EmailConfig>,
}

impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("repeat_interval_secs", &self.repeat_interval_secs)
            .field("poll_interval_secs", &self.poll_interval_secs)
            .field("attempts", &self.attempts)
            .field("retry_backoff_ms", &self.retry_backoff_ms)
            .field("console_url", &self.console_url)
            .field(
                "proxy",
                &self.proxy.as_deref().map(nightshift_store::redact_url),
            )
            .field("webhook", &self.webhook)
            .field("slack", &self.slack)
            .field("email", &self.email)
            .finish()
    }
}

fn default_repeat() -> u64 {
    3600
}
fn default_poll() -> u64 {
    15
}
fn default_attempts() -> u32 {
    3
}
fn default_backoff() -> u64 {
    1000
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            repeat_interval_secs: default_repeat(),
            poll_interval_secs: default_poll(),
            attempts: default_attempts(),
            retry_backoff_ms: default_backoff(),
            console_url: None,
            proxy: None,
            webhook: Vec::new(),
            slack: Vec::new(),
            email: None,
        }
    }
}

impl NotifyConfig {
    /// Parses and checks a TOML file's text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: NotifyConfig = toml::from_str(text)?;
        config.checked()
    }

    /// Settings from `NIGHTSHIFT_NOTIFY_*` variables read through `var`;
    /// `None` when no channel variable is set.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let list = |name: &str| -> Vec<WebhookConfig> {
            var(name)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(|u| WebhookConfig { url: u.to_owned() })
                .collect()
        };
        let mut config = NotifyConfig {
            webhook: list("NIGHTSHIFT_NOTIFY_WEBHOOK_URL"),
            slack: list("NIGHTSHIFT_NOTIFY_SLACK_URL"),
            ..NotifyConfig::default()
        };
        if let Some(host) = var("NIGHTSHIFT_NOTIFY_SMTP_HOST").filter(|h| !h.is_empty()) {
            let tls = match var("NIGHTSHIFT_NOTIFY_SMTP_TLS").as_deref() {
                None | Some("" | "starttls") => SmtpTls::Starttls,
                Some("tls") => SmtpTls::Tls,
                Some("none") => SmtpTls::None,
                Some(other) => {
                    return Err(ConfigError::Invalid(format!(
                        "NIGHTSHIFT_NOTIFY_SMTP_TLS: unknown mode `{other}`"
                    )))
                }
            };
            let port = match var("NIGHTSHIFT_NOTIFY_SMTP_PORT").filter(|p| !p.is_empty()) {
                Some(p) => Some(p.parse().map_err(|_| {
                    ConfigError::Invalid(format!(
                        "NIGHTSHIFT_NOTIFY_SMTP_PORT: `{p}` is not a port"
                    ))
                })?),
                None => None,
            };
            config.email = Some(EmailConfig {
                smtp_host: host,
                smtp_port: port,
                tls,
                username: var("NIGHTSHIFT_NOTIFY_SMTP_USER"),
                password: var("NIGHTSHIFT_NOTIFY_SMTP_PASSWORD"),
                from: var("NIGHTSHIFT_NOTIFY_EMAIL_FROM").unwrap_or_default(),
                to: var("NIGHTSHIFT_NOTIFY_EMAIL_TO")
                    .unwrap_or_default()
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            });
        }
        if let Some(secs) = var("NIGHTSHIFT_NOTIFY_REPEAT_SECS").filter(|s| !s.is_empty()) {
            config.repeat_interval_secs = secs.parse().map_err(|_| {
                ConfigError::Invalid(format!(
                    "NIGHTSHIFT_NOTIFY_REPEAT_SECS: `{secs}` is not a number"
                ))
            })?;
        }
        config.console_url = var("NIGHTSHIFT_NOTIFY_CONSOLE_URL").filter(|u| !u.is_empty());
        config.proxy = var("NIGHTSHIFT_NOTIFY_PROXY").filter(|u| !u.is_empty());
        if config.webhook.is_empty() && config.slack.is_empty() && config.email.is_none() {
            return Ok(None);
        }
        config.checked().map(Some)
    }

    fn checked(self) -> Result<Self, ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.repeat_interval_secs == 0 || self.poll_interval_secs == 0 {
            return bad("repeat_interval_secs and poll_interval_secs must be positive".into());
        }
        if !(1..=10).contains(&self.attempts) {
            return bad("attempts must be 1 to 10".into());
        }
        for (i, hook) in self.webhook.iter().chain(&self.slack).enumerate() {
            if !(hook.url.starts_with("https://") || hook.url.starts_with("http://")) {
                // Not the URL itself: it may hold a secret.
                return bad(format!(
                    "webhook url #{} must start with http:// or https://",
                    i + 1
                ));
            }
        }
        if let Some(email) = &self.email {
            if email.from.is_empty() || email.to.is_empty() {
                return bad("email needs `from` and at least one `to`".into());
            }
        }
        Ok(self)
    }

    /// [`NotifyConfig::repeat_interval_secs`] as a duration.
    pub fn repeat_interval(&self) -> Duration {
        Duration::from_secs(self.repeat_interval_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_env_configs_parse_and_are_checked() {
        let c = NotifyConfig::from_toml(
            "repeat_interval_secs = 60\n[[webhook]]\nurl = \"https://hooks.example/a\"\n[[slack]]\nurl = \"http://127.0.0.1:9/s\"\n\
             [email]\nsmtp_host = \"mail\"\nfrom = \"ns@bank\"\nto = [\"ops@bank\"]\n",
        )
        .unwrap();
        assert_eq!(
            (c.repeat_interval_secs, c.webhook.len(), c.slack.len()),
            (60, 1, 1)
        );
        assert_eq!(c.email.unwrap().tls, SmtpTls::Starttls);
        assert!(NotifyConfig::from_toml("[[webhook]]\nurl = \"ftp://x\"\n").is_err());
        assert!(NotifyConfig::from_toml("colour = 1\n").is_err());

        let env = |name: &str| match name {
            "NIGHTSHIFT_NOTIFY_SLACK_URL" => Some("https://a, https://b".to_owned()),
            "NIGHTSHIFT_NOTIFY_REPEAT_SECS" => Some("120".to_owned()),
            _ => None,
        };
        let c = NotifyConfig::from_env(env).unwrap().unwrap();
        assert_eq!((c.slack.len(), c.repeat_interval_secs), (2, 120));
        assert!(NotifyConfig::from_env(|_| None).unwrap().is_none());
    }

    #[test]
    fn debug_output_redacts_every_secret() {
        let c = NotifyConfig::from_toml(
            "proxy = \"http://pu:proxysecret@proxy:3128\"\n\
             [[webhook]]\nurl = \"https://u:hooksecret@hooks.example/T/pathsecret?password=qsecret\"\n\
             [email]\nsmtp_host = \"mail\"\nusername = \"ns\"\npassword = \"smtpsecret\"\n\
             from = \"ns@bank\"\nto = [\"ops@bank\"]\n",
        )
        .unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(
            text.contains("hooks.example") && text.contains("mail"),
            "{text}"
        );
        let err = NotifyConfig::from_toml("[[webhook]]\nurl = \"ftp://u:ftpsecret@x\"\n")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
