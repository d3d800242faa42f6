//! `nightshift executor`: a stand-alone executor serving the built-in `noop`
//! and `sleep` handlers and the operator's **programs** (`--program
//! NAME=PATH`, or `[programs.NAME]` in `--config FILE`): each item of a job
//! whose handler is NAME runs PATH in its own process group
//! ([`nightshift_executor::program`]). Rust handlers run in your own
//! service, which embeds `nightshift-executor`.
//!
//! Flags are parsed in two stages: clap fills [`Args`], then [`Settings`]
//! merges the config file, checks everything and reads secrets (the etcd
//! password comes from a file or the environment, never from a flag, and is
//! never printed). SIGTERM and Ctrl-C start a graceful drain.

use crate::cli::conn::{EtcdArgs, PASSWORD_ENV};
use crate::cli::executor_config::{self, FileConfig, ProgramSpec};
use anyhow::{bail, Context as _};
use nightshift_coord::etcd::EtcdConfig;
use nightshift_core::duration::parse_duration;
use nightshift_executor::builtin::{Noop, Sleep};
use nightshift_executor::program::{ProgramJob, DEFAULT_GRACE};
use nightshift_executor::Executor;
use std::collections::BTreeMap;
use std::path::PathBuf;
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
         `checkpoint = true` stores the step as the item's checkpoint after
         each step and resumes after the last one (after a failover/retry).

Program handlers: --program NAME=PATH serves handler NAME by running PATH for
each item (no shell; fixed arguments from --program-arg NAME=ARG, in order).
The executor's operator chooses programs; DAG authors only choose handler
names, and nothing from a DAG reaches a command line. The item arrives in
NIGHTSHIFT_RUN_ID, NIGHTSHIFT_DAG, NIGHTSHIFT_JOB, NIGHTSHIFT_ITEM,
NIGHTSHIFT_ITEM_COUNT, NIGHTSHIFT_ITEM_PARAM, NIGHTSHIFT_PARAMS (JSON),
NIGHTSHIFT_BUSINESS_DATE, NIGHTSHIFT_ATTEMPT, NIGHTSHIFT_IDEMPOTENCY_KEY and
NIGHTSHIFT_FENCING_TOKEN. Exit 0 = succeeded, 75 = retryable failure, other
= permanent failure (the last stderr line is the error). A stdout line
`::progress DONE/TOTAL message` reports progress. A stopped item's process
group gets SIGTERM, then SIGKILL after --program-grace; it is always killed
before the executor's lease could expire.

The etcd password is read from --etcd-password-file or NIGHTSHIFT_ETCD_PASSWORD,
never from the command line. SIGTERM or Ctrl-C drains the executor: no new
items, running items get --drain-grace to finish, then its lease is revoked.")]
pub struct Args {
    /// How to reach etcd (endpoints, auth, TLS, key prefix).
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Executor configuration file (TOML): id, capacity, labels, handlers,
    /// programs, handler capacities. Flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve Prometheus metrics (items started and finished by outcome,
    /// durations, result batches, lease renewals, self-fences) on this
    /// address, at `/metrics`.
    #[arg(long, env = "NIGHTSHIFT_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Built-in handlers to serve, comma-separated: noop, sleep (default:
    /// both when no program is configured, else none).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub handlers: Option<Vec<String>>,
    /// Serve handler NAME by running the program at PATH (repeatable).
    #[arg(long = "program", value_parser = executor_config::pair, value_name = "NAME=PATH")]
    pub programs: Vec<(String, String)>,
    /// A fixed argument for program NAME (repeatable, in order).
    #[arg(long = "program-arg", value_parser = executor_config::pair, value_name = "NAME=ARG")]
    pub program_args: Vec<(String, String)>,
    /// Time between SIGTERM and SIGKILL when a program's item is stopped (default 10s).
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub program_grace: Option<Duration>,
    /// Items run at once across all jobs (default: number of CPUs).
    #[arg(long, value_name = "N")]
    pub capacity: Option<u32>,
    /// Most items of handler NAME at once, within --capacity (repeatable):
    /// a slow handler cannot take every slot from the others.
    #[arg(long = "handler-capacity", value_parser = handler_capacity, value_name = "NAME=N")]
    pub handler_capacity: Vec<(String, u32)>,
    /// Executor id (default: {hostname}-{pid}).
    #[arg(long, env = "NIGHTSHIFT_EXECUTOR_ID", value_name = "ID")]
    pub id: Option<String>,
    /// Lease TTL: how long after a crash the executor's items move elsewhere (default 10s).
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub lease_ttl: Option<Duration>,
    /// How long a shutdown waits for running items (default 30s).
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub drain_grace: Option<Duration>,
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

fn handler_capacity(text: &str) -> Result<(String, u32), String> {
    let (name, n) = executor_config::pair(text)?;
    match n.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok((name, n)),
        _ => Err(format!("expected NAME=N with N at least 1, got `{text}`")),
    }
}

