//! [`ProgramJob`]: a handler that runs an existing program (a shell script,
//! a Java or Python batch) for each item.
//!
//! **Security rule:** the executor's operator chooses the program and its
//! arguments; DAG authors only choose the handler name. Nothing from a DAG
//! (params, shard params) ever reaches the command line or a shell: the
//! program is executed directly, and the item's facts arrive as environment
//! variables (`NIGHTSHIFT_RUN_ID`, `NIGHTSHIFT_DAG`, `NIGHTSHIFT_JOB`,
//! `NIGHTSHIFT_ITEM`, `NIGHTSHIFT_ITEM_COUNT`, `NIGHTSHIFT_ITEM_PARAM`,
//! `NIGHTSHIFT_PARAMS` (JSON), `NIGHTSHIFT_BUSINESS_DATE`,
//! `NIGHTSHIFT_ATTEMPT`, `NIGHTSHIFT_IDEMPOTENCY_KEY`,
//! `NIGHTSHIFT_FENCING_TOKEN`). Other `NIGHTSHIFT_*` variables of the
//! executor (its etcd password among them) are removed.
//!
//! Exit 0 is success, 75 (`EX_TEMPFAIL`) a retryable failure, anything else
//! (or a signal) a permanent failure whose error is the last stderr line.
//! stdout and stderr lines are logged with the item's fields; a stdout line
//! `::progress DONE/TOTAL message` reports progress.
//!
//! Each item runs in its own process group. When the item is cancelled (by
//! an operator, a reassignment, its timeout or the executor losing its
//! lease) the group gets SIGTERM, then SIGKILL after the grace — or sooner,
//! at the moment the executor's lease could expire. A watchdog process
//! ([`watchdog`]) enforces that last bound even when the executor is frozen
//! or dead, so a program is never still running once another executor may
//! have been given its item.

mod output;
mod watchdog;

use crate::context::ItemContext;
use crate::job::{ItemOutcome, Job, JobError};
use async_trait::async_trait;
use nightshift_coord::lease::LeaseStatus;
use output::Stream;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;
use watchdog::Watchdog;

/// Default time between SIGTERM and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// Exit status of a retryable failure (`EX_TEMPFAIL` from sysexits.h).
pub const EXIT_RETRYABLE: i32 = 75;
/// How long before the lease's conservative end the group is killed: covers
/// the kill itself and clock-rate differences with etcd.
const LEASE_MARGIN: Duration = Duration::from_millis(250);
/// How long output readers may run on after the group is gone (a process
/// that left the group may still hold the pipes).
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// A handler that runs a program for each item; see the [module docs](self).
///
/// ```
/// use nightshift_executor::program::ProgramJob;
/// let job = ProgramJob::new("/opt/batch/settlement-report.sh").arg("--quiet");
/// # let _ = job;
/// ```
#[derive(Debug, Clone)]
pub struct ProgramJob {
    path: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    grace: Duration,
}

impl ProgramJob {
    /// Runs `path` (executed directly: no shell, no `PATH` lookup surprises
    /// when absolute).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ProgramJob {
            path: path.into(),
            args: Vec::new(),
            env: Vec::new(),
            grace: DEFAULT_GRACE,
        }
    }

    /// Appends a fixed argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends fixed arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the program (operator settings such
    /// as a database URL; a `NIGHTSHIFT_*` name is overridden by the item's).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Time between SIGTERM and SIGKILL when the item is stopped (default 10 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The program.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn command(&self, ctx: &ItemContext) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("NIGHTSHIFT_") {
                cmd.env_remove(name);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.envs(environment(ctx));
        cmd
    }
}

