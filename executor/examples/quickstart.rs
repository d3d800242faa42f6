//! A complete service running a Nightshift job of its own. Start etcd, then:
//! `NIGHTSHIFT_ETCD=http://127.0.0.1:2379 cargo run -p nightshift-executor --example quickstart`
use nightshift_executor::{
    async_trait, Executor, ItemContext, ItemOutcome, Job, JobError, JsonSchema,
};
use std::time::Duration;

/// Published with the executor's registration: `nightshift apply` refuses a
/// DAG whose params for this handler do not fit (a typo, a missing key).
#[derive(serde::Deserialize, JsonSchema)]
#[schemars(crate = "nightshift_executor::schemars")]
#[serde(deny_unknown_fields)]
struct Params {
    rate_bps: u32,
}

struct AccrueInterest;

#[async_trait]
impl Job for AccrueInterest {
    async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
        let params: Params = ctx.params()?; // bad params: a permanent failure
        let branch = ctx.item_param().unwrap_or("all").to_owned();
        for page in 1..=10 {
            if ctx.is_cancelled() {
                return Ok(ItemOutcome::Cancelled); // recorded as cancelled, not failed
            }
            // Post this page's accruals for `branch` on ctx.business_date() at
            // params.rate_bps, keyed by ctx.idempotency_key() so a re-run is harmless
            // (the sleep stands for that work). Any std error converts with `?`.
            tokio::time::sleep(Duration::from_millis(50)).await;
            ctx.progress(
                page,
                10,
                format!("branch {branch} at {} bps", params.rate_bps),
            );
        }
        Ok(ItemOutcome::Succeeded)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    let etcd = std::env::var("NIGHTSHIFT_ETCD").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let executor = Executor::builder()
        .etcd(etcd.split(','))
        .handler_with_params::<Params>("accrue-interest", AccrueInterest)
        .build()?;
    // SIGTERM (Kubernetes, systemd) or Ctrl-C drains: running items finish
    // (up to 30 s), outcomes are recorded, the lease is released.
    executor.run_until_signal().await?;
    Ok(())
}
