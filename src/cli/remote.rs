//! `--server URL`: operator verbs through a console's API with a token,
//! so an operator needs no etcd or database credentials (direct etcd stays
//! for admins).
//!
//! The token comes from `--token-file PATH` (its first line that is not
//! blank or a `#` comment) or the `NIGHTSHIFT_TOKEN` environment variable;
//! never from a flag value, which `ps` would show, and it is never logged.
//! Console error answers keep the console's own message and map to the
//! CLI's exit codes: a 4xx the operator must fix (bad token, viewer role,
//! unknown run) is bad input (1); an unreachable or failing console is 2;
//! the verbs themselves treat a 409 (the action conflicts with the run's
//! state), and the runs verbs a 404 (no such run, job or item), as a
//! rejected command, as the leader would have rejected it.
//!
//! Also here: the API's run shapes as the CLI reads them, turned into the
//! store's types so that `trigger --wait` tells a run's progress the same
//! way on both paths.

use crate::cli::conn::{bad_input, BadInput, DatabaseArgs};
use anyhow::Context as _;
use chrono::NaiveDate;
use nightshift_client::{ClientError, ServerClient};
use nightshift_core::ids::{DagName, JobName, RunId};
use nightshift_core::state::{JobState, RunState, TriggerSource};
use nightshift_store::{JobRun, Run};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Environment variable holding the console token for `--server`.
pub const TOKEN_ENV: &str = "NIGHTSHIFT_TOKEN";

/// How to reach a console instead of etcd and the database.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Go through the console at this URL (http://host:port) with a token
    /// (NIGHTSHIFT_TOKEN or --token-file) instead of etcd and the database.
    #[arg(long, env = "NIGHTSHIFT_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// File holding the console token for --server (default: the
    /// NIGHTSHIFT_TOKEN environment variable).
    #[arg(long, env = "NIGHTSHIFT_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

impl ServerArgs {
    /// The console client when `--server` is given, else `None`.
    pub fn client(&self) -> anyhow::Result<Option<ServerClient>> {
        self.client_with(std::env::var(TOKEN_ENV).ok())
    }

    /// [`ServerArgs::client`] with the value of `NIGHTSHIFT_TOKEN` passed in.
    pub fn client_with(&self, token_env: Option<String>) -> anyhow::Result<Option<ServerClient>> {
        let Some(url) = self.server.as_deref().filter(|s| !s.trim().is_empty()) else {
            if self.token_file.is_some() {
                return bad_input("--token-file is for --server URL (the console to go through)");
            }
            return Ok(None);
        };
        let token = match &self.token_file {
            Some(path) => token_from_file(path)?,
            None => match token_env.filter(|t| !t.trim().is_empty()) {
                Some(token) => token,
                None => {
                    return bad_input(format!(
                        "--server needs a console token: set {TOKEN_ENV} or give --token-file PATH"
                    ))
                }
            },
        };
        ServerClient::new(url, &token)
            .map(Some)
            .map_err(|e| BadInput(e.to_string()).into())
    }
}

/// The token in `path`: its first line that is not blank or a comment.
fn token_from_file(path: &Path) -> anyhow::Result<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return bad_input(format!("reading token file {}: {e}", path.display())),
    };
    match text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
    {
        Some(token) => Ok(token.to_owned()),
        None => bad_input(format!("token file {} holds no token", path.display())),
    }
}

/// `--database` for a verb that can also go through `--server`.
pub fn database(url: Option<&str>) -> anyhow::Result<DatabaseArgs> {
    match url {
        Some(url) => Ok(DatabaseArgs {
            database: url.to_owned(),
        }),
        None => bad_input(
            "give --database URL (or NIGHTSHIFT_DATABASE_URL), or --server URL with a console token",
        ),
    }
}

/// A console error as the CLI reports it: what the operator must fix is
/// bad input (exit 1), the rest exit 2.
pub fn error(e: ClientError) -> anyhow::Error {
    match &e {
        ClientError::Api { status, .. } if matches!(status, 400..=499) && *status != 429 => {
            BadInput(format!("the console refused: {e}")).into()
        }
        ClientError::BadServer(_) | ClientError::Unsupported(_) => BadInput(e.to_string()).into(),
        _ => anyhow::Error::new(e),
    }
}

/// Whether the console answered 404.
pub fn is_not_found(e: &ClientError) -> bool {
    e.status() == Some(404)
}

