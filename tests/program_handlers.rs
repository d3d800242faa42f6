//! Issue 16, program handlers, with real processes: a real etcd, a
//! `nightshift scheduler` and `nightshift executor --program NAME=PATH`
//! processes running small shell scripts written to a temp dir.
//!
//! - a program item succeeds with every `NIGHTSHIFT_*` variable present;
//! - exit 75 is retried and then succeeds;
//! - a permanent failure carries the last stderr line;
//! - a program ignoring SIGTERM is SIGKILLed after the grace, with its whole
//!   process group (children too);
//! - a program never outlives its item's lease: with its executor frozen
//!   (SIGSTOP) past the TTL, the program group is killed before the item's
//!   new owner starts it.

mod scheduler_harness;

use anyhow::{Context as _, Result};
use nightshift_core::state::{AttemptOutcome, RunState};
use nightshift_testkit::wait::wait_for;
use scheduler_harness::{Cluster, Db};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(40);

fn script(dir: &Path, name: &str, body: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// `--program NAME=PATH --program-arg NAME=OUT` for a script writing to `out`.
fn program_flags(name: &str, path: &Path, out: &Path) -> Vec<String> {
    vec![
        "--program".into(),
        format!("{name}={}", path.display()),
        "--program-arg".into(),
        format!("{name}={}", out.display()),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Whether `pid` names a process that is still running (not a zombie).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => !status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z')),
        Err(_) => false,
    }
}

fn pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn program_items_see_their_facts_retry_on_75_and_fail_with_the_last_stderr_line() -> Result<()>
{
    let cluster = Cluster::start(Db::Sqlite).await?;
    let out = cluster.dir.path().join("out");
    std::fs::create_dir_all(&out)?;
    let env = script(
        cluster.dir.path(),
        "env.sh",
        r#"env | grep '^NIGHTSHIFT_' | sort > "$1/env-$NIGHTSHIFT_ITEM"
echo "::progress 1/1 written""#,
    )?;
    let flaky = script(
        cluster.dir.path(),
        "flaky.sh",
        r#"echo "attempt $NIGHTSHIFT_ATTEMPT" >> "$1/flaky-$NIGHTSHIFT_ITEM"
if [ "$NIGHTSHIFT_ATTEMPT" = 1 ]; then echo "partner busy" >&2; exit 75; fi
exit 0"#,
    )?;
    let broken = script(
        cluster.dir.path(),
        "broken.sh",
        r#"echo "reading ledger"; echo "account 17 is closed" >&2; exit 3"#,
    )?;
    let mut flags = program_flags("env", &env, &out);
    flags.extend(program_flags("flaky", &flaky, &out));
    flags.extend(program_flags("broken", &broken, &out));
    let _scheduler = cluster.scheduler("s1")?;
    let _executor = cluster.executor_with("e1", 4, &strs(&flags))?;
    cluster.apply(
        "programs",
        r#"
[jobs.env]
handler = "env"
shards = 2
shard_params = ["EUR", "USD"]
params = { region = "$(reboot)" }

[jobs.flaky]
handler = "flaky"
shards = 2
retries = 2
retry_backoff = "1s"

[jobs.broken]
handler = "broken"
shards = 1
retries = 2
retry_backoff = "1s"
"#,
    )?;
    cluster.trigger("programs")?;
    let run = cluster.nth_run("programs", 0, WAIT).await?;
    let end = cluster.wait_run_end(&run, WAIT).await?;
    // `broken` fails for good, so the run fails; the others succeeded.
    assert_eq!(end.state, RunState::Failed, "{end:?}");

    // Every variable, with the item's facts.
    for (item, param) in [(0, "EUR"), (1, "USD")] {
        let text = std::fs::read_to_string(out.join(format!("env-{item}")))?;
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
        };
        for name in [
            "NIGHTSHIFT_RUN_ID",
            "NIGHTSHIFT_DAG",
            "NIGHTSHIFT_JOB",
            "NIGHTSHIFT_ITEM",
            "NIGHTSHIFT_ITEM_COUNT",
            "NIGHTSHIFT_ITEM_PARAM",
            "NIGHTSHIFT_PARAMS",
            "NIGHTSHIFT_BUSINESS_DATE",
            "NIGHTSHIFT_ATTEMPT",
            "NIGHTSHIFT_IDEMPOTENCY_KEY",
            "NIGHTSHIFT_FENCING_TOKEN",
        ] {
            assert!(
                value(name).is_some(),
                "{name} missing for item {item}:\n{text}"
            );
        }
        assert_eq!(value("NIGHTSHIFT_RUN_ID").as_deref(), Some(run.as_str()));
        assert_eq!(value("NIGHTSHIFT_DAG").as_deref(), Some("programs"));
        assert_eq!(value("NIGHTSHIFT_JOB").as_deref(), Some("env"));
        assert_eq!(value("NIGHTSHIFT_ITEM"), Some(item.to_string()));
        assert_eq!(value("NIGHTSHIFT_ITEM_COUNT").as_deref(), Some("2"));
        assert_eq!(value("NIGHTSHIFT_ITEM_PARAM").as_deref(), Some(param));
        assert_eq!(
            value("NIGHTSHIFT_PARAMS").as_deref(),
            Some(r#"{"region":"$(reboot)"}"#)
        );
        assert_eq!(value("NIGHTSHIFT_ATTEMPT").as_deref(), Some("1"));
        let token: i64 = value("NIGHTSHIFT_FENCING_TOKEN")
            .context("token")?
            .parse()?;
        assert!(token > 0);
        let date = value("NIGHTSHIFT_BUSINESS_DATE").context("date")?;
        let date = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d")?;
        // The key names the work (DAG, date, job, item, params), not the run.
        let work = nightshift_core::keyspace::WorkKey::new(
            "programs".into(),
            date,
            "env".into(),
            nightshift_core::ids::ItemIndex(item),
            &serde_json::json!({"region": "$(reboot)"}),
            Some(param),
            0,
        );
        assert_eq!(value("NIGHTSHIFT_IDEMPOTENCY_KEY"), Some(work.to_string()));
        assert_eq!(
            value("NIGHTSHIFT_ATTEMPT_ID"),
            Some(format!("{run}/env/{item}/1"))
        );
    }
    let env_attempts = cluster.attempts(&run, "env").await?;
    assert!(
        env_attempts.len() == 2
            && env_attempts
                .iter()
                .all(|a| a.outcome == Some(AttemptOutcome::Succeeded)),
        "{env_attempts:?}"
    );

    // Exit 75: failed retryably, retried, then succeeded.
    let mut flaky = cluster.attempts(&run, "flaky").await?;
    flaky.sort_by_key(|a| (a.item.0, a.attempt));
    for item in 0..2 {
        let mine: Vec<_> = flaky.iter().filter(|a| a.item.0 == item).collect();
        assert_eq!(mine.len(), 2, "{mine:?}");
        assert_eq!(mine[0].outcome, Some(AttemptOutcome::Failed), "{mine:?}");
        assert_eq!(
            mine[0].error.as_deref(),
            Some("partner busy (exit status 75)")
        );
        assert_eq!(mine[1].outcome, Some(AttemptOutcome::Succeeded), "{mine:?}");
    }

    // Any other exit: permanent (not retried despite `retries = 2`), and the
    // error is the last stderr line.
    let broken = cluster.attempts(&run, "broken").await?;
    assert_eq!(
        broken.len(),
        1,
        "a permanent failure was retried: {broken:?}"
    );
    assert_eq!(broken[0].outcome, Some(AttemptOutcome::Failed));
    assert_eq!(
        broken[0].error.as_deref(),
        Some("account 17 is closed (exit status 3)")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_program_ignoring_sigterm_is_killed_with_its_group_after_the_grace(
) -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let out = cluster.dir.path().join("out");
    std::fs::create_dir_all(&out)?;
    // The script catches SIGTERM (and notes it); its child ignores it.
    let stubborn = script(
        cluster.dir.path(),
        "stubborn.sh",
        r#"trap 'echo term >> "$1/events"' TERM
sh -c 'trap "" TERM; exec sleep 1000' &
echo "$$ $!" > "$1/pids"
while true; do sleep 0.1; done"#,
    )?;
    let mut flags = program_flags("stubborn", &stubborn, &out);
    flags.extend(["--program-grace".to_owned(), "1500ms".to_owned()]);
    let _scheduler = cluster.scheduler("s1")?;
    let _executor = cluster.executor_with("e1", 2, &strs(&flags))?;
    cluster.apply(
        "stubborn",
        r#"
[jobs.hang]
handler = "stubborn"
shards = 1
item_timeout = "1s"
"#,
    )?;
    cluster.trigger("stubborn")?;
    let run = cluster.nth_run("stubborn", 0, WAIT).await?;
    wait_for(WAIT, "the program wrote its pids", || async {
        pids(&out.join("pids")).len() == 2
    })
    .await?;
    let ids = pids(&out.join("pids"));
    assert!(ids.iter().all(|&p| running(p)), "{ids:?}");
    let end = cluster.wait_run_end(&run, WAIT).await?;
    assert_eq!(end.state, RunState::Failed, "{end:?}");
    let attempts = cluster.attempts(&run, "hang").await?;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    let a = &attempts[0];
    assert_eq!(a.outcome, Some(AttemptOutcome::TimedOut), "{a:?}");
    // Recorded only after the timeout (1 s) and the grace (1.5 s).
    let took = a.ended_at_ms.context("ended")? - a.started_at_ms;
    assert!(took >= 2_400, "attempt ended {took} ms after it started");
    let events = std::fs::read_to_string(out.join("events")).unwrap_or_default();
    assert!(events.contains("term"), "no SIGTERM before the SIGKILL");
    wait_for(
        Duration::from_secs(5),
        "the whole process group gone",
        || async { ids.iter().all(|&p| !running(p)) },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_is_killed_before_its_frozen_executors_item_starts_elsewhere() -> Result<()> {
    let cluster = Cluster::start(Db::Sqlite).await?;
    let out = cluster.dir.path().join("out");
    std::fs::create_dir_all(&out)?;
    // The first instance holds on (with a child); a later one first checks
    // that no process of an earlier instance is still running, then succeeds.
    let hold = script(
        cluster.dir.path(),
        "hold.sh",
        r#"for p in $(cat "$1/pids" 2>/dev/null); do
  state=$(awk '/^State:/ {print $2}' /proc/$p/status 2>/dev/null)
  if [ -n "$state" ] && [ "$state" != Z ]; then echo "$p $state" >> "$1/overlaps"; fi
done
if mkdir "$1/first" 2>/dev/null; then
  sleep 1000 &
  echo "$$ $!" > "$1/pids"
  while true; do sleep 0.1; done
fi
echo "$NIGHTSHIFT_ATTEMPT" > "$1/second"
exit 0"#,
    )?;
    let flags = program_flags("hold", &hold, &out);
    let _scheduler = cluster.scheduler("s1")?;
    let e1 = cluster.executor_with("e1", 2, &strs(&flags))?;
    let e2 = cluster.executor_with("e2", 2, &strs(&flags))?;
    wait_for(WAIT, "both executors registered", || async {
        cluster.executor_ids().await.len() == 2
    })
    .await?;
    cluster.apply(
        "hold",
        r#"
[jobs.hold]
handler = "hold"
shards = 1
"#,
    )?;
    cluster.trigger("hold")?;
    let run = cluster.nth_run("hold", 0, WAIT).await?;
    wait_for(WAIT, "the first instance running", || async {
        pids(&out.join("pids")).len() == 2
    })
    .await?;
    let first = pids(&out.join("pids"));
    let (frozen, other) = if cluster.holds(&run, "hold", "e1").await {
        (&e1, "e2")
    } else {
        (&e2, "e1")
    };
    frozen.signal(libc::SIGSTOP)?;
    let end = cluster.wait_run_end(&run, WAIT).await;
    frozen.signal(libc::SIGCONT)?;
    let end = end?;
    assert_eq!(end.state, RunState::Succeeded, "{end:?}");
    assert!(out.join("second").exists(), "the item never ran again");
    let overlaps = std::fs::read_to_string(out.join("overlaps")).unwrap_or_default();
    assert!(
        overlaps.is_empty(),
        "the frozen executor's program was still running when {other} started the item: {overlaps}"
    );
    assert!(first.iter().all(|&p| !running(p)), "{first:?}");
    let attempts = cluster.attempts(&run, "hold").await?;
    let won = attempts
        .iter()
        .find(|a| a.outcome == Some(AttemptOutcome::Succeeded))
        .context("no successful attempt")?;
    assert_eq!(won.executor.as_str(), other, "{attempts:?}");
    Ok(())
}
