//! `GET /api/v1/stream`: server-sent events telling pages that something
//! changed, so they refresh their live parts without a reload.
//!
//! Each event is `event: changed` with a small JSON body ([`Change`]): a new
//! SQL event (polled every [`AppState::poll_interval`] after the last seen
//! sequence number), or a key under `runs/` or `executors/` that changed in
//! the coordination service (watched). Watch changes are coalesced and sent
//! at most once per poll interval per (kind, id): progress keys change every
//! second per executor and job, and pages only need to know *that* a run
//! changed.
//!
//! The stream ends when the client goes away or the server shuts down
//! ([`AppState::closing`]).

use crate::auth::Principal;
use crate::error::ApiError;
use crate::limits::MAX_STREAMS_PER_USER;
use crate::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures::{Stream, StreamExt};
use nightshift_coord::{WatchEvent, WatchStream};
use nightshift_core::keyspace::{
    executors_prefix, parse_executor_key, parse_job_key, runs_prefix, JobKey,
};
use nightshift_store::EventFilter;
use serde::Serialize;
use std::collections::BTreeSet;
use std::convert::Infallible;
use tokio::sync::mpsc;

/// One "changed" notification.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Change {
    /// `event` (SQL event log), `run` (live run keys) or `executor`.
    pub kind: &'static str,
    /// Run concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Job concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// DAG concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dag: Option<String>,
    /// Executor concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    /// For `event`: its kind (`run_started`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_kind: Option<String>,
    /// For `event`: its sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

impl Change {
    fn new(kind: &'static str) -> Self {
        Change {
            kind,
            run: None,
            job: None,
            dag: None,
            executor: None,
            event_kind: None,
            seq: None,
        }
    }
}

/// `GET /api/v1/stream`; 429 when the user already holds
/// [`MAX_STREAMS_PER_USER`] streams (each holds a watch and a poll loop).
pub async fn stream(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Some(slot) = state.streams.acquire(&principal.user) else {
        tracing::warn!(user = %principal.user, "event stream refused: too many open");
        return Err(ApiError::TooManyRequests(format!(
            "at most {MAX_STREAMS_PER_USER} open event streams per user"
        )));
    };
    let (tx, rx) = mpsc::channel::<Change>(256);
    tokio::spawn(feed(state, tx));
    // The slot lives in the stream's state: it is given back when the
    // client goes away (hyper drops the body) or the stream ends.
    let events = futures::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        let change = rx.recv().await?;
        let event = Event::default()
            .event("changed")
            .json_data(&change)
            .unwrap_or_else(|_| Event::default());
        Some((Ok(event), (rx, slot)))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

async fn watch(state: &AppState, prefix: &str) -> Option<WatchStream> {
    match state.coord.watch_prefix(prefix, None).await {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, prefix, "stream: cannot watch");
            None
        }
    }
}

async fn next_or_pending(
    w: &mut Option<WatchStream>,
) -> Option<Result<WatchEvent, nightshift_coord::CoordError>> {
    match w {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

fn key_change(state: &AppState, key: &str) -> Option<Change> {
    if let Some(executor) = parse_executor_key(&state.prefix, key) {
        return Some(Change {
            executor: Some(executor.to_string()),
            ..Change::new("executor")
        });
    }
    let (run, job) = match parse_job_key(&state.prefix, key)? {
        JobKey::Spec { run, job }
        | JobKey::Assign { run, job, .. }
        | JobKey::Result { run, job, .. }
        | JobKey::Progress { run, job, .. } => (run, job),
    };
    Some(Change {
        run: Some(run.to_string()),
        job: Some(job.to_string()),
        ..Change::new("run")
    })
}

fn watch_changes(state: &AppState, event: WatchEvent, pending: &mut BTreeSet<Change>) {
    match event {
        WatchEvent::Put(kv) => pending.extend(key_change(state, &kv.key)),
        WatchEvent::Delete { key, .. } => pending.extend(key_change(state, &key)),
        WatchEvent::Resync { .. } => {
            pending.insert(Change::new("run"));
            pending.insert(Change::new("executor"));
        }
    }
}

/// Feeds one client until it goes away or the server closes.
async fn feed(state: AppState, tx: mpsc::Sender<Change>) {
    let newest = EventFilter {
        newest_first: true,
        limit: Some(1),
        ..EventFilter::default()
    };
    let mut last_seq = match state.store.events(&newest).await {
        Ok(events) => events.first().map_or(0, |e| e.seq),
        Err(e) => {
            tracing::warn!(error = %e, "stream: cannot read the event log");
            0
        }
    };
    let mut runs = watch(&state, &runs_prefix(&state.prefix)).await;
    let mut executors = watch(&state, &executors_prefix(&state.prefix)).await;
    let mut pending: BTreeSet<Change> = BTreeSet::new();
    let mut tick = tokio::time::interval(state.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.closing.cancelled() => return,
            () = tx.closed() => return,
            event = next_or_pending(&mut runs) => match event {
                Some(Ok(event)) => watch_changes(&state, event, &mut pending),
                other => {
                    tracing::warn!(error = ?other.and_then(Result::err), "stream: runs watch ended");
                    runs = None;
                }
            },
            event = next_or_pending(&mut executors) => match event {
                Some(Ok(event)) => watch_changes(&state, event, &mut pending),
                other => {
                    tracing::warn!(error = ?other.and_then(Result::err), "stream: executors watch ended");
                    executors = None;
                }
            },
            _ = tick.tick() => {
                let after = EventFilter { after_seq: Some(last_seq), limit: Some(200), ..EventFilter::default() };
                match state.store.events(&after).await {
                    Ok(events) => {
                        for e in events {
                            last_seq = last_seq.max(e.seq);
                            let ev = e.event;
                            pending.insert(Change {
                                run: ev.run_id.map(|r| r.to_string()),
                                job: ev.job.map(|j| j.to_string()),
                                dag: ev.dag.map(|d| d.to_string()),
                                executor: ev.executor.map(|x| x.to_string()),
                                event_kind: Some(ev.kind),
                                seq: Some(e.seq),
                                ..Change::new("event")
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "stream: cannot poll the event log"),
                }
                for change in std::mem::take(&mut pending) {
                    if tx.send(change).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
