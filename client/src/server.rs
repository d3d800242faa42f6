//! The console's JSON API as a client: an operator with a token (and no
//! etcd or database credentials) issues commands and reads through
//! `/api/v1` of a running `nightshift console`.
//!
//! Every request carries `Authorization: Bearer <token>` (a bearer token is
//! exempt from the console's CSRF check, which guards cookie sessions
//! only). An error answer's `{"error": {"code", "message"}}` body becomes
//! [`ClientError::Api`] with the console's own message, so a 403 for a
//! viewer token or a 409 for a run that already ended reads as the console
//! said it. The token is never logged and never shown by `Debug`.

use crate::command::{ClientError, Issued, Outcome};
use nightshift_core::ids::RunId;
use nightshift_core::keyspace::commands::OutcomeReading;
use nightshift_core::keyspace::{Command, CommandId};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::time::Duration;

/// How long one request may take before it is given up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A console's API, reached with a token.
#[derive(Clone)]
pub struct ServerClient {
    /// `http://host:port` without a trailing slash.
    base: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for ServerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerClient")
            .field("base", &self.base)
            .field("token", &"***")
            .finish()
    }
}

/// `{"error": {"code", "message"}}`, the console's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(Debug, Deserialize)]
struct ErrorInner {
    code: String,
    message: String,
}

/// The console's answer to an action (`202 Accepted`).
#[derive(Debug, Deserialize)]
struct IssuedBody {
    command_id: String,
    kind: String,
    #[serde(default)]
    run_id: Option<String>,
}

/// `GET /api/v1/commands/{id}`.
#[derive(Debug, Deserialize)]
struct CommandStatus {
    state: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
}

impl ServerClient {
    /// A client of the console at `url` (`http://host:port`, or
    /// `https://...`) presenting `token`. The URL is checked here; nothing
    /// is sent yet.
    pub fn new(url: &str, token: &str) -> Result<Self, ClientError> {
        let base = url.trim().trim_end_matches('/').to_owned();
        let scheme_ok = base.starts_with("http://") || base.starts_with("https://");
        if !scheme_ok || base.len() <= "https://".len() {
            return Err(ClientError::BadServer(format!(
                "`{url}` is not a console URL (expected http://host:port or https://host)"
            )));
        }
        let token = token.trim();
        if token.is_empty() || token.chars().any(char::is_whitespace) {
            return Err(ClientError::BadServer(
                "the console token is empty or contains whitespace".to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| ClientError::BadServer(format!("setting up the HTTP client: {e}")))?;
        Ok(ServerClient {
            base,
            token: token.to_owned(),
            http,
        })
    }

    /// The console's base URL, for messages and links.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request.bearer_auth(&self.token).send().await.map_err(|e| {
            ClientError::Unreachable {
                url: self.base.clone(),
                detail: without_url(&e),
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => ClientError::Api {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            },
            Err(_) => ClientError::Api {
                status: status.as_u16(),
                code: "http".to_owned(),
                message: format!(
                    "the server answered {status}{}",
                    first_line(&text)
                        .map(|l| format!(": {l}"))
                        .unwrap_or_default()
                ),
            },
        })
    }

    /// `GET /api/v1{path}` decoded as `T` (`path` includes any query).
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.send(self.http.get(self.url(path))).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                detail: without_url(&e),
            })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            what: path.to_owned(),
            detail: e.to_string(),
        })
    }

    /// `GET /api/v1{path}` as text (attempt logs).
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let response = self.send(self.http.get(self.url(path))).await?;
        response.text().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            detail: without_url(&e),
        })
    }

    /// Sends `command` to the action endpoint that issues it.
    pub async fn issue(&self, command: &Command) -> Result<Issued, ClientError> {
        let (path, body) = action(command)?;
        let response = self
            .send(self.http.post(self.url(&path)).json(&body))
            .await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                detail: without_url(&e),
            })?;
        let issued: IssuedBody =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
                what: path.clone(),
                detail: e.to_string(),
            })?;
        let id = CommandId::parse(&issued.command_id).ok_or_else(|| ClientError::Decode {
            what: path,
            detail: format!("`{}` is not a command id", issued.command_id),
        })?;
        let run_id = issued
            .run_id
            .map(RunId::new)
            .or_else(|| crate::command::command_run(command, &id));
        Ok(Issued {
            id,
            kind: issued.kind,
            run_id,
        })
    }

    /// The leader's outcome of `issued`, once recorded.
    pub async fn outcome(&self, issued: &Issued) -> Result<Option<Outcome>, ClientError> {
        let status: CommandStatus = self
            .get_json(&format!("/commands/{}?kind={}", issued.id, issued.kind))
            .await?;
        Ok(match status.state.as_str() {
            "applied" => {
                let text = status.outcome.unwrap_or_else(|| "applied".to_owned());
                Some(Outcome {
                    reading: OutcomeReading::Applied(text.clone()),
                    text,
                })
            }
            "rejected" => {
                // The leader's text as recorded, as the direct path shows it.
                let why = status.reason.unwrap_or_else(|| "rejected".to_owned());
                Some(Outcome {
                    text: status.outcome.unwrap_or_else(|| format!("rejected: {why}")),
                    reading: OutcomeReading::Rejected(why),
                })
            }
            _ => None,
        })
    }
}

