//! Small helpers shared by the cases: reading watch events with a deadline,
//! and building txns tersely.

use anyhow::Context;
use futures::StreamExt;
use nightshift_coord::{LeaseId, TxnOp, WatchEvent, WatchStream};
use std::time::Duration;

/// Generous upper bound for anything that should happen "soon".
pub const SOON: Duration = Duration::from_secs(10);

/// The next watch event, failing if none arrives within [`SOON`].
pub async fn next_event(watch: &mut WatchStream) -> anyhow::Result<WatchEvent> {
    tokio::time::timeout(SOON, watch.next())
        .await
        .context("no watch event within the deadline")?
        .context("watch stream ended")?
        .context("watch stream error")
}

/// `(kind, key, value)` of an event, for readable assertions.
pub fn describe(event: &WatchEvent) -> (&'static str, String, Vec<u8>) {
    match event {
        WatchEvent::Put(kv) => ("put", kv.key.clone(), kv.value.clone()),
        WatchEvent::Delete { key, .. } => ("delete", key.clone(), Vec::new()),
        WatchEvent::Resync { .. } => ("resync", String::new(), Vec::new()),
    }
}

pub fn put(key: &str, value: &str) -> TxnOp {
    TxnOp::Put {
        key: key.into(),
        value: value.into(),
        lease: None,
    }
}

pub fn put_leased(key: &str, value: &str, lease: LeaseId) -> TxnOp {
    TxnOp::Put {
        key: key.into(),
        value: value.into(),
        lease: Some(lease),
    }
}

pub fn get(key: &str) -> TxnOp {
    TxnOp::Get { key: key.into() }
}
