//! A real PostgreSQL database that refuses writes, with a real etcd, the
//! scheduler replica (`run_scheduler`) in process and an SDK executor: while
//! writes are refused the leader retries with capped exponential backoff and
//! keeps the outage in `{p}health/store`; results wait in etcd. Once writes
//! are accepted again the run finishes with its full history, the outage is
//! stored as a resolved `store_unavailable` alert dated from its start, and
//! the database password never reaches the log.

use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_coord::Coordinator;
use nightshift_core::dag::{parse_dag, CalendarSet};
use nightshift_core::ids::{DagName, JobName, RunId};
use nightshift_core::keyspace::{self, AppliedDag, Command, CommandId, CommandRecord, StoreHealth};
use nightshift_core::state::{
    AlertRule, AlertState, AttemptOutcome, JobState, RunState, TriggerSource,
};
use nightshift_executor::builtin::{Noop, Sleep};
use nightshift_executor::Executor;
use nightshift_scheduler::{run_scheduler, SchedulerConfig, SystemClock};
use nightshift_store::{AlertFilter, EventFilter, NewDagVersion, Store};
use nightshift_testkit::db::{fresh_postgres, pg_admin_url};
use nightshift_testkit::etcd::EtcdServer;
use nightshift_testkit::wait::{wait_for, wait_for_value};
use sqlx::Connection as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PREFIX: &str = "/refused/";
const PASSWORD: &str = "hunter2-secret";
const DAG: &str = r#"
[jobs.a]
handler = "sleep"
shards = 8
params = { millis = 150 }

[jobs.b]
handler = "noop"
shards = 4
depends_on = ["a"]
"#;

/// Everything the process logs, to check what it says (and does not).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

/// Sets or resets read-only mode of the database, and closes every session
/// (the scheduler's too) so that new ones pick the setting up.
async fn read_only(name: &str, on: bool) -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect(&pg_admin_url()).await?;
    let sql = if on {
        format!("ALTER DATABASE \"{name}\" SET default_transaction_read_only = on")
    } else {
        format!("ALTER DATABASE \"{name}\" RESET default_transaction_read_only")
    };
    sqlx::query(&sql).execute(&mut admin).await?;
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()").bind(name).execute(&mut admin).await?;
    admin.close().await?;
    Ok(())
}

async fn health(coord: &EtcdCoordinator) -> Option<StoreHealth> {
    let kv = coord
        .get(&keyspace::store_health_key(PREFIX))
        .await
        .ok()??;
    keyspace::decode(&kv.value).ok()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_pg_refusing_writes_is_retried_with_backoff_alerted_and_loses_nothing(
) -> anyhow::Result<()> {
    let logs = Logs::default();
    tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_env_filter("info,nightshift_scheduler=debug")
        .try_init()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let etcd = EtcdServer::start().await?;
    let db = fresh_postgres().await?;
    // Trust auth ignores the password, but the scheduler is given it.
    let secret_url = db.url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{PASSWORD}@"),
        1,
    );
    assert!(secret_url.contains(PASSWORD), "{}", db.url);
    let store = Store::connect(&secret_url).await?;
    let reader = Store::connect(&db.url).await?;
    let coord = EtcdCoordinator::connect(EtcdConfig::new(etcd.endpoints())).await?;
    let shared: Arc<dyn Coordinator> = Arc::new(coord.clone());

    // The DAG, applied as `nightshift apply` does.
    let spec = parse_dag(Path::new("refused.toml"), DAG, &CalendarSet::new())
        .map_err(|d| anyhow::anyhow!("{d:?}"))?;
    let checksum = keyspace::dag_checksum(DAG, &spec);
    let dag = DagName::new("refused");
    let v = reader
        .record_dag_version(&NewDagVersion {
            dag: &dag,
            spec_json: &serde_json::to_string(&spec)?,
            source_toml: DAG,
            checksum: &checksum,
            applied_by: "t",
            at_ms: 1,
        })
        .await?;
    let applied = AppliedDag {
        spec,
        source_toml: DAG.into(),
        checksum,
        version: v.version,
        applied_at_ms: 1,
        applied_by: "t".into(),
        paused: false,
    };
    coord
        .put(
            &keyspace::dag_key(PREFIX, &dag),
            keyspace::encode(&applied)?,
            None,
        )
        .await?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let executor = Executor::builder()
        .coordinator(shared.clone())
        .id("e1")
        .prefix(PREFIX)
        .capacity(4)
        .lease_ttl(Duration::from_secs(2))
        .handler("sleep", Sleep)
        .handler("noop", Noop)
        .build()?;
    let mut exec_stop = stop_rx.clone();
    let exec_task = tokio::spawn(executor.run_until(async move {
        let _ = exec_stop.changed().await;
    }));
    let mut config = SchedulerConfig::new("s1", PREFIX);
    config.lease_ttl = Duration::from_secs(2);
    config.tick = Duration::from_millis(200);
    config.store_alert_linger = Duration::from_millis(500);
    // Polled alongside the checks rather than spawned: `run_scheduler`'s
    // future is not `Send` for every lifetime (the CLI blocks on it).
    let scheduler = run_scheduler(
        shared.clone(),
        store,
        Arc::new(SystemClock),
        config,
        stop_rx,
    );
    let checks = async {
        let result = checks(&coord, &reader, &db.name, &dag).await;
        let _ = stop_tx.send(true);
        result
    };
    let (scheduled, checked) = tokio::join!(scheduler, checks);
    checked?;
    scheduled?;
    exec_task.await??;
    let text = logs.text();
    assert!(
        text.contains("sql store unavailable"),
        "the outage is logged"
    );
    assert!(!text.contains(PASSWORD), "the database password was logged");
    Ok(())
}