/// The item's facts as the program's environment.
pub(crate) fn environment(ctx: &ItemContext) -> Vec<(&'static str, String)> {
    vec![
        ("NIGHTSHIFT_RUN_ID", ctx.run_id().to_string()),
        ("NIGHTSHIFT_DAG", ctx.dag().to_string()),
        ("NIGHTSHIFT_JOB", ctx.job().to_string()),
        ("NIGHTSHIFT_ITEM", ctx.item().0.to_string()),
        ("NIGHTSHIFT_ITEM_COUNT", ctx.total_items().to_string()),
        (
            "NIGHTSHIFT_ITEM_PARAM",
            ctx.item_param().unwrap_or_default().to_owned(),
        ),
        ("NIGHTSHIFT_PARAMS", ctx.params_json().to_string()),
        ("NIGHTSHIFT_BUSINESS_DATE", ctx.business_date().to_string()),
        ("NIGHTSHIFT_ATTEMPT", ctx.attempt().to_string()),
        ("NIGHTSHIFT_IDEMPOTENCY_KEY", ctx.idempotency_key()),
        ("NIGHTSHIFT_ATTEMPT_ID", ctx.attempt_id()),
        (
            "NIGHTSHIFT_FENCING_TOKEN",
            ctx.fencing_token().0.to_string(),
        ),
    ]
}

#[async_trait]
impl Job for ProgramJob {
    async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
        let mut child = self.command(&ctx).spawn().map_err(|e| {
            JobError::permanent(format!("cannot start {}: {e}", self.path.display()))
        })?;
        let pgid = child
            .id()
            .and_then(|id| libc::pid_t::try_from(id).ok())
            .ok_or_else(|| JobError::retryable("the program exited before it could be watched"))?;
        let mut lease = LeaseDeadline::new(ctx.lease_status());
        let group = Group { pgid, done: false };
        let watchdog = match Watchdog::start(pgid, lease.kill_at()) {
            Ok(w) => w,
            Err(e) => {
                drop(group);
                let _ = child.wait().await;
                return Err(JobError::retryable(format!(
                    "cannot watch the program: {e}"
                )));
            }
        };
        tracing::info!(program = %self.path.display(), pid = pgid, "program started");
        let readers = [
            (
                child.stdout.take().map(|r| Box::new(r) as Box<dyn Reader>),
                Stream::Stdout,
            ),
            (
                child.stderr.take().map(|r| Box::new(r) as Box<dyn Reader>),
                Stream::Stderr,
            ),
        ]
        .map(|(reader, stream)| {
            reader.map(|r| {
                tokio::spawn(
                    output::pump(r, stream, ctx.clone()).instrument(tracing::Span::current()),
                )
            })
        });
        let [stdout, stderr] = readers;
        let ended = supervise(&mut child, &ctx, group, &watchdog, &mut lease, self.grace).await;
        watchdog.release();
        let (_, last_stderr) = tokio::join!(drain(stdout), drain(stderr));
        let status =
            ended.map_err(|e| JobError::retryable(format!("waiting for the program: {e}")))?;
        classify(status.status, status.stopped, last_stderr.as_deref())
    }

    fn stop_grace(&self) -> Duration {
        // The grace, plus time to reap the group and collect its output.
        self.grace + Duration::from_secs(1)
    }
}

/// Waits (bounded) for an output reader to reach the end of its pipe.
async fn drain(reader: Option<tokio::task::JoinHandle<Option<String>>>) -> Option<String> {
    let reader = reader?;
    let abort = reader.abort_handle();
    match tokio::time::timeout(OUTPUT_DRAIN, reader).await {
        Ok(Ok(last)) => last,
        _ => {
            abort.abort();
            None
        }
    }
}

trait Reader: tokio::io::AsyncRead + Unpin + Send {}
impl<T: tokio::io::AsyncRead + Unpin + Send> Reader for T {}

/// How the program ended.
struct Ended {
    status: ExitStatus,
    /// Whether we stopped it (cancellation, timeout, lease).
    stopped: bool,
}

