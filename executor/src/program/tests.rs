//! [`ProgramJob`] on real `/bin/sh` scripts, without an executor: the
//! environment, exit codes, output and stopping a stubborn process group.
//! The executor-level guarantees (retries, lease) are tested with real
//! executor processes in the root package's `tests/program_handlers.rs`.

use super::*;
use crate::testing::{run_item, TestItem};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Whether `pid` names a running (not zombie) process.
pub(crate) fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => !status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z')),
        Err(_) => false,
    }
}

async fn wait_file(path: &Path) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path:?} never written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_program_gets_every_variable_and_its_fixed_arguments_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env");
    let prog = script(
        dir.path(),
        "env.sh",
        r#"out="$1"; shift; echo "args=$*" > "$out"; env | grep '^NIGHTSHIFT_' | sort >> "$out""#,
    );
    std::env::set_var("NIGHTSHIFT_ETCD_PASSWORD", "hunter2");
    let job = ProgramJob::new(&prog).arg(&out).arg("--fixed");
    let item = TestItem::new(2)
        .total_items(5)
        .item_param("EUR; rm -rf /")
        .params(serde_json::json!({"region": "$(reboot)"}))
        .attempt(3)
        .fencing_token(crate::FencingToken(42))
        .business_date(chrono::NaiveDate::from_ymd_opt(2024, 3, 29).unwrap());
    let run = run_item(&job, item).await;
    assert_eq!(run.result, Ok(ItemOutcome::Succeeded));
    let text = std::fs::read_to_string(&out).unwrap();
    let work = nightshift_protocol::keyspace::WorkKey::new(
        "test-dag".into(),
        chrono::NaiveDate::from_ymd_opt(2024, 3, 29).unwrap(),
        "test-job".into(),
        crate::ItemIndex(2),
        &serde_json::json!({"region": "$(reboot)"}),
        Some("EUR; rm -rf /"),
        0,
    );
    let work_line = format!("NIGHTSHIFT_IDEMPOTENCY_KEY={work}");
    assert!(work_line.starts_with("NIGHTSHIFT_IDEMPOTENCY_KEY=test-dag/2024-03-29/test-job/2/"));
    for line in [
        "args=--fixed",
        "NIGHTSHIFT_RUN_ID=test-run",
        "NIGHTSHIFT_DAG=test-dag",
        "NIGHTSHIFT_JOB=test-job",
        "NIGHTSHIFT_ITEM=2",
        "NIGHTSHIFT_ITEM_COUNT=5",
        "NIGHTSHIFT_ITEM_PARAM=EUR; rm -rf /",
        r#"NIGHTSHIFT_PARAMS={"region":"$(reboot)"}"#,
        "NIGHTSHIFT_BUSINESS_DATE=2024-03-29",
        "NIGHTSHIFT_ATTEMPT=3",
        &work_line,
        "NIGHTSHIFT_ATTEMPT_ID=test-run/test-job/2/3",
        "NIGHTSHIFT_FENCING_TOKEN=42",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    assert!(
        !text.contains("hunter2"),
        "the executor's secrets leaked:\n{text}"
    );
}

#[tokio::test]
async fn exit_codes_map_to_outcomes_with_the_last_stderr_line() {
    let dir = tempfile::tempdir().unwrap();
    let retry = script(
        dir.path(),
        "retry.sh",
        "echo 'partner busy' >&2; echo 'try later' >&2; exit 75",
    );
    let fail = script(
        dir.path(),
        "fail.sh",
        "echo '::progress 2/8 halfway'; echo 'account 17 closed' >&2; echo >&2; exit 3",
    );
    let killed = script(dir.path(), "killed.sh", "kill -9 $$");
    let run = run_item(&ProgramJob::new(retry), TestItem::new(0)).await;
    assert_eq!(
        run.result,
        Err(JobError::Retryable("try later (exit status 75)".into()))
    );
    let run = run_item(&ProgramJob::new(fail), TestItem::new(0)).await;
    assert_eq!(
        run.result,
        Err(JobError::Permanent(
            "account 17 closed (exit status 3)".into()
        ))
    );
    assert_eq!(run.progress.len(), 1);
    assert_eq!(run.progress[0].message.as_deref(), Some("halfway"));
    let run = run_item(&ProgramJob::new(killed), TestItem::new(0)).await;
    assert_eq!(
        run.result,
        Err(JobError::Permanent(
            "program failed (killed by signal 9)".into()
        ))
    );
    let run = run_item(
        &ProgramJob::new(dir.path().join("missing")),
        TestItem::new(0),
    )
    .await;
    assert!(
        matches!(run.result, Err(JobError::Permanent(ref m)) if m.contains("cannot start")),
        "{:?}",
        run.result
    );
}

