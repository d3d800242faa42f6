//! [`Executor::run_until_signal`]: drain on the signals that service
//! managers send. Kubernetes and systemd stop a process with SIGTERM (and
//! SIGKILL after a grace period); a terminal sends SIGINT on Ctrl-C. Without
//! a handler SIGTERM kills the process outright: its running items are lost
//! until the lease expires, then run again elsewhere. Draining instead lets
//! them finish, records them and releases the rest at once.

use crate::builder::Executor;
use crate::runtime::RunError;
use std::future::Future;

impl Executor {
    /// Runs the executor until the process receives SIGTERM or SIGINT
    /// (Ctrl-C), then drains as [`run_until`](Executor::run_until) does:
    /// stops taking items, lets running ones finish within the drain grace
    /// ([`drain_grace`](crate::ExecutorBuilder::drain_grace), 30 s by
    /// default: keep it below your orchestrator's kill timeout, e.g.
    /// Kubernetes' `terminationGracePeriodSeconds`), records their outcomes
    /// and revokes the lease so that the scheduler reassigns the rest at
    /// once.
    ///
    /// ```no_run
    /// # use nightshift_executor::{builtin::Noop, Executor};
    /// # async fn main_() -> Result<(), Box<dyn std::error::Error>> {
    /// let executor = Executor::builder()
    ///     .etcd(["http://127.0.0.1:2379"])
    ///     .handler("noop", Noop)
    ///     .build()?;
    /// executor.run_until_signal().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// The handlers are installed before the executor starts, so a signal
    /// that arrives while it is still connecting stops it too. Further
    /// signals during the drain are ignored (the drain is already under way;
    /// SIGKILL still ends the process).
    pub async fn run_until_signal(self) -> Result<(), RunError> {
        let signal = shutdown_signal()?;
        self.run_until(signal).await
    }
}

/// Resolves on the first SIGTERM or SIGINT (on other platforms: Ctrl-C),
/// for composing your own shutdown with [`Executor::run_until`]. The
/// handlers are installed when this returns, not when the future is first
/// polled, so no signal between the two is missed.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, RunError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| RunError::Signal(format!("{name}: {e}")))
        };
        let mut term = install(SignalKind::terminate(), "SIGTERM")?;
        let mut int = install(SignalKind::interrupt(), "SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received: draining"),
                _ = int.recv() => tracing::info!("SIGINT received: draining"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("Ctrl-C received: draining");
            }
        })
    }
}
