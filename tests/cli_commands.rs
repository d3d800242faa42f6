//! Operator commands as real processes against a real etcd and SQL store:
//! `trigger`, `pause` / `resume` and `backfill` write well-formed command
//! records (and refuse bad input without writing any); `backfill` skips
//! succeeded days and, with `--parallel 1`, waits for each run to end before
//! issuing the next (the test plays the leader).

mod cli_env;

use chrono::NaiveDate;
use cli_env::{path_str, Db, Env, PREFIX};
use nightshift_coord::Coordinator;
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::keyspace::{self, decode, Command, CommandId, CommandRecord};
use nightshift_core::state::{RunState, TriggerSource};
use nightshift_store::NewRun;
use nightshift_testkit::wait::wait_for;
use std::time::Duration;

const WEEKDAYS: &str =
    "schedule = \"0 2 * * 1-5\"\ntimezone = \"Europe/Paris\"\n[jobs.load]\nshards = 4\n";

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

async fn applied_env(db: Db) -> Env {
    let env = Env::start(db).await;
    let file = env.write_dag("daily", WEEKDAYS);
    env.run(&["apply", path_str(&file)]).ok();
    env
}

#[tokio::test]
async fn etcd_trigger_writes_a_well_formed_command() {
    let env = applied_env(Db::Sqlite).await;
    let out = env.run(&[
        "trigger",
        "daily",
        "--business-date",
        "2024-03-29",
        "--params",
        r#"{"region":"eu"}"#,
        "--rerun",
    ]);
    // stdout is the id of the run the command creates: `{dag}-{command id}`
    let run = out.ok().trim().to_owned();
    let id = run.strip_prefix("daily-").unwrap_or_default();
    let id = CommandId::parse(id).unwrap_or_else(|| panic!("not a run id: {run:?}"));
    let kv = env
        .coord()
        .await
        .get(&keyspace::command_key(PREFIX, &id))
        .await
        .unwrap()
        .expect("command key");
    let record: CommandRecord = decode(&kv.value).unwrap();
    assert_eq!(record.id, id);
    assert_eq!(record.issued_by, "tester");
    assert_eq!(
        record.command,
        Command::Trigger {
            dag: DagName::new("daily"),
            business_date: Some(day("2024-03-29")),
            params: Some(serde_json::json!({"region": "eu"})),
            rerun: true,
            source: TriggerSource::Manual,
        }
    );
    // Without options: no date, no params, no rerun.
    env.run(&["trigger", "daily"]).ok();
    let commands = env.commands().await;
    assert_eq!(commands.len(), 2);
    assert!(matches!(
        &commands[1].command,
        Command::Trigger {
            business_date: None,
            params: None,
            rerun: false,
            ..
        }
    ));
}

#[tokio::test]
async fn etcd_trigger_refuses_bad_input_and_writes_nothing() {
    let env = applied_env(Db::Sqlite).await;
    let cases: [(&[&str], &str); 5] = [
        (
            &["trigger", "nope"],
            "unknown dag `nope` (applied DAGs: daily)",
        ),
        (
            &["trigger", "daily", "--params", "{oops"],
            "--params is not valid JSON",
        ),
        (
            &["trigger", "daily", "--params", "[1,2]"],
            "--params must be a JSON object",
        ),
        (
            &["trigger", "daily", "--business-date", "2024-13-01"],
            "invalid date `2024-13-01`",
        ),
        (&["trigger", "a/b"], "invalid dag name `a/b`"),
    ];
    for (args, message) in cases {
        let out = env.run(args);
        assert_eq!(out.code(), Some(1), "{args:?}: {}", out.all());
        assert!(out.stderr().contains(message), "{args:?}: {}", out.all());
    }
    assert!(env.commands().await.is_empty());
}

#[tokio::test]
async fn etcd_pause_and_resume_write_commands() {
    let env = applied_env(Db::Sqlite).await;
    assert!(env
        .run(&["pause", "daily"])
        .ok()
        .contains("pause of daily requested"));
    assert!(env
        .run(&["resume", "daily"])
        .ok()
        .contains("(it is not paused)"));
    let kinds: Vec<Command> = env
        .commands()
        .await
        .into_iter()
        .map(|c| c.command)
        .collect();
    let dag = DagName::new("daily");
    assert_eq!(
        kinds,
        vec![
            Command::PauseDag { dag: dag.clone() },
            Command::ResumeDag { dag }
        ]
    );
    let out = env.run(&["pause", "other"]);
    assert_eq!(out.code(), Some(1), "{}", out.all());
}

