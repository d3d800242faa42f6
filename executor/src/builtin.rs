//! Built-in handlers, for trying Nightshift out, for tests and benchmarks:
//! [`Noop`] and [`Sleep`]. `nightshift executor --handlers noop,sleep` serves
//! them.
//!
//! There is deliberately no "shell" handler: an executor that runs commands
//! named in a DAG file lets whoever can apply a DAG run anything on every
//! executor host. Write a [`crate::Job`], or have the executor's operator
//! map a handler name to a program ([`crate::program`]).

use crate::context::ItemContext;
use crate::job::{ItemOutcome, Job, JobError};
use async_trait::async_trait;
use serde::Deserialize;
use std::time::Duration;

/// Succeeds at once. Job params are ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noop;

#[async_trait]
impl Job for Noop {
    async fn run(&self, _ctx: ItemContext) -> Result<ItemOutcome, JobError> {
        Ok(ItemOutcome::Succeeded)
    }
}

/// Sleeps, then succeeds or fails as its job params say; stops early (as a
/// retryable failure) when the item is cancelled.
///
/// Params (all optional): `millis` (default 100), `fail_rate` in `0..=1`
/// (a deterministic share of `(item, attempt)`s fails, retryably), and
/// `fail_items` (items that always fail, retryably).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sleep;

/// Params of [`Sleep`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct SleepParams {
    #[serde(default = "default_millis")]
    millis: u64,
    #[serde(default)]
    fail_rate: f64,
    #[serde(default)]
    fail_items: Vec<u32>,
}

fn default_millis() -> u64 {
    100
}

impl SleepParams {
    fn from_value(params: &serde_json::Value) -> Result<Self, JobError> {
        let params = if params.is_null() {
            serde_json::json!({})
        } else {
            params.clone()
        };
        let parsed: SleepParams = serde_json::from_value(params)
            .map_err(|e| JobError::permanent(format!("bad sleep params: {e}")))?;
        if !(0.0..=1.0).contains(&parsed.fail_rate) {
            return Err(JobError::permanent(format!(
                "bad sleep params: fail_rate {} is not in 0..=1",
                parsed.fail_rate
            )));
        }
        Ok(parsed)
    }
}

#[async_trait]
impl Job for Sleep {
    async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
        let params = SleepParams::from_value(ctx.params())?;
        ctx.progress(0, params.millis, "sleeping");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(params.millis)) => {}
            _ = ctx.cancelled() => return Ok(ItemOutcome::Cancelled),
        }
        if params.fail_items.contains(&ctx.item().0) {
            return Err(JobError::retryable(format!(
                "item {} is listed in fail_items",
                ctx.item()
            )));
        }
        if params.fail_rate > 0.0
            && unit_hash(&ctx.idempotency_key(), ctx.attempt()) < params.fail_rate
        {
            return Err(JobError::retryable(format!(
                "item {} failed by fail_rate {}",
                ctx.item(),
                params.fail_rate
            )));
        }
        Ok(ItemOutcome::Succeeded)
    }
}

/// A number in `[0, 1)` fixed by `(key, attempt)` (FNV-1a): the same item
/// attempt always gets the same verdict, so test runs are reproducible.
fn unit_hash(key: &str, attempt: u32) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain(attempt.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // The top 53 bits fit an f64 mantissa exactly.
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run_item, TestItem};
    use serde_json::json;

    #[tokio::test]
    async fn sleep_fails_listed_items_and_honours_cancellation() {
        let run = run_item(
            &Sleep,
            TestItem::new(3).params(json!({"millis": 1, "fail_items": [3]})),
        )
        .await;
        assert!(matches!(run.result, Err(JobError::Retryable(ref m)) if m.contains("fail_items")));
        let ok = run_item(
            &Sleep,
            TestItem::new(2).params(json!({"millis": 1, "fail_items": [3]})),
        )
        .await;
        assert_eq!(ok.result, Ok(ItemOutcome::Succeeded));
        assert_eq!(ok.progress.len(), 1);

        let item = TestItem::new(0).params(json!({"millis": 60_000}));
        item.cancellation_token().cancel();
        let cancelled = run_item(&Sleep, item).await;
        assert_eq!(cancelled.result, Ok(ItemOutcome::Cancelled));
    }

    #[tokio::test]
    async fn sleep_rejects_bad_params_permanently() {
        for bad in [
            json!({"millis": "soon"}),
            json!({"fail_rate": 2.0}),
            json!({"milis": 5}),
        ] {
            let run = run_item(&Sleep, TestItem::new(0).params(bad.clone())).await;
            assert!(
                matches!(run.result, Err(JobError::Permanent(_))),
                "{bad}: {:?}",
                run.result
            );
        }
    }

    #[test]
    fn fail_rate_fails_about_that_share_deterministically() {
        let failed = (0..10_000)
            .filter(|i| unit_hash(&format!("r/j/{i}"), 1) < 0.2)
            .count();
        assert!((1_700..2_300).contains(&failed), "{failed}");
        assert_eq!(unit_hash("r/j/1", 1), unit_hash("r/j/1", 1));
        assert_ne!(unit_hash("r/j/1", 1), unit_hash("r/j/1", 2));
    }
}
