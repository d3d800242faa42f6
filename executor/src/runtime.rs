//! [`Executor::run_until`]: connect, then register again and again until
//! shutdown.
//!
//! Each registration is a [`crate::session`]. When one ends because its
//! lease was lost (the process was paused, partitioned from etcd, or etcd
//! was down longer than the TTL), the executor registers anew with a new
//! lease and an empty state: the leader has by then reassigned (or will
//! reassign) everything the old lease held, and the new registration is
//! simply a new member to it.

use crate::builder::{Executor, Source};
use crate::session::{self, SessionEnd};
use nightshift_coord::{CoordError, Coordinator};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Why an executor stopped other than by a requested shutdown.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    /// The coordination service refused the executor for good (bad
    /// credentials, permission denied, invalid configuration).
    #[error("coordination service refused the executor: {0}")]
    Coordination(#[from] CoordError),
    /// etcd could not be set up (bad endpoint or TLS file).
    #[error("cannot connect to etcd: {0}")]
    Connect(String),
    /// The keyspace under the prefix follows another format than this
    /// build's (an upgrade or a downgrade in progress): the executor does
    /// not register; the message says what to do.
    #[error(transparent)]
    KeyspaceFormat(#[from] nightshift_protocol::keyspace::format::FormatMismatch),
    /// The signal handlers of [`Executor::run_until_signal`] could not be installed.
    #[error("cannot install the signal handler for {0}")]
    Signal(String),
}

const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Executor {
    /// Runs the executor until `shutdown` resolves, then drains: stops
    /// taking items, lets running ones finish within the drain grace,
    /// records their outcomes and revokes the lease so that the scheduler
    /// reassigns what is left at once.
    ///
    /// Returns `Ok` after a drain; `Err` only when the coordination service
    /// refuses the executor for good. Connection loss is not an error: the
    /// executor self-fences and keeps trying to register. One fault is not
    /// survivable: blocking work started with
    /// [`ItemContext::spawn_blocking`](crate::ItemContext::spawn_blocking)
    /// still running at its item's deadline makes the process exit with
    /// status [`EXIT_BLOCKING_OVERRUN`](crate::EXIT_BLOCKING_OVERRUN) rather
    /// than register again.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), RunError> {
        let stop = CancellationToken::new();
        let span = tracing::info_span!("executor", executor = %self.config.id);
        let driver = async {
            shutdown.await;
            stop.cancel();
            std::future::pending::<()>().await
        };
        tokio::select! {
            result = self.registrations(&stop).instrument(span) => result,
            _ = driver => unreachable!("the shutdown driver never completes"),
        }
    }

    async fn registrations(&self, stop: &CancellationToken) -> Result<(), RunError> {
        let Some(coord) = self.coordinator(stop).await? else {
            return Ok(());
        };
        let mut backoff = BACKOFF_START;
        loop {
            if stop.is_cancelled() {
                return Ok(());
            }
            match crate::format::check(coord.as_ref(), &self.config.prefix).await {
                Ok(()) => {}
                Err(crate::format::Refusal::Mismatch(m)) => return Err(m.into()),
                Err(crate::format::Refusal::Coord(e)) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot read the keyspace format; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
            match session::run(self.config.clone(), self.stats.clone(), coord.clone(), stop).await {
                Ok(SessionEnd::Shutdown) => return Ok(()),
                Ok(SessionEnd::Fenced) => {
                    tracing::warn!(
                        "registration ended (lease lost); registering again with a new lease"
                    );
                    backoff = BACKOFF_START;
                }
                Err(e) if e.is_transient() || matches!(e, CoordError::LeaseNotFound(_)) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot register; retrying");
                }
                Err(e) => return Err(e.into()),
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// The backend to use; `None` when shutdown came before etcd answered.
    async fn coordinator(
        &self,
        stop: &CancellationToken,
    ) -> Result<Option<Arc<dyn Coordinator>>, RunError> {
        match &self.source {
            Source::Coordinator(c) => Ok(Some(c.clone())),
            Source::Etcd(settings) => tokio::select! {
                _ = stop.cancelled() => Ok(None),
                c = crate::connect::etcd(settings, &self.config.prefix) => c.map(Some),
            },
        }
    }
}
