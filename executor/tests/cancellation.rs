//! `ItemOutcome::Cancelled` through the keyspace protocol, with the
//! in-process backend: a handler that stops on an operator's cancel is
//! recorded as cancelled and logged as stopped, not failed; a handler that
//! returns `Cancelled` when nobody cancelled it has not done its work, so the
//! item is recorded as a retryable failure.

mod support;

use nightshift_executor::{job_fn, ItemContext, ItemOutcome};
use nightshift_protocol::keyspace::{AssignmentRecord, ItemSet, ResultOutcome};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use support::{start, until, Leader};

/// Log lines, captured from the executor's tracing events.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Current-thread runtime: every task of the executor runs on this thread,
// so the thread-local subscriber below sees all of their events.
#[tokio::test]
async fn a_cancelled_item_is_recorded_as_cancelled_and_not_logged_as_failed() -> anyhow::Result<()>
{
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("nightshift_executor=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let leader = Leader::new();
    let started = Arc::new(Mutex::new(0usize));
    let counter = started.clone();
    let job = job_fn(move |ctx: ItemContext| {
        let counter = counter.clone();
        async move {
            *counter.lock().unwrap() += 1;
            ctx.cancelled().await;
            Ok(ItemOutcome::Cancelled)
        }
    });
    let executor = start(
        leader
            .builder("e1")
            .capacity(2)
            .handler("wait", job)
            .build()?,
    );
    let info = leader.executor("e1", None).await?;
    leader.spec("r1", "j", "wait", 2, json!(null)).await?;
    leader
        .assign_items("r1", "j", &info, ItemSet::range(0, 2))
        .await?;
    until("both items running", || async {
        *started.lock().unwrap() == 2
    })
    .await?;

    // An operator cancels both.
    let record = AssignmentRecord {
        items: ItemSet::range(0, 2),
        cancel: ItemSet::range(0, 2),
        ..Default::default()
    };
    leader.assign("r1", "j", &info, &record).await?;
    let results = leader.wait_results("r1", "j", 2).await?;
    for item in [0, 1] {
        let r = &results[&item][0];
        assert_eq!(r.outcome, ResultOutcome::Cancelled, "item {item}: {r:?}");
        assert_eq!(r.error, None, "item {item}: {r:?}");
    }
    executor.shutdown().await?;
    let text = logs.text();
    assert_eq!(text.matches("item stopped: cancelled").count(), 2, "{text}");
    assert!(!text.contains("item failed"), "{text}");
    Ok(())
}

#[tokio::test]
async fn returning_cancelled_without_a_cancellation_is_a_retryable_failure() -> anyhow::Result<()> {
    let leader = Leader::new();
    let job = job_fn(|_ctx: ItemContext| async { Ok(ItemOutcome::Cancelled) });
    let executor = start(leader.builder("e1").handler("quits", job).build()?);
    let info = leader.executor("e1", None).await?;
    leader.spec("r1", "j", "quits", 1, json!(null)).await?;
    leader
        .assign_items("r1", "j", &info, ItemSet::range(0, 1))
        .await?;
    let results = leader.wait_results("r1", "j", 1).await?;
    let r = &results[&0][0];
    assert_eq!(r.outcome, ResultOutcome::Failed);
    assert!(r.retryable);
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.contains("not cancelled")),
        "{r:?}"
    );
    executor.shutdown().await
}
