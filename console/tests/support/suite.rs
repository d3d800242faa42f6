//! Happy paths of every read endpoint and every action, run against each
//! backend combination (in-process + SQLite, etcd + SQLite, etcd +
//! PostgreSQL) on a fixture seeded with [`super::seed`].

use super::{Fixture, PREFIX, TOKEN};
use axum::http::{Method, StatusCode};
use nightshift_coord::election::Election;
use nightshift_coord::LeaseId;
use nightshift_core::keyspace::{self, decode, parse_command_key, Command, CommandRecord};
use serde_json::Value;

/// Every read endpoint returns the seeded data.
pub async fn reads(f: &Fixture, alert_id: i64) {
    let (s, health) = f.get_json("/healthz").await;
    assert_eq!((s, health["status"].as_str()), (StatusCode::OK, Some("ok")));

    let (s, dags) = f.get_json("/api/v1/dags").await;
    assert_eq!(s, StatusCode::OK, "{dags}");
    let d = &dags[0];
    assert_eq!(d["name"], "settlement");
    assert_eq!(d["timezone"], "Europe/Paris");
    assert_eq!(d["schedule"], "0 2 * * *");
    assert!(d["next_fire_at"].as_str().is_some(), "{d}");
    assert_eq!(d["total_items"], 13);
    assert_eq!(d["open_alerts"], 1);
    assert_eq!(d["last_run"]["run_id"], "r1");
    // extract (4 items) is done; settle has 3 finished items.
    assert_eq!(
        (
            d["current_run"]["done"].as_u64(),
            d["current_run"]["total"].as_u64()
        ),
        (Some(7), Some(13))
    );

    let (s, dag) = f.get_json("/api/v1/dags/settlement").await;
    assert_eq!(s, StatusCode::OK);
    let jobs: Vec<&str> = dag["job_specs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["extract", "settle", "report"]);
    assert_eq!(dag["versions"][0]["version"], 1);
    assert!(dag["source_toml"]
        .as_str()
        .unwrap()
        .contains("[jobs.settle]"));

    let (s, runs) = f
        .get_json("/api/v1/dags/settlement/runs?limit=1&offset=1")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["run_id"], "r0");

    let (_, runs) = f
        .get_json("/api/v1/runs?dag=settlement&state=succeeded")
        .await;
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["r0"]);

    let (s, run) = f.get_json("/api/v1/runs/r1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(run["run"]["state"], "running");
    let settle = run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "settle")
        .unwrap();
    let c = &settle["counts"];
    assert_eq!(
        [
            &c["total"],
            &c["succeeded"],
            &c["failed"],
            &c["running"],
            &c["pending"]
        ]
        .map(|v| v.as_u64().unwrap()),
        [8, 2, 1, 2, 3]
    );
    let report = run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "report")
        .unwrap();
    assert_eq!(report["state"], "pending");
    assert_eq!(run["totals"]["total"], 13);

    let (s, items) = f.get_json("/api/v1/runs/r1/jobs/settle/items").await;
    assert_eq!(s, StatusCode::OK);
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 8);
    let states: Vec<&str> = items.iter().map(|i| i["state"].as_str().unwrap()).collect();
    assert_eq!(
        states,
        [
            "succeeded",
            "succeeded",
            "failed",
            "running",
            "running",
            "pending",
            "pending",
            "pending"
        ]
    );
    assert_eq!(
        items[2]["attempts"][0]["error"],
        "<script>boom</script> ledger refused"
    );
    assert_eq!(items[3]["progress"]["done"], 5);
    assert_eq!(items[3]["progress"]["executor"], "e1");
    // The live run's checkpoint, read from the coordination store.
    assert_eq!(items[3]["checkpoint"]["value"]["page"], 4);
    assert_eq!(items[3]["checkpoint"]["executor"], "e1");
    assert_eq!(items[3]["checkpoint"]["attempt"], 1);
    assert!(items[2]["checkpoint"].is_null());
    assert_eq!(items[4]["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(items[4]["attempts"][1]["moved_from"], "e2");
    assert_eq!(items[4]["executor"], "e1");

    let (s, execs) = f.get_json("/api/v1/executors").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(execs[0]["id"], "e1");
    assert_eq!(execs[0]["host"], "host-a");
    assert_eq!(execs[0]["labels"]["zone"], "eu-1");
    assert_eq!(execs[0]["running_items"], 2);
    assert!(execs[0]["lease_ttl_ms"].as_u64().unwrap() > 0);

    let (s, alerts) = f.get_json("/api/v1/alerts?state=open").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(alerts[0]["id"], alert_id);
    assert_eq!(alerts[0]["rule"], "item_failed");

    let (s, events) = f.get_json("/api/v1/events?run=r1&kind=run_started").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(events.as_array().unwrap().len(), 1);
    assert_eq!(events[0]["actor"], "scheduler:s1");
    let (_, none) = f.get_json("/api/v1/events?run=r0").await;
    assert_eq!(none.as_array().unwrap().len(), 0);
}

/// The command record an action wrote: exactly one new key, under
/// `commands/`, and nothing else changed.
pub async fn one_command(
    f: &Fixture,
    before: &std::collections::BTreeMap<String, i64>,
) -> CommandRecord {
    let after = f.keys().await;
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, rev)| before.get(*k) != Some(rev))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        changed.len(),
        1,
        "expected exactly one new key, got {changed:?}"
    );
    assert!(
        before.keys().all(|k| after.contains_key(k)),
        "an action deleted a key"
    );
    let key = changed[0];
    let id = parse_command_key(PREFIX, key).unwrap_or_else(|| panic!("not a command: {key}"));
    let kv = f.coord.get(key).await.unwrap().unwrap();
    let record: CommandRecord = decode(&kv.value).unwrap();
    assert_eq!(id, record.id);
    record
}