/// Triggers a run, refuses writes, checks the outage, restores, checks the run.
async fn checks(
    coord: &EtcdCoordinator,
    reader: &Store,
    db_name: &str,
    dag: &DagName,
) -> anyhow::Result<()> {
    let dag = dag.clone();
    let id = CommandId::new(now_ms(), 7);
    let cmd = CommandRecord {
        id: id.clone(),
        issued_at_ms: now_ms(),
        issued_by: "ops".into(),
        command: Command::Trigger {
            dag: dag.clone(),
            business_date: None,
            params: None,
            rerun: false,
            source: TriggerSource::Manual,
        },
    };
    coord
        .put(
            &keyspace::command_key(PREFIX, &id),
            keyspace::encode(&cmd)?,
            None,
        )
        .await?;
    let run: RunId = keyspace::commands::trigger_run_id(&dag, &id);
    let a = JobName::new("a");
    wait_for(
        Duration::from_secs(15),
        "job a to be dispatched",
        || async {
            coord
                .get_prefix(&keyspace::owners_prefix(PREFIX))
                .await
                .is_ok_and(|(kvs, _)| {
                    kvs.iter().any(|kv| {
                        keyspace::parse_assign_key(PREFIX, &kv.key)
                            .is_some_and(|(r, j, _)| r == run && j == a)
                    })
                })
        },
    )
    .await?;

    // The database refuses writes.
    read_only(db_name, true).await?;
    // (The first errors may be the sessions being closed; then the refusals.)
    let first: StoreHealth =
        wait_for_value(Duration::from_secs(15), "the outage in etcd", || async {
            health(coord)
                .await
                .filter(|h| h.attempts >= 2 && h.last_error.contains("read-only"))
        })
        .await?;
    assert_eq!(first.recovered_at_ms, None);
    // Results wait in etcd meanwhile, and the run is not persisted as done.
    wait_for(
        Duration::from_secs(15),
        "results waiting in etcd",
        || async {
            coord
                .get_prefix(&keyspace::results_prefix(PREFIX, &run, &a))
                .await
                .is_ok_and(|(kvs, _)| !kvs.is_empty())
        },
    )
    .await?;
    // Backoff: 4 s into the outage, a retry per 200 ms tick would have made
    // some 20 attempts; 100 ms doubling makes about 6.
    let later: StoreHealth = wait_for_value(Duration::from_secs(20), "4 s of outage", || async {
        health(coord)
            .await
            .filter(|h| now_ms() - h.down_since_ms >= 4_000)
    })
    .await?;
    assert_eq!(later.down_since_ms, first.down_since_ms);
    assert!(
        (4..=10).contains(&later.attempts),
        "retries are not backing off: {later:?}"
    );
    // (Pending or running: the outage may have begun before the start was stored.)
    assert!(
        reader
            .get_run(&run)
            .await?
            .is_some_and(|r| !r.state.is_terminal()),
        "the run cannot end while its results wait"
    );

    // Writes are accepted again: the run completes with all of its history.
    read_only(db_name, false).await?;
    let end = wait_for_value(Duration::from_secs(30), "the run to end", || async {
        reader
            .get_run(&run)
            .await
            .ok()
            .flatten()
            .filter(|r| r.state.is_terminal())
    })
    .await?;
    assert_eq!(end.state, RunState::Succeeded, "{end:?}");
    for (job, shards) in [("a", 8u32), ("b", 4)] {
        let attempts = reader.attempts(&run, &JobName::new(job), None).await?;
        for item in 0..shards {
            let mine: Vec<_> = attempts.iter().filter(|x| x.item.0 == item).collect();
            assert_eq!(mine.len(), 1, "{job} item {item}: {mine:?}");
            assert_eq!(
                mine[0].outcome,
                Some(AttemptOutcome::Succeeded),
                "{job} item {item}: {mine:?}"
            );
        }
        assert_eq!(attempts.len(), shards as usize, "{attempts:?}");
        let row = reader
            .job_run(&run, &JobName::new(job))
            .await?
            .expect("job row");
        assert_eq!(
            (row.state, row.succeeded, row.failed, row.shards),
            (JobState::Succeeded, shards, 0, shards),
            "{row:?}"
        );
    }

    // The outage is an alert from its start to the recovery, now resolved,
    // and the health key is gone.
    let alert = wait_for_value(
        Duration::from_secs(15),
        "a resolved store_unavailable alert",
        || async {
            let alerts = reader
                .list_alerts(&AlertFilter::default())
                .await
                .unwrap_or_default();
            alerts
                .into_iter()
                .find(|a| a.rule == AlertRule::StoreUnavailable && a.state == AlertState::Resolved)
        },
    )
    .await?;
    assert_eq!(alert.opened_at_ms, first.down_since_ms, "{alert:?}");
    assert!(
        alert
            .resolved_at_ms
            .is_some_and(|r| r > alert.opened_at_ms + 4_000),
        "{alert:?}"
    );
    assert!(alert.message.contains("read-only"), "{alert:?}");
    let all = reader.list_alerts(&AlertFilter::default()).await?;
    assert_eq!(
        all.iter()
            .filter(|a| a.rule == AlertRule::StoreUnavailable)
            .count(),
        1,
        "one outage, one alert: {all:?}"
    );
    wait_for(Duration::from_secs(10), "the health key to go", || async {
        health(coord).await.is_none()
    })
    .await?;
    wait_for(
        Duration::from_secs(10),
        "a store_recovered event",
        || async {
            reader
                .events(&EventFilter {
                    kind: Some("store_recovered".into()),
                    ..Default::default()
                })
                .await
                .is_ok_and(|e| e.len() == 1)
        },
    )
    .await?;
    Ok(())
}
