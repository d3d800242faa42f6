//! Connection flags shared by every command that talks to etcd or the SQL
//! store, as clap argument groups to `#[command(flatten)]`.
//!
//! Secrets never appear on the command line (where `ps` would show them):
//! the etcd password comes from `--etcd-password-file` or the
//! `NIGHTSHIFT_ETCD_PASSWORD` environment variable, and is never logged.
//! There are no default credentials. An unreachable etcd or database is
//! retried with backoff for a bounded time, then reported as an
//! [`Unreachable`] error naming what could not be reached (exit code 2).

use anyhow::{bail, Context as _};
use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator, TlsFiles};
use nightshift_coord::{CoordError, Coordinator};
use nightshift_core::keyspace::normalize_prefix;
use nightshift_store::{Store, StoreError};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Environment variable holding the etcd password (when no file is given).
pub const PASSWORD_ENV: &str = "NIGHTSHIFT_ETCD_PASSWORD";

/// How long a command keeps retrying an unreachable service before it gives up.
const CONNECT_FOR: Duration = Duration::from_secs(10);

/// How to reach etcd.
#[derive(Debug, Clone, clap::Args)]
pub struct EtcdArgs {
    /// etcd endpoints, comma-separated (http://host:2379,...). Required
    /// (here or in NIGHTSHIFT_ETCD) by every command that talks to etcd.
    #[arg(
        long,
        env = "NIGHTSHIFT_ETCD",
        value_delimiter = ',',
        value_name = "URLS"
    )]
    pub etcd: Vec<String>,
    /// etcd user name, when etcd has authentication enabled; the password
    /// comes from --etcd-password-file or NIGHTSHIFT_ETCD_PASSWORD.
    #[arg(long, env = "NIGHTSHIFT_ETCD_USER", value_name = "USER")]
    pub etcd_user: Option<String>,
    /// File holding the etcd password.
    #[arg(long, env = "NIGHTSHIFT_ETCD_PASSWORD_FILE", value_name = "FILE")]
    pub etcd_password_file: Option<PathBuf>,
    /// CA certificate (PEM) to verify etcd's TLS certificate (https endpoints).
    #[arg(long, value_name = "FILE")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS with etcd.
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS with etcd.
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// Key prefix of this Nightshift installation in etcd.
    #[arg(
        long,
        env = "NIGHTSHIFT_PREFIX",
        default_value = "/nightshift/",
        value_name = "PREFIX"
    )]
    pub prefix: String,
    /// Deadline of each etcd request, retries on other members included:
    /// how long a member that lost its leader can hold a request. Raise it
    /// only for very large reads on a slow etcd.
    #[arg(
        long,
        env = "NIGHTSHIFT_ETCD_REQUEST_TIMEOUT",
        default_value = "2s",
        value_parser = request_timeout,
        value_name = "DURATION"
    )]
    pub etcd_request_timeout: Duration,
}

fn request_timeout(text: &str) -> Result<Duration, String> {
    match nightshift_core::duration::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than zero".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// How to reach the SQL store.
#[derive(Clone, clap::Args)]
pub struct DatabaseArgs {
    /// Store URL: sqlite://path/to/file.db or postgres://user@host/db.
    #[arg(
        long,
        env = "NIGHTSHIFT_DATABASE_URL",
        required = true,
        value_name = "URL"
    )]
    pub database: String,
}

/// A service that did not answer within the retry window: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{what} is unreachable after {secs} s: {cause}")]
pub struct Unreachable {
    /// What could not be reached ("etcd at http://...", "the database").
    pub what: String,
    /// How long it was retried.
    pub secs: u64,
    /// The last error.
    pub cause: String,
}

/// Input the operator must fix (unknown DAG, malformed JSON, ...): exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Returns a [`BadInput`] error from a command.
pub fn bad_input<T>(message: impl Into<String>) -> anyhow::Result<T> {
    Err(BadInput(message.into()).into())
}