/// Recognises the command an action should have written.
type Check = Box<dyn Fn(&Command) -> bool>;

/// Each action writes one well-formed command naming the operator.
pub async fn actions(f: &Fixture, alert_id: i64) {
    let cases: Vec<(&str, Option<&str>, Check)> = vec![
        (
            "/api/v1/dags/settlement/trigger",
            Some(r#"{"business_date":"2024-03-29","params":{"region":"eu"}}"#),
            Box::new(|c| {
                matches!(c, Command::Trigger { dag, business_date: Some(d), params: Some(p), .. }
                if dag.as_str() == "settlement" && d.to_string() == "2024-03-29" && p["region"] == "eu")
            }),
        ),
        (
            "/api/v1/dags/settlement/trigger",
            None,
            // A blank date is today's business date, named in the command
            // so that the leader refuses to re-run it once it succeeded.
            Box::new(|c| {
                let today = chrono::Utc::now()
                    .with_timezone(&chrono_tz::Europe::Paris)
                    .date_naive();
                matches!(
                    c,
                    Command::Trigger {
                        business_date: Some(d),
                        rerun: false,
                        ..
                    } if (*d - today).num_days().abs() <= 1
                )
            }),
        ),
        (
            "/api/v1/dags/settlement/pause",
            None,
            Box::new(|c| matches!(c, Command::PauseDag { dag } if dag.as_str() == "settlement")),
        ),
        (
            "/api/v1/dags/settlement/resume",
            None,
            Box::new(|c| matches!(c, Command::ResumeDag { .. })),
        ),
        (
            "/api/v1/runs/r1/cancel",
            None,
            Box::new(|c| matches!(c, Command::CancelRun { run } if run.as_str() == "r1")),
        ),
        (
            "/api/v1/runs/r1/retry",
            Some(r#"{"job":"settle"}"#),
            Box::new(
                |c| matches!(c, Command::Retry { job: Some(j), .. } if j.as_str() == "settle"),
            ),
        ),
        (
            "/api/v1/runs/r1/retry",
            None,
            Box::new(|c| matches!(c, Command::Retry { job: None, .. })),
        ),
        (
            "/api/v1/runs/r1/jobs/report/skip",
            None,
            Box::new(|c| matches!(c, Command::SkipJob { job, .. } if job.as_str() == "report")),
        ),
        (
            "/api/v1/runs/r1/jobs/settle/items/2/mark-succeeded",
            None,
            Box::new(|c| matches!(c, Command::MarkItemSucceeded { item, .. } if item.0 == 2)),
        ),
        (
            "/api/v1/runs/r1/clear",
            Some(r#"{"jobs":["extract"],"items":{"settle":[1,3]},"downstream":true}"#),
            Box::new(|c| {
                matches!(c, Command::Clear { run, jobs, items, downstream: true }
                if run.as_str() == "r1" && jobs.len() == 1 && jobs[0].as_str() == "extract"
                    && items.len() == 1
                    && items.values().next().is_some_and(|v| v.iter().map(|i| i.0).eq([1, 3])))
            }),
        ),
    ];
    for (path, body, check) in cases {
        let before = f.keys().await;
        let (status, answer) = f.post_json(path, body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{path}: {answer}");
        let record = one_command(f, &before).await;
        assert!(check(&record.command), "{path}: {:?}", record.command);
        assert_eq!(record.issued_by, "alice");
        assert_eq!(answer["command_id"], record.id.as_str());
        assert_eq!(answer["kind"], record.command.kind());
    }
    // Run state in SQL is untouched by all of that.
    let (_, run) = f.get_json("/api/v1/runs/r1").await;
    assert_eq!(run["run"]["state"], "running");

    // Alerts are acknowledged in SQL, with an audit event naming the user.
    let (status, acked) = f
        .post_json(&format!("/api/v1/alerts/{alert_id}/ack"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(
        (acked["state"].as_str(), acked["acked_by"].as_str()),
        (Some("acknowledged"), Some("alice"))
    );
    let (status, silence) = f
        .post_json(
            "/api/v1/alerts/silence",
            Some(r#"{"rule":"item_failed","dag":"settlement","minutes":30}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{silence}");
    assert_eq!(silence["created_by"], "alice");
    let (_, silences) = f.get_json("/api/v1/alerts/silences").await;
    assert_eq!(silences.as_array().unwrap().len(), 1);
    let (_, audit) = f.get_json("/api/v1/events?kind=alert_acknowledged").await;
    assert_eq!(audit[0]["actor"], "alice");
    assert_eq!(audit[0]["detail"]["alert_id"], alert_id);
    let (_, audit) = f.get_json("/api/v1/events?kind=alert_silenced").await;
    assert_eq!(audit[0]["actor"], "alice");
}

/// `/metrics` counts what was seeded, in the Prometheus text format.
pub async fn metrics(f: &Fixture) {
    // A scheduler campaigning for leadership (the election's key).
    let candidate =
        Election::new(f.coord.clone(), keyspace::leader_prefix(PREFIX)).candidate_key(LeaseId(7));
    f.coord
        .put(&candidate, b"sched-\"1\"".to_vec(), None)
        .await
        .unwrap();
    let (s, headers, text) = f.call(Method::GET, "/metrics", Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    for line in [
        "nightshift_runs{state=\"running\"} 1",
        "nightshift_runs{state=\"succeeded\"} 1",
        "nightshift_runs{state=\"failed\"} 0",
        "nightshift_alerts_open 1",
        "nightshift_executors_live 1",
        "nightshift_live_run_items{state=\"running\"} 2",
        "nightshift_live_run_items{state=\"succeeded\"} 6",
        "# TYPE nightshift_runs gauge",
        "nightshift_leader_present 1",
        "nightshift_scheduler_candidates 1",
        "nightshift_leader_info{scheduler=\"sched-\\\"1\\\"\"} 1",
        "nightshift_console_sql_errors_total 0",
        "nightshift_console_etcd_errors_total 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    // History is not rebuilt into counters or histograms at scrape time:
    // those come from the process's recorder (scheduler and executors).
    assert!(!text.contains("nightshift_item_duration_seconds"), "{text}");
    // Every sample line is `name{labels} value` or `name value`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        let value = if value == "+Inf" { "inf" } else { value };
        assert!(name.starts_with("nightshift_"), "{line}");
        value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
    }
}

/// Shorthand used by the JSON assertions above.
pub fn arr(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap()
}

/// The token as a header value (for tests that build requests by hand).
pub fn bearer() -> String {
    format!("Bearer {TOKEN}")
}
