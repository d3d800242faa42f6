//! Issue 4, "Done when" 3: two scheduler replicas; the leader is SIGKILLed
//! mid-run; the standby takes over within the lease TTL, recovers the run
//! from etcd and completes it, and no item ran twice. Also: SIGTERM makes
//! the leader resign, so the standby takes over at once.

mod scheduler_harness;

use anyhow::Result;
use nightshift_coord::etcd::EtcdCoordinator;
use nightshift_coord::Coordinator;
use nightshift_core::state::RunState;
use nightshift_store::EventFilter;
use nightshift_testkit::wait::{wait_for, wait_for_value};
use scheduler_harness::{check_exactly_once, Cluster, Db, PREFIX};
use std::collections::BTreeMap;
use std::time::Duration;

const DAG: &str = r#"
[jobs.a]
handler = "sleep"
shards = 32
params = { millis = 100 }

[jobs.b]
handler = "sleep"
shards = 32
depends_on = ["a"]
params = { millis = 300 }

[jobs.c]
handler = "sleep"
shards = 32
depends_on = ["b"]
params = { millis = 100 }
"#;

/// The id of the current leader (the candidate with the lowest create revision).
async fn leader(coord: &EtcdCoordinator) -> Option<String> {
    let (kvs, _) = coord
        .get_prefix(&nightshift_core::keyspace::leader_prefix(PREFIX))
        .await
        .ok()?;
    kvs.into_iter()
        .min_by_key(|kv| kv.create_revision)
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_standby_takes_over_when_the_leader_is_killed_mid_run() -> Result<()> {
    let cluster = Cluster::start(Db::Postgres).await?;
    let coord = &cluster.coord;
    let mut s1 = cluster.scheduler("s1")?;
    wait_for(Duration::from_secs(10), "s1 to lead", || async {
        leader(coord).await.as_deref() == Some("s1")
    })
    .await?;
    let _s2 = cluster.scheduler("s2")?;
    let _e1 = cluster.executor("e1", 4)?;
    let _e2 = cluster.executor("e2", 4)?;
    cluster.apply("takeover", DAG)?;
    cluster.trigger("takeover")?;
    let run = cluster
        .nth_run("takeover", 0, Duration::from_secs(15))
        .await?;
    // Kill the leader while job b runs.
    wait_for(
        Duration::from_secs(20),
        "job b to be dispatched",
        || async { cluster.holds(&run, "b", "e1").await || cluster.holds(&run, "b", "e2").await },
    )
    .await?;
    s1.kill();
    let took_over = wait_for_value(Duration::from_secs(10), "s2 to lead", || async {
        (leader(coord).await.as_deref() == Some("s2")).then_some(())
    })
    .await;
    took_over?;
    let end = cluster.wait_run_end(&run, Duration::from_secs(40)).await?;
    assert_eq!(end.state, RunState::Succeeded, "{end:?}");
    for job in ["a", "b", "c"] {
        let attempts = cluster.attempts(&run, job).await?;
        check_exactly_once(job, 32, &attempts)?;
        // No executor died: every item ran exactly once, under one attempt.
        let mut per_item: BTreeMap<u32, usize> = BTreeMap::new();
        for a in &attempts {
            *per_item.entry(a.item.0).or_default() += 1;
        }
        assert!(
            per_item.values().all(|&n| n == 1),
            "{job}: an item ran twice: {attempts:?}"
        );
    }
    // The run was finished by the new leader.
    // (Events are written after the run row, at the end of the pass.)
    let ended = wait_for_value(
        Duration::from_secs(10),
        "the run_succeeded event",
        || async {
            let filter = EventFilter {
                run_id: Some(run.clone()),
                kind: Some("run_succeeded".into()),
                ..Default::default()
            };
            cluster
                .store
                .events(&filter)
                .await
                .ok()
                .and_then(|e| e.into_iter().next())
        },
    )
    .await?;
    assert_eq!(ended.event.actor, "scheduler:s2", "{ended:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_sigterm_resigns_so_the_standby_leads_without_waiting_for_the_ttl() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let coord = &cluster.coord;
    let mut s1 = cluster.scheduler("s1")?;
    wait_for(Duration::from_secs(10), "s1 to lead", || async {
        leader(coord).await.as_deref() == Some("s1")
    })
    .await?;
    let _s2 = cluster.scheduler("s2")?;
    wait_for(Duration::from_secs(10), "s2 to stand by", || async {
        coord
            .get_prefix(&nightshift_core::keyspace::leader_prefix(PREFIX))
            .await
            .map(|(kvs, _)| kvs.len() == 2)
            .unwrap_or(false)
    })
    .await?;
    s1.terminate().await?;
    let exited = std::time::Instant::now();
    // The 2 s lease is not waited for: s1 resigned and revoked it on exit.
    wait_for(Duration::from_secs(10), "s2 to lead", || async {
        leader(coord).await.as_deref() == Some("s2")
    })
    .await?;
    let took = exited.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "takeover took {took:?} after s1 exited"
    );
    assert!(s1.logs().contains("resigning"), "{}", s1.logs());
    Ok(())
}
