//! Connecting to etcd from [`crate::builder::EtcdSettings`].
//!
//! An unreachable etcd is not an error here: the executor keeps trying (with
//! backoff) until it answers or shutdown is requested, so that executors can
//! start before etcd does. Bad configuration (TLS files, credentials) fails.

use crate::builder::EtcdSettings;
use crate::runtime::RunError;
use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_coord::Coordinator;
use std::sync::Arc;
use std::time::Duration;

/// Connects to etcd, retrying while it is unavailable. `prefix` is the
/// key read to learn the revision: a least-privilege executor user may
/// read nothing outside it.
pub(crate) async fn etcd(
    settings: &EtcdSettings,
    prefix: &str,
) -> Result<Arc<dyn Coordinator>, RunError> {
    let mut config = EtcdConfig::new(settings.endpoints.clone());
    config.probe_key = prefix.to_owned();
    if let Some((user, password)) = &settings.credentials {
        config.username = Some(user.clone());
        config.password = Some(password.clone());
    }
    config.tls = settings.tls.clone();
    if let Some(timeout) = settings.request_timeout {
        config.request_timeout = timeout;
    }
    let mut backoff = Duration::from_millis(200);
    loop {
        match EtcdCoordinator::connect(config.clone()).await {
            Ok(c) => return Ok(Arc::new(c)),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in = ?backoff, "etcd unavailable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(RunError::Connect(e.to_string())),
        }
    }
}