fn label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("expected key=value, got `{text}`")),
    }
}

/// Checked flags merged with the config file, with the etcd configuration
/// (and its password) read. No `Debug`: it holds a secret.
struct Settings {
    etcd_args: EtcdArgs,
    etcd: EtcdConfig,
    id: Option<String>,
    capacity: Option<u32>,
    lease_ttl: Duration,
    drain_grace: Duration,
    labels: BTreeMap<String, String>,
    builtins: Vec<String>,
    /// Where the built-in `sleep` may write its journals (operator's choice).
    sleep_journal_dir: Option<std::path::PathBuf>,
    programs: Vec<ProgramSpec>,
    handler_capacity: BTreeMap<String, u32>,
}

impl Settings {
    fn from_args(args: Args, password_env: Option<String>) -> anyhow::Result<Settings> {
        let file = match &args.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        let program_grace = match args.program_grace {
            Some(g) => g,
            None => FileConfig::duration("program_grace", file.program_grace.as_deref())?
                .unwrap_or(DEFAULT_GRACE),
        };
        let programs =
            executor_config::programs(&args.programs, &args.program_args, &file, program_grace)?;
        let builtins = match args.handlers.clone().or_else(|| file.handlers.clone()) {
            Some(names) => names.into_iter().filter(|n| !n.trim().is_empty()).collect(),
            None if programs.is_empty() => vec!["noop".to_owned(), "sleep".to_owned()],
            None => Vec::new(),
        };
        for name in &builtins {
            if !matches!(name.as_str(), "noop" | "sleep") {
                bail!("unknown handler `{name}`: the built-in handlers are noop and sleep (serve a program with --program NAME=PATH)");
            }
            if programs.iter().any(|p| &p.name == name) {
                bail!("handler `{name}` is both a built-in and a program");
            }
        }
        if builtins.is_empty() && programs.is_empty() {
            bail!("nothing to serve: no built-in handler and no program");
        }
        if !args.etcd.is_configured() {
            bail!("no etcd endpoints: pass --etcd URLS or set NIGHTSHIFT_ETCD");
        }
        let etcd = args.etcd.config_with(password_env)?;
        let mut handler_capacity = file.handler_capacity.clone();
        handler_capacity.extend(args.handler_capacity.iter().cloned());
        for (name, limit) in &handler_capacity {
            if *limit == 0 {
                bail!("handler capacity of `{name}` must be at least 1");
            }
            if !builtins.contains(name) && !programs.iter().any(|p| &p.name == name) {
                bail!("handler capacity for `{name}`, which this executor does not serve");
            }
        }
        let mut labels = file.labels.clone();
        labels.extend(args.labels.iter().cloned());
        let lease_ttl = match args.lease_ttl {
            Some(t) => t,
            None => FileConfig::duration("lease_ttl", file.lease_ttl.as_deref())?
                .unwrap_or(Duration::from_secs(10)),
        };
        let drain_grace = match args.drain_grace {
            Some(t) => t,
            None => FileConfig::duration("drain_grace", file.drain_grace.as_deref())?
                .unwrap_or(Duration::from_secs(30)),
        };
        Ok(Settings {
            etcd_args: args.etcd,
            etcd,
            id: args.id.or(file.id),
            capacity: args.capacity.or(file.capacity),
            lease_ttl,
            drain_grace,
            labels,
            builtins,
            sleep_journal_dir: args.sleep_journal_dir,
            programs,
            handler_capacity,
        })
    }

