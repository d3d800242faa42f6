//! `nightshift executor`: a stand-alone executor serving the built-in `noop`
//! and `sleep` handlers — for trying Nightshift out, for tests that need a
//! real executor process, and for benchmarks. Real jobs run in your own
//! service, which embeds `nightshift-executor` with its own handlers.
//!
//! Flags are parsed in two stages: clap fills [`Args`], then [`Settings`]
//! checks them and reads secrets (the etcd password comes from a file or the
//! environment, never from a flag, and is never printed). SIGTERM and Ctrl-C
//! start a graceful drain.

use crate::cli::conn::{EtcdArgs, PASSWORD_ENV};
use anyhow::{bail, Context as _};
use nightshift_coord::etcd::EtcdConfig;
use nightshift_core::duration::parse_duration;
use nightshift_executor::builtin::{Noop, Sleep};
use nightshift_executor::Executor;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `nightshift executor`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Built-in handlers:
  noop   succeeds at once.
  sleep  sleeps `millis` (job param, default 100) then succeeds; job params
         `fail_rate` (0..1) and `fail_items` ([..]) make items fail; stops
         when the item is cancelled. `steps` splits the sleep in steps,
         `ignore_cancel` keeps stepping when cancelled (the executor then
         drops the item after its grace), and `journal` (a file name) appends
         a line per step to that file in --sleep-journal-dir (refused
         without it: a DAG never chooses a path on this host).

There is deliberately no shell handler: an executor that runs commands named
in DAG files lets anyone who can apply a DAG execute anything on every
executor host. Write a Job in your own service with the nightshift-executor
crate instead.

The etcd password is read from --etcd-password-file or NIGHTSHIFT_ETCD_PASSWORD,
never from the command line. SIGTERM or Ctrl-C drains the executor: no new
items, running items get --drain-grace to finish, then its lease is revoked.")]
pub struct Args {
    /// How to reach etcd (endpoints, auth, TLS, key prefix).
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Handlers to serve, comma-separated: noop, sleep.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "noop,sleep",
        value_name = "NAMES"
    )]
    pub handlers: Vec<String>,
    /// Items run at once across all jobs (default: number of CPUs).
    #[arg(long, value_name = "N")]
    pub capacity: Option<u32>,
    /// Executor id (default: {hostname}-{pid}).
    #[arg(long, env = "NIGHTSHIFT_EXECUTOR_ID", value_name = "ID")]
    pub id: Option<String>,
    /// Lease TTL: how long after a crash the executor's items move elsewhere.
    #[arg(long, default_value = "10s", value_parser = duration, value_name = "DURATION")]
    pub lease_ttl: Duration,
    /// How long a shutdown waits for running items.
    #[arg(long, default_value = "30s", value_parser = duration, value_name = "DURATION")]
    pub drain_grace: Duration,
    /// A label published with the registration, `key=value` (repeatable).
    #[arg(long = "label", value_parser = label, value_name = "KEY=VALUE")]
    pub labels: Vec<(String, String)>,
    /// Directory where the `sleep` handler's `journal` param may create
    /// files (test and chaos tooling); without it, `journal` is refused.
    #[arg(long, env = "NIGHTSHIFT_SLEEP_JOURNAL_DIR", value_name = "DIR")]
    pub sleep_journal_dir: Option<std::path::PathBuf>,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

fn label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("expected key=value, got `{text}`")),
    }
}

/// Checked flags, with the etcd configuration (and its password) read. No
/// `Debug`: it holds a secret.
struct Settings {
    args: Args,
    etcd: EtcdConfig,
}

impl Settings {
    fn from_args(args: Args, password_env: Option<String>) -> anyhow::Result<Settings> {
        for name in &args.handlers {
            if !matches!(name.as_str(), "noop" | "sleep") {
                bail!("unknown handler `{name}`: the built-in handlers are noop and sleep");
            }
        }
        if !args.etcd.is_configured() {
            bail!("no etcd endpoints: pass --etcd URLS or set NIGHTSHIFT_ETCD");
        }
        let etcd = args.etcd.config_with(password_env)?;
        Ok(Settings { args, etcd })
    }

    fn executor(self) -> anyhow::Result<Executor> {
        let (a, etcd) = (self.args, self.etcd);
        let mut builder = Executor::builder()
            .etcd(etcd.endpoints)
            .lease_ttl(a.lease_ttl)
            .drain_grace(a.drain_grace)
            .prefix(a.etcd.prefix);
        if let (Some(user), Some(password)) = (etcd.username, etcd.password) {
            builder = builder.credentials(user, password);
        }
        if let Some(tls) = etcd.tls {
            builder = builder.tls(tls);
        }
        if let Some(id) = a.id {
            builder = builder.id(id);
        }
        if let Some(capacity) = a.capacity {
            builder = builder.capacity(capacity);
        }
        for (k, v) in a.labels {
            builder = builder.label(k, v);
        }
        for name in &a.handlers {
            builder = match name.as_str() {
                "noop" => builder.handler("noop", Noop),
                _ => match &a.sleep_journal_dir {
                    Some(dir) => builder.handler("sleep", Sleep::journaling_into(dir)),
                    None => builder.handler("sleep", Sleep),
                },
            };
        }
        Ok(builder.build()?)
    }
}

/// Runs the executor until SIGTERM or Ctrl-C, then drains.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_args(args, std::env::var(PASSWORD_ENV).ok())?;
    let executor = settings.executor()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        tracing::info!(executor = %executor.id(), "executor starting");
        // The SDK's own helper, the one services embedding it use: the
        // process tests of SIGTERM drain (tests/executor_process.rs) go through it.
        executor.run_until_signal().await?;
        tracing::info!("executor stopped");
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: Args,
    }

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["x", "--etcd", "http://a:2379,http://b:2379"];
        argv.extend_from_slice(extra);
        Cmd::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn parses_lists_and_durations() {
        let a = args(&["--lease-ttl", "2s", "--label", "zone=eu-1"]);
        assert_eq!(a.etcd.etcd, vec!["http://a:2379", "http://b:2379"]);
        assert_eq!(a.handlers, vec!["noop", "sleep"]);
        assert_eq!(a.lease_ttl, Duration::from_secs(2));
        assert_eq!(a.drain_grace, Duration::from_secs(30));
        assert_eq!(a.labels, vec![("zone".to_owned(), "eu-1".to_owned())]);
        assert!(
            Cmd::try_parse_from(["x", "--etcd", "h", "--lease-ttl", "10"]).is_err(),
            "a bare number is ambiguous"
        );
    }

    #[test]
    fn refuses_unknown_handlers_and_half_given_credentials() {
        let err = |a: Args, env: Option<&str>| {
            Settings::from_args(a, env.map(str::to_owned))
                .err()
                .map(|e| e.to_string())
        };
        assert!(err(args(&["--handlers", "shell"]), None)
            .unwrap()
            .contains("unknown handler `shell`"));
        assert!(err(args(&["--etcd-user", "root"]), None)
            .unwrap()
            .contains("needs a password"));
        assert!(err(args(&[]), Some("pw"))
            .unwrap()
            .contains("without --etcd-user"));
        assert!(err(args(&["--etcd-user", "root"]), Some("pw")).is_none());
    }

    #[test]
    fn reads_the_password_file_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let a = args(&[
            "--etcd-user",
            "root",
            "--etcd-password-file",
            path.to_str().unwrap(),
        ]);
        let settings = Settings::from_args(a, Some("ignored".into())).unwrap();
        assert_eq!(settings.etcd.password.as_deref(), Some("s3cret"));
    }
}
