//! The session's inputs from the coordination store, each fetched by a
//! background task so that the session loop never blocks on the network
//! (it must keep watching its lease while etcd is slow or down):
//!
//! - [`connect_watch`]: list `{p}owners/{executor}/` (this executor's
//!   assignments, nothing else), then watch it from the next
//!   revision; re-run whenever the watch stream fails or ends, so the session
//!   re-derives its state from a full listing (same as a `Resync`).
//! - [`fetch_spec`]: read a job's [`JobRunSpec`] once per assignment.

use crate::assignment::JobRef;
use nightshift_coord::{CoordError, Coordinator, KeyValue, Revision, WatchStream};
use nightshift_protocol::keyspace::{self, JobRunSpec};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A fresh listing of the executor's assignments and a watch continuing
/// after it.
pub(crate) struct WatchReady {
    pub kvs: Vec<KeyValue>,
    pub revision: Revision,
    pub stream: WatchStream,
}

/// Lists then watches `prefix`, retrying with backoff until it succeeds or
/// `stop` is cancelled; sends the result on `ready`.
pub(crate) async fn connect_watch(
    coord: Arc<dyn Coordinator>,
    prefix: String,
    ready: mpsc::UnboundedSender<WatchReady>,
    stop: CancellationToken,
) {
    let mut backoff = BACKOFF_START;
    loop {
        let attempt = async {
            let (kvs, revision) = coord
                .get_prefix_paged(&prefix, nightshift_coord::PAGE_KEYS_ANY)
                .await?;
            let stream = coord.watch_prefix(&prefix, Some(revision + 1)).await?;
            Ok::<_, CoordError>(WatchReady {
                kvs,
                revision,
                stream,
            })
        };
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = attempt => r,
        };
        match result {
            Ok(w) => {
                let _ = ready.send(w);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch assignments; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// A job's spec was read (or cannot be).
pub(crate) struct SpecLoaded {
    pub job: JobRef,
    pub result: Result<JobRunSpec, String>,
}

/// Reads the spec of `job`, retrying while it is missing, names another
/// start than `generation`, or etcd is unavailable; gives up only on a
/// malformed spec or a refused read.
///
/// The spec is the job start's activation: the leader writes a start's
/// assignments first (possibly in several txns) and the spec naming their
/// generation last, in the txn that records the start in the run. Until
/// then nothing of the assignment runs, so a leader that dies between
/// those txns leaves no item running that the run does not show; it (or
/// its successor) deletes or overwrites such orphans before activating
/// another generation, and a removed assignment stops this fetch.
pub(crate) async fn fetch_spec(
    coord: Arc<dyn Coordinator>,
    prefix: String,
    job: JobRef,
    generation: Option<i64>,
    done: mpsc::UnboundedSender<SpecLoaded>,
    stop: CancellationToken,
) {
    let key = keyspace::spec_key(&prefix, &job.run, &job.job);
    let mut backoff = BACKOFF_START;
    let mut misses = 0u32;
    loop {
        let got = tokio::select! {
            _ = stop.cancelled() => return,
            r = coord.get(&key) => r,
        };
        let result = match got {
            Ok(Some(kv)) => match keyspace::decode::<JobRunSpec>(&kv.value) {
                Ok(spec) if generation.is_some() && spec.generation != generation => {
                    misses += 1;
                    if misses == 5 {
                        tracing::warn!(%key, ?generation, found = ?spec.generation, "job start not activated yet; the assignment waits");
                    }
                    None
                }
                decoded => Some(decoded.map_err(|e| e.to_string())),
            },
            Ok(None) => {
                misses += 1;
                if misses == 5 {
                    tracing::warn!(%key, "job spec missing; the assignment cannot run until it appears");
                }
                None
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(%key, error = %e, "cannot read job spec; retrying");
                None
            }
            Err(e) => Some(Err(format!("cannot read job spec: {e}"))),
        };
        if let Some(result) = result {
            let _ = done.send(SpecLoaded { job, result });
            return;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