    fn executor(self) -> anyhow::Result<Executor> {
        let s = self;
        let etcd = s.etcd;
        let mut builder = Executor::builder()
            .etcd(etcd.endpoints)
            .lease_ttl(s.lease_ttl)
            .drain_grace(s.drain_grace)
            .etcd_request_timeout(etcd.request_timeout)
            .prefix(s.etcd_args.prefix);
        if let (Some(user), Some(password)) = (etcd.username, etcd.password) {
            builder = builder.credentials(user, password);
        }
        if let Some(tls) = etcd.tls {
            builder = builder.tls(tls);
        }
        if let Some(id) = s.id {
            builder = builder.id(id);
        }
        if let Some(capacity) = s.capacity {
            builder = builder.capacity(capacity);
        }
        for (k, v) in s.labels {
            builder = builder.label(k, v);
        }
        for (name, limit) in s.handler_capacity {
            builder = builder.handler_capacity(name, limit);
        }
        for name in &s.builtins {
            builder = match name.as_str() {
                "noop" => builder.handler("noop", Noop),
                _ => match &s.sleep_journal_dir {
                    Some(dir) => builder.handler("sleep", Sleep::journaling_into(dir)),
                    None => builder.handler("sleep", Sleep),
                },
            };
        }
        for p in s.programs {
            tracing::info!(handler = %p.name, program = %p.path.display(), args = ?p.args, "serving a program");
            let mut job = ProgramJob::new(p.path).args(p.args).grace(p.grace);
            for (k, v) in p.env {
                job = job.env(k, v);
            }
            builder = builder.program(p.name, job);
        }
        Ok(builder.build()?)
    }
}

/// Runs the executor until SIGTERM or Ctrl-C, then drains.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let metrics_listen = args.metrics_listen;
    let settings = Settings::from_args(args, std::env::var(PASSWORD_ENV).ok())?;
    let executor = settings.executor()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        tracing::info!(executor = %executor.id(), "executor starting");
        if let Some(addr) = metrics_listen {
            crate::cli::prometheus::serve(addr).await?;
        }
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
        assert_eq!(a.handlers, None);
        assert_eq!(a.lease_ttl, Some(Duration::from_secs(2)));
        assert_eq!(a.drain_grace, None);
        assert_eq!(a.labels, vec![("zone".to_owned(), "eu-1".to_owned())]);
        let s = Settings::from_args(a, None).unwrap();
        assert_eq!(s.builtins, vec!["noop", "sleep"]);
        assert_eq!(s.drain_grace, Duration::from_secs(30));
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
        assert!(err(args(&["--handlers", ""]), None)
            .unwrap()
            .contains("nothing to serve"));
        assert!(err(args(&["--handler-capacity", "accrue=2"]), None)
            .unwrap()
            .contains("does not serve"));
        assert!(Cmd::try_parse_from(["x", "--handler-capacity", "sleep=0"]).is_err());
        let s = Settings::from_args(args(&["--handler-capacity", "sleep=2"]), None).unwrap();
        assert_eq!(s.handler_capacity.get("sleep"), Some(&2));
    }

    #[test]
    fn programs_replace_the_default_builtins_and_the_file_fills_in_flags() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("report.sh");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.path().join("executor.toml");
        std::fs::write(
            &file,
            "capacity = 3\nlease_ttl = \"4s\"\nprogram_grace = \"2s\"\n[labels]\nzone = \"a\"\n",
        )
        .unwrap();
        let spec = format!("report={}", prog.display());
        let s = Settings::from_args(
            args(&[
                "--config",
                file.to_str().unwrap(),
                "--program",
                &spec,
                "--label",
                "tier=batch",
                "--capacity",
                "5",
            ]),
            None,
        )
        .unwrap();
        assert!(s.builtins.is_empty());
        assert_eq!(s.programs.len(), 1);
        assert_eq!(s.programs[0].grace, Duration::from_secs(2));
        assert_eq!(s.capacity, Some(5), "the flag wins over the file");
        assert_eq!(s.lease_ttl, Duration::from_secs(4));
        assert_eq!(s.labels.len(), 2);
        let clash = Settings::from_args(
            args(&[
                "--program",
                &format!("noop={}", prog.display()),
                "--handlers",
                "noop",
            ]),
            None,
        );
        assert!(clash
            .err()
            .unwrap()
            .to_string()
            .contains("both a built-in and a program"));
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

    #[test]
    fn the_etcd_request_deadline_reaches_the_sdk() {
        let settings = Settings::from_args(args(&["--etcd-request-timeout", "3s"]), None).unwrap();
        assert_eq!(settings.etcd.request_timeout, Duration::from_secs(3));
    }
}
