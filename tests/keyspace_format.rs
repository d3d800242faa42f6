//! The keyspace's format version, with real processes and a real etcd: the
//! first leader of a new keyspace records its format; a scheduler and an
//! executor of this build refuse a keyspace of another format — they exit
//! with a message that says what to do, and write nothing — and
//! `nightshift migrate` moves an idle format-1 keyspace forward but refuses
//! while a run of the old format is in flight.

mod scheduler_harness;

use anyhow::{Context as _, Result};
use nightshift_coord::Coordinator;
use nightshift_core::keyspace::{
    self,
    format::{self, FormatRecord},
};
use nightshift_testkit::wait::wait_for_value;
use scheduler_harness::{Cluster, Db, Proc, PREFIX};
use std::process::Command;
use std::time::Duration;

async fn format_record(cluster: &Cluster) -> Result<Option<FormatRecord>> {
    let kv = cluster.coord.get(&format::format_key(PREFIX)).await?;
    Ok(match kv {
        Some(kv) => Some(keyspace::decode(&kv.value)?),
        None => None,
    })
}

/// Waits for `proc` to exit on its own; returns its log.
async fn exits_with_failure(proc: &mut Proc) -> Result<String> {
    let status = wait_for_value(Duration::from_secs(20), "the process exits", || {
        let status = proc.exited();
        async move { status }
    })
    .await
    .with_context(|| format!("{} did not exit:\n{}", proc.name, proc.logs()))?;
    anyhow::ensure!(!status.success(), "{} exited with success", proc.name);
    Ok(proc.logs())
}

fn migrate(cluster: &Cluster) -> Result<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .args([
            "migrate",
            "--etcd",
            &cluster.etcd.endpoint(),
            "--prefix",
            PREFIX,
        ])
        .env("NO_COLOR", "1")
        .output()?)
}

#[tokio::test]
async fn a_new_keyspace_is_recorded_and_a_newer_one_refused() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let mut scheduler = cluster.scheduler("a")?;
    let record = wait_for_value(Duration::from_secs(20), "the format key", || async {
        format_record(&cluster).await.ok().flatten()
    })
    .await
    .context("the first leader records the format")?;
    assert_eq!(record.format, format::KEYSPACE_FORMAT);
    assert!(record.written_by.contains("(a)"), "{}", record.written_by);
    scheduler.terminate().await?;

    // A newer build took the keyspace over.
    let newer = FormatRecord {
        format: format::KEYSPACE_FORMAT + 1,
        written_by: "nightshift-scheduler 9.0.0 (next)".into(),
        at_ms: 1,
    };
    cluster
        .coord
        .put(&format::format_key(PREFIX), keyspace::encode(&newer)?, None)
        .await?;
    let expected = format!("holds format {} keys", format::KEYSPACE_FORMAT + 1);

    let mut scheduler = cluster.scheduler("b")?;
    let log = exits_with_failure(&mut scheduler).await?;
    assert!(
        log.contains(&expected) && log.contains("upgrade this process"),
        "{log}"
    );
    let (leaders, _) = cluster
        .coord
        .get_prefix(&keyspace::leader_prefix(PREFIX))
        .await?;
    assert!(
        leaders.is_empty(),
        "a refusing scheduler does not campaign: {leaders:?}"
    );

    let mut executor = cluster.executor("e1", 2)?;
    let log = exits_with_failure(&mut executor).await?;
    assert!(
        log.contains(&expected) && log.contains("upgrade this process"),
        "{log}"
    );
    let (executors, _) = cluster
        .coord
        .get_prefix(&keyspace::executors_prefix(PREFIX))
        .await?;
    assert!(
        executors.is_empty(),
        "a refusing executor does not register: {executors:?}"
    );

    let out = migrate(&cluster)?;
    assert_eq!(out.status.code(), Some(1), "migrate refuses a newer format");
    assert!(String::from_utf8_lossy(&out.stderr).contains("upgrade nightshift instead"));
    assert_eq!(
        format_record(&cluster).await?,
        Some(newer),
        "nothing was written"
    );
    Ok(())
}

#[tokio::test]
async fn a_format_one_keyspace_is_migrated_only_once_idle() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    // What a format-1 leader left of a run in flight: an assignment under the run.
    let old_assignment = format!("{PREFIX}runs/nightly-2026-12-01-1/jobs/accrue/assign/e9");
    cluster
        .coord
        .put(&old_assignment, b"{}".to_vec(), None)
        .await?;

    let mut scheduler = cluster.scheduler("a")?;
    let log = exits_with_failure(&mut scheduler).await?;
    assert!(
        log.contains("holds format 1 keys") && log.contains("nightshift migrate"),
        "{log}"
    );
    assert_eq!(
        format_record(&cluster).await?,
        None,
        "a refusing scheduler writes nothing"
    );

    let out = migrate(&cluster)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("1 run(s) in flight (nightly-2026-12-01-1)"),
        "{stderr}"
    );
    assert_eq!(format_record(&cluster).await?, None);

    // The old version finished the run and deleted its keys: nothing of
    // format 1 is left to misread.
    cluster.coord.delete(&old_assignment).await?;
    let out = migrate(&cluster)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let recorded = format!("recorded format {}", format::KEYSPACE_FORMAT);
    assert!(stdout.contains(&recorded), "{stdout}");
    let record = format_record(&cluster)
        .await?
        .context("migrate recorded the format")?;
    assert_eq!(record.format, format::KEYSPACE_FORMAT);

    // This build now leads it.
    let _scheduler = cluster.scheduler("b")?;
    wait_for_value(Duration::from_secs(20), "a leader", || async {
        let (leaders, _) = cluster
            .coord
            .get_prefix(&keyspace::leader_prefix(PREFIX))
            .await
            .ok()?;
        (!leaders.is_empty()).then_some(())
    })
    .await
    .context("a scheduler leads the migrated keyspace")?;
    let out = migrate(&cluster)?;
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"));
    Ok(())
}