/// An id from the command line (a DAG name, run id, job name), checked as a
/// key segment and wrapped by `make`; a bad one is [`BadInput`].
pub fn checked_id<T>(
    kind: &'static str,
    text: &str,
    make: impl FnOnce(String) -> T,
) -> anyhow::Result<T> {
    match nightshift_core::keyspace::validate_segment(kind, text) {
        Ok(()) => Ok(make(text.to_owned())),
        Err(e) => bad_input(e.to_string()),
    }
}

impl EtcdArgs {
    /// Whether any endpoint was given.
    pub fn is_configured(&self) -> bool {
        self.etcd.iter().any(|e| !e.trim().is_empty())
    }

    /// The validated key prefix, ending in `/`.
    pub fn key_prefix(&self) -> anyhow::Result<String> {
        normalize_prefix(&self.prefix).map_err(|e| BadInput(e.to_string()).into())
    }

    /// Builds the etcd client configuration (reading the password file).
    pub fn config(&self) -> anyhow::Result<EtcdConfig> {
        self.config_with(std::env::var(PASSWORD_ENV).ok())
    }

    /// [`EtcdArgs::config`] with the value of `NIGHTSHIFT_ETCD_PASSWORD`
    /// passed in, so tests need not touch the process environment.
    pub fn config_with(&self, password_env: Option<String>) -> anyhow::Result<EtcdConfig> {
        let password = match &self.etcd_password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading etcd password file {}", path.display()))?;
                Some(text.trim_end_matches(['\r', '\n']).to_owned())
            }
            None => password_env.filter(|p| !p.is_empty()),
        };
        match (&self.etcd_user, &password) {
            (Some(_), None) => {
                bail!("--etcd-user needs a password: use --etcd-password-file or {PASSWORD_ENV}")
            }
            (None, Some(_)) => bail!("an etcd password was given without --etcd-user"),
            _ => {}
        }
        let mut config = EtcdConfig::new(self.etcd.iter().map(|e| e.trim().to_owned()).collect());
        config.username = self.etcd_user.clone();
        config.password = password;
        config.request_timeout = self.etcd_request_timeout;
        // A least-privilege user may read only under the prefix.
        config.probe_key = self.key_prefix()?;
        config.tls = match (&self.etcd_ca, &self.etcd_cert) {
            (Some(ca), _) => Some(TlsFiles {
                ca: ca.clone(),
                cert: self.etcd_cert.clone(),
                key: self.etcd_key.clone(),
            }),
            (None, Some(_)) => {
                bail!("--etcd-cert needs --etcd-ca (the CA that signed etcd's certificate)")
            }
            (None, None) => None,
        };
        Ok(config)
    }

    /// Connects to etcd, retrying transient failures for up to 10 s.
    pub async fn connect(&self) -> anyhow::Result<Arc<dyn Coordinator>> {
        if !self.is_configured() {
            return bad_input("no etcd endpoints: pass --etcd URLS or set NIGHTSHIFT_ETCD");
        }
        let config = self.config().map_err(|e| BadInput(format!("{e:#}")))?;
        let endpoints: Vec<String> = self
            .etcd
            .iter()
            .map(|e| nightshift_store::redact_url(e))
            .collect();
        let what = format!("etcd at {}", endpoints.join(","));
        let coordinator = retry(
            &what,
            || EtcdCoordinator::connect(config.clone()),
            |e: &CoordError| e.is_transient(),
        )
        .await?;
        Ok(Arc::new(coordinator))
    }
}

impl std::fmt::Debug for DatabaseArgs {
    // The URL may carry a password (`user:pw@`, `?password=`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field("database", &nightshift_store::redact_url(&self.database))
            .finish()
    }
}

