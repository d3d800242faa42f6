//! Attempt logs in result batches against a real etcd with its default
//! 1.5 MiB request limit: many items finishing together, each with a full
//! 64 KiB log tail of the worst kind for JSON (control characters, six
//! bytes each once escaped), are all recorded, in batches the executor cut
//! by size, every one under the limit.

mod support;

use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_executor::{job_fn, ItemContext, ItemOutcome, LogLevel, MAX_TAIL_BYTES};
use nightshift_protocol::ids::{JobName, RunId};
use nightshift_protocol::keyspace::{self, ItemSet};
use nightshift_testkit::etcd::EtcdServer;
use std::sync::Arc;
use support::{start, Leader, PREFIX};

/// etcd's default `--max-request-bytes`.
const ETCD_MAX_REQUEST: usize = 1536 * 1024;
const ITEMS: u32 = 48;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_log_tails_are_recorded_in_batches_under_the_etcd_request_limit() -> anyhow::Result<()>
{
    support::init_logs();
    let etcd = EtcdServer::start().await?;
    let coord = EtcdCoordinator::connect(EtcdConfig {
        endpoints: etcd.endpoints(),
        ..Default::default()
    })
    .await?;
    let leader = Leader::with(Arc::new(coord));
    // Each item logs twice its tail's worth of 1 KiB lines: the tail keeps
    // the last 64 KiB and says what it dropped.
    let line = "\u{1}".repeat(1023);
    let executor = start(
        leader
            .builder("e1")
            .capacity(ITEMS)
            .handler(
                "noisy",
                job_fn(move |ctx: ItemContext| {
                    let line = line.clone();
                    async move {
                        for _ in 0..(2 * MAX_TAIL_BYTES / 1024) {
                            ctx.log(LogLevel::Debug, &line);
                        }
                        Ok(ItemOutcome::Succeeded)
                    }
                }),
            )
            .build()?,
    );
    let info = leader.executor("e1", None).await?;
    leader
        .spec("r1", "j", "noisy", ITEMS, serde_json::Value::Null)
        .await?;
    leader
        .assign_items("r1", "j", &info, ItemSet::range(0, ITEMS))
        .await?;

    let results = leader.wait_results("r1", "j", ITEMS as usize).await?;
    for (item, rs) in &results {
        assert_eq!(rs.len(), 1, "item {item}");
        let log = rs[0].log.as_deref().unwrap_or_default();
        let (marker, body) = log.split_once('\n').unwrap_or_default();
        assert!(marker.contains("earlier line(s)"), "item {item}: {marker}");
        assert!(body.len() <= MAX_TAIL_BYTES, "item {item}: {}", body.len());
        assert!(
            body.len() > MAX_TAIL_BYTES - 2048,
            "item {item}: {}",
            body.len()
        );
    }
    let prefix = keyspace::results_prefix(PREFIX, &RunId::new("r1"), &JobName::new("j"));
    let (kvs, _) = leader.coord.get_prefix(&prefix).await?;
    let largest = kvs.iter().map(|kv| kv.value.len()).max().unwrap_or(0);
    assert!(
        largest < ETCD_MAX_REQUEST,
        "a batch of {largest} bytes passed etcd's limit"
    );
    // 48 escaped tails are ~18 MiB: one batch could never hold them.
    assert!(kvs.len() >= 12, "only {} batches", kvs.len());
    executor.shutdown().await
}