/// A run as the API lists it (`RunBrief`).
#[derive(Debug, Clone, Deserialize)]
pub struct ApiRun {
    /// Run id.
    pub run_id: String,
    /// DAG.
    pub dag: String,
    /// DAG version.
    pub dag_version: u32,
    /// State.
    pub state: String,
    /// `YYYY-MM-DD`.
    pub business_date: String,
    /// Trigger source.
    pub trigger_source: String,
    /// Run parameters.
    #[serde(default)]
    pub params: serde_json::Value,
    /// Schedule instant (epoch ms).
    #[serde(default)]
    pub scheduled_for_ms: Option<i64>,
    /// Creation (epoch ms).
    pub created_at_ms: i64,
    /// Start (epoch ms).
    #[serde(default)]
    pub started_at_ms: Option<i64>,
    /// End (epoch ms).
    #[serde(default)]
    pub ended_at_ms: Option<i64>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// Item counts of a job (`Counts`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct ApiCounts {
    /// Items in total.
    pub total: u64,
    /// Not started.
    pub pending: u64,
    /// Running now.
    pub running: u64,
    /// Succeeded.
    pub succeeded: u64,
    /// Failed.
    pub failed: u64,
    /// Skipped.
    pub skipped: u64,
    /// Cancelled.
    pub cancelled: u64,
}

/// One job of a run (`JobProgress`).
#[derive(Debug, Clone, Deserialize)]
pub struct ApiJob {
    /// Job name.
    pub job: String,
    /// State.
    pub state: String,
    /// Item counts.
    pub counts: ApiCounts,
    /// Start (epoch ms).
    #[serde(default)]
    pub started_at_ms: Option<i64>,
    /// End (epoch ms).
    #[serde(default)]
    pub ended_at_ms: Option<i64>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /api/v1/runs/{run}` (`RunDetail`).
#[derive(Debug, Clone, Deserialize)]
pub struct ApiRunDetail {
    /// The run.
    pub run: ApiRun,
    /// Its jobs.
    pub jobs: Vec<ApiJob>,
}

impl ApiRun {
    /// The run as the store's type.
    pub fn to_run(&self) -> anyhow::Result<Run> {
        Ok(Run {
            run_id: RunId::new(&self.run_id),
            dag: DagName::new(&self.dag),
            dag_version: self.dag_version,
            business_date: NaiveDate::parse_from_str(&self.business_date, "%Y-%m-%d")
                .with_context(|| format!("business date `{}`", self.business_date))?,
            state: self.state.parse::<RunState>()?,
            trigger_source: self.trigger_source.parse::<TriggerSource>()?,
            params: self.params.clone(),
            scheduled_for_ms: self.scheduled_for_ms,
            created_at_ms: self.created_at_ms,
            started_at_ms: self.started_at_ms,
            ended_at_ms: self.ended_at_ms,
            error: self.error.clone(),
        })
    }
}

impl ApiJob {
    /// The job as the store's type (counts saturate at `u32::MAX`).
    pub fn to_job_run(&self, run: &RunId) -> anyhow::Result<JobRun> {
        let n = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(JobRun {
            run_id: run.clone(),
            job: JobName::new(&self.job),
            state: self.state.parse::<JobState>()?,
            shards: n(self.counts.total),
            succeeded: n(self.counts.succeeded),
            failed: n(self.counts.failed),
            skipped: n(self.counts.skipped),
            cancelled: n(self.counts.cancelled),
            started_at_ms: self.started_at_ms,
            ended_at_ms: self.ended_at_ms,
            error: self.error.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(server: Option<&str>, file: Option<PathBuf>) -> ServerArgs {
        ServerArgs {
            server: server.map(str::to_owned),
            token_file: file,
        }
    }

    #[test]
    fn the_token_comes_from_the_file_or_the_environment() {
        assert!(args(None, None)
            .client_with(Some("x".into()))
            .unwrap()
            .is_none());
        let none = args(Some("http://127.0.0.1:1"), None).client_with(None);
        let err = none.unwrap_err();
        assert!(err.downcast_ref::<BadInput>().is_some());
        assert!(err.to_string().contains(TOKEN_ENV), "{err}");
        assert!(args(Some("http://127.0.0.1:1"), None)
            .client_with(Some("env-token-0123456789".into()))
            .unwrap()
            .is_some());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "# my token\n\n  file-token-0123456789  \n").unwrap();
        assert_eq!(token_from_file(&file).unwrap(), "file-token-0123456789");
        std::fs::write(&file, "# nothing\n").unwrap();
        assert!(token_from_file(&file).is_err());
        assert!(args(None, Some(file)).client_with(None).is_err());
    }

    #[test]
    fn console_refusals_the_operator_must_fix_are_bad_input() {
        let api = |status| ClientError::Api {
            status,
            code: "x".into(),
            message: "the operator role is required".into(),
        };
        let forbidden = error(api(403));
        assert!(forbidden.downcast_ref::<BadInput>().is_some());
        assert_eq!(
            forbidden.to_string(),
            "the console refused: the operator role is required (HTTP 403)"
        );
        assert!(error(api(503)).downcast_ref::<BadInput>().is_none());
        assert!(is_not_found(&api(404)) && !is_not_found(&api(409)));
    }
}
