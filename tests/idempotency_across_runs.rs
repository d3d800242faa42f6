//! Issue 13, item 5: idempotency that survives a retry. A handler that
//! follows the SDK's advice — it applies an effect only if its ledger has no
//! entry for `NIGHTSHIFT_IDEMPOTENCY_KEY` (`ctx.idempotency_key()`) — must
//! apply each unit of work once across a failed run, the retry of that run
//! (a new run id), and a `trigger --rerun` of the same day; only
//! `trigger --redo` applies it again, deliberately and visibly.
//!
//! Real processes: etcd, `nightshift scheduler`, and `nightshift executor`
//! serving a program handler (a shell script) that keeps the ledger in a
//! directory, one file per key, and fails item 2 permanently after applying
//! its effect on its first try (a downstream error after the write, the case
//! a run-scoped key got wrong).

mod scheduler_harness;

use anyhow::Result;
use nightshift_core::ids::DagName;
use nightshift_core::state::{RunState, TriggerSource};
use nightshift_store::EventFilter;
use nightshift_testkit::wait::wait_for_value;
use scheduler_harness::{Cluster, Db};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(40);

const DAG: &str = r#"
description = "posts one ledger entry per item"

[jobs.post]
handler = "post"
shards = 4
params = { rate_bps = 5 }
"#;

/// Applies the item's effect once per idempotency key (a marker file per
/// key), then fails item 2 permanently on its first try ever.
const SCRIPT: &str = r#"#!/bin/sh
dir="$1"
key="$NIGHTSHIFT_IDEMPOTENCY_KEY"
marker="$dir/keys/$(printf '%s' "$key" | tr '/' '_')"
if mkdir "$marker" 2>/dev/null; then
    printf '%s %s %s\n' "$key" "$NIGHTSHIFT_RUN_ID" "$NIGHTSHIFT_ITEM" >> "$dir/ledger"
fi
if [ "$NIGHTSHIFT_ITEM" = 2 ] && mkdir "$dir/failed-once" 2>/dev/null; then
    echo "the bank rejected the batch after posting" >&2
    exit 1
fi
exit 0
"#;

/// Ledger lines: (key, run, item).
fn ledger(dir: &Path) -> Vec<(String, String, u32)> {
    std::fs::read_to_string(dir.join("ledger"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((
                f.first()?.to_string(),
                f.get(1)?.to_string(),
                f.get(2)?.parse().ok()?,
            ))
        })
        .collect()
}

/// Entries per item.
fn per_item(lines: &[(String, String, u32)]) -> BTreeMap<u32, usize> {
    let mut out = BTreeMap::new();
    for (_, _, item) in lines {
        *out.entry(*item).or_default() += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_a_retry_and_a_rerun_apply_nothing_twice_and_only_a_redo_applies_again() -> Result<()>
{
    let cluster = Cluster::start(Db::Sqlite).await?;
    let dir = cluster.dir.path().join("effects");
    std::fs::create_dir_all(dir.join("keys"))?;
    let script = cluster.dir.path().join("post.sh");
    std::fs::write(&script, SCRIPT)?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    let _scheduler = cluster.scheduler("s1")?;
    let program = format!("post={}", script.display());
    let arg = format!("post={}", dir.display());
    let _executor =
        cluster.executor_with("e1", 4, &["--program", &program, "--program-arg", &arg])?;
    cluster.apply("ledger", DAG)?;
    let day = "2024-03-29";

    // 1. The first run: every item applies its effect; item 2 then fails.
    cluster.cli_with(&["trigger", "ledger", "--business-date", day], false)?;
    let first = cluster.nth_run("ledger", 0, WAIT).await?;
    let end = cluster.wait_run_end(&first, WAIT).await?;
    assert_eq!(end.state, RunState::Failed, "{end:?}");
    let after_first = ledger(&dir);
    assert_eq!(
        per_item(&after_first),
        BTreeMap::from([(0, 1), (1, 1), (2, 1), (3, 1)]),
        "{after_first:?}"
    );

    // 2. Retrying it starts a new run that runs item 2 again: its key is the
    // same, so the effect is not applied twice.
    cluster.cli(&["runs", "retry", first.as_str()])?;
    let retry = cluster.nth_run("ledger", 1, WAIT).await?;
    let end = cluster.wait_run_end(&retry, WAIT).await?;
    assert_eq!(end.trigger_source, TriggerSource::Retry);
    assert_eq!(end.state, RunState::Succeeded, "{end:?}");
    assert_ne!(retry, first);
    let retried = cluster.attempts(&retry, "post").await?;
    assert!(
        retried.iter().any(|a| a.item.0 == 2),
        "item 2 ran again in the retry: {retried:?}"
    );
    assert_eq!(
        ledger(&dir),
        after_first,
        "the retry applied an effect twice"
    );

    // 3. A rerun of the same day runs every item again: nothing new applies.
    cluster.cli_with(
        &["trigger", "ledger", "--business-date", day, "--rerun"],
        false,
    )?;
    let rerun = cluster.nth_run("ledger", 2, WAIT).await?;
    let end = cluster.wait_run_end(&rerun, WAIT).await?;
    assert_eq!(end.state, RunState::Succeeded, "{end:?}");
    assert_eq!(cluster.attempts(&rerun, "post").await?.len(), 4);
    assert_eq!(
        ledger(&dir),
        after_first,
        "the rerun applied an effect twice"
    );

    // 4. A redo is the deliberate way to apply the day's work again.
    cluster.cli_with(
        &["trigger", "ledger", "--business-date", day, "--redo"],
        false,
    )?;
    let redo = cluster.nth_run("ledger", 3, WAIT).await?;
    let end = cluster.wait_run_end(&redo, WAIT).await?;
    assert_eq!(end.state, RunState::Succeeded, "{end:?}");
    let after_redo = ledger(&dir);
    assert_eq!(
        per_item(&after_redo),
        BTreeMap::from([(0, 2), (1, 2), (2, 2), (3, 2)]),
        "{after_redo:?}"
    );
    for (key, run, _) in &after_redo[after_first.len()..] {
        assert_eq!(run, redo.as_str());
        assert!(key.ends_with("/redo-1"), "{key}");
    }
    // The keys name the work, not the run: the redo's are the first ones
    // with the generation added.
    let mut first_keys: Vec<String> = after_first.iter().map(|l| l.0.clone()).collect();
    let mut redo_keys: Vec<String> = after_redo[after_first.len()..]
        .iter()
        .map(|l| l.0.trim_end_matches("/redo-1").to_owned())
        .collect();
    first_keys.sort();
    redo_keys.sort();
    assert_eq!(first_keys, redo_keys);
    assert!(first_keys
        .iter()
        .all(|k| k.starts_with("ledger/2024-03-29/post/")));

    // The redo is visible in the history: its generation and its event.
    assert_eq!(cluster.store.run_redo(&redo).await?, 1);
    assert_eq!(cluster.store.run_redo(&rerun).await?, 0);
    let filter = EventFilter {
        dag: Some(DagName::new("ledger")),
        kind: Some("command_redo".into()),
        ..Default::default()
    };
    let redo_event = wait_for_value(WAIT, "the command_redo event", || async {
        let events = cluster.store.events(&filter).await.ok()?;
        events.into_iter().next().map(|e| e.event)
    })
    .await?;
    assert_eq!(redo_event.run_id.as_ref(), Some(&redo));
    assert!(
        redo_event.detail["outcome"]
            .as_str()
            .is_some_and(|o| o.contains("redo 1 of 2024-03-29")),
        "{redo_event:?}"
    );
    Ok(())
}
