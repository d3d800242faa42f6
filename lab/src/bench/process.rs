//! Child `nightshift` processes of a benchmark (the scheduler, executors
//! to kill) and what Linux tells about them: CPU seconds from
//! `/proc/PID/stat`, peak resident memory (`VmHWM`) from `/proc/PID/status`.
//!
//! Every child is SIGKILLed when its handle drops, so an aborted benchmark
//! leaves no process behind.

use anyhow::{bail, Context as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A `nightshift SUBCOMMAND ...` child process.
pub struct NightshiftChild {
    child: Child,
    name: String,
}

impl NightshiftChild {
    /// Spawns this same binary with `args`; its stderr (logs) goes to
    /// `log`, its stdout is discarded.
    pub fn spawn(name: &str, args: &[String], log: &Path) -> anyhow::Result<NightshiftChild> {
        Self::spawn_logging(name, args, log, "warn")
    }

    /// Like [`NightshiftChild::spawn`] with `RUST_LOG=filter`, appending to
    /// `log` (a restarted process keeps one log).
    pub fn spawn_logging(
        name: &str,
        args: &[String],
        log: &Path,
        filter: &str,
    ) -> anyhow::Result<NightshiftChild> {
        Self::spawn_with_env(name, args, &[], log, filter)
    }

    /// Like [`NightshiftChild::spawn_logging`] with extra environment
    /// variables (test-only settings of the child).
    pub fn spawn_with_env(
        name: &str,
        args: &[String],
        env: &[(String, String)],
        log: &Path,
        filter: &str,
    ) -> anyhow::Result<NightshiftChild> {
        let exe = std::env::current_exe().context("finding the nightshift binary")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = Command::new(exe)
            .args(args)
            .env("RUST_LOG", filter)
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawning nightshift {name}"))?;
        Ok(NightshiftChild {
            child,
            name: name.to_owned(),
        })
    }

    /// The exit status, if the process has exited (reaping it).
    pub fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait().context("checking a child process")
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.pid()).context("pid out of range")?;
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
        // own child, not reaped yet (we hold its `Child`).
        if unsafe { libc::kill(pid, signal) } != 0 {
            bail!(
                "signalling {} ({pid}): {}",
                self.name,
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// Fails when the process has already exited (it should be serving).
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait().context("checking a child process")? {
            bail!(
                "nightshift {} exited early ({status}); see its log",
                self.name
            );
        }
        Ok(())
    }

    /// CPU seconds (user + system) used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(&self.pid().to_string())
    }

    /// Peak resident set size (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .context("reading /proc/PID/status")?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .context("no VmHWM in /proc/PID/status")?;
        let kib: f64 = line
            .split_whitespace()
            .nth(1)
            .context("malformed VmHWM")?
            .parse()?;
        Ok(kib / 1024.0)
    }
}

impl Drop for NightshiftChild {
    fn drop(&mut self) {
        // Errors mean it is already gone, which is the goal.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) used so far by process `pid` (`self`: this
/// process, the bench with its in-process executors).
pub fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/PID/stat")?;
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse::<f64>()?)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Ok((ticks(11)? + ticks(12)?) / hz)
}
