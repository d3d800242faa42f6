//! Supervised etcd watches: one spawned task per [`WatchStream`] that keeps an
//! etcd watch alive across connection loss, etcd restarts and compaction.
//!
//! The task remembers `next`, the lowest revision not yet delivered
//! (last delivered + 1). After any stream error or end it waits (exponential
//! backoff, 100 ms doubling to 5 s, reset once a watch is created again) and
//! re-creates the watch from `next`. Events below `next` are dropped, so a
//! resumed watch never delivers a duplicate; starting exactly at `next` means
//! it never skips one. `next` only advances after a whole etcd response has
//! been delivered, and etcd never splits one revision across responses
//! (fragmentation is not requested), so a multi-key txn is delivered whole.
//!
//! When etcd answers that `next` has been compacted, the task lists the
//! prefix at the current revision R, emits [`WatchEvent::Resync`] with it and
//! continues from R + 1.
//!
//! Progress notifications are deliberately not used to advance `next`: etcd
//! 3.4 before 3.4.24 could send one ahead of pending events (etcd issue
//! 15220), which would make a resume skip them.
//!
//! Flow control: the channel to the consumer holds [`BUFFER`] events; when it
//! is full the task stops reading the etcd stream and gRPC flow control pushes
//! back on etcd (which buffers, then resyncs the watcher from its own
//! history). Writers are never blocked by a slow watcher. The task ends when
//! the consumer drops the stream, or after sending a fatal error
//! ([`CoordError::Denied`] or [`CoordError::Invalid`]).

use super::{convert, retry::Safety, EtcdCoordinator};
use crate::api::{CoordError, Coordinator, Revision, WatchEvent, WatchStream};
use etcd_client as ec;
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;

/// Events buffered between the etcd stream and the consumer.
const BUFFER: usize = 1024;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

type Sender = mpsc::Sender<Result<WatchEvent, CoordError>>;

/// Starts the supervising task and returns the consumer's end.
pub(super) fn spawn(coord: EtcdCoordinator, prefix: String, start: Revision) -> WatchStream {
    let (tx, mut rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        let closed = tx.clone();
        tokio::select! {
            _ = closed.closed() => {}
            _ = supervise(coord, prefix, start, tx) => {}
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Why one etcd watch stream stopped.
enum Stop {
    /// The consumer dropped the stream.
    ConsumerGone,
    /// `next` has been compacted away.
    Compacted,
    /// Transient trouble: back off and re-watch.
    Retry(CoordError),
    /// Retrying cannot help: report and end.
    Fatal(CoordError),
}

async fn supervise(coord: EtcdCoordinator, prefix: String, mut next: Revision, tx: Sender) {
    let mut backoff = BACKOFF_START;
    loop {
        match watch_once(&coord, &prefix, &mut next, &tx, &mut backoff).await {
            Stop::ConsumerGone => return,
            Stop::Fatal(e) => {
                tracing::error!(prefix = %prefix, error = %e, "etcd watch failed permanently");
                let _ = tx.send(Err(e)).await;
                return;
            }
            Stop::Compacted => match coord
                .get_prefix_paged(&prefix, crate::api::PAGE_KEYS_ANY)
                .await
            {
                Ok((kvs, revision)) => {
                    tracing::info!(prefix = %prefix, from = next, revision, "etcd watch compacted; resyncing");
                    if tx
                        .send(Ok(WatchEvent::Resync { kvs, revision }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    next = revision + 1;
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(prefix = %prefix, error = %e, "etcd watch resync failed; retrying");
                    backoff = pause(backoff).await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            },
            Stop::Retry(e) => {
                tracing::warn!(prefix = %prefix, error = %e, next, "etcd watch interrupted; resuming");
                backoff = pause(backoff).await;
            }
        }
    }
}

/// Sleeps for `backoff` and returns the next, doubled and capped.
async fn pause(backoff: Duration) -> Duration {
    tokio::time::sleep(backoff).await;
    (backoff * 2).min(BACKOFF_MAX)
}

/// Runs one etcd watch stream from `next` until it stops, delivering events
/// and advancing `next`.
async fn watch_once(
    coord: &EtcdCoordinator,
    prefix: &str,
    next: &mut Revision,
    tx: &Sender,
    backoff: &mut Duration,
) -> Stop {
    let options = ec::WatchOptions::new()
        .with_prefix()
        .with_start_revision(*next);
    let create = || {
        let mut client = coord.client.watch_client();
        let options = options.clone();
        async move { client.watch(prefix, Some(options)).await }
    };
    let mut stream = match coord.call(None, Safety::Repeatable, create).await {
        Ok(stream) => stream,
        Err(e) => return classify(e),
    };
    loop {
        // No timeout here: a healthy watch may be silent for hours. A dead
        // connection is detected by HTTP/2 keep-alive and surfaces as an error.
        let resp = match stream.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => {
                return Stop::Retry(CoordError::Unavailable("etcd watch stream ended".into()))
            }
            Err(e) => return classify(convert::error(e, None)),
        };
        if resp.created() {
            *backoff = BACKOFF_START;
        }
        if resp.canceled() {
            if resp.compact_revision() > 0 {
                return Stop::Compacted;
            }
            let reason = resp.cancel_reason().to_owned();
            return if reason.contains("permission denied") {
                Stop::Fatal(CoordError::Denied(reason))
            } else {
                Stop::Retry(CoordError::Unavailable(format!(
                    "etcd canceled the watch: {reason}"
                )))
            };
        }
        let mut delivered = None;
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let revision = kv.mod_revision();
            if revision < *next {
                continue; // already delivered before a resume
            }
            let event = match event.event_type() {
                ec::EventType::Put => WatchEvent::Put(convert::key_value(kv)),
                ec::EventType::Delete => WatchEvent::Delete {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    mod_revision: revision,
                },
            };
            if tx.send(Ok(event)).await.is_err() {
                return Stop::ConsumerGone;
            }
            delivered = delivered.max(Some(revision));
        }
        if let Some(revision) = delivered {
            *next = revision + 1;
        }
    }
}

fn classify(e: CoordError) -> Stop {
    match e {
        CoordError::Denied(_) | CoordError::Invalid(_) => Stop::Fatal(e),
        CoordError::Compacted { .. } => Stop::Compacted,
        other => Stop::Retry(other),
    }
}
