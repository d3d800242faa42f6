//! The watchdog: a tiny process that kills a program's process group when
//! the executor can no longer vouch for the item's lease — even when the
//! executor itself is frozen (SIGSTOP, a long GC-like pause, a stuck host
//! thread) or dead.
//!
//! The executor cannot enforce "the program is never running when its lease
//! could have expired" from inside itself: a stopped executor runs no code,
//! while its program (a separate process) keeps going. So for each program
//! the executor forks a watchdog (double fork: it is reparented to init, so
//! nobody has to reap it) holding the read end of a pipe. The executor
//! writes the lease deadline into the pipe whenever its lease is renewed;
//! the watchdog SIGKILLs the group when the deadline passes unrenewed, or
//! when the pipe closes without an "ended" message (the executor died or
//! dropped the item). Deadlines are `CLOCK_MONOTONIC` milliseconds, a clock
//! both processes share.
//!
//! The child side runs after `fork()` in a multi-threaded process, so it
//! only calls async-signal-safe functions (`poll`, `read`, `killpg`,
//! `clock_gettime`, `sigaction`, `close`, `dup2`, `open`, `_exit`) and never
//! allocates, locks or panics.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;
use tokio::time::Instant;

/// Message tags on the pipe (1 tag byte + 8 bytes little-endian ms).
const DEADLINE: u8 = b'D';
const ENDED: u8 = b'E';
const MESSAGE_LEN: usize = 9;
/// "No deadline": the lease is not known (an item run outside an executor).
const NEVER: i64 = i64::MAX;

/// The executor's end of one program's watchdog.
#[derive(Debug)]
pub(crate) struct Watchdog {
    pipe: Option<OwnedFd>,
}

impl Watchdog {
    /// Starts the watchdog of process group `pgid`, killing it at `deadline`
    /// unless told otherwise.
    pub(crate) fn start(pgid: libc::pid_t, deadline: Option<Instant>) -> io::Result<Watchdog> {
        if pgid <= 1 {
            // killpg(0 or 1, ..) would name our own group or init's.
            return Err(io::Error::other(format!(
                "refusing to watch process group {pgid}"
            )));
        }
        let deadline_ms = deadline.map_or(NEVER, to_monotonic_ms);
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two fds into the array we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both fds were just created by pipe2 and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the child branch only runs async-signal-safe code
        // (`child_main` never returns and never allocates).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: we are the freshly forked child; see `child_main`.
            unsafe { child_main(read.as_raw_fd(), pgid, deadline_ms) }
        }
        drop(read);
        // The intermediate child forks the watchdog and exits at once; reap it.
        let mut status: libc::c_int = 0;
        loop {
            // SAFETY: waitpid on our own child with a valid status pointer.
            let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
            if rc == pid {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            return Err(io::Error::other("the watchdog process could not be forked"));
        }
        Ok(Watchdog { pipe: Some(write) })
    }

    /// Moves the kill deadline (`None`: no deadline).
    pub(crate) fn set_deadline(&self, deadline: Option<Instant>) {
        self.send(DEADLINE, deadline.map_or(NEVER, to_monotonic_ms));
    }

    /// The program ended and its group was cleaned up: the watchdog exits
    /// without killing anything.
    pub(crate) fn release(mut self) {
        self.send(ENDED, 0);
        self.pipe = None;
    }

    fn send(&self, tag: u8, value: i64) {
        let Some(pipe) = &self.pipe else { return };
        let mut message = [0u8; MESSAGE_LEN];
        message[0] = tag;
        message[1..].copy_from_slice(&value.to_le_bytes());
        // A 9-byte write to a pipe is atomic and never blocks in practice
        // (the watchdog drains it). If the watchdog is gone the write fails
        // (EPIPE; Rust programs ignore SIGPIPE): nothing more can be done.
        // SAFETY: writing from a live buffer to an fd we own.
        let _ = unsafe { libc::write(pipe.as_raw_fd(), message.as_ptr().cast(), MESSAGE_LEN) };
    }
}

// Dropping a `Watchdog` without `release` closes the pipe: the watchdog
// reads EOF and kills the group. That is the backstop for an item future
// dropped mid-run and for an executor that exits or crashes.

/// `CLOCK_MONOTONIC` now, in milliseconds.
fn monotonic_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec
        .saturating_mul(1000)
        .saturating_add(ts.tv_nsec / 1_000_000)
}

/// A tokio instant as `CLOCK_MONOTONIC` milliseconds (std's `Instant` is
/// that clock on Linux; the offset is taken now, so it is exact to ~1 ms).
fn to_monotonic_ms(at: Instant) -> i64 {
    let now = Instant::now();
    let base = monotonic_ms();
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(NEVER);
    if at >= now {
        base.saturating_add(ms(at - now))
    } else {
        base.saturating_sub(ms(now - at))
    }
}

/// The intermediate child: forks the watchdog and exits.
///
/// # Safety
/// Must only be called in a freshly forked child.
unsafe fn child_main(read: libc::c_int, pgid: libc::pid_t, deadline_ms: i64) -> ! {
    match libc::fork() {
        0 => watch(read, pgid, deadline_ms),
        pid if pid > 0 => libc::_exit(0),
        _ => libc::_exit(1),
    }
}

/// The watchdog's loop.
///
/// # Safety
/// Must only be called in a forked child; async-signal-safe calls only.
unsafe fn watch(read: libc::c_int, pgid: libc::pid_t, mut deadline_ms: i64) -> ! {
    // Its own process group: a Ctrl-C or SIGSTOP aimed at the executor's
    // group must not reach the watchdog. Termination signals are ignored:
    // only the deadline or the pipe ends it.
    libc::setpgid(0, 0);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGPIPE,
    ] {
        libc::signal(sig, libc::SIG_IGN);
    }
    // Keep only the pipe (as fd 3) and /dev/null on 0-2: inherited fds
    // (sockets, other watchdogs' pipes, the executor's log) must not be held
    // open by a process that outlives its purpose.
    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
    if null >= 0 {
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
    }
    let fd: libc::c_int = 3;
    if read != fd {
        libc::dup2(read, fd);
    }
    if libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32) != 0 {
        for other in 4..65_536 {
            libc::close(other);
        }
    }
    let mut buf = [0u8; MESSAGE_LEN];
    let mut filled: usize = 0;
    loop {
        let now = monotonic_ms();
        if now >= deadline_ms {
            libc::killpg(pgid, libc::SIGKILL);
            libc::_exit(0);
        }
        let wait = deadline_ms.saturating_sub(now).min(i64::from(i32::MAX)) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ready = libc::poll(&mut pfd, 1, wait);
        if ready <= 0 {
            // Timeout (checked at the top) or EINTR.
            continue;
        }
        let rest = buf.as_mut_ptr().add(filled);
        let n = libc::read(fd, rest.cast(), MESSAGE_LEN - filled);
        if n == 0 {
            // The executor closed the pipe without saying the program ended.
            libc::killpg(pgid, libc::SIGKILL);
            libc::_exit(0);
        }
        if n < 0 {
            let errno = *libc::__errno_location();
            if errno == libc::EINTR || errno == libc::EAGAIN {
                continue;
            }
            // The pipe is unusable: nobody can extend the deadline any more.
            libc::killpg(pgid, libc::SIGKILL);
            libc::_exit(0);
        }
        filled += n as usize;
        if filled < MESSAGE_LEN {
            continue;
        }
        filled = 0;
        let value = i64::from_le_bytes([
            buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], buf[8],
        ]);
        match buf[0] {
            ENDED => libc::_exit(0),
            DEADLINE => deadline_ms = value,
            _ => {}
        }
    }
}