/// The item's outcome from the exit status.
fn classify(
    status: ExitStatus,
    stopped: bool,
    last_stderr: Option<&str>,
) -> Result<ItemOutcome, JobError> {
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (Some(0), _) if !stopped => return Ok(ItemOutcome::Succeeded),
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "ended without a status".to_owned(),
    };
    if stopped {
        // Not recorded unless an operator cancelled; then it is "cancelled".
        return Err(JobError::retryable(format!("program stopped ({how})")));
    }
    let message = match last_stderr {
        Some(line) => format!("{line} ({how})"),
        None => format!("program failed ({how})"),
    };
    if status.code() == Some(EXIT_RETRYABLE) {
        Err(JobError::Retryable(message))
    } else {
        Err(JobError::Permanent(message))
    }
}

/// The program's process group; SIGKILLed on drop unless it ended.
struct Group {
    pgid: libc::pid_t,
    done: bool,
}

impl Group {
    fn signal(&self, sig: libc::c_int) {
        // pgid > 1 is checked before the watchdog starts; check again: a
        // killpg(0, ..) would signal the executor's own group.
        if self.pgid > 1 {
            // SAFETY: killpg has no memory-safety preconditions.
            unsafe { libc::killpg(self.pgid, sig) };
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.done {
            self.signal(libc::SIGKILL);
        }
    }
}

/// Waits for the program, stopping it when the item is cancelled; kills
/// what is left of its group once it has ended.
async fn supervise(
    child: &mut Child,
    ctx: &ItemContext,
    mut group: Group,
    watchdog: &Watchdog,
    lease: &mut LeaseDeadline,
    grace: Duration,
) -> std::io::Result<Ended> {
    let mut stopped = false;
    let mut kill_at: Option<Instant> = None;
    let status = loop {
        let deadline = match (kill_at, lease.kill_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            status = child.wait() => break status?,
            _ = ctx.cancelled(), if !stopped => {
                stopped = true;
                tracing::info!(pid = group.pgid, ?grace, "item stopped: SIGTERM to the program's process group");
                group.signal(libc::SIGTERM);
                kill_at = Some(Instant::now() + grace);
            }
            () = lease.changed() => watchdog.set_deadline(lease.kill_at()),
            () = sleep_until(deadline) => {
                tracing::warn!(pid = group.pgid, "SIGKILL to the program's process group (grace over or lease in doubt)");
                stopped = true;
                group.signal(libc::SIGKILL);
                kill_at = None;
                lease.forget();
            }
        }
    };
    // Children the program left behind in its group do not outlive the item.
    group.signal(libc::SIGKILL);
    group.done = true;
    Ok(Ended { status, stopped })
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The last instant the program may run given the executor's lease:
/// the lease's conservative end (as last confirmed) minus a margin.
struct LeaseDeadline {
    status: Option<watch::Receiver<LeaseStatus>>,
    until: Option<Instant>,
}

impl LeaseDeadline {
    fn new(status: Option<watch::Receiver<LeaseStatus>>) -> Self {
        let mut deadline = LeaseDeadline {
            status,
            until: None,
        };
        deadline.update();
        deadline
    }

    fn update(&mut self) {
        let Some(status) = &self.status else { return };
        match *status.borrow() {
            LeaseStatus::Alive { confirmed_until } => self.until = Some(confirmed_until),
            // Expiring: the last confirmed end still bounds the lease.
            LeaseStatus::Expiring => {
                self.until.get_or_insert_with(Instant::now);
            }
            LeaseStatus::Lost => self.until = Some(Instant::now()),
        }
    }

    fn kill_at(&self) -> Option<Instant> {
        self.until.map(|u| u.checked_sub(LEASE_MARGIN).unwrap_or(u))
    }

    async fn changed(&mut self) {
        let Some(status) = &mut self.status else {
            return std::future::pending().await;
        };
        if status.changed().await.is_err() {
            // The keeper is gone: nobody vouches for the lease any more.
            self.status = None;
            self.until = Some(Instant::now());
            return;
        }
        self.update();
    }

    /// After the group was SIGKILLed, stop waking up for the deadline.
    fn forget(&mut self) {
        self.status = None;
        self.until = None;
    }
}

#[cfg(test)]
mod tests;