/// The endpoint and JSON body that issue `command`.
fn action(command: &Command) -> Result<(String, serde_json::Value), ClientError> {
    use serde_json::json;
    Ok(match command {
        Command::Trigger {
            dag,
            business_date,
            params,
            rerun,
            source: nightshift_core::state::TriggerSource::Manual,
        } => {
            let mut body = json!({ "rerun": rerun });
            if let Some(day) = business_date {
                body["business_date"] = json!(day.to_string());
            }
            if let Some(params) = params {
                body["params"] = params.clone();
            }
            (format!("/dags/{dag}/runs"), body)
        }
        Command::CancelRun { run } => (format!("/runs/{run}/cancel"), json!({})),
        Command::Retry { run, job } => {
            let body = match job {
                Some(job) => json!({ "job": job.as_str() }),
                None => json!({}),
            };
            (format!("/runs/{run}/retry"), body)
        }
        Command::SkipJob { run, job } => (format!("/runs/{run}/jobs/{job}/skip"), json!({})),
        Command::MarkItemSucceeded { run, job, item } => (
            format!("/runs/{run}/jobs/{job}/items/{}/mark-succeeded", item.0),
            json!({}),
        ),
        Command::Clear {
            run,
            jobs,
            items,
            downstream,
        } => {
            let items: std::collections::BTreeMap<&str, Vec<u32>> = items
                .iter()
                .map(|(job, list)| (job.as_str(), list.iter().map(|i| i.0).collect()))
                .collect();
            let jobs: Vec<&str> = jobs.iter().map(|j| j.as_str()).collect();
            (
                format!("/runs/{run}/clear"),
                json!({ "jobs": jobs, "items": items, "downstream": downstream }),
            )
        }
        Command::PauseDag { dag } => (format!("/dags/{dag}/pause"), json!({})),
        Command::ResumeDag { dag } => (format!("/dags/{dag}/resume"), json!({})),
        other => {
            return Err(ClientError::Unsupported(format!(
                "the {} command is not available through the console (--server); \
                 an admin issues it with direct etcd access",
                other.kind()
            )))
        }
    })
}

/// A reqwest error's text without the URL it adds (the caller names the
/// server already) and without anything after the first line.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" ({url})"), "");
        text = text.replace(url.as_str(), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift_core::ids::{DagName, ItemIndex, JobName};
    use nightshift_core::state::TriggerSource;

    #[test]
    fn each_operator_command_has_its_endpoint() {
        let run = RunId::new("r1");
        let job = JobName::new("load");
        let (path, body) = action(&Command::Trigger {
            dag: DagName::new("eod"),
            business_date: chrono::NaiveDate::from_ymd_opt(2026, 3, 5),
            params: Some(serde_json::json!({"a": 1})),
            rerun: true,
            source: TriggerSource::Manual,
        })
        .unwrap();
        assert_eq!(path, "/dags/eod/runs");
        assert_eq!(
            body,
            serde_json::json!({"business_date": "2026-03-05", "params": {"a": 1}, "rerun": true})
        );
        let (path, body) = action(&Command::Clear {
            run: run.clone(),
            jobs: vec![],
            items: [(job.clone(), vec![ItemIndex(1), ItemIndex(3)])].into(),
            downstream: true,
        })
        .unwrap();
        assert_eq!(path, "/runs/r1/clear");
        assert_eq!(
            body,
            serde_json::json!({"jobs": [], "items": {"load": [1, 3]}, "downstream": true})
        );
        let (path, _) = action(&Command::MarkItemSucceeded {
            run: run.clone(),
            job: job.clone(),
            item: ItemIndex(7),
        })
        .unwrap();
        assert_eq!(path, "/runs/r1/jobs/load/items/7/mark-succeeded");
        let (path, body) = action(&Command::Retry {
            run,
            job: Some(job),
        })
        .unwrap();
        assert_eq!(
            (path.as_str(), body),
            ("/runs/r1/retry", serde_json::json!({"job": "load"}))
        );
        let redo = Command::Redo {
            dag: DagName::new("eod"),
            business_date: chrono::NaiveDate::from_ymd_opt(2026, 3, 5).unwrap(),
            params: None,
        };
        assert!(matches!(action(&redo), Err(ClientError::Unsupported(_))));
    }

    #[test]
    fn urls_and_tokens_are_checked_and_the_token_never_shown() {
        assert!(ServerClient::new("ftp://x", "t0k3n").is_err());
        assert!(ServerClient::new("http://", "t0k3n").is_err());
        assert!(ServerClient::new("http://127.0.0.1:8080", " ").is_err());
        let client = ServerClient::new("http://127.0.0.1:8080/", "secret-token-value\n").unwrap();
        assert_eq!(client.base(), "http://127.0.0.1:8080");
        assert_eq!(client.url("/runs"), "http://127.0.0.1:8080/api/v1/runs");
        assert!(!format!("{client:?}").contains("secret"));
    }
}
