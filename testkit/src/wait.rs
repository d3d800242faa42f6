//! Waiting for a condition with a deadline instead of sleeping.
//!
//! Tests must never use a sleep as synchronisation ("sleep 2 s, then assert
//! the key is gone"): on a loaded machine the sleep is too short, on an idle
//! one it wastes time. These helpers poll a condition every few milliseconds
//! and fail with a clear message when the deadline passes.
//!
//! They use tokio's clock, so under `tokio::time::pause()` the deadline is in
//! virtual time as well.

use std::future::Future;
use std::time::Duration;

/// How often a condition is re-checked.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Polls `condition` until it returns `true`, or fails after `timeout`
/// with an error naming `what` was awaited.
///
/// ```ignore
/// wait_for(Duration::from_secs(5), "key deleted", || async {
///     coord.get("k").await.unwrap().is_none()
/// }).await?;
/// ```
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut condition: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for_value(timeout, what, || {
        let fut = condition();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// Polls `probe` until it returns `Some(value)` and returns that value, or
/// fails after `timeout` with an error naming `what` was awaited.
pub async fn wait_for_value<T, F, Fut>(
    timeout: Duration,
    what: &str,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn wait_for_returns_once_condition_holds() {
        let calls = AtomicU32::new(0);
        wait_for(Duration::from_secs(5), "third call", || async {
            calls.fetch_add(1, Ordering::SeqCst) >= 2
        })
        .await
        .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_for_fails_at_deadline_with_the_awaited_condition_named() {
        let err = wait_for(Duration::from_millis(100), "never true", || async { false })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("never true"), "{err}");
    }

    #[tokio::test]
    async fn wait_for_value_returns_the_value() {
        let v = wait_for_value(Duration::from_secs(1), "value", || async { Some(42) })
            .await
            .unwrap();
        assert_eq!(v, 42);
    }
}