#[tokio::test]
async fn etcd_backfill_issues_one_command_per_business_day_oldest_first() {
    let env = applied_env(Db::Sqlite).await;
    let store = env.store().await;
    // Thursday 2024-03-28 already succeeded; Wednesday failed (runs again).
    env.seed_run(
        &store,
        "done-28",
        "daily",
        day("2024-03-28"),
        RunState::Succeeded,
    )
    .await;
    env.seed_run(
        &store,
        "failed-27",
        "daily",
        day("2024-03-27"),
        RunState::Failed,
    )
    .await;
    let out = env
        .run(&[
            "backfill",
            "daily",
            "--from",
            "2024-03-26",
            "--to",
            "2024-04-02",
            "--no-wait",
        ])
        .ok();
    assert!(
        out.contains("2024-03-28: skipped, run done-28 already succeeded"),
        "{out}"
    );
    let dates: Vec<(NaiveDate, bool, TriggerSource)> = env
        .commands()
        .await
        .into_iter()
        .map(|c| match c.command {
            Command::Trigger {
                business_date: Some(d),
                rerun,
                source,
                ..
            } => (d, rerun, source),
            other => panic!("unexpected command {other:?}"),
        })
        .collect();
    let expected: Vec<(NaiveDate, bool, TriggerSource)> = [
        "2024-03-26",
        "2024-03-27",
        "2024-03-29",
        "2024-04-01",
        "2024-04-02",
    ]
    .iter()
    .map(|d| (day(d), false, TriggerSource::Backfill))
    .collect();
    assert_eq!(
        dates, expected,
        "weekdays only, succeeded day skipped, oldest first"
    );

    // With --rerun the succeeded day is issued too.
    let out = env
        .run(&[
            "backfill",
            "daily",
            "--from",
            "2024-03-28",
            "--to",
            "2024-03-28",
            "--no-wait",
            "--rerun",
        ])
        .ok();
    assert!(out.contains("2024-03-28: triggered"), "{out}");

    let out = env.run(&[
        "backfill",
        "daily",
        "--from",
        "2023-01-01",
        "--to",
        "2024-03-01",
    ]);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(
        out.stderr().contains("more than --max-days 366"),
        "{}",
        out.all()
    );
}

/// The test plays the leader: each command becomes a run that stays running
/// for a few polls, then succeeds. With `--parallel 1` a new command must
/// never appear while an earlier run is still going.
#[tokio::test]
async fn etcd_backfill_parallel_one_waits_for_each_run() {
    let env = applied_env(Db::Postgres).await;
    let store = env.store().await;
    let coord = env.coord().await;
    let mut child = env
        .command(&[
            "backfill",
            "daily",
            "--from",
            "2024-04-01",
            "--to",
            "2024-04-03",
            "--parallel",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut running: Vec<(RunId, u32)> = Vec::new();
    let mut handled = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "backfill did not finish"
        );
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        for kv in coord
            .get_prefix(&keyspace::commands_prefix(PREFIX))
            .await
            .unwrap()
            .0
        {
            assert!(
                running.is_empty(),
                "a command was issued while run {:?} was still running",
                running
            );
            let record: CommandRecord = decode(&kv.value).unwrap();
            let Command::Trigger {
                business_date: Some(date),
                ..
            } = record.command
            else {
                panic!("{record:?}")
            };
            let run = RunId::new(format!("bf-{date}"));
            store
                .insert_run(&NewRun {
                    run_id: run.clone(),
                    dag: DagName::new("daily"),
                    dag_version: 1,
                    business_date: date,
                    trigger_source: TriggerSource::Backfill,
                    params: serde_json::json!({}),
                    scheduled_for_ms: None,
                    created_at_ms: 1,
                })
                .await
                .unwrap();
            store
                .update_run_state(&run, RunState::Running, 2, None)
                .await
                .unwrap();
            coord.delete(&kv.key).await.unwrap();
            running.push((run, 0));
            handled += 1;
        }
        for (run, polls) in &mut running {
            *polls += 1;
            if *polls == 5 {
                store
                    .update_run_state(run, RunState::Succeeded, 3, None)
                    .await
                    .unwrap();
            }
        }
        running.retain(|(_, polls)| *polls < 5);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(status.success(), "{stdout}");
    assert_eq!(handled, 3);
    assert!(
        stdout.contains("2024-04-02: run bf-2024-04-02 succeeded"),
        "{stdout}"
    );
    assert!(
        stdout.contains("backfill done: 3 run(s), 0 did not succeed"),
        "{stdout}"
    );
    wait_for(Duration::from_secs(5), "no command left", || async {
        env.commands().await.is_empty()
    })
    .await
    .unwrap();
}

/// The leader refuses a trigger (deletes it and records why): backfill
/// reports the reason and exits 2 instead of waiting for a run.
#[tokio::test]
async fn etcd_backfill_reports_a_rejected_command() {
    let env = applied_env(Db::Sqlite).await;
    let store = env.store().await;
    let coord = env.coord().await;
    let child = env
        .command(&[
            "backfill",
            "daily",
            "--from",
            "2024-04-01",
            "--to",
            "2024-04-01",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let record =
        nightshift_testkit::wait::wait_for_value(Duration::from_secs(20), "a command", || async {
            env.commands().await.into_iter().next()
        })
        .await
        .unwrap();
    store
        .append_event(&nightshift_store::NewEvent {
            at_ms: record.issued_at_ms,
            kind: "command_trigger".into(),
            actor: "tester".into(),
            dag: Some(DagName::new("daily")),
            run_id: None,
            job: None,
            item: None,
            executor: None,
            detail: serde_json::json!({"command_id": record.id.as_str(), "outcome": "rejected: testing"}),
        })
        .await
        .unwrap();
    coord
        .delete(&keyspace::command_key(PREFIX, &record.id))
        .await
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "2024-04-01: command {} rejected: testing",
            record.id
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("backfill done: 1 run(s), 1 did not succeed"),
        "{stdout}"
    );
}
