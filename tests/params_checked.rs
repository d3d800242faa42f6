//! Typed params checked before the night (issue 17, item 3), with real
//! processes: a real etcd, a real `nightshift executor` whose built-in
//! `sleep` handler declares its params type (`deny_unknown_fields`), and the
//! real CLI. A misspelt param fails `validate --against` and `apply` at its
//! `file:line:col`; a correct DAG applies (an unknown handler only warns);
//! the leader rejects a trigger whose run params do not fit, and
//! `trigger --wait` exits 4 with the reason.

mod scheduler_harness;

use anyhow::{Context as _, Result};
use nightshift_coord::Coordinator;
use nightshift_core::ids::{DagName, HandlerName};
use nightshift_core::keyspace::{self, decode, ExecutorInfo};
use nightshift_testkit::wait::wait_for;
use scheduler_harness::{Cluster, Db, PREFIX};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// `nightshift ARGS --etcd .. --prefix ..` (plus `--database` if asked), run
/// to completion whatever its exit code.
fn nightshift(cluster: &Cluster, args: &[&str], database: bool) -> Result<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nightshift"));
    cmd.args(args)
        .args(["--etcd", &cluster.etcd.endpoint(), "--prefix", PREFIX]);
    if database {
        cmd.args(["--database", &cluster.db_url]);
    }
    cmd.env("NO_COLOR", "1")
        .env_remove("NIGHTSHIFT_ETCD")
        .output()
        .context("running nightshift")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write_dag(cluster: &Cluster, name: &str, toml: &str) -> Result<PathBuf> {
    let dir = cluster.dir.path().join("dags");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml)?;
    Ok(path)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Waits until a live executor publishes a params schema for `sleep`.
async fn sleep_schema_published(cluster: &Cluster) -> Result<()> {
    wait_for(
        WAIT,
        "the executor to publish sleep's params schema",
        || async {
            let Ok((kvs, _)) = cluster
                .coord
                .get_prefix(&keyspace::executors_prefix(PREFIX))
                .await
            else {
                return false;
            };
            kvs.iter().any(|kv| {
                decode::<ExecutorInfo>(&kv.value)
                    .is_ok_and(|info| info.params_schemas.contains_key(&HandlerName::new("sleep")))
            })
        },
    )
    .await
}

/// `milis` for `millis`: line 4, column 12.
const TYPO: &str = "\
# settle with a typo
[jobs.settle]
handler = \"sleep\"
params = { milis = 5 }

[jobs.later]
handler = \"not-deployed-yet\"
depends_on = [\"settle\"]
";

#[tokio::test]
async fn etcd_a_misspelt_param_fails_validate_against_and_apply_at_its_position() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _executor = cluster.executor("typed-1", 2)?;
    sleep_schema_published(&cluster).await?;
    let file = write_dag(&cluster, "nightly", TYPO)?;
    let at = format!("{}:4:12", file.display());

    // Without --against, only the file is checked: it is valid.
    let plain = Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .args(["validate", path_str(&file)])
        .output()?;
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain));

    let out = nightshift(&cluster, &["validate", "--against", path_str(&file)], false)?;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains(&at), "{all}");
    assert!(
        all.contains(
            "error: unknown param `milis` (did you mean `millis`?) (job `settle`, handler `sleep`)"
        ),
        "{all}"
    );
    // The handler no executor offers yet is a warning, not an error.
    assert!(
        all.contains("warning: no live executor offers handler `not-deployed-yet`"),
        "{all}"
    );
    assert!(all.contains("error: 1 error in 1 file, 1 warning"), "{all}");

    let out = nightshift(&cluster, &["apply", path_str(&file)], true)?;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&at) && all.contains("nothing was applied"),
        "{all}"
    );
    let published = cluster
        .coord
        .get(&keyspace::dag_key(PREFIX, &DagName::new("nightly")))
        .await?;
    assert!(published.is_none(), "applied despite the typo");

    // Fixed: it applies; the unknown handler still warns.
    std::fs::write(&file, TYPO.replace("milis", "millis"))?;
    let out = nightshift(&cluster, &["validate", "--against", path_str(&file)], false)?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = nightshift(&cluster, &["apply", path_str(&file)], true)?;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("nightly: created v1"), "{all}");
    assert!(all.contains("handler `not-deployed-yet`"), "{all}");
    Ok(())
}

#[tokio::test]
async fn etcd_the_leader_rejects_a_trigger_whose_params_do_not_fit() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let _executor = cluster.executor("typed-2", 2)?;
    let _scheduler = cluster.scheduler("s1")?;
    sleep_schema_published(&cluster).await?;
    cluster.apply(
        "settle",
        "[jobs.settle]\nhandler = \"sleep\"\nparams = { millis = 5 }\n",
    )?;

    let out = nightshift(
        &cluster,
        &["trigger", "settle", "--params", r#"{"steps": 0}"#, "--wait"],
        true,
    )?;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(4), "{all}");
    assert!(
        all.contains("rejected: params of job settle do not fit handler sleep: param `steps` must be at least 1, found 0"),
        "{all}"
    );
    assert!(cluster.runs("settle").await.is_empty(), "a run was created");

    // Params that fit run.
    let out = nightshift(
        &cluster,
        &["trigger", "settle", "--params", r#"{"steps": 2}"#, "--wait"],
        true,
    )?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    Ok(())
}