#[tokio::test]
async fn a_cancelled_program_ignoring_sigterm_is_killed_with_its_children_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let prog = script(
        dir.path(),
        "stubborn.sh",
        &format!(
            r#"trap 'echo term >> "{events}"' TERM
sh -c 'trap "" TERM; exec sleep 1000' &
echo "$$ $!" > "{pids}"
while true; do sleep 0.1; done"#,
            events = dir.path().join("events").display(),
            pids = pids.display()
        ),
    );
    let grace = Duration::from_millis(600);
    let item = TestItem::new(0);
    let cancel = item.cancellation_token();
    let job = ProgramJob::new(prog).grace(grace);
    let run = tokio::spawn(async move { run_item(&job, item).await });
    let text = wait_file(&pids).await;
    let ids: Vec<i32> = text
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(ids.iter().all(|&p| running(p)), "{ids:?}");
    let cancelled_at = std::time::Instant::now();
    cancel.cancel();
    let run = run.await.unwrap();
    let took = cancelled_at.elapsed();
    assert!(
        matches!(run.result, Err(JobError::Retryable(ref m)) if m.contains("signal 9")),
        "{:?}",
        run.result
    );
    assert!(
        took >= grace,
        "SIGKILL came after {took:?}, before the grace"
    );
    let events = std::fs::read_to_string(dir.path().join("events")).unwrap_or_default();
    assert!(events.contains("term"), "SIGTERM was not delivered first");
    // The shell is reaped; its child (which ignored SIGTERM too) is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ids.iter().any(|&p| running(p)) {
        assert!(
            std::time::Instant::now() < deadline,
            "{ids:?} still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn the_watchdog_kills_the_group_at_its_deadline_or_when_the_pipe_closes() {
    use std::os::unix::process::CommandExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let spawn = || {
            std::process::Command::new("sleep")
                .arg("1000")
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let gone = |child: &mut std::process::Child| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                if child.try_wait().unwrap().is_some() {
                    return std::time::Instant::now();
                }
                assert!(std::time::Instant::now() < deadline, "never killed");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        // Deadline passes unrenewed: killed then, not before.
        let mut a = spawn();
        let start = std::time::Instant::now();
        let dog = Watchdog::start(
            a.id() as i32,
            Some(Instant::now() + Duration::from_millis(400)),
        )
        .unwrap();
        let at = gone(&mut a);
        assert!(at - start >= Duration::from_millis(350), "{:?}", at - start);
        drop(dog);
        // Pipe closed without "ended": killed at once.
        let mut b = spawn();
        let dog = Watchdog::start(b.id() as i32, None).unwrap();
        dog.set_deadline(Some(Instant::now() + Duration::from_secs(600)));
        assert!(b.try_wait().unwrap().is_none());
        drop(dog);
        gone(&mut b);
        // Released: the group is left alone.
        let mut c = spawn();
        let dog = Watchdog::start(
            c.id() as i32,
            Some(Instant::now() + Duration::from_millis(200)),
        )
        .unwrap();
        dog.release();
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            c.try_wait().unwrap().is_none(),
            "a released watchdog killed"
        );
        c.kill().unwrap();
        c.wait().unwrap();
    });
}
