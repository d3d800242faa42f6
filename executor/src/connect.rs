//! Connecting to etcd from [`crate::builder::EtcdSettings`].

use crate::builder::EtcdSettings;
use crate::runtime::RunError;
use nightshift_coord::Coordinator;
use std::sync::Arc;

/// Connects to etcd (placeholder until the etcd backend lands).
pub(crate) async fn etcd(settings: &EtcdSettings) -> Result<Arc<dyn Coordinator>, RunError> {
    Err(RunError::Connect(format!("etcd backend not available yet ({:?})", settings.endpoints)))
}