impl DatabaseArgs {
    /// Connects to the store and applies migrations. The store itself keeps
    /// trying a refused connection for 10 s, so no retry loop here.
    pub async fn connect(&self) -> anyhow::Result<Store> {
        match Store::connect(&self.database).await {
            Ok(store) => Ok(store),
            Err(e @ (StoreError::UnsupportedUrl { .. } | StoreError::InvalidUrl { .. })) => {
                bad_input(format!("{:#}", anyhow::Error::new(e)))
            }
            Err(e @ StoreError::Connect { .. }) => Err(Unreachable {
                what: "the database".to_owned(),
                secs: CONNECT_FOR.as_secs(),
                cause: format!("{:#}", anyhow::Error::new(e)),
            }
            .into()),
            Err(e) => Err(anyhow::Error::new(e).context("opening the database")),
        }
    }
}

/// For long-running services (scheduler, console, executors): a dependency
/// (etcd, the database) that cannot be reached at start is waited for, with
/// backoff from 100 ms to 5 s and a warning per attempt, instead of exiting —
/// a service started during an outage, or restarted into one, must come up
/// when its dependencies do. Bad input ([`BadInput`]) still fails at once.
/// One-shot commands (`apply`, `trigger`, ...) keep failing after 10 s.
pub async fn until_reachable<T, F, Fut>(what: &str, mut connect: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match connect().await {
            Ok(value) => return Ok(value),
            Err(e) if e.downcast_ref::<BadInput>().is_some() => return Err(e),
            Err(e) => {
                let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(error = %format!("{e:#}"), retry_in_ms, "{what} not reachable; waiting for it");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Runs `attempt` until it succeeds, fails permanently, or [`CONNECT_FOR`]
/// has passed, backing off from 100 ms to 2 s between attempts.
async fn retry<T, E, F, Fut>(
    what: &str,
    mut attempt: F,
    transient: impl Fn(&E) -> bool,
) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if transient(&e) && started.elapsed() + delay < CONNECT_FOR => {
                tracing::debug!(error = %e, "{what} not reachable yet, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) if transient(&e) => {
                return Err(Unreachable {
                    what: what.to_owned(),
                    secs: CONNECT_FOR.as_secs(),
                    cause: e.to_string(),
                }
                .into())
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("connecting to {what}"))),
        }
    }
}

/// The operator's name for `applied_by` / `issued_by`: `$USER`, else
/// `$LOGNAME`, else "unknown".
pub fn user_name() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Now, Unix epoch milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Maps a command's outcome to the process exit code: [`BadInput`] is 1,
/// anything else is 2; the message goes to stderr.
pub fn exit_code(result: anyhow::Result<std::process::ExitCode>) -> std::process::ExitCode {
    match result {
        Ok(code) => code,
        Err(err) if err.downcast_ref::<BadInput>().is_some() => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Runs an async command body on a fresh single-threaded runtime.
pub fn block_on<F: Future<Output = anyhow::Result<std::process::ExitCode>>>(
    body: F,
) -> std::process::ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => exit_code(runtime.block_on(body)),
        Err(e) => exit_code(Err(
            anyhow::Error::new(e).context("starting the async runtime")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_redacted_in_debug_output() {
        let args = DatabaseArgs {
            database: "postgres://ns:userinfo-secret@db/ns?password=query-secret".into(),
        };
        let text = format!("{args:?}");
        assert!(!text.contains("secret") && text.contains("db/ns"), "{text}");
    }
}

#[cfg(test)]
mod request_timeout_tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        etcd: EtcdArgs,
    }

    #[test]
    fn the_etcd_request_deadline_defaults_to_two_seconds_and_reaches_the_config() {
        let cmd = Cmd::try_parse_from(["x", "--etcd", "http://e:2379"]).unwrap();
        assert_eq!(
            cmd.etcd.config_with(None).unwrap().request_timeout,
            Duration::from_secs(2)
        );
        let cmd = Cmd::try_parse_from([
            "x",
            "--etcd",
            "http://e:2379",
            "--etcd-request-timeout",
            "5s",
        ])
        .unwrap();
        assert_eq!(
            cmd.etcd.config_with(None).unwrap().request_timeout,
            Duration::from_secs(5)
        );
        assert!(Cmd::try_parse_from([
            "x",
            "--etcd",
            "http://e:2379",
            "--etcd-request-timeout",
            "0s"
        ])
        .is_err());
    }
}
