//! A scheduler started while its database cannot be reached waits for it
//! (with backoff and a warning) instead of exiting, and leads once the
//! database exists — found by the chaos suite, where a scheduler restarted
//! into a database outage exited at once and its supervisor restarted it in
//! a loop. Real etcd, real PostgreSQL (the database is created late).

mod scheduler_harness;

use anyhow::Result;
use nightshift_coord::Coordinator;
use nightshift_testkit::wait::wait_for;
use scheduler_harness::{Cluster, Db, PREFIX};
use sqlx::Connection as _;
use std::time::Duration;

#[tokio::test]
async fn etcd_a_scheduler_waits_for_a_database_that_is_not_there_yet() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let admin = nightshift_testkit::db::pg_admin_url();
    let (server, _) = admin.rsplit_once('/').expect("admin URL with a database");
    let name = format!(
        "nightshift_late_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let url = format!("{server}/{name}");
    let args: Vec<String> = [
        "scheduler",
        "--etcd",
        &cluster.etcd.endpoint(),
        "--database",
        &url,
        "--prefix",
        PREFIX,
        "--id",
        "late",
        "--lease-ttl",
        "2s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let scheduler = cluster.spawn("scheduler-late", &args)?;

    // It reports the missing database and keeps waiting, well past the 10 s
    // a one-shot command gives up at: backoff 0.1, 0.2, ... 3.2, 5 s puts
    // the 7th warning more than 11 s after the first attempt.
    wait_for(
        Duration::from_secs(30),
        "the scheduler to wait for its database",
        || async {
            scheduler
                .logs()
                .matches("the database not reachable; waiting for it")
                .count()
                >= 2
        },
    )
    .await?;
    wait_for(
        Duration::from_secs(40),
        "more than 10 s of waiting",
        || async {
            scheduler
                .logs()
                .matches("the database not reachable; waiting for it")
                .count()
                >= 7
        },
    )
    .await?;
    let (kvs, _) = cluster
        .coord
        .get_prefix(&nightshift_core::keyspace::leader_prefix(PREFIX))
        .await?;
    assert!(kvs.is_empty(), "no leader without a database");

    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await?;
    let led = wait_for(
        Duration::from_secs(30),
        "the scheduler to lead once the database exists",
        || async {
            let Ok((kvs, _)) = cluster
                .coord
                .get_prefix(&nightshift_core::keyspace::leader_prefix(PREFIX))
                .await
            else {
                return false;
            };
            kvs.iter().any(|kv| kv.value == b"late")
        },
    )
    .await;
    drop(scheduler);
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    led?;
    Ok(())
}
