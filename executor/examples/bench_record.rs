//! Benchmark: how fast executors record item outcomes, against the raw put
//! rate of the same etcd.
//!
//! ```text
//! cargo run --release -p nightshift-executor --example bench_record -- \
//!     --etcd http://127.0.0.1:2379 --executors 20 --items 20000
//! ```
//!
//! (a) raw etcd put rate: sequential single puts for ~2 s, then 64
//!     concurrent tasks for ~2 s;
//! (b) N in-process executors (each with its own etcd client and lease)
//!     run `noop` items the benchmark assigns to them, playing the leader;
//!     outcomes/s = items / time from writing the assignments until every
//!     outcome is confirmed written (then checked in etcd: each item once).

use anyhow::{bail, Context as _, Result};
use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_coord::{Coordinator, LeaseId};
use nightshift_executor::{builtin::Noop, Executor, StatsHandle};
use nightshift_protocol::ids::{ExecutorId, JobName, RunId};
use nightshift_protocol::keyspace::{
    self, AssignmentRecord, ExecutorInfo, ItemSet, JobRunSpec, ResultBatch,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const PREFIX: &str = "/bench/";

struct Options {
    etcd: String,
    executors: u32,
    items: u32,
}

fn options() -> Result<Options> {
    let mut o = Options {
        etcd: "http://127.0.0.1:2379".into(),
        executors: 20,
        items: 20_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--etcd" => o.etcd = value,
            "--executors" => o.executors = value.parse()?,
            "--items" => o.items = value.parse()?,
            other => bail!("unknown flag {other} (use --etcd URL --executors N --items N)"),
        }
    }
    Ok(o)
}

async fn connect(url: &str) -> Result<Arc<dyn Coordinator>> {
    let c = EtcdCoordinator::connect(EtcdConfig {
        endpoints: vec![url.to_owned()],
        ..Default::default()
    })
    .await?;
    Ok(Arc::new(c))
}

/// Puts per second with `tasks` concurrent writers for about `window`.
async fn put_rate(coord: &Arc<dyn Coordinator>, tasks: usize, window: Duration) -> Result<f64> {
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (coord, count) = (coord.clone(), count.clone());
        handles.push(tokio::spawn(async move {
            let mut i = 0u64;
            while start.elapsed() < window {
                coord
                    .put(&format!("{PREFIX}raw/{t}/{i}"), vec![b'x'; 64], None)
                    .await?;
                count.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    Ok(count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = options()?;
    let leader = connect(&o.etcd).await?;
    leader.delete_prefix(PREFIX).await?;

    let sequential = put_rate(&leader, 1, Duration::from_secs(2)).await?;
    let concurrent = put_rate(&leader, 64, Duration::from_secs(2)).await?;
    leader.delete_prefix(PREFIX).await?;
    println!("raw etcd puts: sequential {sequential:.0}/s, 64 concurrent {concurrent:.0}/s");

    let stop = CancellationToken::new();
    let mut stats: Vec<StatsHandle> = Vec::new();
    let mut tasks = Vec::new();
    for n in 0..o.executors {
        let executor = Executor::builder()
            .etcd([o.etcd.clone()])
            .prefix(PREFIX)
            .id(format!("bench-{n}"))
            .handler("noop", Noop)
            .build()?;
        stats.push(executor.stats());
        let stop = stop.clone();
        tasks.push(tokio::spawn(
            executor.run_until(async move { stop.cancelled().await }),
        ));
    }
    let mut infos = Vec::new();
    for n in 0..o.executors {
        let key = keyspace::executor_key(PREFIX, &ExecutorId::new(format!("bench-{n}")));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(kv) = leader.get(&key).await? {
                infos.push(keyspace::decode::<ExecutorInfo>(&kv.value)?);
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "executor bench-{n} did not register"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    let (run, job) = (RunId::new("bench-run"), JobName::new("noop-job"));
    let spec = JobRunSpec {
        run: run.clone(),
        dag: "bench".into(),
        job: job.clone(),
        handler: "noop".into(),
        business_date: chrono::Utc::now().date_naive(),
        total_items: o.items,
        params: serde_json::Value::Null,
        shard_params: None,
        item_timeout_ms: None,
        generation: None,
        redo: 0,
    };
    leader
        .put(
            &keyspace::spec_key(PREFIX, &run, &job),
            keyspace::encode(&spec)?,
            None,
        )
        .await?;

    let start = Instant::now();
    let per = o.items.div_ceil(o.executors);
    for (n, info) in infos.iter().enumerate() {
        let first = u32::try_from(n)? * per;
        let items = ItemSet::range(first.min(o.items), (first + per).min(o.items));
        let record = AssignmentRecord {
            items,
            ..Default::default()
        };
        let key = keyspace::assign_key(PREFIX, &run, &job, &info.id);
        leader
            .put(&key, keyspace::encode(&record)?, Some(LeaseId(info.lease)))
            .await?;
    }
    let total = u64::from(o.items);
    let deadline = Instant::now() + Duration::from_secs(300);
    while stats
        .iter()
        .map(|s| s.snapshot().results_recorded)
        .sum::<u64>()
        < total
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "outcomes not all recorded after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = start.elapsed();

    let (kvs, _) = leader
        .get_prefix(&keyspace::results_prefix(PREFIX, &run, &job))
        .await?;
    let mut seen = vec![0u32; o.items as usize];
    for kv in &kvs {
        for r in keyspace::decode::<ResultBatch>(&kv.value)?.results {
            seen[r.item.0 as usize] += 1;
        }
    }
    anyhow::ensure!(
        seen.iter().all(|&n| n == 1),
        "some item was not recorded exactly once"
    );
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "{} executors recorded {} noop outcomes in {:.2?}: {rate:.0} outcomes/s in {} result batches \
         ({:.1} outcomes/batch); {:.1}x the sequential put rate",
        o.executors,
        total,
        elapsed,
        kvs.len(),
        total as f64 / kvs.len() as f64,
        rate / sequential
    );

    stop.cancel();
    for t in tasks {
        t.await??;
    }
    leader.delete_prefix(PREFIX).await?;
    Ok(())
}
